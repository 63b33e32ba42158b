-- The inbound queue delivers at least once: dedup on enqueue, hidden while claimed, only
-- the lease holder acks, an expired lease makes the message due again (one more attempt),
-- failures retry until max_attempts and then dead-letter. Time is simulated by moving
-- visible_at into the past, never by sleeping.
DO $$
DECLARE
    first_id  bigint := api.enqueue('test.orders', '{"order": 1}', 'sender-1');
    c         record;
    c2        record;
    m         api.inbound_message;
BEGIN
    IF api.enqueue('test.orders', '{"order": 1, "resent": true}', 'sender-1') IS DISTINCT FROM first_id
       OR (SELECT count(*) FROM api.inbound_message WHERE topic = 'test.orders') IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'a resend with the same dedup key must not add a message';
    END IF;

    SELECT * INTO STRICT c FROM api.claim('test.orders', 'worker-a', 10, '30 seconds');
    IF c.message_id IS DISTINCT FROM first_id OR c.attempt IS DISTINCT FROM 1 OR c.message_payload ->> 'order' IS DISTINCT FROM '1' THEN
        RAISE EXCEPTION 'first claim: %', c;
    END IF;
    IF EXISTS (SELECT 1 FROM api.claim('test.orders', 'worker-b')) THEN
        RAISE EXCEPTION 'a claimed message must be hidden from other consumers';
    END IF;
    IF api.ack(first_id, gen_random_uuid()) THEN
        RAISE EXCEPTION 'a foreign lease must not ack';
    END IF;

    -- The consumer dies: its lease expires and the message is due again, attempt 2.
    UPDATE api.inbound_message SET visible_at = now() - interval '1 second' WHERE id = first_id;
    SELECT * INTO STRICT c2 FROM api.claim('test.orders', 'worker-b');
    IF c2.message_id IS DISTINCT FROM first_id OR c2.attempt IS DISTINCT FROM 2 OR c2.lease IS NOT DISTINCT FROM c.lease THEN
        RAISE EXCEPTION 'an expired claim must be redelivered with a new lease: %', c2;
    END IF;
    IF api.ack(first_id, c.lease) THEN
        RAISE EXCEPTION 'the expired lease must no longer ack';
    END IF;
    IF NOT api.ack(first_id, c2.lease) THEN
        RAISE EXCEPTION 'the current lease must ack';
    END IF;
    SELECT * INTO m FROM api.inbound_message WHERE id = first_id;
    IF m.status IS DISTINCT FROM 'done' OR m.finished_at IS NULL OR m.lease IS NOT NULL THEN
        RAISE EXCEPTION 'an acked message is done: %', m;
    END IF;
END
$$;

-- Retries and the dead letter.
DO $$
DECLARE
    mid bigint := api.enqueue('test.mail', '{"to": "x"}', NULL, 2);
    c   record;
    m   api.inbound_message;
BEGIN
    SELECT * INTO STRICT c FROM api.claim('test.mail', 'w');
    IF NOT api.nack(mid, c.lease, 'smtp timeout', '10 minutes') THEN
        RAISE EXCEPTION 'nack by the lease holder must succeed';
    END IF;
    SELECT * INTO m FROM api.inbound_message WHERE id = mid;
    IF m.status IS DISTINCT FROM 'ready' OR m.visible_at IS NULL OR m.visible_at < now() + interval '9 minutes' OR m.last_error IS DISTINCT FROM 'smtp timeout' THEN
        RAISE EXCEPTION 'a nack with attempts left waits retry_in: %', m;
    END IF;
    IF EXISTS (SELECT 1 FROM api.claim('test.mail', 'w')) THEN
        RAISE EXCEPTION 'a message waiting for its retry must not be claimable';
    END IF;
    UPDATE api.inbound_message SET visible_at = now() - interval '1 second' WHERE id = mid;
    SELECT * INTO STRICT c FROM api.claim('test.mail', 'w');
    PERFORM api.nack(mid, c.lease, 'smtp timeout again');
    SELECT * INTO m FROM api.inbound_message WHERE id = mid;
    IF m.status IS DISTINCT FROM 'dead' OR m.attempts IS DISTINCT FROM 2 OR m.finished_at IS NULL THEN
        RAISE EXCEPTION 'out of attempts: dead letter expected, got %', m;
    END IF;
    IF EXISTS (SELECT 1 FROM api.claim('test.mail', 'w')) THEN
        RAISE EXCEPTION 'a dead letter is never delivered';
    END IF;
    IF api.requeue_dead(mid) IS NOT TRUE THEN
        RAISE EXCEPTION 'a dead letter can be requeued';
    END IF;
    SELECT * INTO c FROM api.claim('test.mail', 'w');
    IF c.message_id IS DISTINCT FROM mid OR c.attempt IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'a requeued dead letter starts over: %', c;
    END IF;

    -- A claim that expires with no attempts left is dead-lettered, not redelivered.
    mid := api.enqueue('test.once', '{}', NULL, 1);
    PERFORM api.claim('test.once', 'w');
    UPDATE api.inbound_message SET visible_at = now() - interval '1 second' WHERE id = mid;
    -- (two statements: a query sees the rows as they were when it started, not what the
    -- claim it calls changed)
    IF EXISTS (SELECT 1 FROM api.claim('test.once', 'w')) THEN
        RAISE EXCEPTION 'an expired last attempt must not be redelivered';
    END IF;
    IF (SELECT status || '/' || last_error FROM api.inbound_message WHERE id = mid)
           IS DISTINCT FROM 'dead/visibility timeout expired' THEN
        RAISE EXCEPTION 'an expired last attempt must be a dead letter';
    END IF;
