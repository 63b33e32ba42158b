-- Users, keyed by e-mail address. Re-runnable.
CREATE TABLE IF NOT EXISTS "user" (
    email        text PRIMARY KEY CHECK (email LIKE '%_@_%'),
    display_name text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
