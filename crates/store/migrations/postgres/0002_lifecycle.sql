-- The lifecycle: placeholder owners, notification settings, ownership hand-overs, invitations,
-- password resets, the outbox and deprovision records.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE users ADD COLUMN notifications TEXT NOT NULL DEFAULT '{}';
-- An impersonation session keeps the admin's own session secret sealed with its own secret, so
-- that only its holder can get back to the admin's session.
ALTER TABLE sessions ADD COLUMN return_sealed TEXT;

-- An org passed from a deactivated owner to someone else; `returnable` hand-overs go back on
-- reactivation while the receiver still owns the org.
CREATE TABLE ownership_handovers (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    from_user_id  TEXT NOT NULL REFERENCES users (id),
    to_user_id    TEXT NOT NULL REFERENCES users (id),
    returnable    BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    closed_at     BIGINT
);
CREATE INDEX ownership_handovers_from ON ownership_handovers (from_user_id) WHERE closed_at IS NULL;

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    org_id       TEXT REFERENCES orgs (id),
    role         TEXT,
    team_ids     TEXT NOT NULL DEFAULT '[]',
    token_hash   TEXT NOT NULL,
    invited_by   TEXT REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT,
    cancelled_at BIGINT
);
CREATE UNIQUE INDEX invitations_token_hash ON invitations (token_hash);
CREATE INDEX invitations_user ON invitations (user_id);

CREATE TABLE password_resets (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE UNIQUE INDEX password_resets_token_hash ON password_resets (token_hash);

-- Emails (and later webhooks) written in the transaction of the change that causes them.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    user_id         TEXT REFERENCES users (id),
    recipient       TEXT NOT NULL,
    category        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    sent_at         BIGINT,
    dropped_at      BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND dropped_at IS NULL;

CREATE TABLE deprovision_records (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    reason      TEXT NOT NULL,
    snapshot    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT REFERENCES users (id),
    restored_at BIGINT,
    restored_by TEXT REFERENCES users (id)
);
CREATE INDEX deprovision_records_org ON deprovision_records (org_id, created_at);

-- Keys Steward makes for itself (the key of anonymized email hashes); never served by the API.
CREATE TABLE instance_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
