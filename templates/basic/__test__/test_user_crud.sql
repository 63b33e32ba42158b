-- Every check raises on failure; IS DISTINCT FROM also catches NULLs that "<>" would let pass.
DO $$
DECLARE
    app     text;
    first   "user";
    again   "user";
    missing "user";
BEGIN
    -- Non-SQL files are visible to tests too.
    SELECT content::jsonb ->> 'app_name' INTO app FROM pg_temp.pgmi_source_view WHERE path = './project.json';
    IF app IS NULL THEN
        RAISE EXCEPTION 'project.json with app_name must be visible in pgmi_source_view';
    END IF;

    -- The fixture is there.
    IF (get_user('alice@example.com')).name IS DISTINCT FROM 'Alice' THEN
        RAISE EXCEPTION 'fixture user alice is missing';
    END IF;

    -- Upsert is idempotent: same id, new name.
    first := upsert_user('dave@example.com', 'Dave');
    again := upsert_user('dave@example.com', 'David');
    IF again.id IS DISTINCT FROM first.id THEN
        RAISE EXCEPTION 'second upsert created a new row (% vs %)', again.id, first.id;
    END IF;
    IF again.name IS DISTINCT FROM 'David' THEN
        RAISE EXCEPTION 'upsert did not update the name: %', again.name;
    END IF;

    -- A NULL name on a new user stays NULL; on an existing user it keeps the name.
    IF (upsert_user('erin@example.com')).name IS NOT NULL THEN
        RAISE EXCEPTION 'upsert without a name must leave name NULL';
    END IF;
    IF (upsert_user('charlie@example.com')).name IS DISTINCT FROM 'Charlie' THEN
        RAISE EXCEPTION 'upsert without a name must keep Charlie';
    END IF;
    IF (upsert_user('charlie@example.com', 'Chuck')).name IS DISTINCT FROM 'Chuck' THEN
        RAISE EXCEPTION 'upsert with a name must update Charlie to Chuck';
    END IF;

    -- Delete reports what it did.
    IF delete_user('bob@example.com') IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'deleting bob must return true';
    END IF;
    IF EXISTS (SELECT 1 FROM "user" WHERE email = 'bob@example.com') THEN
        RAISE EXCEPTION 'bob is still there after delete';
    END IF;
    IF delete_user('nobody@example.com') IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'deleting an unknown user must return false';
    END IF;

    -- Unknown users come back as a row of NULLs.
    missing := get_user('nobody@example.com');
    IF missing.id IS NOT NULL THEN
        RAISE EXCEPTION 'get_user of an unknown e-mail must return NULL fields';
    END IF;
END
$$;
