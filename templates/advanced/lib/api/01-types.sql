/*
<pgmi-meta id="9c68d359-7c31-48c3-a015-e9e21a86874c" idempotent="true">
  <description>Protocol types: requests, responses, handler kinds</description>
  <sortKeys><key>004/001</key></sortKeys>
</pgmi-meta>
*/
-- Types are created only when absent: CREATE OR REPLACE does not exist for types, and a
-- DROP ... CASCADE on redeploy would take every column and function using them along.

DO $$
BEGIN
    IF to_regtype('api.handler_type') IS NULL THEN
        CREATE TYPE api.handler_type AS ENUM ('rest', 'rpc', 'mcp_tool', 'mcp_resource', 'mcp_prompt');
    END IF;
    IF to_regtype('api.rest_request') IS NULL THEN
        CREATE TYPE api.rest_request AS (method text, url text, headers extensions.hstore, content bytea);
    END IF;
    IF to_regtype('api.rpc_request') IS NULL THEN
        CREATE TYPE api.rpc_request AS (route_id uuid, headers extensions.hstore, content bytea);
    END IF;
    IF to_regtype('api.mcp_request') IS NULL THEN
        CREATE TYPE api.mcp_request AS (arguments jsonb, uri text, context jsonb, request_id jsonb);
    END IF;
    IF to_regtype('api.http_response') IS NULL THEN
        CREATE TYPE api.http_response AS (status_code int, headers extensions.hstore, content bytea);
    END IF;
END
$$;

-- Response builders used by the handlers and the dispatchers.
CREATE OR REPLACE FUNCTION api.json_response(p_status int, p_body jsonb, p_headers extensions.hstore DEFAULT NULL)
RETURNS api.http_response LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_status,
               extensions.hstore('content-type', 'application/json') OPERATOR(extensions.||) coalesce(p_headers, extensions.hstore('')),
               convert_to(p_body::text, 'UTF8'))::api.http_response;
$$;

-- RFC 9457 problem details: what clients see for every error.
CREATE OR REPLACE FUNCTION api.problem(p_status int, p_title text, p_detail text DEFAULT NULL,
                                       p_headers extensions.hstore DEFAULT NULL)
RETURNS api.http_response LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_status,
               extensions.hstore(ARRAY['content-type', 'application/problem+json', 'cache-control', 'no-store'])
                   OPERATOR(extensions.||) coalesce(p_headers, extensions.hstore('')),
               convert_to(jsonb_strip_nulls(jsonb_build_object('type', 'about:blank', 'title', p_title,
                                                               'status', p_status, 'detail', p_detail))::text, 'UTF8')
              )::api.http_response;
$$;

-- The body of a response as jsonb (NULL for an empty body); handy in tests and SQL clients.
CREATE OR REPLACE FUNCTION api.response_json(p_response api.http_response)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN (p_response).content IS NULL THEN NULL
                ELSE convert_from((p_response).content, 'UTF8')::jsonb END;
$$;
