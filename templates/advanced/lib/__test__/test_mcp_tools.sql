-- Tool discovery hides tools that need an identity; calls report tool errors as isError.
DO $$
DECLARE
    resp jsonb;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}');
    IF NOT coalesce(resp -> 'result' -> 'tools' @> '[{"name": "greet"}]', false) THEN
        RAISE EXCEPTION 'the public tool must be listed: %', resp;
    END IF;
    IF coalesce(resp -> 'result' -> 'tools' @> '[{"name": "my_organizations"}]', true) THEN
        RAISE EXCEPTION 'a tool needing an identity must be hidden from anonymous sessions: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                     "params": {"name": "greet", "arguments": {"name": "Ada"}}}');
    IF resp -> 'result' -> 'structuredContent' ->> 'greeting' IS DISTINCT FROM 'Hello, Ada!'
       OR resp -> 'result' -> 'isError' IS DISTINCT FROM 'false'::jsonb THEN
        RAISE EXCEPTION 'greet: %', resp;
    END IF;
    resp := api.mcp_call_tool('greet', '{}', NULL, '3');
    IF resp -> 'result' -> 'isError' IS DISTINCT FROM 'true'::jsonb
       OR resp -> 'result' -> 'content' -> 0 ->> 'text' IS DISTINCT FROM 'name is required' THEN
        RAISE EXCEPTION 'a failing tool must answer isError with its message: %', resp;
    END IF;
    resp := api.mcp_call_tool('no_such_tool', '{}', NULL, '4');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32602 THEN
        RAISE EXCEPTION 'unknown tool must be -32602: %', resp;
    END IF;
    resp := api.mcp_call_tool('my_organizations', '{}', NULL, '5');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32001 THEN
        RAISE EXCEPTION 'anonymous call of an auth tool must be -32001: %', resp;
    END IF;
END
$$;

-- MCP allows only an object as structuredContent: a tool returning anything else answers
-- with text content alone.
DO $$
DECLARE
    resp jsonb;
BEGIN
    PERFORM api.create_or_replace_mcp_handler(
        '{"id": "1d1f0f9e-8f43-4b8e-9a56-2f0d6c3a9b71", "name": "test_list_tool", "tool": "test_list", "requiresAuth": false}',
        'BEGIN RETURN ''[1, 2]''::jsonb; END');
    resp := api.mcp_call_tool('test_list', '{}', NULL, '1');
    IF resp -> 'result' ? 'structuredContent' OR resp -> 'result' -> 'content' -> 0 ->> 'text' IS DISTINCT FROM '[1, 2]' THEN
        RAISE EXCEPTION 'a non-object result must be text only: %', resp;
    END IF;
END
$$;
