-- As the customer role, row-level security shows each user only their own rows.
DO $$
DECLARE
    customer_role text := current_setting('deployment.database_customer_role');
    alice         uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    seen          bigint;
BEGIN
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    PERFORM set_config('role', customer_role, true);
    SELECT count(*) INTO seen FROM membership."user";
    IF seen IS DISTINCT FROM 1::bigint THEN
        RAISE EXCEPTION 'alice must see exactly her own user row, saw %', seen;
    END IF;
    IF (SELECT object_id FROM membership."user") IS DISTINCT FROM alice THEN
        RAISE EXCEPTION 'the visible row must be alice';
    END IF;
    IF EXISTS (SELECT 1 FROM membership.organization WHERE owner_user_id IS DISTINCT FROM alice) THEN
        RAISE EXCEPTION 'alice must not see organizations she is not a member of';
    END IF;
    IF EXISTS (SELECT 1 FROM membership.user_identity WHERE user_object_id IS DISTINCT FROM alice) THEN
        RAISE EXCEPTION 'alice must not see other identities';
    END IF;
    BEGIN
        PERFORM key_hash FROM membership.api_key;
        RAISE EXCEPTION 'the customer must not read key hashes' USING ERRCODE = 'P0001';
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    BEGIN
        INSERT INTO membership.role (name) VALUES ('hacker');
        RAISE EXCEPTION 'the customer must not write membership tables' USING ERRCODE = 'P0001';
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    PERFORM set_config('auth.idp_subject', '', true);
    IF EXISTS (SELECT 1 FROM membership."user") THEN
        RAISE EXCEPTION 'an anonymous customer session sees no users';
    END IF;
    PERFORM set_config('role', 'none', true);
END
$$;
