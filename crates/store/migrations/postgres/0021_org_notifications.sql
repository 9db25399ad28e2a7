-- A member's notification settings for this org's own emails (usage alerts, org activity), as
-- a JSON object of category -> on; a category not named is on. Deprovisioning switches these
-- off for the org's members and restore puts them back; the person's own settings (security,
-- product updates) stay on the user.
ALTER TABLE memberships ADD COLUMN notifications TEXT NOT NULL DEFAULT '{}';
