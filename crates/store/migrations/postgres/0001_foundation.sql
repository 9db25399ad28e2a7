-- Users are never deleted; an email key is never reused. Times are microseconds since the epoch.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('invited', 'active', 'suspended', 'deactivated', 'anonymized')),
    password_hash   TEXT,
    locale          TEXT,
    timezone        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_login_at   BIGINT,
    version         BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_email_key ON users (email_key);
CREATE INDEX users_status ON users (status);
CREATE FUNCTION steward_refuse() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END;
$$;
CREATE TRIGGER users_never_deleted BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION steward_refuse('users are never deleted');

CREATE TABLE user_instance_roles (
    user_id TEXT NOT NULL REFERENCES users (id),
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_instance_roles_role ON user_instance_roles (role);

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    external_id TEXT,
    owner_id    TEXT NOT NULL REFERENCES users (id),
    state       TEXT NOT NULL CHECK (state IN ('active', 'deprovisioned', 'purged')),
    timezone    TEXT,
    country     TEXT,
    license     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX orgs_external_id ON orgs (external_id) WHERE external_id IS NOT NULL;

-- A membership that ends keeps its row (ended_at); at most one current row per user and org,
-- and at most one current owner per org.
CREATE TABLE memberships (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'accountant', 'viewer')),
    dormant    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE UNIQUE INDEX memberships_current ON memberships (org_id, user_id) WHERE ended_at IS NULL;
CREATE UNIQUE INDEX memberships_one_owner ON memberships (org_id) WHERE role = 'owner' AND ended_at IS NULL;
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX teams_name ON teams (org_id, name_key);

CREATE TABLE team_members (
    id         TEXT PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('team_admin', 'team_member', 'team_operator', 'team_viewer')),
    dormant    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE UNIQUE INDEX team_members_current ON team_members (team_id, user_id) WHERE ended_at IS NULL;
CREATE INDEX team_members_user ON team_members (user_id);

-- Secrets are kept only as SHA-256 digests.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    token_hash      TEXT NOT NULL,
    impersonator_id TEXT REFERENCES users (id),
    parent_id       TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    ip              TEXT,
    user_agent      TEXT
);
CREATE UNIQUE INDEX sessions_token_hash ON sessions (token_hash);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Append-only and hash-chained; only the personal part may be erased.
CREATE TABLE audit_events (
    seq             BIGINT PRIMARY KEY,
    id              TEXT NOT NULL,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    actor_id        TEXT,
    impersonator_id TEXT,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    org_id          TEXT,
    detail          TEXT NOT NULL,
    personal        TEXT,
    personal_digest TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_events_id ON audit_events (id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_impersonator ON audit_events (impersonator_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_id, seq);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION steward_refuse('the audit log is append-only');
CREATE TRIGGER audit_events_append_only_update
BEFORE UPDATE OF seq, id, at, kind, actor_id, impersonator_id, target_type, target_id, org_id,
    detail, personal_digest, prev_hash, hash ON audit_events
    FOR EACH ROW EXECUTE FUNCTION steward_refuse('the audit log is append-only');

CREATE TABLE instance_settings (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    doc     TEXT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

-- Write transactions lock this row first, so that writers are serialized as they are on SQLite
-- and the audit chain has one order.
CREATE TABLE write_lock (
    id BIGINT PRIMARY KEY CHECK (id = 1)
);
INSERT INTO write_lock (id) VALUES (1);
