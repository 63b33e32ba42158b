/*
<pgmi-meta id="6d0b4ad3-1492-4a68-b5fe-ee4ec69897c2" idempotent="true">
  <description>The handler registry (api.handler), exchange logs and the registration functions</description>
  <sortKeys><key>004/002</key></sortKeys>
</pgmi-meta>
*/
-- One table describes every entry point: REST routes, RPC methods, MCP tools, resources
-- and prompts. A
-- handler is an ordinary function in schema api, created by the registration function
-- from a body you write; the row says how to reach it and under which rules.

CREATE TABLE IF NOT EXISTS api.handler (
    object_id     uuid PRIMARY KEY,                 -- fixed in your script: re-registering updates in place
    handler_type  api.handler_type NOT NULL,
    name          text NOT NULL CHECK (name ~ '^[a-z_][a-z0-9_]*$'),   -- the function api.<name>
    public_name   text NOT NULL,                    -- REST: route template, RPC: method, MCP: tool /
                                                    -- prompt name or resource URI (template)
    http_method   text CHECK (http_method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    route_regex   text,                             -- REST routes and URI-template resources
    route_params  text[],                           -- names of {placeholders}, in order
    description   text NOT NULL DEFAULT '',
    requires_auth boolean NOT NULL DEFAULT true,    -- secure by default
    read_only     boolean NOT NULL DEFAULT false,
    isolation     text,                             -- floor; NULL = connection default
    auto_log      boolean NOT NULL DEFAULT true,
    input_schema  jsonb,                            -- MCP tools: JSON Schema of the arguments;
                                                    -- prompts: [{name, description, required}]
    mime_type     text,                             -- MCP resources
    definition    text NOT NULL,                    -- the body, for drift checks and review
    registered_at timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,                      -- soft delete: never dispatched, kept for history
    CHECK ((handler_type = 'rest') = (http_method IS NOT NULL)),
    CHECK (handler_type <> 'rest' OR route_regex IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS handler_live_name ON api.handler (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS handler_live_route ON api.handler (handler_type, http_method, public_name)
    WHERE deleted_at IS NULL;

-- Exchange logs: append-only records of what was asked and answered. The api role may
-- insert but not read them (a compromised gateway cannot harvest other users' traffic).
CREATE TABLE IF NOT EXISTS api.rest_exchange (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler_object_id uuid REFERENCES api.handler,
    request           api.rest_request NOT NULL,
    response          api.http_response NOT NULL,
    idp_subject       text,
    enqueued_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS api.rpc_exchange (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler_object_id uuid REFERENCES api.handler,
    request           api.rpc_request NOT NULL,
    response          api.http_response NOT NULL,
    idp_subject       text,
    enqueued_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS api.mcp_exchange (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler_object_id uuid REFERENCES api.handler,
    mcp_type          text NOT NULL,
    mcp_name          text,
    request           api.mcp_request NOT NULL,
    response          jsonb NOT NULL,
    idp_subject       text,
    enqueued_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rest_exchange_enqueued ON api.rest_exchange USING brin (enqueued_at);
CREATE INDEX IF NOT EXISTS rpc_exchange_enqueued ON api.rpc_exchange USING brin (enqueued_at);
CREATE INDEX IF NOT EXISTS mcp_exchange_enqueued ON api.mcp_exchange USING brin (enqueued_at);

DO $$
DECLARE
    api_role   text := (SELECT value FROM internal.setting WHERE key = 'api_role');
    admin_role text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
BEGIN
    EXECUTE format('GRANT SELECT ON api.handler TO %I', api_role);
    EXECUTE format('GRANT INSERT ON api.rest_exchange, api.rpc_exchange, api.mcp_exchange TO %I', api_role);
    EXECUTE format('GRANT ALL ON api.handler, api.rest_exchange, api.rpc_exchange, api.mcp_exchange TO %I', admin_role);
END
$$;

-- '/orgs/{orgId}/keys' -> regex '^/orgs/([^/]+)/keys/?$' and params {orgId}.
CREATE OR REPLACE FUNCTION internal.route_pattern(p_route text, OUT regex text, OUT params text[])
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF left(p_route, 1) IS DISTINCT FROM '/' THEN
        RAISE EXCEPTION 'route must start with "/": %', p_route USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(m[1] ORDER BY ord) INTO params
      FROM regexp_matches(p_route, '\{([A-Za-z_][A-Za-z0-9_]*)\}', 'g') WITH ORDINALITY AS t(m, ord);
    -- Placeholders become capture groups; every other non-word character is escaped.
    SELECT '^' || coalesce(string_agg(CASE WHEN seg ~ '^\{[A-Za-z_][A-Za-z0-9_]*\}$' THEN '([^/]+)'
                                          ELSE regexp_replace(seg, '([^A-Za-z0-9_-])', '\\\1', 'g') END,
                                     '/' ORDER BY ord), '') || '/?$'
      INTO regex
      FROM unnest(string_to_array(rtrim(p_route, '/'), '/')) WITH ORDINALITY AS t(seg, ord);
    params := coalesce(params, '{}');
END
$$;

-- 'app://orgs/{slug}/notes' -> regex '^app://orgs/([^/]+)/notes$' and params {slug}: the
-- same placeholders as routes, for MCP resource URIs (any scheme, no trailing-slash slack).
CREATE OR REPLACE FUNCTION internal.uri_template_pattern(p_template text, OUT regex text, OUT params text[])
LANGUAGE sql IMMUTABLE AS $$
    WITH pieces AS (
        SELECT ord, piece, piece ~ '^\{[A-Za-z_][A-Za-z0-9_]*\}$' AS is_param
          FROM regexp_split_to_table(p_template, '(?=\{)|(?<=\})') WITH ORDINALITY AS t(piece, ord)
    )
    SELECT '^' || string_agg(CASE WHEN is_param THEN '([^/]+)'
                                  ELSE regexp_replace(piece, '([^A-Za-z0-9_])', '\\\1', 'g') END, '' ORDER BY ord) || '$',
           coalesce(array_agg(substr(piece, 2, length(piece) - 2) ORDER BY ord) FILTER (WHERE is_param), '{}')
      FROM pieces;
$$;

-- Shared by the registration functions: validate, create the function, upsert the row.
CREATE OR REPLACE FUNCTION internal.register_handler(p_type api.handler_type, p_spec jsonb, p_public_name text,
                                                     p_arguments text, p_returns text, p_body text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_id      uuid := (p_spec ->> 'id')::uuid;
    v_name    text := p_spec ->> 'name';
    method    text := upper(p_spec ->> 'method');
    v_regex   text;
    v_params  text[];
    api_role  text := (SELECT value FROM internal.setting WHERE key = 'api_role');
    admin_role text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
BEGIN
    IF v_id IS NULL OR v_name IS NULL OR p_public_name IS NULL OR p_body IS NULL THEN
        RAISE EXCEPTION 'handler spec needs "id", "name" and a body (got %)', p_spec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_type = 'rest' THEN
        SELECT regex, params INTO v_regex, v_params FROM internal.route_pattern(p_public_name);
    ELSIF p_type = 'mcp_resource' AND strpos(p_public_name, '{') > 0 THEN
        SELECT regex, params INTO v_regex, v_params FROM internal.uri_template_pattern(p_public_name);
    END IF;
    EXECUTE format('CREATE OR REPLACE FUNCTION api.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
                   v_name, p_arguments, p_returns, p_body);
    EXECUTE format('REVOKE ALL ON FUNCTION api.%I(%s) FROM PUBLIC', v_name, p_arguments);
    EXECUTE format('GRANT EXECUTE ON FUNCTION api.%I(%s) TO %I, %I', v_name, p_arguments, api_role, admin_role);

    INSERT INTO api.handler AS h (object_id, handler_type, name, public_name, http_method, route_regex, route_params,
                                  description, requires_auth, read_only, isolation, auto_log, input_schema, mime_type,
                                  definition)
    VALUES (v_id, p_type, v_name, p_public_name, CASE WHEN p_type = 'rest' THEN coalesce(method, 'GET') END,
            v_regex, v_params, coalesce(p_spec ->> 'description', ''),
            coalesce((p_spec ->> 'requiresAuth')::boolean, true), coalesce((p_spec ->> 'readOnly')::boolean, false),
            internal.normalize_transaction_isolation(p_spec ->> 'isolation'),
            coalesce((p_spec ->> 'autoLog')::boolean, true), coalesce(p_spec -> 'inputSchema', p_spec -> 'arguments'),
            p_spec ->> 'mimeType', p_body)
    ON CONFLICT (object_id) DO UPDATE
       SET handler_type = EXCLUDED.handler_type, name = EXCLUDED.name, public_name = EXCLUDED.public_name,
           http_method = EXCLUDED.http_method, route_regex = EXCLUDED.route_regex,
           route_params = EXCLUDED.route_params, description = EXCLUDED.description,
           requires_auth = EXCLUDED.requires_auth, read_only = EXCLUDED.read_only, isolation = EXCLUDED.isolation,
           auto_log = EXCLUDED.auto_log, input_schema = EXCLUDED.input_schema, mime_type = EXCLUDED.mime_type,
           definition = EXCLUDED.definition,
           deleted_at = NULL;
    RETURN v_id;
END
$$;

-- REST: spec {"id", "name", "method", "route", "description", "requiresAuth", "readOnly",
-- "isolation", "autoLog"}; body sees `request api.rest_request` and `path jsonb` (the
-- {placeholders}) and returns api.http_response.
CREATE OR REPLACE FUNCTION api.create_or_replace_rest_handler(p_spec jsonb, p_body text)
RETURNS uuid LANGUAGE sql AS $$
    SELECT internal.register_handler('rest', p_spec, p_spec ->> 'route', 'request api.rest_request, path jsonb',
                                     'api.http_response', p_body);
$$;

-- RPC: spec {"id", "name", "method", ...}; body sees `params jsonb` and returns jsonb (the result).
CREATE OR REPLACE FUNCTION api.create_or_replace_rpc_handler(p_spec jsonb, p_body text)
RETURNS uuid LANGUAGE sql AS $$
    SELECT internal.register_handler('rpc', p_spec, coalesce(p_spec ->> 'method', p_spec ->> 'name'),
                                     'params jsonb', 'jsonb', p_body);
$$;

-- MCP tool: spec {"id", "name", "tool", "description", "inputSchema", ...}; body sees
-- `arguments jsonb, context jsonb` and returns jsonb (the tool result's content).
CREATE OR REPLACE FUNCTION api.create_or_replace_mcp_handler(p_spec jsonb, p_body text)
RETURNS uuid LANGUAGE sql AS $$
    SELECT internal.register_handler('mcp_tool', p_spec, coalesce(p_spec ->> 'tool', p_spec ->> 'name'),
                                     'arguments jsonb, context jsonb', 'jsonb', p_body);
$$;

-- MCP resource: spec {"id", "name", "uri", "description", "mimeType", ...}; the uri may hold
-- {placeholders} (a resource template). The body sees `uri text, params jsonb` (the
-- placeholders' values) and `context jsonb`, and returns jsonb: a string (the text), an
-- object {"text"} or {"blob" (base64)}, or an array of such objects.
CREATE OR REPLACE FUNCTION api.create_or_replace_mcp_resource(p_spec jsonb, p_body text)
RETURNS uuid LANGUAGE sql AS $$
    SELECT internal.register_handler('mcp_resource', p_spec, p_spec ->> 'uri', 'uri text, params jsonb, context jsonb',
                                     'jsonb', p_body);
$$;

-- MCP prompt: spec {"id", "name", "prompt", "description", "arguments": [{"name",
-- "description", "required"}], ...}; the body sees `arguments jsonb, context jsonb` and
-- returns the messages: a jsonb array of {"role", "content"} or a string (one user message).
CREATE OR REPLACE FUNCTION api.create_or_replace_mcp_prompt(p_spec jsonb, p_body text)
RETURNS uuid LANGUAGE sql AS $$
    SELECT internal.register_handler('mcp_prompt', p_spec, coalesce(p_spec ->> 'prompt', p_spec ->> 'name'),
                                     'arguments jsonb, context jsonb', 'jsonb', p_body);
$$;

-- Soft delete: the function stays (old exchanges may reference it), the route disappears.
CREATE OR REPLACE FUNCTION api.delete_handler(p_id uuid)
RETURNS boolean LANGUAGE sql AS $$
    WITH gone AS (UPDATE api.handler SET deleted_at = now() WHERE object_id = p_id AND deleted_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone);
$$;

-- Review view: is the function still there, and does it still match what was registered?
CREATE OR REPLACE VIEW api.vw_handler_info AS
SELECT h.object_id, h.handler_type, h.name, h.public_name, h.http_method, h.requires_auth, h.read_only,
       h.isolation, h.deleted_at IS NOT NULL AS deleted,
       p.oid IS NOT NULL AS function_exists,
       p.oid IS NOT NULL AND common.semantic_fingerprint(p.prosrc) IS DISTINCT FROM common.semantic_fingerprint(h.definition)
           AS definition_drifted
  FROM api.handler AS h
  LEFT JOIN pg_proc AS p ON p.proname = h.name AND p.pronamespace = 'api'::regnamespace;
