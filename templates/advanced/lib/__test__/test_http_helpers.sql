-- The HTTP and encoding helpers, case by case; each check names what it expected.
DO $$
DECLARE
    r api.http_response;
    p record;
BEGIN
    -- Encoding.
    IF common.url_decode('a%20b%2Fc%C3%A9+d') IS DISTINCT FROM 'a b/cé+d'
       OR common.url_decode('a+b', true) IS DISTINCT FROM 'a b'
       OR common.url_decode('100%') IS DISTINCT FROM '100%'
       OR common.url_decode('') IS DISTINCT FROM ''
       OR common.url_decode(NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'url_decode';
    END IF;
    IF common.url_encode('a b/é~') IS DISTINCT FROM 'a%20b%2F%C3%A9~'
       OR common.url_decode(common.url_encode('x&y=z ü')) IS DISTINCT FROM 'x&y=z ü' THEN
        RAISE EXCEPTION 'url_encode: %', common.url_encode('a b/é~');
    END IF;
    IF common.base64url_encode('\xfbff'::bytea) IS DISTINCT FROM '-_8'
       OR common.base64url_decode('-_8') IS DISTINCT FROM '\xfbff'::bytea
       OR common.base64url_decode(common.base64url_encode(convert_to(repeat('pgmi', 30), 'UTF8')))
          IS DISTINCT FROM convert_to(repeat('pgmi', 30), 'UTF8') THEN
        RAISE EXCEPTION 'base64url';
    END IF;

    -- Content negotiation.
    IF NOT api.accept_matches(NULL, 'application/json')
       OR NOT api.accept_matches('text/html, application/*;q=0.5', 'application/json')
       OR api.accept_matches('text/html', 'application/json')
       OR api.accept_matches('*/*, application/json;q=0', 'application/json')      -- the specific q=0 wins
       OR NOT api.accept_matches('*/*', 'application/problem+json') THEN
        RAISE EXCEPTION 'accept_matches';
    END IF;
    IF api.negotiate('text/csv;q=0.5, application/json', ARRAY['text/csv', 'application/json'])
           IS DISTINCT FROM 'application/json'
       OR api.negotiate('*/*', ARRAY['text/csv', 'application/json']) IS DISTINCT FROM 'text/csv'
       OR api.negotiate(NULL, ARRAY['application/json']) IS DISTINCT FROM 'application/json'
       OR api.negotiate('image/png', ARRAY['application/json']) IS NOT NULL THEN
        RAISE EXCEPTION 'negotiate';
    END IF;

    -- Query, pagination and path-template parameters.
    IF api.query_params('/x?tag=a&tag=b&q=hello+world&flag&e=%26#frag')
           IS DISTINCT FROM '{"q": "hello world", "tag": ["a", "b"], "flag": "", "e": "&"}'::jsonb
       OR api.query_params('/x') IS DISTINCT FROM '{}'::jsonb
       OR api.query_param('/x?tag=a&tag=b', 'tag') IS DISTINCT FROM 'a'
       OR api.query_param('/x', 'missing', 'dflt') IS DISTINCT FROM 'dflt' THEN
        RAISE EXCEPTION 'query params: %', api.query_params('/x?tag=a&tag=b&q=hello+world&flag&e=%26#frag');
    END IF;
    p := api.page('/items?limit=5000&offset=-3');
    IF (p.page_limit, p.page_offset) IS DISTINCT FROM (200, 0) THEN
        RAISE EXCEPTION 'page must clamp: %', p;
    END IF;
    p := api.page('/items?limit=abc&offset=20', 25);
    IF (p.page_limit, p.page_offset) IS DISTINCT FROM (25, 20) THEN
        RAISE EXCEPTION 'page must fall back to the default limit: %', p;
    END IF;
    IF api.match_path_template('/orgs/{org}/keys/{key}', '/orgs/acme/keys/k%201?x=1')
           IS DISTINCT FROM '{"org": "acme", "key": "k 1"}'::jsonb
       OR api.match_path_template('/orgs/{org}', '/users/1') IS NOT NULL
       OR api.match_path_template('/health', '/health/') IS DISTINCT FROM '{}'::jsonb THEN
        RAISE EXCEPTION 'match_path_template';
    END IF;

    -- WWW-Authenticate, and the REST dispatcher's 401 answers carry it.
    IF api.www_authenticate('app') IS DISTINCT FROM 'Bearer realm="app"'
       OR api.www_authenticate('a"p', 'invalid_token', E'bad\nkey') IS DISTINCT FROM
          'Bearer realm="a\"p", error="invalid_token", error_description="badkey"' THEN
        RAISE EXCEPTION 'www_authenticate: %', api.www_authenticate('a"p', 'invalid_token', E'bad\nkey');
    END IF;
    PERFORM set_config('auth.idp_subject', '', true);
    r := api.rest_invoke('GET', '/me');
    IF r.status_code IS DISTINCT FROM 401
       OR r.headers OPERATOR(extensions.->) 'www-authenticate' IS DISTINCT FROM
          format('Bearer realm="%s"', current_database()) THEN
        RAISE EXCEPTION 'an anonymous 401 must carry WWW-Authenticate: % %', r.status_code, r.headers;
    END IF;
    r := api.rest_invoke('GET', '/me', extensions.hstore('x-api-key', 'pgmi_000000000000_' || repeat('0', 64)));
    IF r.status_code IS DISTINCT FROM 401
       OR coalesce(r.headers OPERATOR(extensions.->) 'www-authenticate'
                   NOT LIKE '%error="invalid_token", error_description="unknown key"', true) THEN
        RAISE EXCEPTION 'a refused key''s 401 must say invalid_token: % %', r.status_code, r.headers;
    END IF;
END
$$;
