/*
<pgmi-meta id="bac79b99-07d8-457c-9f89-b9e673e8bcca" idempotent="true">
  <description>Example handlers: REST routes, an RPC method, MCP tools, resources and a prompt</description>
  <sortKeys><key>005/001</key></sortKeys>
</pgmi-meta>
*/
-- Your application's entry points go in files like this one. Each registration names a
-- fixed id (keep it stable: redeploys update the handler in place), the route or method,
-- the rules (requiresAuth defaults to true) and the function body.

-- GET /hello?name=Ada: public, read-only.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "4f8633a0-d71b-4dff-80c7-bd11bcc66576", "name": "hello_world", "method": "GET", "route": "/hello",
 "description": "Greets the caller", "requiresAuth": false, "readOnly": true}
$spec$::jsonb, $body$
DECLARE
    who text := coalesce(substring((request).url from '[?&]name=([^&]*)'), 'world');
BEGIN
    RETURN api.json_response(200, jsonb_build_object('message', format('Hello, %s!', who)));
END
$body$);

-- POST /echo: returns the JSON body it was given; needs an identity.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "ed2d5d08-9819-4eda-9b3c-acffb2332303", "name": "echo", "method": "POST", "route": "/echo",
 "description": "Returns the request body"}
$spec$::jsonb, $body$
BEGIN
    RETURN api.json_response(200, coalesce(convert_from((request).content, 'UTF8')::jsonb, 'null'));
END
$body$);

-- GET /health: for load balancers; not logged (it would flood the exchange log).
SELECT api.create_or_replace_rest_handler($spec$
{"id": "0ecce7cd-cc9d-4e1a-8ec9-89baf3e2e030", "name": "health_check", "method": "GET", "route": "/health",
 "description": "Liveness probe", "requiresAuth": false, "readOnly": true, "autoLog": false}
$spec$::jsonb, $body$
BEGIN
    RETURN api.json_response(200, jsonb_build_object('status', 'ok', 'database', current_database()));
END
$body$);

-- GET /me: the caller's profile, read through row-level security.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "755f7f43-f2b4-4a96-bf38-7a3691b4ebc8", "name": "get_current_user", "method": "GET", "route": "/me",
 "description": "The authenticated user", "readOnly": true}
$spec$::jsonb, $body$
DECLARE
    me jsonb;
BEGIN
    SELECT jsonb_build_object('id', object_id, 'email', email, 'displayName', display_name) INTO me
      FROM membership."user" WHERE object_id = api.current_user_id();
    RETURN api.json_response(200, me);
END
$body$);

-- GET /organizations: the organizations the caller is an active member of.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "be260866-7e22-4dfa-9c29-d265450041b7", "name": "list_organizations", "method": "GET",
 "route": "/organizations", "description": "Organizations of the caller", "readOnly": true}
$spec$::jsonb, $body$
BEGIN
    RETURN api.json_response(200, (
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', object_id, 'name', name, 'slug', slug) ORDER BY name), '[]')
          FROM membership.organization WHERE object_id = ANY (api.current_member_org_ids())));
END
$body$);

-- GET /organizations/{orgId}/members: a path parameter, and a deliberate 404.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "47f46d31-93b7-4d21-b773-5099dfc0ddd4", "name": "list_organization_members", "method": "GET",
 "route": "/organizations/{orgId}/members", "description": "Members of one organization", "readOnly": true}
$spec$::jsonb, $body$
DECLARE
    org uuid := common.try_cast(path ->> 'orgId', NULL::uuid);
BEGIN
    IF org IS NULL OR NOT org = ANY (api.current_member_org_ids()) THEN
        RAISE EXCEPTION 'Organization not found' USING ERRCODE = 'P0404';
    END IF;
    RETURN api.json_response(200, (
        SELECT coalesce(jsonb_agg(jsonb_build_object('userId', user_id, 'role', role) ORDER BY joined_at), '[]')
          FROM membership.organization_member WHERE organization_id = org AND status = 'active'));
END
$body$);

-- GET /admin/handlers: the registry, for system administrators only.
SELECT api.create_or_replace_rest_handler($spec$
{"id": "84934886-7cff-4802-9286-a582f5627ad1", "name": "admin_list_handlers", "method": "GET",
 "route": "/admin/handlers", "description": "Registered handlers (admin)", "readOnly": true}
$spec$::jsonb, $body$
BEGIN
    IF NOT api.current_user_is_admin() THEN
        RETURN api.problem(403, 'Forbidden', 'administrators only');
    END IF;
    RETURN api.json_response(200, (
        SELECT jsonb_agg(jsonb_build_object('name', name, 'type', handler_type, 'route', public_name) ORDER BY name)
          FROM api.handler WHERE deleted_at IS NULL));
END
$body$);

