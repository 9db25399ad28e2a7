-- Single sign-on: issuers whose JWTs authorize API requests, OpenID Connect connections with the
-- email domains each one owns, and the external identities (issuer, subject) linked to users.

CREATE TABLE jwt_issuers (
    id             TEXT PRIMARY KEY,
    issuer         TEXT NOT NULL,
    audience       TEXT NOT NULL,
    jwks_url       TEXT,
    public_key_pem TEXT,
    subject_claim  TEXT NOT NULL,
    email_claim    TEXT,
    jit            BOOLEAN NOT NULL DEFAULT FALSE,
    created_by     TEXT REFERENCES users (id),
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX jwt_issuers_issuer_audience ON jwt_issuers (issuer, audience);

CREATE TABLE sso_connections (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    org_id               TEXT REFERENCES orgs (id),
    issuer               TEXT NOT NULL,
    client_id            TEXT NOT NULL,
    client_secret_sealed TEXT NOT NULL,
    scopes               TEXT NOT NULL,
    -- also in sso_domains, which holds each domain once
    domains              TEXT NOT NULL,
    claims               TEXT NOT NULL,
    role_mapping         TEXT NOT NULL,
    jit                  BOOLEAN NOT NULL DEFAULT FALSE,
    enforced             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    version              BIGINT NOT NULL
);

-- An email domain belongs to one connection at most.
CREATE TABLE sso_domains (
    domain        TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES sso_connections (id)
);
CREATE INDEX sso_domains_connection ON sso_domains (connection_id);

CREATE TABLE external_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user ON external_identities (user_id);
