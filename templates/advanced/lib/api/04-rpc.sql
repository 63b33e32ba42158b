/*
<pgmi-meta id="3b35ce2e-32ac-4bf7-b209-896d7d257c95" idempotent="true">
  <description>JSON-RPC 2.0 entry point over the same handler registry</description>
  <sortKeys><key>004/004</key></sortKeys>
</pgmi-meta>
*/

CREATE OR REPLACE FUNCTION api.rpc_resolve(p_method_name text)
RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT object_id FROM api.handler
     WHERE handler_type = 'rpc' AND deleted_at IS NULL AND public_name = p_method_name;
$$;

CREATE OR REPLACE FUNCTION api.rpc_route_policy(p_method_name text, p_requested_isolation text DEFAULT NULL)
RETURNS TABLE (transaction_isolation text, transaction_read_only boolean, transaction_deferrable boolean)
LANGUAGE sql STABLE AS $$
    SELECT p.* FROM (SELECT isolation, read_only FROM api.handler
                      WHERE object_id = api.rpc_resolve(p_method_name)
                      UNION ALL SELECT NULL, NULL LIMIT 1) AS h,
           internal.resolve_transaction_policy(h.isolation, h.read_only, p_requested_isolation) AS p;
$$;

CREATE OR REPLACE FUNCTION internal.rpc_error(p_status int, p_code int, p_message text, p_id jsonb,
                                              p_data jsonb DEFAULT NULL)
RETURNS api.http_response LANGUAGE sql IMMUTABLE AS $$
    SELECT api.json_response(p_status, jsonb_build_object('jsonrpc', '2.0', 'id', p_id, 'error',
                             jsonb_strip_nulls(jsonb_build_object('code', p_code, 'message', p_message, 'data', p_data))));
$$;

-- p_route_id from api.rpc_resolve (resolved before the transaction opened); p_content is
-- the JSON-RPC request: {"jsonrpc": "2.0", "method": ..., "params": ..., "id": ...}.
CREATE OR REPLACE FUNCTION api.rpc_invoke(p_route_id uuid, p_headers extensions.hstore DEFAULT extensions.hstore(''),
                                          p_content bytea DEFAULT NULL)
RETURNS api.http_response LANGUAGE plpgsql AS $$
DECLARE
    request  api.rpc_request := ROW(p_route_id, coalesce(p_headers, extensions.hstore('')), p_content);
    body     jsonb;
    call_id  jsonb;
    h        api.handler;
    result   jsonb;
    response api.http_response;
    refused  text;
    state    text;
    msg      text;
BEGIN
    BEGIN
        body := convert_from(p_content, 'UTF8')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN internal.rpc_error(400, -32700, 'Parse error', 'null');
    END;
    call_id := coalesce(body -> 'id', 'null');
    SELECT * INTO h FROM api.handler WHERE object_id = p_route_id AND handler_type = 'rpc' AND deleted_at IS NULL;
    IF h.object_id IS NULL THEN
        RETURN internal.rpc_error(404, -32601, 'Method not found', call_id);
    END IF;

    refused := internal.authenticate_request(request.headers);
    IF refused IS NOT NULL OR (h.requires_auth AND api.current_user_id() IS NULL) THEN
        response := internal.rpc_error(401, -32001, 'Authentication required', call_id, to_jsonb(refused));
    ELSIF internal.transaction_isolation_shortfall(h.isolation) IS NOT NULL THEN
        response := internal.rpc_error(428, -32000, internal.transaction_isolation_shortfall(h.isolation), call_id);
    ELSE
        BEGIN
            EXECUTE format('SELECT api.%I($1)', h.name) INTO result USING coalesce(body -> 'params', '{}');
            response := api.json_response(200, jsonb_build_object('jsonrpc', '2.0', 'id', call_id, 'result', result));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;
            END IF;
            response := internal.rpc_error(internal.http_status_for(state, h.read_only),
                                           CASE WHEN state LIKE '22%' OR state LIKE '23%' THEN -32602 ELSE -32603 END,
                                           CASE WHEN state LIKE 'P0%' THEN msg ELSE 'Internal error' END, call_id);
        END;
    END IF;

    IF h.auto_log THEN
        INSERT INTO api.rpc_exchange (handler_object_id, request, response, idp_subject)
        VALUES (h.object_id, request, response, api.current_idp_subject());
    END IF;
    RETURN response;
END
$$;
