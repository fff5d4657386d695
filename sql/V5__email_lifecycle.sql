-- Email verification and the account's lifecycle (CONTRACT.md, "Email
-- verification and the account's lifecycle").

-- Accounts made before verification existed count as verified: they have
-- been receiving reset links at that address all along. New accounts start
-- unverified.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT true;
ALTER TABLE users ALTER COLUMN email_verified SET DEFAULT false;

-- Links that prove an address: `verify_email` for the account's own
-- address, `change_email` for the new one (kept in `email`). One row per
-- job (`request_id`), stored only as the SHA-256 of the token; a newer
-- link of the same purpose supersedes the older ones.
CREATE TABLE email_tokens (
    token_hash     bytea       PRIMARY KEY,
    request_id     uuid        NOT NULL,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose        text        NOT NULL CHECK (purpose IN ('verify_email', 'change_email')),
    email          text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    superseded_at  timestamptz,
    CONSTRAINT email_tokens_request_key UNIQUE (request_id),
    CONSTRAINT email_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    CONSTRAINT email_tokens_expiry CHECK (expires_at > created_at),
    CONSTRAINT email_tokens_one_end CHECK (used_at IS NULL OR superseded_at IS NULL)
);

CREATE INDEX email_tokens_live_idx ON email_tokens (user_id, purpose)
    WHERE used_at IS NULL AND superseded_at IS NULL;
CREATE INDEX email_tokens_expires_idx ON email_tokens (expires_at);

ALTER TABLE outbox DROP CONSTRAINT outbox_queue_known;
ALTER TABLE outbox ADD CONSTRAINT outbox_queue_known
    CHECK (queue IN ('email.password_reset', 'email.verification', 'email.security_notice'));
