-- Security events (CONTRACT.md, "Security events and webhooks"): one
-- append-only row per security-relevant change, written in the transaction
-- of the change. Only the retention purge (EVENT_RETENTION_DAYS) and the
-- deletion of an account remove rows. `user_id` has no foreign key: the
-- `account.deleted` event outlives the account it names.
CREATE TABLE security_events (
    id              uuid        PRIMARY KEY,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id         uuid,
    session_id      uuid,
    outcome         text        NOT NULL CHECK (outcome IN ('success', 'failure')),
    client_address  text,
    user_agent      text,
    correlation_id  text        NOT NULL,
    actor_kind      text        NOT NULL CHECK (actor_kind IN ('user', 'admin', 'system')),
    actor_name      text,
    details         jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT security_events_user_agent_length CHECK (char_length(user_agent) <= 512)
);

-- A user's page, newest first, by keyset (occurred_at, id).
CREATE INDEX security_events_user_page_idx
    ON security_events (user_id, occurred_at DESC, id DESC);
-- The retention purge.
CREATE INDEX security_events_occurred_idx ON security_events (occurred_at);
