-- The second factor (CONTRACT.md, "Second factor: TOTP and recovery codes").

-- One TOTP factor per user: its secret sealed with DATA_ENCRYPTION_KEY
-- (XChaCha20-Poly1305, the user id as associated data), pending until a
-- first code confirms it. `last_step` is the newest time step accepted, so
-- no code is ever accepted twice.
CREATE TABLE mfa_totp (
    user_id        uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret  bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    enabled_at     timestamptz,
    last_step      bigint
);

-- Single-use recovery codes, stored only as SHA-256 (80 random bits each).
CREATE TABLE mfa_recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT mfa_recovery_codes_hash_length CHECK (octet_length(code_hash) = 32)
);

-- The second step of a login: a password checked, a code still due.
CREATE TABLE mfa_challenges (
    token_hash        bytea       PRIMARY KEY,
    user_id           uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_version  integer     NOT NULL,
    user_agent        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    failures          integer     NOT NULL DEFAULT 0,
    used_at           timestamptz,
    CONSTRAINT mfa_challenges_hash_length CHECK (octet_length(token_hash) = 32)
);

CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

ALTER TABLE users ADD COLUMN mfa_enabled boolean NOT NULL DEFAULT false;

-- How the session's user authenticated (RFC 8176), carried into every
-- access token the session issues.
ALTER TABLE sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';
