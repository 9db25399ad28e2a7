-- SCIM 2.0: tokens (each acting through a service user), the userName an identity provider gave,
-- what Steward keeps of a SCIM user or group, users hidden from SCIM by DELETE, teams archived by
-- DELETE /Groups, and emails a user gave up (never to be reused by anyone else).

ALTER TABLE users ADD COLUMN scim_user_name TEXT;
ALTER TABLE users ADD COLUMN scim_user_name_key TEXT;
-- userName is unique across users, and a user without one goes by their email.
CREATE UNIQUE INDEX users_user_name ON users (COALESCE(scim_user_name_key, email_key));

CREATE TABLE scim_users (
    user_id     TEXT PRIMARY KEY REFERENCES users (id),
    external_id TEXT,
    attrs       TEXT NOT NULL,
    hidden_at   BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX scim_users_external_id ON scim_users (external_id);

ALTER TABLE teams ADD COLUMN archived_at BIGINT;
DROP INDEX teams_name;
CREATE UNIQUE INDEX teams_name ON teams (org_id, name_key) WHERE archived_at IS NULL;

CREATE TABLE scim_groups (
    team_id     TEXT PRIMARY KEY REFERENCES teams (id),
    external_id TEXT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX scim_groups_external_id ON scim_groups (external_id);

CREATE TABLE scim_tokens (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    org_id          TEXT REFERENCES orgs (id),
    service_user_id TEXT NOT NULL REFERENCES users (id),
    created_by      TEXT REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

CREATE TABLE retired_emails (
    email_key  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    retired_at BIGINT NOT NULL
);
