-- Account security: two-factor secrets (sealed with the instance key) and their recovery codes
-- (SHA-256 digests), failed-login lockout shared by every node, and operator-defined instance
-- roles. Times are microseconds since the epoch.
CREATE TABLE user_totp (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    -- NULL while the enrolment waits for its first code.
    confirmed_at  BIGINT,
    -- The last 30-second step whose code was accepted; no code of it or before is accepted again.
    last_step     BIGINT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE login_lockouts (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    failures     BIGINT NOT NULL,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE custom_roles (
    name        TEXT PRIMARY KEY,
    -- Permission names, comma-separated, sorted.
    permissions TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
