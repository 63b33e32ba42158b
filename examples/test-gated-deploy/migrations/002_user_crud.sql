-- Small CRUD API over "user". CREATE OR REPLACE keeps it re-runnable.
CREATE OR REPLACE FUNCTION upsert_user(p_email text, p_name text) RETURNS "user"
LANGUAGE sql AS $$
    INSERT INTO "user" (email, display_name) VALUES (lower(p_email), p_name)
    ON CONFLICT (email) DO UPDATE SET display_name = excluded.display_name
    RETURNING *;
$$;

CREATE OR REPLACE FUNCTION get_user(p_email text) RETURNS "user"
LANGUAGE sql STABLE AS $$
    SELECT * FROM "user" WHERE email = lower(p_email);
$$;

CREATE OR REPLACE FUNCTION delete_user(p_email text) RETURNS boolean
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM "user" WHERE email = lower(p_email) RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;
