-- The admin routes and views: 401 anonymous, 403 for members, data for administrators;
-- the views are the admin role's only; claims describe the caller.
DO $$
DECLARE
    r        api.http_response;
    body     jsonb;
    dead_id  bigint;
    c        record;
BEGIN
    PERFORM set_config('auth.idp_subject', '', true);
    IF (api.rest_invoke('GET', '/admin/stats')).status_code IS DISTINCT FROM 401
       OR api.current_claims() IS DISTINCT FROM '{"authenticated": false}'::jsonb THEN
        RAISE EXCEPTION 'anonymous: 401 and no claims';
    END IF;

    PERFORM set_config('auth.idp_subject', 'github|bob-sub', true);
    IF (api.rest_invoke('GET', '/admin/stats')).status_code IS DISTINCT FROM 403
       OR (api.rest_invoke('GET', '/admin/queue')).status_code IS DISTINCT FROM 403 THEN
        RAISE EXCEPTION 'a member is no administrator';
    END IF;
    BEGIN
        PERFORM internal.admin_report('stats');
        RAISE EXCEPTION 'the report function must check the caller itself' USING ERRCODE = 'P0001';
    EXCEPTION WHEN SQLSTATE 'P0403' THEN
        NULL;
    END;
    IF api.current_claims() -> 'organizations' @> '[{"slug": "acme", "role": "reader"}]' IS NOT TRUE
       OR (api.current_claims() ->> 'admin')::boolean THEN
        RAISE EXCEPTION 'bob''s claims: %', api.current_claims();
    END IF;

    -- Traffic to count, and a dead letter to list.
    PERFORM api.rest_invoke('GET', '/hello');
    PERFORM api.rest_invoke('GET', '/admin/stats');
    dead_id := api.enqueue('test.admin', '{}', NULL, 1);
    SELECT * INTO c FROM api.claim('test.admin', 'w');
    PERFORM api.nack(dead_id, c.lease, 'broken');

    PERFORM set_config('auth.idp_subject', 'google|carol-sub', true);
    r := api.rest_invoke('GET', '/admin/stats');
    body := api.response_json(r);
    IF r.status_code IS DISTINCT FROM 200
       OR NOT coalesce(body -> 'handlers' @> '[{"name": "hello_world"}]', false)
       OR (SELECT (h ->> 'calls')::int FROM jsonb_array_elements(body -> 'handlers') AS h
            WHERE h ->> 'name' = 'admin_stats') < 1
       OR (SELECT (h ->> 'failures')::int FROM jsonb_array_elements(body -> 'handlers') AS h
            WHERE h ->> 'name' = 'admin_stats') < 1            -- bob's 403 counts as a failure
       OR (body -> 'membership' ->> 'users')::int < 3 THEN
        RAISE EXCEPTION 'carol''s stats: % %', r.status_code, body;
    END IF;
    r := api.rest_invoke('GET', '/admin/queue?limit=10');
    body := api.response_json(r);
    IF r.status_code IS DISTINCT FROM 200
       OR NOT coalesce(body -> 'deadLetters' @> jsonb_build_array(jsonb_build_object('id', dead_id, 'lastError', 'broken')), false)
       OR NOT coalesce(body -> 'topics' @> '[{"topic": "test.admin", "status": "dead", "messages": 1}]', false) THEN
        RAISE EXCEPTION 'carol''s queue report: % %', r.status_code, body;
    END IF;
    IF NOT (api.current_claims() ->> 'admin')::boolean THEN
        RAISE EXCEPTION 'carol''s claims must say admin';
    END IF;
END
$$;

-- The views: the admin role reads them, the gateway and customers do not.
DO $$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['api.vw_exchange_stats', 'api.vw_queue_stats', 'api.vw_membership_stats'] LOOP
        IF NOT has_table_privilege((SELECT value FROM internal.setting WHERE key = 'admin_role'), v, 'SELECT')
           OR has_table_privilege((SELECT value FROM internal.setting WHERE key = 'api_role'), v, 'SELECT')
           OR has_table_privilege((SELECT value FROM internal.setting WHERE key = 'customer_role'), v, 'SELECT') THEN
            RAISE EXCEPTION '% must be readable by the admin role only', v;
        END IF;
    END LOOP;
END
$$;
