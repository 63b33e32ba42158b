-- Functions around "user". CREATE OR REPLACE keeps them re-runnable.

-- Insert, or update the name of an existing e-mail. A NULL name keeps the current one.
CREATE OR REPLACE FUNCTION upsert_user(p_email text, p_name text DEFAULT NULL)
RETURNS "user" LANGUAGE sql AS $$
    INSERT INTO "user" (email, name) VALUES (p_email, p_name)
    ON CONFLICT (email) DO UPDATE SET name = coalesce(EXCLUDED.name, "user".name)
    RETURNING *;
$$;

-- The user with this e-mail, or a row of NULLs when there is none.
CREATE OR REPLACE FUNCTION get_user(p_email text)
RETURNS "user" LANGUAGE sql STABLE AS $$
    SELECT * FROM "user" WHERE email = p_email;
$$;

-- True when a row was deleted.
CREATE OR REPLACE FUNCTION delete_user(p_email text)
RETURNS boolean LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM "user" WHERE email = p_email RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;
