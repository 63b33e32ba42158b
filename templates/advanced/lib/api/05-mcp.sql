/*
<pgmi-meta id="a1f1a99b-be71-44b7-af5c-08e2345b6c49" idempotent="true">
  <description>MCP (Model Context Protocol) entry point: initialize, ping, tools, resources and prompts</description>
  <sortKeys><key>004/005</key></sortKeys>
</pgmi-meta>
*/
-- MCP speaks JSON-RPC 2.0. A gateway (stdio or HTTP) passes each request to
-- api.mcp_handle_request and writes back what it returns; NULL means "notification, no
-- reply". Tools, resources and prompts are handlers in api.handler (types mcp_tool,
-- mcp_resource, mcp_prompt): one registry, one set of rules (requiresAuth, isolation,
-- exchange log) for all three.

CREATE OR REPLACE FUNCTION api.mcp_server_info()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', coalesce(current_setting('mcp.server_name', true), current_database()),
                              'version', coalesce(current_setting('mcp.server_version', true), '1.0.0'));
$$;

CREATE OR REPLACE FUNCTION api.mcp_server_capabilities()
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"tools": {}, "resources": {}, "prompts": {}}'::jsonb;
$$;

CREATE OR REPLACE FUNCTION internal.mcp_result(p_id jsonb, p_result jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('jsonrpc', '2.0', 'id', p_id, 'result', p_result);
$$;

CREATE OR REPLACE FUNCTION internal.mcp_error(p_id jsonb, p_code int, p_message text, p_data jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('jsonrpc', '2.0', 'id', coalesce(p_id, 'null'), 'error',
                              jsonb_strip_nulls(jsonb_build_object('code', p_code, 'message', p_message, 'data', p_data)));
$$;

-- Version negotiation: echo a version we know, else offer the newest we speak.
CREATE OR REPLACE FUNCTION api.mcp_initialize(p_params jsonb, p_request_id jsonb)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_params ->> 'protocolVersion' IS NULL
            THEN internal.mcp_error(p_request_id, -32602, 'Invalid params: protocolVersion is required')
        ELSE internal.mcp_result(p_request_id, jsonb_build_object(
            'protocolVersion', CASE WHEN p_params ->> 'protocolVersion' IN ('2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25')
                                    THEN p_params ->> 'protocolVersion' ELSE '2025-11-25' END,
            'capabilities', api.mcp_server_capabilities(),
            'serverInfo', api.mcp_server_info()))
    END;
$$;

CREATE OR REPLACE FUNCTION api.mcp_ping(p_request_id jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT internal.mcp_result(p_request_id, '{}');
$$;

-- Tools that need an identity are hidden from anonymous sessions.
-- (plpgsql: api.current_user_id is defined later, by membership/02-identity.sql)
CREATE OR REPLACE FUNCTION api.mcp_list_tools()
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object('tools', coalesce(jsonb_agg(jsonb_build_object(
               'name', public_name, 'description', description,
               'inputSchema', coalesce(input_schema, '{"type": "object"}')) ORDER BY public_name), '[]'))
      FROM api.handler
     WHERE handler_type = 'mcp_tool' AND deleted_at IS NULL
       AND (NOT requires_auth OR api.current_user_id() IS NOT NULL));
END
$$;

-- A tool call. Unknown tool and missing identity are protocol errors; a tool that raises
-- answers with isError: true (the model sees the failure and may try again), except
-- serialization failures, which abort for the gateway to retry.
CREATE OR REPLACE FUNCTION api.mcp_call_tool(p_name text, p_arguments jsonb, p_context jsonb DEFAULT NULL,
                                             p_request_id jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h        api.handler;
    result   jsonb;
    envelope jsonb;
    state    text;
    msg      text;
BEGIN
    SELECT * INTO h FROM api.handler WHERE handler_type = 'mcp_tool' AND deleted_at IS NULL AND public_name = p_name;
    IF h.object_id IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32602, format('Unknown tool: %s', p_name));
    ELSIF h.requires_auth AND api.current_user_id() IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32001, 'Authentication required');
    ELSIF internal.transaction_isolation_shortfall(h.isolation) IS NOT NULL THEN
        envelope := internal.mcp_error(p_request_id, -32600, internal.transaction_isolation_shortfall(h.isolation),
                                       jsonb_build_object('code', 'isolation_shortfall'));
    ELSE
        BEGIN
            EXECUTE format('SELECT api.%I($1, $2)', h.name) INTO result USING coalesce(p_arguments, '{}'), p_context;
            -- MCP allows only an object as structuredContent; other results are text only.
            envelope := internal.mcp_result(p_request_id, jsonb_build_object(
                'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', result::text)), 'isError', false)
                || CASE WHEN jsonb_typeof(result) = 'object' THEN jsonb_build_object('structuredContent', result)
                        ELSE '{}' END);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;
            END IF;
            envelope := internal.mcp_result(p_request_id, jsonb_build_object(
                'content', jsonb_build_array(jsonb_build_object('type', 'text', 'text', msg)), 'isError', true));
        END;
    END IF;
    INSERT INTO api.mcp_exchange (handler_object_id, mcp_type, mcp_name, request, response, idp_subject)
    VALUES (h.object_id, 'tool', p_name, ROW(p_arguments, NULL, p_context, p_request_id)::api.mcp_request,
            envelope, api.current_idp_subject());
    RETURN envelope;
