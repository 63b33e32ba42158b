-- Functions around "user". CREATE OR REPLACE keeps them re-runnable.

-- Save a user by e-mail: a new e-mail adds a row, a known one gets the new name. Passing
-- no name (NULL) leaves a known user's name as it is. Returns the row as stored.
CREATE OR REPLACE FUNCTION upsert_user(p_email text, p_name text DEFAULT NULL)
RETURNS "user" LANGUAGE sql AS $$
    WITH incoming (email, name) AS (VALUES (p_email, p_name))
    INSERT INTO "user" AS stored (email, name)
    SELECT incoming.email, incoming.name FROM incoming
    ON CONFLICT (email) DO UPDATE
        SET name = CASE WHEN EXCLUDED.name IS NULL THEN stored.name ELSE EXCLUDED.name END
    RETURNING stored.*;
$$;

-- Look a user up by e-mail. The function returns one "user" value, so an unknown e-mail
-- gives a row whose columns are all NULL (test `(get_user(x)).id IS NULL`).
CREATE OR REPLACE FUNCTION get_user(p_email text)
RETURNS "user" LANGUAGE sql STABLE AS $$
    SELECT found FROM "user" AS found WHERE found.email = p_email;
$$;

-- True when a row was deleted.
CREATE OR REPLACE FUNCTION delete_user(p_email text)
RETURNS boolean LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM "user" WHERE email = p_email RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;
