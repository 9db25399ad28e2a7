-- Usage per org and period; a row is created lazily by the first consume of its period, and past
-- periods stay.
CREATE TABLE usage_periods (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    operations_used BIGINT NOT NULL DEFAULT 0,
    transfer_used   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, period_start)
);

-- A usage threshold crossed in a period: the first to insert the row sends the alert.
CREATE TABLE usage_alerts (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    period_start BIGINT NOT NULL,
    threshold    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, period_start, threshold)
);

-- Things the operator's product keeps for an org, registered so that counts and sizes are
-- checked against the license. They belong to the org, never to a user.
CREATE TABLE assets (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    team_id    TEXT REFERENCES teams (id),
    size_bytes BIGINT NOT NULL DEFAULT 0,
    created_by TEXT REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX assets_org ON assets (org_id, kind);
