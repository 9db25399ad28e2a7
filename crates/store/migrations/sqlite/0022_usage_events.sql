-- Usage events counted through batch ingestion, by the id their sender gave, so that an event
-- sent again (a retry) counts once. Kept until `keep_until`: the end of the period after the one
-- the event was counted in.
CREATE TABLE usage_events (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    event_id     TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    keep_until   BIGINT NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
CREATE INDEX usage_events_keep ON usage_events (org_id, keep_until);
-- The scheduler forgets expired ids of every org, a bounded number at a time.
CREATE INDEX usage_events_expiry ON usage_events (keep_until);
