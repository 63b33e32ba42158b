-- The users table. IF NOT EXISTS makes this safe to run on every deploy; to change the
-- table later, add a new migration with ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS "user" (
    id         int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE "user" IS 'Application users, one per e-mail address.';
