/*
<pgmi-meta id="179e62fc-12cf-4251-968f-54c6d7444aa2" idempotent="true">
  <description>OpenAPI 3.1 document generated from the handler registry, served at GET /openapi.json</description>
  <sortKeys><key>004/006</key></sortKeys>
</pgmi-meta>
*/
-- The API description is derived from api.handler, so it cannot drift from the router:
-- every live REST route is one operation, its {placeholders} are path parameters, and
-- routes that need an identity carry the API-key security requirement.

CREATE OR REPLACE FUNCTION api.openapi_document()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH operations AS (
        SELECT public_name AS path, lower(http_method) AS method, jsonb_strip_nulls(jsonb_build_object(
                   'operationId', name,
                   'summary', nullif(description, ''),
                   'parameters', (SELECT jsonb_agg(jsonb_build_object('name', p, 'in', 'path', 'required', true,
                                                                      'schema', '{"type": "string"}'::jsonb))
                                    FROM unnest(route_params) AS p),
                   'security', CASE WHEN requires_auth THEN '[{"apiKeyAuth": []}]'::jsonb ELSE '[]'::jsonb END,
                   'x-pgmi-read-only', read_only,
                   'responses', '{"200": {"description": "Success"},
                                  "default": {"description": "Problem details (RFC 9457)"}}'::jsonb)) AS operation
          FROM api.handler
         WHERE handler_type = 'rest' AND deleted_at IS NULL
    )
    SELECT jsonb_build_object(
        'openapi', '3.1.0',
        'info', jsonb_build_object('title', current_database() || ' API', 'version', '1.0.0'),
        'paths', coalesce((SELECT jsonb_object_agg(path, methods)
                             FROM (SELECT path, jsonb_object_agg(method, operation) AS methods
                                     FROM operations GROUP BY path) AS by_path), '{}'),
        'components', '{"securitySchemes": {"apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"}}}'::jsonb);
$$;

SELECT api.create_or_replace_rest_handler($spec$
{"id": "650a565d-523e-4267-af34-e0bbe834ab82", "name": "openapi_spec", "method": "GET", "route": "/openapi.json",
 "description": "This API's OpenAPI document", "requiresAuth": false, "readOnly": true, "autoLog": false}
$spec$::jsonb, $body$
BEGIN
    RETURN api.json_response(200, api.openapi_document(), extensions.hstore('cache-control', 'no-cache'));
END
$body$);
