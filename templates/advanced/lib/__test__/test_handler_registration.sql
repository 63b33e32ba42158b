-- Registration creates the function and one registry row; registering the same id again
-- updates in place (this is what makes redeploys safe).
DO $$
DECLARE
    spec   jsonb := '{"id": "689ffeb4-af36-4a67-b0cf-099d378c7469", "name": "test_ping", "method": "GET",
                      "route": "/test/ping", "requiresAuth": false}';
    before bigint := (SELECT count(*) FROM api.handler);
    info   record;
BEGIN
    PERFORM api.create_or_replace_rest_handler(spec, 'BEGIN RETURN api.json_response(200, ''"pong"''); END');
    PERFORM api.create_or_replace_rest_handler(spec, 'BEGIN RETURN api.json_response(200, ''"pong!"''); END');
    IF (SELECT count(*) FROM api.handler) IS DISTINCT FROM before + 1 THEN
        RAISE EXCEPTION 'two registrations of one id must add exactly one row';
    END IF;
    IF to_regprocedure('api.test_ping(api.rest_request, jsonb)') IS NULL THEN
        RAISE EXCEPTION 'registration must create api.test_ping';
    END IF;
    IF api.response_json(api.rest_invoke('GET', '/test/ping')) IS DISTINCT FROM '"pong!"'::jsonb THEN
        RAISE EXCEPTION 'the second registration must replace the body';
    END IF;
    SELECT * INTO info FROM api.vw_handler_info WHERE name = 'test_ping';
    IF info.function_exists IS DISTINCT FROM true OR info.definition_drifted IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'registry view must show a present, undrifted function: %', row_to_json(info);
    END IF;
    IF EXISTS (SELECT 1 FROM api.vw_handler_info WHERE NOT deleted AND (NOT function_exists OR definition_drifted)) THEN
        RAISE EXCEPTION 'every shipped handler must exist and match its registration';
    END IF;
    BEGIN
        PERFORM api.create_or_replace_rest_handler('{"name": "no_id", "route": "/x"}', 'BEGIN RETURN NULL; END');
        RAISE EXCEPTION 'a spec without id must be refused' USING ERRCODE = 'P0001';
    EXCEPTION WHEN invalid_parameter_value THEN
        NULL;
    END;
END
$$;