-- POST /counters/{name}/increment: a write that must not lose updates, so the handler
-- demands REPEATABLE READ; two concurrent calls make one fail with 40001 (retry it).
CREATE TABLE IF NOT EXISTS api.counter (name text PRIMARY KEY, value bigint NOT NULL DEFAULT 0);
SELECT api.create_or_replace_rest_handler($spec$
{"id": "bd69737e-9c99-4026-9ae8-de20458b2dbe", "name": "increment_counter", "method": "POST",
 "route": "/counters/{name}/increment", "description": "Adds one to a named counter",
 "requiresAuth": false, "isolation": "repeatable read"}
$spec$::jsonb, $body$
DECLARE
    result bigint;
BEGIN
    INSERT INTO api.counter AS c (name, value) VALUES (path ->> 'name', 1)
    ON CONFLICT (name) DO UPDATE SET value = c.value + 1
    RETURNING value INTO result;
    RETURN api.json_response(200, jsonb_build_object('name', path ->> 'name', 'value', result));
END
$body$);
DO $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON api.counter TO %I',
                   (SELECT value FROM internal.setting WHERE key = 'api_role'));
END
$$;

-- JSON-RPC "math.add": {"a": 1, "b": 2} -> 3.
SELECT api.create_or_replace_rpc_handler($spec$
{"id": "c1dae680-1255-4794-b373-2059ccac1317", "name": "rpc_math_add", "method": "math.add",
 "description": "Adds a and b", "requiresAuth": false, "readOnly": true}
$spec$::jsonb, $body$
BEGIN
    RETURN to_jsonb((params ->> 'a')::numeric + (params ->> 'b')::numeric);
END
$body$);

-- MCP tools: one public, one that needs an identity.
SELECT api.create_or_replace_mcp_handler($spec$
{"id": "4fcf6e23-ea7c-4ca7-8b02-0d7af0353ca1", "name": "mcp_greet", "tool": "greet",
 "description": "Greets someone by name", "requiresAuth": false,
 "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}
$spec$::jsonb, $body$
BEGIN
    IF arguments ->> 'name' IS NULL THEN
        RAISE EXCEPTION 'name is required';
    END IF;
    RETURN jsonb_build_object('greeting', format('Hello, %s!', arguments ->> 'name'));
END
$body$);

SELECT api.create_or_replace_mcp_handler($spec$
{"id": "7222c3d1-056c-4629-a434-74d953b66c96", "name": "mcp_my_organizations", "tool": "my_organizations",
 "description": "Organizations of the caller"}
$spec$::jsonb, $body$
BEGIN
    -- An object, so clients get it as structuredContent (MCP allows no bare list there).
    RETURN jsonb_build_object('organizations', (
        SELECT coalesce(jsonb_agg(name ORDER BY name), '[]') FROM membership.organization
         WHERE object_id = ANY (api.current_member_org_ids())));
END
$body$);

-- An MCP resource with a fixed URI: public, plain text.
SELECT api.create_or_replace_mcp_resource($spec$
{"id": "cebb9a20-3c08-475b-ae65-3875c6ad0e68", "name": "mcp_resource_about", "uri": "app://about",
 "description": "What this server is", "mimeType": "text/plain", "requiresAuth": false}
$spec$::jsonb, $body$
BEGIN
    RETURN to_jsonb(format('%s: an application whose API is written in SQL (%s tools, %s resources, %s prompts)',
                           (api.mcp_server_info()) ->> 'name',
                           (SELECT count(*) FROM api.handler WHERE handler_type = 'mcp_tool' AND deleted_at IS NULL),
                           (SELECT count(*) FROM api.handler WHERE handler_type = 'mcp_resource' AND deleted_at IS NULL),
                           (SELECT count(*) FROM api.handler WHERE handler_type = 'mcp_prompt' AND deleted_at IS NULL)));
END
$body$);

-- A resource template: one resource per public REST route, addressed by its handler name.
SELECT api.create_or_replace_mcp_resource($spec$
{"id": "704a139c-aaa6-43b5-9f3b-723678494d39", "name": "mcp_resource_route", "uri": "app://routes/{handler}",
 "description": "A public REST route of this server, as JSON", "mimeType": "application/json",
 "requiresAuth": false, "readOnly": true}
$spec$::jsonb, $body$
DECLARE
    found jsonb;
BEGIN
    SELECT jsonb_build_object('method', http_method, 'route', public_name, 'description', description)
      INTO found
      FROM api.handler
     WHERE handler_type = 'rest' AND deleted_at IS NULL AND NOT requires_auth AND name = params ->> 'handler';
    IF found IS NULL THEN
        RAISE EXCEPTION 'no public route named %', params ->> 'handler' USING ERRCODE = 'P0404';
    END IF;
    RETURN jsonb_build_object('text', found::text);
END
$body$);

-- A prompt: the client asks for it by name, with arguments, and gets messages to send.
SELECT api.create_or_replace_mcp_prompt($spec$
{"id": "62b71279-0e12-4465-8f7b-5e32bebe6b76", "name": "mcp_prompt_explain_route", "prompt": "explain_route",
 "description": "Ask the model to explain one REST route to a new developer", "requiresAuth": false,
 "arguments": [{"name": "handler", "description": "the handler name, e.g. hello_world", "required": true},
               {"name": "audience", "description": "who the explanation is for", "required": false}]}
$spec$::jsonb, $body$
BEGIN
    RETURN jsonb_build_array(format(
        'Explain the REST route of handler %s (read app://routes/%s) to %s: what it does, its parameters, '
        'and which status codes it answers with.',
        arguments ->> 'handler', arguments ->> 'handler', coalesce(arguments ->> 'audience', 'a new developer')));
END
$body$);