END
$$;

-- Entries of one kind the caller may discover: live ones, and those needing an identity
-- only when there is one. (plpgsql for the same reason as mcp_list_tools.)
CREATE OR REPLACE FUNCTION internal.mcp_visible(p_type api.handler_type)
RETURNS SETOF api.handler LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY SELECT * FROM api.handler
                  WHERE handler_type = p_type AND deleted_at IS NULL
                    AND (NOT requires_auth OR api.current_user_id() IS NOT NULL);
END
$$;

-- Resources with a fixed URI; those with {placeholders} are listed as templates.
CREATE OR REPLACE FUNCTION api.mcp_list_resources()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('resources', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'uri', public_name, 'name', name, 'description', nullif(description, ''), 'mimeType', mime_type))
               ORDER BY public_name), '[]'))
      FROM internal.mcp_visible('mcp_resource') WHERE route_regex IS NULL;
$$;

CREATE OR REPLACE FUNCTION api.mcp_list_resource_templates()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('resourceTemplates', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'uriTemplate', public_name, 'name', name, 'description', nullif(description, ''),
               'mimeType', mime_type)) ORDER BY public_name), '[]'))
      FROM internal.mcp_visible('mcp_resource') WHERE route_regex IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION api.mcp_list_prompts()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('prompts', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'name', public_name, 'description', nullif(description, ''),
               'arguments', coalesce(input_schema, '[]'))) ORDER BY public_name), '[]'))
      FROM internal.mcp_visible('mcp_prompt');
$$;

-- What a failing resource or prompt tells the client: the SQLSTATE and the start of the
-- message, nothing of the SQL or the data around it.
CREATE OR REPLACE FUNCTION internal.mcp_failure_text(p_sqlstate text, p_message text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('sqlstate=%s detail=%s', p_sqlstate, left(p_message, 200));
$$;

-- resources/read. The exact URI wins over a template; among templates, the one with the
-- fewest placeholders (the most specific). The body's jsonb becomes `contents`: each item
-- carries the URI read and the resource's mimeType unless the body set its own.
CREATE OR REPLACE FUNCTION api.mcp_read_resource(p_uri text, p_context jsonb DEFAULT NULL,
                                                 p_request_id jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h        api.handler;
    params   jsonb := '{}';
    produced jsonb;
    envelope jsonb;
    state    text;
    msg      text;
BEGIN
    SELECT * INTO h FROM api.handler
     WHERE handler_type = 'mcp_resource' AND deleted_at IS NULL
       AND (public_name = p_uri OR (route_regex IS NOT NULL AND p_uri ~ route_regex))
     ORDER BY route_regex IS NOT NULL, cardinality(route_params)
     LIMIT 1;
    IF h.route_regex IS NOT NULL THEN
        SELECT jsonb_object_agg(name, value) INTO params
          FROM unnest(h.route_params, regexp_match(p_uri, h.route_regex)) AS t(name, value);
    END IF;
    IF h.object_id IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32602, format('Unknown resource: %s', p_uri));
    ELSIF h.requires_auth AND api.current_user_id() IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32001, 'Authentication required');
    ELSIF internal.transaction_isolation_shortfall(h.isolation) IS NOT NULL THEN
        envelope := internal.mcp_error(p_request_id, -32600, internal.transaction_isolation_shortfall(h.isolation),
                                       jsonb_build_object('code', 'isolation_shortfall'));
    ELSE
        BEGIN
            EXECUTE format('SELECT api.%I($1, $2, $3)', h.name) INTO produced USING p_uri, coalesce(params, '{}'), p_context;
            envelope := internal.mcp_result(p_request_id, jsonb_build_object('contents', (
                SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object('uri', p_uri, 'mimeType', h.mime_type))
                                          || CASE jsonb_typeof(item) WHEN 'object' THEN item
                                                  ELSE jsonb_build_object('text', item #>> '{}') END), '[]')
                  FROM jsonb_array_elements(CASE jsonb_typeof(produced) WHEN 'array' THEN produced
                                                 ELSE jsonb_build_array(produced) END) AS t(item)
                 WHERE produced IS NOT NULL)));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;
            END IF;
            envelope := internal.mcp_error(p_request_id, -32603, internal.mcp_failure_text(state, msg));
        END;
    END IF;
    INSERT INTO api.mcp_exchange (handler_object_id, mcp_type, mcp_name, request, response, idp_subject)
    VALUES (h.object_id, 'resource', p_uri, ROW(NULL, p_uri, p_context, p_request_id)::api.mcp_request,
            envelope, api.current_idp_subject());
    RETURN envelope;
