/*
<pgmi-meta id="3efe6ccb-685e-4611-a583-73040f37eafc" idempotent="true">
  <description>Inbound message queue: at-least-once delivery with visibility timeouts, retries and dead letters</description>
  <sortKeys><key>004/009</key></sortKeys>
</pgmi-meta>
*/
-- Work that arrives from outside (webhooks, events from other systems) is stored first
-- and processed afterwards, so a slow or failing consumer never loses a message:
--
--   enqueue -> ready --claim--> claimed --ack--> done
--                ^                 |  \--nack, attempts left--> ready (after retry_in)
--                |                 |   \-nack, none left------> dead
--                \--- lease expired, attempts left (the consumer died) ---/
--
-- A claim hides a message for a visibility timeout and hands out a lease (a fresh UUID);
-- only the lease holder can ack or nack it. A consumer that dies simply lets the lease
-- expire: the message becomes claimable again and counts one more attempt. Delivery is
-- therefore at least once: handlers must be idempotent (dedup on the message id or on
-- something in the payload). Claims use FOR UPDATE SKIP LOCKED, so any number of
-- consumers can work one topic without blocking each other.

CREATE TABLE IF NOT EXISTS api.inbound_message (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL CHECK (topic ~ '^[a-z0-9][a-z0-9_.-]*$'),
    payload      jsonb NOT NULL,
    dedup_key    text,                              -- the sender's id: a resend is not a new message
    status       text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'claimed', 'done', 'dead')),
    attempts     int NOT NULL DEFAULT 0,
    max_attempts int NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    visible_at   timestamptz NOT NULL DEFAULT now(),
    lease        uuid,                              -- set while claimed
    claimed_by   text,
    last_error   text,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz                        -- done or dead
);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_message_dedup ON api.inbound_message (topic, dedup_key)
    WHERE dedup_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_message_due ON api.inbound_message (topic, visible_at)
    WHERE status IN ('ready', 'claimed');

-- Which function processes a topic (for api.queue_process): f(payload jsonb, message_id bigint).
CREATE TABLE IF NOT EXISTS api.queue_subscription (
    topic   text PRIMARY KEY,
    handler regprocedure NOT NULL
);

-- Row-level security as a second fence: rows are visible only to the owner (the functions
-- below run as the owner) and to the admin role, even if a grant on the table is added by
-- mistake. The api and customer roles get no grant at all. (Policy at the end of the file.)
ALTER TABLE api.inbound_message ENABLE ROW LEVEL SECURITY;

-- Returns the message id; the same (topic, dedup_key) again returns the first message's id.
CREATE OR REPLACE FUNCTION api.enqueue(p_topic text, p_payload jsonb, p_dedup_key text DEFAULT NULL,
                                       p_max_attempts int DEFAULT 5)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    message_id bigint;
