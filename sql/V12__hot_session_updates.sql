-- Every refresh moves its session's sliding expiry (sessions.expires_at).
-- With that column indexed, no such update could be HOT: each refresh wrote
-- a new entry into every index of sessions and left a dead row version
-- behind, 85k dead versions for 132 live sessions after a minute of
-- refreshes (bench/ANALYSIS.md). The retention purge now finds expired
-- sessions through their refresh tokens, whose expires_at is the session's
-- at each rotation and never changes, and through the absolute end
-- (max_expires_at), which never changes either.
DROP INDEX sessions_expires_idx;
CREATE INDEX sessions_max_expires_idx ON sessions (max_expires_at) WHERE revoked_at IS NULL;
-- Room on each page for the new version of a row, so the update stays on
-- its page (a HOT update needs free space there).
ALTER TABLE sessions SET (fillfactor = 70);
