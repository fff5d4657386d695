-- Accounts. Emails are stored trimmed and lower-cased (CONTRACT.md,
-- "Endpoints"), so the plain unique index is the uniqueness rule.
CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    email          text        NOT NULL,
    password_hash  text        NOT NULL,
    full_name      text,
    is_active      boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_shape CHECK (
        char_length(email) BETWEEN 3 AND 254
        AND email = btrim(email)
        AND position('@' IN email) > 1
    ),
    CONSTRAINT users_full_name_length CHECK (
        full_name IS NULL OR char_length(full_name) BETWEEN 1 AND 200
    ),
    CONSTRAINT users_password_hash_is_phc CHECK (password_hash LIKE '$argon2id$%')
);
