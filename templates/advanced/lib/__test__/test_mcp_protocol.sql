-- The MCP JSON-RPC dispatcher: initialize, ping, notifications, unknown methods.
DO $$
DECLARE
    resp jsonb;
BEGIN
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                     "params": {"protocolVersion": "2025-03-26"}}');
    IF resp -> 'result' ->> 'protocolVersion' IS DISTINCT FROM '2025-03-26' THEN
        RAISE EXCEPTION 'a known version must be echoed: %', resp;
    END IF;
    IF resp -> 'result' -> 'serverInfo' ->> 'name' IS DISTINCT FROM current_database() THEN
        RAISE EXCEPTION 'server name defaults to the database name: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 2, "method": "initialize",
                                     "params": {"protocolVersion": "1999-01-01"}}');
    IF resp -> 'result' ->> 'protocolVersion' IS DISTINCT FROM '2025-11-25' THEN
        RAISE EXCEPTION 'an unknown version must be answered with the newest: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32602 THEN
        RAISE EXCEPTION 'initialize without protocolVersion must be -32602: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": "p", "method": "ping"}');
    IF resp IS DISTINCT FROM '{"jsonrpc": "2.0", "id": "p", "result": {}}'::jsonb THEN
        RAISE EXCEPTION 'ping: %', resp;
    END IF;
    IF api.mcp_handle_request('{"jsonrpc": "2.0", "method": "notifications/initialized"}') IS NOT NULL THEN
        RAISE EXCEPTION 'a notification gets no reply';
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 4, "method": "sampling/nope"}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32601 THEN
        RAISE EXCEPTION 'unknown method must be -32601: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"id": 5, "method": "ping"}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32600 THEN
        RAISE EXCEPTION 'a message without jsonrpc 2.0 is invalid: %', resp;
    END IF;
END
$$;
