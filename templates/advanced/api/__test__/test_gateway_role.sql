-- Everything a gateway does works with the api role's privileges alone.
DO $$
DECLARE
    api_role text := current_setting('deployment.database_api_role');
    r        api.http_response;
    resp     jsonb;
BEGIN
    PERFORM set_config('auth.idp_subject', 'github|bob-sub', true);
    PERFORM set_config('role', api_role, true);
    r := api.rest_invoke('GET', '/me');
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) ->> 'email' IS DISTINCT FROM 'bob@example.com' THEN
        RAISE EXCEPTION 'GET /me through the api role: % %', r.status_code, api.response_json(r);
    END IF;
    resp := api.mcp_call_tool('my_organizations', '{}', NULL, '1');
    IF NOT coalesce(resp -> 'result' -> 'structuredContent' -> 'organizations' @> '["Acme Corp"]', false) THEN
        RAISE EXCEPTION 'bob''s tool call must list Acme Corp: %', resp;
    END IF;
    BEGIN
        PERFORM count(*) FROM api.rest_exchange;
        RAISE EXCEPTION 'the api role must not read the exchange log' USING ERRCODE = 'P0001';
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    PERFORM set_config('role', 'none', true);
END
$$;
