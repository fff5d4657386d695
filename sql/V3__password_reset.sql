-- Password-reset requests, recorded for known and unknown emails alike (an
-- unknown one has no user and causes no job), so both take the same path.
CREATE TABLE password_reset_requests (
    id              uuid        PRIMARY KEY,
    user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
    correlation_id  text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX password_reset_requests_user_idx ON password_reset_requests (user_id);

-- Reset tokens, stored only as the SHA-256 of the token text. A new token
-- supersedes every earlier unused one of the same user.
CREATE TABLE password_reset_tokens (
    token_hash     bytea       PRIMARY KEY,
    request_id     uuid        NOT NULL REFERENCES password_reset_requests (id) ON DELETE CASCADE,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    superseded_at  timestamptz,
    CONSTRAINT password_reset_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    CONSTRAINT password_reset_tokens_expiry CHECK (expires_at > created_at),
    CONSTRAINT password_reset_tokens_one_end CHECK (used_at IS NULL OR superseded_at IS NULL)
);

CREATE INDEX password_reset_tokens_live_idx ON password_reset_tokens (user_id)
    WHERE used_at IS NULL AND superseded_at IS NULL;

-- The transactional outbox: a job is written here in the same transaction
-- as the change that causes it, and a relay publishes it to RabbitMQ,
-- marking it published only once the broker has confirmed it.
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    queue           text        NOT NULL,
    payload         jsonb       NOT NULL,
    correlation_id  text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    CONSTRAINT outbox_queue_known CHECK (queue IN ('email.password_reset', 'email.security_notice'))
);

CREATE INDEX outbox_pending_idx ON outbox (created_at) WHERE published_at IS NULL;

-- Jobs the worker has finished: a job id found here is never handled again,
-- however often the broker delivers it.
CREATE TABLE processed_jobs (
    job_id        uuid        PRIMARY KEY,
    queue         text        NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('sent', 'skipped')),
    processed_at  timestamptz NOT NULL DEFAULT now()
);
