-- The admin API (CONTRACT.md, "Admin API").

-- Named keys for the admin listener, stored only as the SHA-256 of the key
-- text. A revoked key keeps its row (and its name), so the audit trail's
-- `actor.name` always names one key.
CREATE TABLE admin_keys (
    name          text        PRIMARY KEY,
    key_hash      bytea       NOT NULL,
    read_only     boolean     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CONSTRAINT admin_keys_hash_key UNIQUE (key_hash),
    CONSTRAINT admin_keys_hash_length CHECK (octet_length(key_hash) = 32),
    CONSTRAINT admin_keys_name_shape CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$')
);

-- A disabled account keeps its rows but cannot sign in, refresh, or get a
-- link mailed. `has_password` is false for an invited account until its
-- set-password link is used. `last_login_at` moves with every new session.
ALTER TABLE users
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN disabled_reason text,
    ADD COLUMN has_password    boolean NOT NULL DEFAULT true,
    ADD COLUMN last_login_at   timestamptz,
    ADD CONSTRAINT users_disabled_reason_length CHECK (
        disabled_reason IS NULL OR char_length(disabled_reason) <= 500
    );

-- The admin search: an address prefix (emails are stored lower-cased, so a
-- byte-wise prefix is the case-insensitive one), newest first by keyset.
CREATE INDEX users_email_prefix_idx ON users (email text_pattern_ops);
CREATE INDEX users_created_page_idx ON users (created_at DESC, id DESC);

-- An invitation is a set-password link that lives longer and, used, also
-- verifies the address it was sent to.
ALTER TABLE password_reset_tokens
    ADD COLUMN purpose text NOT NULL DEFAULT 'reset'
        CHECK (purpose IN ('reset', 'invite'));

ALTER TABLE sessions DROP CONSTRAINT sessions_revocation;
ALTER TABLE sessions ADD CONSTRAINT sessions_revocation CHECK (
    (revoked_at IS NULL AND revoked_reason IS NULL)
    OR (revoked_at IS NOT NULL AND revoked_reason IN
        ('logout', 'logout_all', 'reuse_detected', 'session_deleted',
         'password_changed', 'password_reset', 'mfa_enabled', 'account_disabled'))
);
