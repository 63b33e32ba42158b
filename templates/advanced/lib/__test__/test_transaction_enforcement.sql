-- A handler with an isolation floor refuses a weaker transaction with 428 (it never runs).
DO $$
DECLARE
    r api.http_response;
BEGIN
    r := api.rest_invoke('POST', '/counters/visits/increment');
    IF r.status_code IS DISTINCT FROM 428 THEN
        RAISE EXCEPTION 'read committed is weaker than the declared repeatable read: expected 428, got %', r.status_code;
    END IF;
    IF EXISTS (SELECT 1 FROM api.counter WHERE name = 'visits') THEN
        RAISE EXCEPTION 'a refused request must not run the handler';
    END IF;
    IF api.mcp_call_tool('greet', '{"name": "x"}') ->> 'error' IS NOT NULL THEN
        RAISE EXCEPTION 'tools without a floor run at any isolation';
    END IF;
END
$$;
