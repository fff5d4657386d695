-- Hardening (CONTRACT.md, "Abuse limits and retention").

-- Bumped whenever the password is replaced (reset or change), not when the
-- same password is merely re-hashed with newer Argon2 parameters. A login
-- starts its session only while the version it verified is still current,
-- so a login racing a reset cannot outlive it.
ALTER TABLE users ADD COLUMN password_version integer NOT NULL DEFAULT 1;

-- A session's absolute end (SESSION_MAX_LIFETIME_SECONDS from its login):
-- rotation never moves `expires_at` past it. Existing sessions get the
-- default 30 days from their start.
ALTER TABLE sessions ADD COLUMN max_expires_at timestamptz;
UPDATE sessions SET max_expires_at = created_at + interval '30 days';
ALTER TABLE sessions ALTER COLUMN max_expires_at SET NOT NULL;

-- Reset tokens are random now, one row per request: a job handled again
-- replaces its own token rather than adding a second one.
CREATE UNIQUE INDEX password_reset_tokens_request_key ON password_reset_tokens (request_id);

-- The retention purge walks these by age.
CREATE INDEX password_reset_requests_requested_idx ON password_reset_requests (requested_at);
CREATE INDEX password_reset_tokens_expires_idx ON password_reset_tokens (expires_at);
CREATE INDEX processed_jobs_processed_idx ON processed_jobs (processed_at);
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