BEGIN
    INSERT INTO api.inbound_message (topic, payload, dedup_key, max_attempts)
    VALUES (p_topic, p_payload, p_dedup_key, p_max_attempts)
    ON CONFLICT (topic, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id INTO message_id;
    IF message_id IS NULL THEN
        SELECT m.id INTO message_id FROM api.inbound_message AS m WHERE m.topic = p_topic AND m.dedup_key = p_dedup_key;
    END IF;
    RETURN message_id;
END
$$;

-- Take up to p_batch due messages of a topic. Expired claims whose attempts are used up
-- are dead-lettered first, so they are not handed out again.
CREATE OR REPLACE FUNCTION api.claim(p_topic text, p_consumer text, p_batch int DEFAULT 10,
                                     p_visibility interval DEFAULT '30 seconds')
RETURNS TABLE (message_id bigint, message_payload jsonb, attempt int, lease uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE api.inbound_message AS m
       SET status = 'dead', finished_at = now(), lease = NULL,
           last_error = coalesce(m.last_error || '; ', '') || 'visibility timeout expired'
     WHERE m.topic = p_topic AND m.status = 'claimed' AND m.visible_at <= now() AND m.attempts >= m.max_attempts;

    RETURN QUERY
    WITH picked AS (
        SELECT m.id FROM api.inbound_message AS m
         WHERE m.topic = p_topic AND m.status IN ('ready', 'claimed') AND m.visible_at <= now()
         ORDER BY m.visible_at, m.id
         LIMIT greatest(p_batch, 0)
           FOR UPDATE SKIP LOCKED
    )
    UPDATE api.inbound_message AS m
       SET status = 'claimed', attempts = m.attempts + 1, visible_at = now() + p_visibility,
           lease = gen_random_uuid(), claimed_by = p_consumer
      FROM picked
     WHERE m.id = picked.id
    RETURNING m.id, m.payload, m.attempts, m.lease;
END
$$;

-- Done. False when the lease is not (or no longer) the message's.
CREATE OR REPLACE FUNCTION api.ack(p_message_id bigint, p_lease uuid)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE api.inbound_message AS m SET status = 'done', finished_at = now(), lease = NULL
     WHERE m.id = p_message_id AND m.lease = p_lease AND m.status = 'claimed';
    RETURN FOUND;
END
$$;

-- Failed: claimable again after p_retry_in, or dead once max_attempts are used.
CREATE OR REPLACE FUNCTION api.nack(p_message_id bigint, p_lease uuid, p_error text,
                                    p_retry_in interval DEFAULT '0 seconds')
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE api.inbound_message AS m
       SET status = CASE WHEN m.attempts >= m.max_attempts THEN 'dead' ELSE 'ready' END,
           finished_at = CASE WHEN m.attempts >= m.max_attempts THEN now() END,
           visible_at = now() + p_retry_in, lease = NULL, last_error = left(p_error, 1000)
     WHERE m.id = p_message_id AND m.lease = p_lease AND m.status = 'claimed';
    RETURN FOUND;
END
$$;

-- Admin: name the function that processes a topic. It must take (jsonb, bigint).
CREATE OR REPLACE FUNCTION api.queue_subscribe(p_topic text, p_handler regprocedure)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- (proargtypes is an oidvector: a zero-based array, hence the comparison as text)
    IF (SELECT array_to_string(proargtypes::oid[]::regtype[], ',') FROM pg_proc WHERE oid = p_handler)
       IS DISTINCT FROM 'jsonb,bigint' THEN
        RAISE EXCEPTION 'a queue handler takes (payload jsonb, message_id bigint): % does not', p_handler
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO api.queue_subscription (topic, handler) VALUES (p_topic, p_handler)
    ON CONFLICT (topic) DO UPDATE SET handler = EXCLUDED.handler;
END
$$;

-- One worker pass: claim a batch and run the topic's handler on each message in its own
-- subtransaction; success acks, an error nacks (retried after p_retry_in, dead-lettered
-- when out of attempts). Serialization failures and deadlocks abort the pass: the claims
-- roll back with it and the messages stay due. Call it from a scheduler, one transaction
-- per pass: SELECT * FROM api.queue_process('webhooks');
CREATE OR REPLACE FUNCTION api.queue_process(p_topic text, p_batch int DEFAULT 10,
                                             p_visibility interval DEFAULT '5 minutes',
                                             p_retry_in interval DEFAULT '1 minute')
RETURNS TABLE (processed int, failed int) LANGUAGE plpgsql AS $$
DECLARE
    handler regprocedure := (SELECT s.handler FROM api.queue_subscription AS s WHERE s.topic = p_topic);
    msg     record;
    state   text;
    reason  text;
BEGIN
    IF handler IS NULL THEN
        RAISE EXCEPTION 'no handler subscribed to topic %', p_topic USING ERRCODE = 'P0404';
    END IF;
    processed := 0;
    failed := 0;
    FOR msg IN SELECT * FROM api.claim(p_topic, format('queue_process/%s', pg_backend_pid()), p_batch, p_visibility) LOOP
        BEGIN
            EXECUTE format('SELECT %s($1, $2)', handler::regproc) USING msg.message_payload, msg.message_id;
            PERFORM api.ack(msg.message_id, msg.lease);
            processed := processed + 1;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, reason = MESSAGE_TEXT;
            IF state IN ('40001', '40P01') THEN
                RAISE;
            END IF;
            PERFORM api.nack(msg.message_id, msg.lease, format('%s: %s', state, reason), p_retry_in);
            failed := failed + 1;
        END;
    END LOOP;
    RETURN NEXT;
END
$$;

-- Admin: give a dead letter a fresh start (attempts reset).
CREATE OR REPLACE FUNCTION api.requeue_dead(p_message_id bigint)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE api.inbound_message AS m
       SET status = 'ready', attempts = 0, visible_at = now(), finished_at = NULL, lease = NULL
     WHERE m.id = p_message_id AND m.status = 'dead';
    RETURN FOUND;
END
$$;

DO $$
DECLARE
    admin_role text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
BEGIN
    DROP POLICY IF EXISTS inbound_message_admin_only ON api.inbound_message;
    EXECUTE format('CREATE POLICY inbound_message_admin_only ON api.inbound_message TO %I USING (true)', admin_role);
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON api.inbound_message TO %I', admin_role);
    EXECUTE format('GRANT ALL ON api.queue_subscription TO %I', admin_role);
END
$$;
