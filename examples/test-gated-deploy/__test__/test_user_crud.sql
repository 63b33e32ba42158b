-- The CRUD functions behave, starting from the fixture's three users.
DO $$
DECLARE
    u "user";
BEGIN
    u := get_user('ALICE@example.com');
    IF u.display_name IS DISTINCT FROM 'Alice' THEN
        RAISE EXCEPTION 'get_user should find alice case-insensitively, got %', u.display_name;
    END IF;

    PERFORM upsert_user('alice@example.com', 'Alice Liddell');
    IF (get_user('alice@example.com')).display_name IS DISTINCT FROM 'Alice Liddell' THEN
        RAISE EXCEPTION 'upsert_user should update an existing user';
    END IF;

    IF NOT delete_user('bob@example.com') THEN
        RAISE EXCEPTION 'delete_user should report true for bob';
    END IF;
    IF (get_user('bob@example.com')).email IS NOT NULL THEN
        RAISE EXCEPTION 'delete_user should remove bob';
    END IF;
    IF delete_user('nobody@example.com') THEN
        RAISE EXCEPTION 'delete_user should report false for an unknown user';
    END IF;
END
$$;
