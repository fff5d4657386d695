-- Recovery ends what an intruder left behind (CONTRACT.md, "Recovery ends
-- what an intruder left behind").

-- When the account last recovered (a reset, a password change, a logout
-- everywhere, a factor enabled or disabled). Every emailed link of the
-- account live then was superseded; a link job requested before it, still
-- queued, makes no link when the worker gets to it.
ALTER TABLE users ADD COLUMN links_revoked_at timestamptz;

-- Enabling a second factor ends every other session of the account.
ALTER TABLE sessions DROP CONSTRAINT sessions_revocation;
ALTER TABLE sessions ADD CONSTRAINT sessions_revocation CHECK (
    (revoked_at IS NULL AND revoked_reason IS NULL)
    OR (revoked_at IS NOT NULL AND revoked_reason IN
        ('logout', 'logout_all', 'reuse_detected', 'session_deleted',
         'password_changed', 'password_reset', 'mfa_enabled'))
);
