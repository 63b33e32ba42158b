-- Every routed call is logged unless the handler opts out (autoLog false).
DO $$
DECLARE
    rest_before bigint := (SELECT count(*) FROM api.rest_exchange);
    mcp_before  bigint := (SELECT count(*) FROM api.mcp_exchange);
BEGIN
    PERFORM api.rest_invoke('GET', '/hello');
    IF (SELECT count(*) FROM api.rest_exchange) IS DISTINCT FROM rest_before + 1 THEN
        RAISE EXCEPTION 'GET /hello must add one exchange row';
    END IF;
    IF (SELECT (request).url FROM api.rest_exchange ORDER BY id DESC LIMIT 1) IS DISTINCT FROM '/hello' THEN
        RAISE EXCEPTION 'the logged request must be the one made';
    END IF;
    PERFORM api.rest_invoke('GET', '/health');
    IF (SELECT count(*) FROM api.rest_exchange) IS DISTINCT FROM rest_before + 1 THEN
        RAISE EXCEPTION '/health has autoLog false and must not be logged';
    END IF;
    PERFORM api.mcp_call_tool('greet', '{"name": "Log"}');
    IF (SELECT count(*) FROM api.mcp_exchange) IS DISTINCT FROM mcp_before + 1 THEN
        RAISE EXCEPTION 'an MCP tool call must be logged';
    END IF;
END
$$;
