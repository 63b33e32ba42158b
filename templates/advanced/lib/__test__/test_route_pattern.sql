-- Route templates become anchored regexes; literal routes win over placeholders.
DO $$
DECLARE
    r record;
BEGIN
    r := internal.route_pattern('/organizations/{orgId}/members');
    IF r.regex IS DISTINCT FROM '^/organizations/([^/]+)/members/?$' OR r.params IS DISTINCT FROM ARRAY['orgId'] THEN
        RAISE EXCEPTION 'unexpected pattern: % %', r.regex, r.params;
    END IF;
    r := internal.route_pattern('/v1.0/a+b');
    IF coalesce('/v1x0/a+b' ~ r.regex, true) OR NOT coalesce('/v1.0/a+b' ~ r.regex, false) THEN
        RAISE EXCEPTION 'special characters must match literally: %', r.regex;
    END IF;
    BEGIN
        PERFORM internal.route_pattern('no-slash');
        RAISE EXCEPTION 'a route without a leading slash must be refused' USING ERRCODE = 'P0001';
    EXCEPTION WHEN invalid_parameter_value THEN
        NULL;
    END;
    IF (internal.rest_route('GET', '/hello/')).name IS DISTINCT FROM 'hello_world' THEN
        RAISE EXCEPTION 'a trailing slash must reach the same handler';
    END IF;
    IF (internal.rest_route('GET', '/hello/extra')).name IS NOT NULL THEN
        RAISE EXCEPTION 'routes are anchored: /hello/extra must not match /hello';
    END IF;
    IF (internal.rest_route('get', '/organizations')).name IS DISTINCT FROM 'list_organizations' THEN
        RAISE EXCEPTION 'method matching is case-insensitive';
    END IF;
END
$$;
