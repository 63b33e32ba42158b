-- api.current_user_id follows auth.idp_subject, and only for active users.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);
    IF api.current_user_id() IS NOT NULL OR api.is_authenticated() IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'no subject means anonymous';
    END IF;
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    IF api.current_user_id() IS DISTINCT FROM alice THEN
        RAISE EXCEPTION 'google|alice-sub must be alice';
    END IF;
    PERFORM set_config('auth.idp_subject', 'github|alice-sub', true);
    IF api.current_user_id() IS NOT NULL THEN
        RAISE EXCEPTION 'the provider is part of the identity';
    END IF;
    PERFORM set_config('auth.idp_subject', 'alice-sub', true);
    IF api.current_user_id() IS NOT NULL OR api.parse_idp_provider('alice-sub') IS NOT NULL THEN
        RAISE EXCEPTION 'a subject without provider is malformed';
    END IF;
    IF api.parse_idp_subject_id('apikey|a|b') IS DISTINCT FROM 'a|b' THEN
        RAISE EXCEPTION 'the subject is everything after the first bar';
    END IF;
    UPDATE membership."user" SET is_active = false WHERE object_id = alice;
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    IF api.current_user_id() IS NOT NULL THEN
        RAISE EXCEPTION 'an inactive user is nobody';
    END IF;
END
$$;
