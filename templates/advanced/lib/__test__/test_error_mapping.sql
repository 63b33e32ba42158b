-- Database errors become HTTP statuses; clients get a generic text, the log keeps the SQLSTATE.
DO $$
DECLARE
    r      api.http_response;
    logged api.http_response;
BEGIN
    IF internal.http_status_for('23505') IS DISTINCT FROM 409 OR internal.http_status_for('23514') IS DISTINCT FROM 422
       OR internal.http_status_for('22P02') IS DISTINCT FROM 400 OR internal.http_status_for('P0404') IS DISTINCT FROM 404
       OR internal.http_status_for('25006') IS DISTINCT FROM 428 OR internal.http_status_for('25006', true) IS DISTINCT FROM 500
       OR internal.http_status_for('XX000') IS DISTINCT FROM 500 THEN
        RAISE EXCEPTION 'SQLSTATE to status mapping changed';
    END IF;

    CREATE TABLE pg_temp.unique_thing (v int PRIMARY KEY);
    INSERT INTO pg_temp.unique_thing VALUES (1);
    PERFORM api.create_or_replace_rest_handler(
        '{"id": "ceb20100-6134-4707-9934-f034bc6d37f1", "name": "test_conflict", "method": "POST",
          "route": "/test/conflict", "requiresAuth": false}',
        'BEGIN INSERT INTO pg_temp.unique_thing VALUES (1); RETURN api.json_response(201, ''{}''); END');
    r := api.rest_invoke('POST', '/test/conflict');
    IF r.status_code IS DISTINCT FROM 409 THEN
        RAISE EXCEPTION 'a unique violation must be 409, got %', r.status_code;
    END IF;
    IF convert_from(r.content, 'UTF8') LIKE '%unique_thing%' THEN
        RAISE EXCEPTION 'the client must not see constraint or table names';
    END IF;
    IF extensions.fetchval(r.headers, 'cache-control') IS DISTINCT FROM 'no-store' THEN
        RAISE EXCEPTION 'error responses must not be cached';
    END IF;
    SELECT (response).* INTO logged FROM api.rest_exchange
     WHERE handler_object_id = 'ceb20100-6134-4707-9934-f034bc6d37f1' ORDER BY id DESC LIMIT 1;
    IF extensions.fetchval(logged.headers, 'x-error-sqlstate') IS DISTINCT FROM '23505' THEN
        RAISE EXCEPTION 'the logged copy must keep the SQLSTATE';
    END IF;
    r := api.rest_invoke('GET', '/organizations/not-a-uuid/members',
                         extensions.hstore(''), NULL);  -- anonymous: 401 comes before the handler
    IF r.status_code IS DISTINCT FROM 401 THEN
        RAISE EXCEPTION 'authentication is checked before the handler runs, got %', r.status_code;
    END IF;
END
$$;
