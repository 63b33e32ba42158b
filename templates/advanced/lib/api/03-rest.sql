/*
<pgmi-meta id="123a3bc9-dcc0-4307-a919-cfb7c21c67e0" idempotent="true">
  <description>REST entry point: routing, authentication, policy, status mapping, exchange log</description>
  <sortKeys><key>004/003</key></sortKeys>
</pgmi-meta>
*/

-- How a database error reaches an HTTP client. Handlers raise P0400..P0599 on purpose
-- (e.g. ERRCODE = 'P0404' for "not found"); the code's last three digits are the status.
CREATE OR REPLACE FUNCTION internal.http_status_for(p_sqlstate text, p_read_only boolean DEFAULT false)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_sqlstate ~ '^P0[45][0-9][0-9]$' THEN substr(p_sqlstate, 3)::int
        WHEN p_sqlstate = '23505' THEN 409                                         -- unique violation
        WHEN p_sqlstate IN ('23514', '22001', '22003', '22008') THEN 422           -- check, too long, out of range
        WHEN p_sqlstate IN ('23502', '23503', '22P02', '22023', '22007') THEN 400  -- null, fk, bad input
        WHEN p_sqlstate = '42501' THEN 403                                         -- insufficient privilege
        WHEN p_sqlstate = '25006' THEN CASE WHEN p_read_only THEN 500 ELSE 428 END -- write in read-only xact
        ELSE 500
    END;
$$;

CREATE OR REPLACE FUNCTION internal.http_title(p_status int)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status
        WHEN 400 THEN 'Bad Request' WHEN 401 THEN 'Unauthorized' WHEN 403 THEN 'Forbidden'
        WHEN 404 THEN 'Not Found' WHEN 405 THEN 'Method Not Allowed' WHEN 409 THEN 'Conflict'
        WHEN 422 THEN 'Unprocessable Content' WHEN 428 THEN 'Precondition Required'
        ELSE CASE WHEN p_status >= 500 THEN 'Internal Server Error' ELSE 'Error' END
    END;
$$;

-- An `x-api-key` header, when present, decides who the request is: a usable key sets the
-- transaction's identity (auth.idp_subject = 'apikey|<key id>'), a refused one answers
-- with the refusal reason. NULL means "go on" (no key, or an accepted one); without the
-- header the identity stays what the gateway set (e.g. after checking a JWT).
CREATE OR REPLACE FUNCTION internal.authenticate_request(p_headers extensions.hstore)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    presented text := coalesce(p_headers, extensions.hstore('')) OPERATOR(extensions.->) 'x-api-key';
    outcome   record;
BEGIN
    FOR outcome IN SELECT v.is_valid, v.key_id, v.reason
                     FROM membership.validate_api_key(presented) AS v
                    WHERE presented IS NOT NULL
    LOOP
        IF NOT outcome.is_valid THEN
            RETURN outcome.reason;
        END IF;
        PERFORM set_config('auth.idp_subject', format('apikey|%s', outcome.key_id), true);
    END LOOP;
    RETURN NULL;
END
$$;

-- The live REST handler for a method and path; most specific first (fewest placeholders).
CREATE OR REPLACE FUNCTION internal.rest_route(p_method text, p_path text)
RETURNS api.handler LANGUAGE sql STABLE AS $$
    SELECT * FROM api.handler
     WHERE handler_type = 'rest' AND deleted_at IS NULL AND http_method = upper(p_method)
       AND p_path ~ route_regex
     ORDER BY cardinality(route_params), length(public_name) DESC
     LIMIT 1;
$$;

-- Resolve-then-open: the gateway asks this before BEGIN, then opens the transaction with
-- the answer (BEGIN ISOLATION LEVEL ... READ ONLY ...).
CREATE OR REPLACE FUNCTION api.rest_route_policy(p_method text, p_url text, p_requested_isolation text DEFAULT NULL)
RETURNS TABLE (transaction_isolation text, transaction_read_only boolean, transaction_deferrable boolean)
LANGUAGE sql STABLE AS $$
    SELECT p.* FROM (SELECT internal.rest_route(p_method, split_part(p_url, '?', 1)) AS h) AS r,
           internal.resolve_transaction_policy((r.h).isolation, (r.h).read_only, p_requested_isolation) AS p;
$$;

-- The REST entry point. Never raises for client mistakes: every outcome is a response,
-- except serialization failures and deadlocks (40001, 40P01), which are re-raised so the
-- gateway can retry the whole transaction.
CREATE OR REPLACE FUNCTION api.rest_invoke(p_method text, p_url text,
                                           p_headers extensions.hstore DEFAULT extensions.hstore(''),
                                           p_content bytea DEFAULT NULL)
RETURNS api.http_response LANGUAGE plpgsql AS $$
DECLARE
    request  api.rest_request := ROW(upper(p_method), p_url, coalesce(p_headers, extensions.hstore('')), p_content);
    path     text := split_part(p_url, '?', 1);
    h        api.handler;
    params   jsonb := '{}';
    allowed  text;
    refused  text;
    response api.http_response;
    logged   api.http_response;
    status   int;
    state    text;
    msg      text;
BEGIN
    h := internal.rest_route(request.method, path);
    IF h.object_id IS NULL THEN
        SELECT string_agg(DISTINCT http_method, ', ') INTO allowed FROM api.handler
         WHERE handler_type = 'rest' AND deleted_at IS NULL AND path ~ route_regex;
        IF allowed IS NOT NULL THEN
            RETURN api.problem(405, 'Method Not Allowed', NULL, extensions.hstore('allow', allowed));
        END IF;
        RETURN api.problem(404, 'Not Found', format('no route for %s %s', request.method, path));
    END IF;
    IF cardinality(h.route_params) > 0 THEN
        params := jsonb_object(h.route_params, regexp_match(path, h.route_regex));
    END IF;

    refused := internal.authenticate_request(request.headers);
    IF refused IS NOT NULL THEN
        response := api.problem(401, 'Unauthorized', refused, extensions.hstore(
            'www-authenticate', api.www_authenticate(api.auth_realm(), 'invalid_token', refused)));
    ELSIF h.requires_auth AND api.current_user_id() IS NULL THEN
        response := api.problem(401, 'Unauthorized', 'this route requires an authenticated identity',
                                extensions.hstore('www-authenticate', api.www_authenticate(api.auth_realm())));
    ELSIF internal.transaction_isolation_shortfall(h.isolation) IS NOT NULL THEN
        response := api.problem(428, 'Precondition Required', internal.transaction_isolation_shortfall(h.isolation));
    ELSE
        BEGIN
            EXECUTE format('SELECT * FROM api.%I($1, $2)', h.name) INTO response USING request, params;
            logged := response;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;   -- the transaction is doomed anyway; the caller retries it
            END IF;
            status := internal.http_status_for(state, h.read_only);
            -- Clients get a generic text (constraint names and SQL stay inside); deliberate
            -- P0xxx errors are meant for the client and keep their message.
            response := api.problem(status, internal.http_title(status), CASE WHEN state LIKE 'P0%' THEN msg END);
            logged := api.problem(status, internal.http_title(status), format('sqlstate=%s detail=%s', state, left(msg, 200)),
                                  extensions.hstore('x-error-sqlstate', state));
        END;
    END IF;

    IF h.auto_log THEN
        INSERT INTO api.rest_exchange (handler_object_id, request, response, idp_subject)
        VALUES (h.object_id, request, coalesce(logged, response), api.current_idp_subject());
    END IF;
    RETURN response;
END
$$;
