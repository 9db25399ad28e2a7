-- The org an email is about (a usage alert, an org's activity), so that delivery asks again
-- whether the recipient is still a member who wants that org's emails, and erasing an org's data
-- erases them; empty for the rest.
ALTER TABLE outbox ADD COLUMN org_id TEXT;
CREATE INDEX outbox_org ON outbox (org_id) WHERE org_id IS NOT NULL;
