-- Resources and prompts come from the same registry as tools: listing hides entries that
-- need an identity, reading and getting follow the registered bodies, and failures are
-- JSON-RPC errors (-32602 for unknown names and missing arguments, -32603 for a body that
-- raises) whose text carries only the SQLSTATE and the message's start.
DO $$
DECLARE
    resp jsonb;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);

    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 1, "method": "resources/list"}');
    IF NOT coalesce(resp -> 'result' -> 'resources' @> '[{"uri": "app://about", "mimeType": "text/plain"}]', false) THEN
        RAISE EXCEPTION 'resources/list must list app://about: %', resp;
    END IF;
    IF resp -> 'result' -> 'resources' @> '[{"uri": "app://routes/{handler}"}]' THEN
        RAISE EXCEPTION 'a URI template belongs in resources/templates/list: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 2, "method": "resources/templates/list"}');
    IF NOT coalesce(resp -> 'result' -> 'resourceTemplates' @> '[{"uriTemplate": "app://routes/{handler}"}]', false) THEN
        RAISE EXCEPTION 'resources/templates/list must list the template: %', resp;
    END IF;

    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": "r3", "method": "resources/read",
                                     "params": {"uri": "app://about"}}');
    IF resp -> 'id' IS DISTINCT FROM '"r3"'::jsonb
       OR resp -> 'result' -> 'contents' -> 0 ->> 'uri' IS DISTINCT FROM 'app://about'
       OR resp -> 'result' -> 'contents' -> 0 ->> 'mimeType' IS DISTINCT FROM 'text/plain'
       OR coalesce(resp -> 'result' -> 'contents' -> 0 ->> 'text' NOT LIKE '%tools%resources%prompts%', true) THEN
        RAISE EXCEPTION 'resources/read app://about: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 4, "method": "resources/read",
                                     "params": {"uri": "app://routes/hello_world"}}');
    IF (resp -> 'result' -> 'contents' -> 0 ->> 'text')::jsonb ->> 'route' IS DISTINCT FROM '/hello'
       OR resp -> 'result' -> 'contents' -> 0 ->> 'mimeType' IS DISTINCT FROM 'application/json' THEN
        RAISE EXCEPTION 'a template resource must get its placeholder: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 5, "method": "resources/read",
                                     "params": {"uri": "app://routes/no_such"}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32603
       OR resp -> 'error' ->> 'message' IS DISTINCT FROM 'sqlstate=P0404 detail=no public route named no_such' THEN
        RAISE EXCEPTION 'a failing resource must be -32603 with sqlstate and detail: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 6, "method": "resources/read",
                                     "params": {"uri": "app://nothing"}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32602 THEN
        RAISE EXCEPTION 'an unknown resource must be -32602: %', resp;
    END IF;

    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 7, "method": "prompts/list"}');
    IF NOT coalesce(resp -> 'result' -> 'prompts' @> '[{"name": "explain_route",
                                                          "arguments": [{"name": "handler", "required": true}]}]', false) THEN
        RAISE EXCEPTION 'prompts/list must list explain_route with its arguments: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 8, "method": "prompts/get",
                                     "params": {"name": "explain_route", "arguments": {"handler": "hello_world"}}}');
    IF resp -> 'result' -> 'messages' -> 0 ->> 'role' IS DISTINCT FROM 'user'
       OR resp -> 'result' -> 'messages' -> 0 -> 'content' ->> 'type' IS DISTINCT FROM 'text'
       OR coalesce(resp -> 'result' -> 'messages' -> 0 -> 'content' ->> 'text' NOT LIKE '%handler hello_world%new developer%',
                   true) THEN
        RAISE EXCEPTION 'prompts/get must return the rendered message: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 9, "method": "prompts/get",
                                     "params": {"name": "explain_route", "arguments": {}}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32602
       OR resp -> 'error' ->> 'message' IS DISTINCT FROM 'Missing required argument: handler' THEN
        RAISE EXCEPTION 'a missing required argument must be -32602: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 10, "method": "prompts/get", "params": {"name": "nope"}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32602 THEN
        RAISE EXCEPTION 'an unknown prompt must be -32602: %', resp;
    END IF;

    -- Every exchange is in the log, failures included.
    IF (SELECT count(*) FROM api.mcp_exchange WHERE mcp_type = 'resource') < 4
       OR (SELECT count(*) FROM api.mcp_exchange WHERE mcp_type = 'prompt') < 3 THEN
        RAISE EXCEPTION 'resource reads and prompt gets must be logged';
    END IF;
END
$$;

-- An entry that needs an identity is hidden from anonymous sessions and refused with -32001.
DO $$
DECLARE
    resp jsonb;
BEGIN
    PERFORM api.create_or_replace_mcp_resource(
        '{"id": "6b0e4bd4-3f1e-4c55-a2a3-7f3a0a3d2c11", "name": "test_private_resource", "uri": "app://private"}',
        'BEGIN RETURN to_jsonb(''secret''::text); END');
    PERFORM set_config('auth.idp_subject', '', true);
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 1, "method": "resources/list"}');
    IF resp -> 'result' -> 'resources' @> '[{"uri": "app://private"}]' THEN
        RAISE EXCEPTION 'a resource needing an identity must be hidden: %', resp;
    END IF;
    resp := api.mcp_handle_request('{"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "app://private"}}');
    IF (resp -> 'error' ->> 'code')::int IS DISTINCT FROM -32001 THEN
        RAISE EXCEPTION 'an anonymous read of a private resource must be -32001: %', resp;
    END IF;
END
$$;
