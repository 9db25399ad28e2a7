-- A user's scheduled deactivation.
ALTER TABLE users ADD COLUMN deactivate_at BIGINT;
CREATE INDEX users_deactivate_at ON users (deactivate_at) WHERE deactivate_at IS NOT NULL;
