-- Admin endpoints: 401 anonymous, 403 for members, 200 for system administrators.
DO $$
DECLARE
    r api.http_response;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);
    IF (api.rest_invoke('GET', '/admin/handlers')).status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'anonymous admin call must be 401';
    END IF;
    PERFORM set_config('auth.idp_subject', 'github|bob-sub', true);
    r := api.rest_invoke('GET', '/admin/handlers');
    IF r.status_code IS DISTINCT FROM 403 OR api.current_user_is_admin() IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'bob is no administrator: %', r.status_code;
    END IF;
    PERFORM set_config('auth.idp_subject', 'google|carol-sub', true);
    r := api.rest_invoke('GET', '/admin/handlers');
    IF r.status_code IS DISTINCT FROM 200 OR NOT coalesce(api.response_json(r) @> '[{"name": "hello_world"}]', false) THEN
        RAISE EXCEPTION 'carol must see the registry: % %', r.status_code, api.response_json(r);
    END IF;
END
$$;
