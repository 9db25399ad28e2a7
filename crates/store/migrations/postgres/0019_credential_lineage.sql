-- A credential made with another credential is revoked with it: an API token records the token
-- that created it, an impersonation session the API token that started it (a session started
-- from a session already records it in parent_id). A token's scopes are what it was created for
-- beyond ordinary use (space-separated; empty: nothing more).
ALTER TABLE api_tokens ADD COLUMN parent_token_id TEXT;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN parent_token_id TEXT;
CREATE INDEX api_tokens_parent ON api_tokens (parent_token_id);
CREATE INDEX sessions_parent_token ON sessions (parent_token_id);
CREATE INDEX sessions_parent ON sessions (parent_id);
