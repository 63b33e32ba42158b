-- Disable, enable, revoke; an API-key session is confined to the key's organization.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    org   uuid := membership.get_user_default_organization(alice);
    other uuid;
    k     record;
BEGIN
    INSERT INTO membership.organization (name, slug, owner_user_id) VALUES ('Side Project', 'side-project', alice)
    RETURNING object_id INTO other;
    INSERT INTO membership.organization_member (organization_id, user_id, role, status, joined_at)
    VALUES (other, alice, 'admin', 'active', now());
    SELECT * INTO k FROM membership.issue_api_key(org, alice, 'lifecycle');

    PERFORM set_config('auth.idp_subject', 'apikey|' || k.key_id, true);
    IF api.current_user_id() IS DISTINCT FROM alice THEN
        RAISE EXCEPTION 'an active key identifies its user';
    END IF;
    IF api.current_member_org_ids() IS DISTINCT FROM ARRAY[org] THEN
        RAISE EXCEPTION 'a key session sees only the key''s organization, got %', api.current_member_org_ids();
    END IF;

    -- Key management runs as alice herself (a disabled key could not re-enable itself).
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    PERFORM membership.disable_api_key(k.key_id);
    IF (SELECT reason FROM membership.validate_api_key(k.plaintext)) IS DISTINCT FROM 'key is disabled' THEN
        RAISE EXCEPTION 'a disabled key must be refused';
    END IF;
    PERFORM set_config('auth.idp_subject', 'apikey|' || k.key_id, true);
    IF api.current_user_id() IS NOT NULL THEN
        RAISE EXCEPTION 'a disabled key identifies nobody';
    END IF;
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    PERFORM membership.enable_api_key(k.key_id);
    IF (SELECT is_valid FROM membership.validate_api_key(k.plaintext)) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'a re-enabled key must work again';
    END IF;
    PERFORM membership.revoke_api_key(k.key_id);
    IF (SELECT reason FROM membership.validate_api_key(k.plaintext)) IS DISTINCT FROM 'key is revoked' THEN
        RAISE EXCEPTION 'a revoked key must be refused';
    END IF;
    IF EXISTS (SELECT 1 FROM membership.user_identity WHERE idp_provider = 'apikey' AND idp_subject_id = k.key_id) THEN
        RAISE EXCEPTION 'revoking must delete the key identity';
    END IF;
    BEGIN
        PERFORM membership.enable_api_key(k.key_id);
        RAISE EXCEPTION 'a revoked key cannot come back' USING ERRCODE = 'P0001';
    EXCEPTION WHEN SQLSTATE 'P0404' OR SQLSTATE 'P0409' THEN
        NULL;
    END;
END
$$;
