-- Routes require an identity unless they opt out; a bad API key is refused even on public routes.
DO $$
DECLARE
    r api.http_response;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);
    r := api.rest_invoke('POST', '/echo', extensions.hstore(''), convert_to('{"a": 1}', 'UTF8'));
    IF r.status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'anonymous POST /echo must be 401, got %', r.status_code;
    END IF;
    r := api.rest_invoke('GET', '/me');
    IF r.status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'anonymous GET /me must be 401, got %', r.status_code;
    END IF;
    r := api.rest_invoke('GET', '/hello', extensions.hstore('x-api-key', 'pgmi_nonsense'));
    IF r.status_code IS DISTINCT FROM 401 OR api.response_json(r) ->> 'detail' IS DISTINCT FROM 'malformed key' THEN
        RAISE EXCEPTION 'a malformed key must be refused with its reason: % %', r.status_code, api.response_json(r);
    END IF;
    PERFORM set_config('auth.idp_subject', 'google|nobody-knows-me', true);
    r := api.rest_invoke('GET', '/me');
    IF r.status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'an unknown identity is anonymous, got %', r.status_code;
    END IF;
END
$$;