END
$$;

-- The worker pass: each message in its own subtransaction, acked or nacked.
CREATE FUNCTION pg_temp.test_queue_handler(payload jsonb, message_id bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (payload ->> 'fail')::boolean THEN
        INSERT INTO api.inbound_message (topic, payload) VALUES ('test.side', '{}');   -- rolled back with the failure
        RAISE EXCEPTION 'cannot process %', message_id;
    END IF;
END
$$;

DO $$
DECLARE
    ok_id  bigint := api.enqueue('test.work', '{"fail": false}');
    bad_id bigint := api.enqueue('test.work', '{"fail": true}');
    result record;
BEGIN
    PERFORM api.queue_subscribe('test.work', 'pg_temp.test_queue_handler(jsonb, bigint)');
    SELECT * INTO STRICT result FROM api.queue_process('test.work');
    IF (result.processed, result.failed) IS DISTINCT FROM (1, 1) THEN
        RAISE EXCEPTION 'queue_process: %', result;
    END IF;
    IF (SELECT status FROM api.inbound_message WHERE id = ok_id) IS DISTINCT FROM 'done'
       OR (SELECT status || '/' || attempts || '/' || last_error FROM api.inbound_message WHERE id = bad_id)
          IS DISTINCT FROM format('ready/1/P0001: cannot process %s', bad_id)
       OR EXISTS (SELECT 1 FROM api.inbound_message WHERE topic = 'test.side') THEN
        RAISE EXCEPTION 'the failed message must be nacked and its work rolled back';
    END IF;
    BEGIN
        PERFORM api.queue_subscribe('test.work', 'api.enqueue(text, jsonb, text, int)');
        RAISE EXCEPTION 'a handler with the wrong signature must be refused' USING ERRCODE = 'P0001';
    EXCEPTION WHEN invalid_parameter_value THEN
        NULL;
    END;
END
$$;

-- Who may touch it: the gateway (api role) enqueues but reads no rows; only the admin
-- role reads the table, and row-level security stays on.
DO $$
DECLARE
    api_role   text := (SELECT value FROM internal.setting WHERE key = 'api_role');
    admin_role text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
    cust_role  text := (SELECT value FROM internal.setting WHERE key = 'customer_role');
BEGIN
    IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = 'api.inbound_message'::regclass) THEN
        RAISE EXCEPTION 'the queue table must have row-level security';
    END IF;
    IF has_table_privilege(api_role, 'api.inbound_message', 'SELECT')
       OR has_table_privilege(cust_role, 'api.inbound_message', 'SELECT')
       OR NOT has_table_privilege(admin_role, 'api.inbound_message', 'SELECT') THEN
        RAISE EXCEPTION 'only the admin role may read the queue table';
    END IF;
    IF NOT has_function_privilege(api_role, 'api.enqueue(text, jsonb, text, int)', 'EXECUTE')
       OR has_function_privilege(api_role, 'api.queue_subscribe(text, regprocedure)', 'EXECUTE')
       OR has_function_privilege(api_role, 'api.requeue_dead(bigint)', 'EXECUTE') THEN
        RAISE EXCEPTION 'the gateway enqueues; subscribing and requeueing are for administrators';
    END IF;
END
$$;
