-- JSON-RPC: resolve the method first, then invoke with the request body.
DO $$
DECLARE
    route uuid := api.rpc_resolve('math.add');
    r     api.http_response;
BEGIN
    IF route IS DISTINCT FROM 'c1dae680-1255-4794-b373-2059ccac1317'::uuid THEN
        RAISE EXCEPTION 'math.add must resolve to its registered id, got %', route;
    END IF;
    IF api.rpc_resolve('math.nope') IS NOT NULL THEN
        RAISE EXCEPTION 'an unknown method must resolve to NULL';
    END IF;
    r := api.rpc_invoke(route, extensions.hstore(''),
                        convert_to('{"jsonrpc": "2.0", "method": "math.add", "params": {"a": 2, "b": 40}, "id": 7}', 'UTF8'));
    IF r.status_code IS DISTINCT FROM 200 OR api.response_json(r) IS DISTINCT FROM '{"jsonrpc": "2.0", "id": 7, "result": 42}'::jsonb THEN
        RAISE EXCEPTION 'math.add(2, 40): % %', r.status_code, api.response_json(r);
    END IF;
    r := api.rpc_invoke(route, extensions.hstore(''), convert_to('{not json', 'UTF8'));
    IF (api.response_json(r) -> 'error' ->> 'code')::int IS DISTINCT FROM -32700 THEN
        RAISE EXCEPTION 'broken JSON must be -32700: %', api.response_json(r);
    END IF;
    r := api.rpc_invoke(gen_random_uuid(), extensions.hstore(''), convert_to('{"jsonrpc": "2.0", "id": 1}', 'UTF8'));
    IF (api.response_json(r) -> 'error' ->> 'code')::int IS DISTINCT FROM -32601 THEN
        RAISE EXCEPTION 'unknown route must be -32601: %', api.response_json(r);
    END IF;
    r := api.rpc_invoke(route, extensions.hstore(''),
                        convert_to('{"jsonrpc": "2.0", "params": {"a": "x", "b": 1}, "id": 2}', 'UTF8'));
    IF (api.response_json(r) -> 'error' ->> 'code')::int IS DISTINCT FROM -32602 OR r.status_code IS DISTINCT FROM 400 THEN
        RAISE EXCEPTION 'bad params must be -32602 / 400: % %', r.status_code, api.response_json(r);
    END IF;
END
$$;
