-- Keys have the documented shape; only their hash is stored.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    bob   uuid := (membership.get_user_by_email('bob@example.com')).object_id;
    org   uuid := membership.get_user_default_organization(alice);
    k     record;
    stored membership.api_key;
BEGIN
    SELECT * INTO k FROM membership.issue_api_key(org, alice, 'CI key');
    IF coalesce(k.plaintext !~ '^pgmi_[0-9a-f]{12}_[0-9a-f]{64}$', true) THEN
        RAISE EXCEPTION 'unexpected key format: %', left(k.plaintext, 20);
    END IF;
    SELECT * INTO stored FROM membership.api_key WHERE key_id = k.key_id;
    IF stored.key_hash IS DISTINCT FROM encode(sha256(convert_to(k.plaintext, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION 'the stored hash must be sha256 of the full key';
    END IF;
    IF EXISTS (SELECT 1 FROM membership.api_key AS a WHERE to_jsonb(a)::text LIKE '%' || right(k.plaintext, 64) || '%') THEN
        RAISE EXCEPTION 'the secret must not be stored anywhere in the row';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM membership.user_identity WHERE idp_provider = 'apikey' AND idp_subject_id = k.key_id) THEN
        RAISE EXCEPTION 'a key must come with an apikey identity';
    END IF;
    BEGIN
        PERFORM membership.issue_api_key(org, bob, 'not mine');
        RAISE EXCEPTION 'a non-member must not create keys' USING ERRCODE = 'P0001';
    EXCEPTION WHEN SQLSTATE 'P0403' THEN
        NULL;
    END;
    BEGIN
        PERFORM membership.issue_api_key(gen_random_uuid(), alice, 'nowhere');
        RAISE EXCEPTION 'an unknown organization must be P0404' USING ERRCODE = 'P0001';
    EXCEPTION WHEN SQLSTATE 'P0404' THEN
        NULL;
    END;
    BEGIN
        PERFORM membership.issue_api_key(org, alice, '   ');
        RAISE EXCEPTION 'a blank display name must be refused' USING ERRCODE = 'P0001';
    EXCEPTION WHEN check_violation THEN
        NULL;
    END;
END
$$;
