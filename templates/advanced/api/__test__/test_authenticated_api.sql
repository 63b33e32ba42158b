-- Authenticated REST calls: identity from auth.idp_subject or from an x-api-key header.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    acme  uuid := (SELECT object_id FROM membership.organization WHERE slug = 'acme');
    r     api.http_response;
    key   text;
BEGIN
    PERFORM set_config('auth.idp_subject', 'google|alice-sub', true);
    r := api.rest_invoke('GET', '/me');
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) ->> 'email' IS DISTINCT FROM 'alice@example.com' THEN
        RAISE EXCEPTION 'GET /me as alice: % %', r.status_code, api.response_json(r);
    END IF;
    r := api.rest_invoke('POST', '/echo', extensions.hstore(''), convert_to('{"x": [1, 2]}', 'UTF8'));
    IF api.response_json(r) IS DISTINCT FROM '{"x": [1, 2]}'::jsonb THEN
        RAISE EXCEPTION 'POST /echo must return its body: %', api.response_json(r);
    END IF;
    r := api.rest_invoke('GET', '/organizations');
    IF jsonb_array_length(api.response_json(r)) IS DISTINCT FROM 2 THEN
        RAISE EXCEPTION 'alice belongs to Acme and her personal org: %', api.response_json(r);
    END IF;
    r := api.rest_invoke('GET', format('/organizations/%s/members', acme));
    IF r.status_code IS DISTINCT FROM 200 OR jsonb_array_length(api.response_json(r)) IS DISTINCT FROM 2 THEN
        RAISE EXCEPTION 'Acme has two active members: % %', r.status_code, api.response_json(r);
    END IF;
    r := api.rest_invoke('GET', format('/organizations/%s/members', gen_random_uuid()));
    IF r.status_code IS DISTINCT FROM 404 OR api.response_json(r) ->> 'detail' IS DISTINCT FROM 'Organization not found' THEN
        RAISE EXCEPTION 'a foreign organization must be a 404 with the handler''s message: % %', r.status_code, api.response_json(r);
    END IF;

    -- The same, authenticated by an API key instead of a gateway-set identity.
    key := (SELECT plaintext FROM membership.issue_api_key(acme, alice, 'integration'));
    PERFORM set_config('auth.idp_subject', '', true);
    r := api.rest_invoke('GET', '/organizations', extensions.hstore('x-api-key', key));
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) -> 0 ->> 'slug' IS DISTINCT FROM 'acme'
       OR jsonb_array_length(api.response_json(r)) IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'an Acme key sees Acme only: % %', r.status_code, api.response_json(r);
    END IF;
    r := api.rest_invoke('GET', '/me', extensions.hstore('x-api-key', key || '0'));
    IF r.status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'a tampered key must be 401, got %', r.status_code;
    END IF;
END
$$;