END
$$;

-- prompts/get. Required arguments are checked against the declared list before the body
-- runs; a string result is one user message.
CREATE OR REPLACE FUNCTION api.mcp_get_prompt(p_name text, p_arguments jsonb, p_context jsonb DEFAULT NULL,
                                              p_request_id jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h        api.handler;
    missing  text;
    produced jsonb;
    envelope jsonb;
    state    text;
    msg      text;
BEGIN
    SELECT * INTO h FROM api.handler WHERE handler_type = 'mcp_prompt' AND deleted_at IS NULL AND public_name = p_name;
    SELECT string_agg(a ->> 'name', ', ') INTO missing
      FROM jsonb_array_elements(coalesce(h.input_schema, '[]')) AS a
     WHERE coalesce((a ->> 'required')::boolean, false) AND coalesce(p_arguments ->> (a ->> 'name'), '') = '';
    IF h.object_id IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32602, format('Unknown prompt: %s', p_name));
    ELSIF h.requires_auth AND api.current_user_id() IS NULL THEN
        envelope := internal.mcp_error(p_request_id, -32001, 'Authentication required');
    ELSIF missing IS NOT NULL THEN
        envelope := internal.mcp_error(p_request_id, -32602, format('Missing required argument: %s', missing));
    ELSE
        BEGIN
            EXECUTE format('SELECT api.%I($1, $2)', h.name) INTO produced USING coalesce(p_arguments, '{}'), p_context;
            envelope := internal.mcp_result(p_request_id, jsonb_strip_nulls(jsonb_build_object(
                'description', nullif(h.description, ''),
                'messages', (SELECT coalesce(jsonb_agg(CASE jsonb_typeof(m) WHEN 'object' THEN m
                                 ELSE jsonb_build_object('role', 'user', 'content',
                                                         jsonb_build_object('type', 'text', 'text', m #>> '{}')) END), '[]')
                               FROM jsonb_array_elements(CASE jsonb_typeof(produced) WHEN 'array' THEN produced
                                                              ELSE jsonb_build_array(produced) END) AS t(m)
                              WHERE produced IS NOT NULL))));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;
            END IF;
            envelope := internal.mcp_error(p_request_id, -32603, internal.mcp_failure_text(state, msg));
        END;
    END IF;
    INSERT INTO api.mcp_exchange (handler_object_id, mcp_type, mcp_name, request, response, idp_subject)
    VALUES (h.object_id, 'prompt', p_name, ROW(p_arguments, NULL, p_context, p_request_id)::api.mcp_request,
            envelope, api.current_idp_subject());
    RETURN envelope;
END
$$;

-- The JSON-RPC dispatcher for one MCP message.
CREATE OR REPLACE FUNCTION api.mcp_handle_request(p_request jsonb, p_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    request_id jsonb := p_request -> 'id';
    method     text := p_request ->> 'method';
    params     jsonb := coalesce(p_request -> 'params', '{}');
BEGIN
    IF p_request ->> 'jsonrpc' IS DISTINCT FROM '2.0' OR method IS NULL THEN
        RETURN internal.mcp_error(request_id, -32600, 'Invalid Request');
    END IF;
    IF request_id IS NULL THEN
        RETURN NULL;   -- a notification (e.g. notifications/initialized): no reply
    END IF;
    RETURN CASE method
        WHEN 'initialize' THEN api.mcp_initialize(params, request_id)
        WHEN 'ping' THEN api.mcp_ping(request_id)
        WHEN 'tools/list' THEN internal.mcp_result(request_id, api.mcp_list_tools())
        WHEN 'tools/call' THEN api.mcp_call_tool(params ->> 'name', params -> 'arguments', p_context, request_id)
        WHEN 'resources/list' THEN internal.mcp_result(request_id, api.mcp_list_resources())
        WHEN 'resources/templates/list' THEN internal.mcp_result(request_id, api.mcp_list_resource_templates())
        WHEN 'resources/read' THEN api.mcp_read_resource(params ->> 'uri', p_context, request_id)
        WHEN 'prompts/list' THEN internal.mcp_result(request_id, api.mcp_list_prompts())
        WHEN 'prompts/get' THEN api.mcp_get_prompt(params ->> 'name', params -> 'arguments', p_context, request_id)
        ELSE internal.mcp_error(request_id, -32601, format('Method not found: %s', method))
    END;
END
$$;
