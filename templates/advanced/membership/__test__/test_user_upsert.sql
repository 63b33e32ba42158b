DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    org   uuid;
BEGIN
    IF alice IS NULL THEN
        RAISE EXCEPTION 'fixture user alice missing';
    END IF;
    IF membership.upsert_user('google', 'alice-sub', 'alice@example.com') IS DISTINCT FROM alice THEN
        RAISE EXCEPTION 'a known identity must return the same user';
    END IF;
    IF (membership.get_user_by_email('alice@example.com')).display_name IS DISTINCT FROM 'Alice' THEN
        RAISE EXCEPTION 'upsert without a display name must keep the name';
    END IF;
    PERFORM membership.upsert_user('google', 'alice-sub', 'alice@example.com', 'Alice A.');
    IF (membership.get_user_by_email('ALICE@example.com ')).display_name IS DISTINCT FROM 'Alice A.' THEN
        RAISE EXCEPTION 'display name must be refreshed; e-mail lookup must ignore case and spaces';
    END IF;
    org := membership.get_user_default_organization(alice);
    IF org IS NULL OR (SELECT name FROM membership.organization WHERE object_id = org) IS DISTINCT FROM 'Personal' THEN
        RAISE EXCEPTION 'first sign-in must create a personal organization';
    END IF;
    IF membership.get_member_role(alice, org) IS DISTINCT FROM 'admin' THEN
        RAISE EXCEPTION 'the user administers their personal organization';
    END IF;
    IF membership.is_organization_owner(alice, org) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'the user owns their personal organization';
    END IF;
END
$$;
