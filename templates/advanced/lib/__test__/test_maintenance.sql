-- purge_exchanges deletes old rows only, in batches.
DO $$
DECLARE
    hello uuid := '4f8633a0-d71b-4dff-80c7-bd11bcc66576';
    req   api.rest_request := ROW('GET', '/hello', extensions.hstore(''), NULL);
    resp  api.http_response := api.json_response(200, '{}');
BEGIN
    DELETE FROM api.rest_exchange;
    INSERT INTO api.rest_exchange (handler_object_id, request, response, enqueued_at)
    SELECT hello, req, resp, now() - interval '90 days' FROM generate_series(1, 5);
    INSERT INTO api.rest_exchange (handler_object_id, request, response) VALUES (hello, req, resp);
    CALL api.purge_exchanges('30 days', 2, 100, false);
    IF (SELECT count(*) FROM api.rest_exchange) IS DISTINCT FROM 1::bigint THEN
        RAISE EXCEPTION 'only the recent row must remain, found %', (SELECT count(*) FROM api.rest_exchange);
    END IF;
    IF (SELECT enqueued_at > now() - interval '1 day' FROM api.rest_exchange) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'the remaining row must be the recent one';
    END IF;
    IF has_function_privilege(current_setting('deployment.database_api_role'),
                              'api.purge_exchanges(interval, int, int, boolean)', 'EXECUTE') THEN
        RAISE EXCEPTION 'the gateway role must not purge logs';
    END IF;
END
$$;
