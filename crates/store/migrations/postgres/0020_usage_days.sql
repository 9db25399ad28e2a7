-- What each org consumed per UTC day, kept by the statements that consume (a refused consume
-- leaves no trace here either), for the charts of the org's pages.
CREATE TABLE usage_days (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    -- The day's first instant (UTC), in microseconds.
    day             BIGINT NOT NULL,
    operations_used BIGINT NOT NULL DEFAULT 0,
    transfer_used   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, day)
);
