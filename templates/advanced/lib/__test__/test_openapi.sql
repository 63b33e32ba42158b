-- The OpenAPI document agrees with the router: one operation per live REST handler.
DO $$
DECLARE
    doc     jsonb := api.openapi_document();
    missing text;
    r       api.http_response;
BEGIN
    IF doc ->> 'openapi' IS DISTINCT FROM '3.1.0' THEN
        RAISE EXCEPTION 'not an OpenAPI 3.1 document';
    END IF;
    SELECT string_agg(http_method || ' ' || public_name, ', ') INTO missing
      FROM api.handler
     WHERE handler_type = 'rest' AND deleted_at IS NULL
       AND doc -> 'paths' -> public_name -> lower(http_method) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'routes missing from the document: %', missing;
    END IF;
    IF doc -> 'paths' -> '/organizations/{orgId}/members' -> 'get' -> 'parameters' -> 0 ->> 'name' IS DISTINCT FROM 'orgId' THEN
        RAISE EXCEPTION 'path placeholders must be documented as parameters: %', doc -> 'paths' -> '/organizations/{orgId}/members';
    END IF;
    IF doc #> '{paths,/hello,get,security}' IS DISTINCT FROM '[]'::jsonb
       OR doc #> '{paths,/me,get,security}' IS DISTINCT FROM '[{"apiKeyAuth": []}]'::jsonb THEN
        RAISE EXCEPTION 'security requirements must follow requiresAuth';
    END IF;
    r := api.rest_invoke('GET', '/openapi.json');
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) IS DISTINCT FROM doc THEN
        RAISE EXCEPTION 'GET /openapi.json must serve the same document';
    END IF;
END
$$;
