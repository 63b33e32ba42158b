-- resolve_transaction_policy: the stronger of floor and request; deferrable only for
-- read-only serializable. The REST policy lookup uses the handler's declared floor.
DO $$
DECLARE
    p record;
BEGIN
    SELECT * INTO p FROM internal.resolve_transaction_policy('repeatable read', false, 'read committed');
    IF p.transaction_isolation IS DISTINCT FROM 'repeatable read' THEN
        RAISE EXCEPTION 'a weaker request must not lower the floor: %', p.transaction_isolation;
    END IF;
    SELECT * INTO p FROM internal.resolve_transaction_policy('read committed', true, 'serializable');
    IF p.transaction_isolation IS DISTINCT FROM 'serializable' OR p.transaction_deferrable IS DISTINCT FROM true
       OR p.transaction_read_only IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'stronger request must win; read-only serializable is deferrable: %', row_to_json(p);
    END IF;
    SELECT * INTO p FROM internal.resolve_transaction_policy(NULL, NULL, NULL);
    IF p.transaction_isolation IS NOT NULL OR p.transaction_deferrable IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'no floor and no request means the connection default: %', row_to_json(p);
    END IF;
    SELECT * INTO p FROM api.rest_route_policy('POST', '/counters/visits/increment');
    IF p.transaction_isolation IS DISTINCT FROM 'repeatable read' OR p.transaction_read_only IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'counter route must ask for repeatable read, read-write: %', row_to_json(p);
    END IF;
    SELECT * INTO p FROM api.rest_route_policy('GET', '/hello?name=x');
    IF p.transaction_read_only IS DISTINCT FROM true THEN
        RAISE EXCEPTION '/hello is declared read-only';
    END IF;
    SELECT * INTO p FROM api.rpc_route_policy('math.add', 'serializable');
    IF p.transaction_isolation IS DISTINCT FROM 'serializable' THEN
        RAISE EXCEPTION 'rpc policy must honour the request';
    END IF;
END
$$;
