CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Emails are stored normalised (lowercase); lower() keeps the rule even for
-- rows written by hand.
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
