-- The REST entry point: 200 with a body, query strings, 404 and 405 (with Allow).
DO $$
DECLARE
    r api.http_response;
BEGIN
    r := api.rest_invoke('GET', '/hello');
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) ->> 'message' IS DISTINCT FROM 'Hello, world!' THEN
        RAISE EXCEPTION 'GET /hello: % %', r.status_code, api.response_json(r);
    END IF;
    IF extensions.fetchval(r.headers, 'content-type') IS DISTINCT FROM 'application/json' THEN
        RAISE EXCEPTION 'JSON responses must say so in content-type';
    END IF;
    r := api.rest_invoke('GET', '/hello?name=Ada');
    IF api.response_json(r) ->> 'message' IS DISTINCT FROM 'Hello, Ada!' THEN
        RAISE EXCEPTION 'query parameter not used: %', api.response_json(r);
    END IF;
    r := api.rest_invoke('GET', '/nowhere');
    IF r.status_code IS DISTINCT FROM 404 OR api.response_json(r) ->> 'title' IS DISTINCT FROM 'Not Found' THEN
        RAISE EXCEPTION 'unknown path must be a 404 problem: %', r.status_code;
    END IF;
    r := api.rest_invoke('DELETE', '/hello');
    IF r.status_code IS DISTINCT FROM 405 OR extensions.fetchval(r.headers, 'allow') IS DISTINCT FROM 'GET' THEN
        RAISE EXCEPTION 'wrong method must be 405 with Allow: GET, got % %', r.status_code, r.headers;
    END IF;
    r := api.rest_invoke('GET', '/health');
    IF api.response_json(r) ->> 'status' IS DISTINCT FROM 'ok' THEN
        RAISE EXCEPTION '/health must report ok';
    END IF;
END
$$;
