-- A new identity with a known e-mail links to the existing user instead of creating one.
DO $$
DECLARE
    bob   uuid := (membership.get_user_by_email('bob@example.com')).object_id;
    users bigint := (SELECT count(*) FROM membership."user");
    orgs  bigint := (SELECT count(*) FROM membership.organization);
BEGIN
    IF membership.upsert_user('google', 'bob-google', 'Bob@Example.com') IS DISTINCT FROM bob THEN
        RAISE EXCEPTION 'same e-mail must link to the same user';
    END IF;
    IF (SELECT count(*) FROM membership."user") IS DISTINCT FROM users
       OR (SELECT count(*) FROM membership.organization) IS DISTINCT FROM orgs THEN
        RAISE EXCEPTION 'linking must not create users or organizations';
    END IF;
    IF (SELECT count(*) FROM membership.user_identity WHERE user_object_id = bob) IS DISTINCT FROM 2::bigint THEN
        RAISE EXCEPTION 'bob must now have two identities';
    END IF;
END
$$;
