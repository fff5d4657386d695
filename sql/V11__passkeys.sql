-- Passkeys (CONTRACT.md, "Passkeys (WebAuthn)"): discoverable WebAuthn
-- credentials that sign in on their own. `credential` is the library's
-- serialised credential (public key, sign count, backup flags), replaced
-- only when a sign-in changed it; the columns beside it are for people and
-- queries. A credential id names one credential across every account.
CREATE TABLE passkeys (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    bytea       NOT NULL,
    credential       jsonb       NOT NULL,
    name             text        NOT NULL,
    sign_count       bigint      NOT NULL DEFAULT 0,
    backup_eligible  boolean     NOT NULL DEFAULT false,
    backup_state     boolean     NOT NULL DEFAULT false,
    transports       text[]      NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    CONSTRAINT passkeys_credential_key UNIQUE (credential_id),
    CONSTRAINT passkeys_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
);

CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);
