-- The license's expiry, kept beside it so that the scheduler finds orgs whose license ran out, and
-- the expiries already announced.
ALTER TABLE orgs ADD COLUMN expires_at BIGINT;
CREATE INDEX orgs_expires_at ON orgs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE expiry_announcements (
    org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
    expires_at BIGINT NOT NULL
);
