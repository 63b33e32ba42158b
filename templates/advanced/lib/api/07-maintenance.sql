/*
<pgmi-meta id="a1e778f0-0bcc-438b-aa8f-0ccbd26355e6" idempotent="true">
  <description>Exchange-log retention: delete old rows in small committed batches</description>
  <sortKeys><key>004/007</key></sortKeys>
</pgmi-meta>
*/
-- The exchange logs only grow. Run this from a scheduler (pg_cron, a cron job with psql):
--     CALL api.purge_exchanges('30 days');
-- Small batches, each committed, keep locks short and let autovacuum keep up. Inside an
-- explicit transaction (or a test) pass p_commit => false: COMMIT is not allowed there.

CREATE OR REPLACE PROCEDURE api.purge_exchanges(retention_interval interval DEFAULT '30 days',
                                                batch_size int DEFAULT 5000, max_batches int DEFAULT 100,
                                                p_commit boolean DEFAULT true)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff  timestamptz := now() - retention_interval;
    deleted bigint;
    batches int := 0;
    total   bigint := 0;
BEGIN
    LOOP
        WITH r AS (DELETE FROM api.rest_exchange WHERE id IN (
                       SELECT id FROM api.rest_exchange WHERE enqueued_at < cutoff LIMIT batch_size) RETURNING 1),
             p AS (DELETE FROM api.rpc_exchange WHERE id IN (
                       SELECT id FROM api.rpc_exchange WHERE enqueued_at < cutoff LIMIT batch_size) RETURNING 1),
             m AS (DELETE FROM api.mcp_exchange WHERE id IN (
                       SELECT id FROM api.mcp_exchange WHERE enqueued_at < cutoff LIMIT batch_size) RETURNING 1)
        SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM p) + (SELECT count(*) FROM m) INTO deleted;
        total := total + deleted;
        batches := batches + 1;
        IF p_commit THEN
            COMMIT;
        END IF;
        EXIT WHEN deleted = 0 OR batches >= max_batches;
    END LOOP;
    RAISE NOTICE 'purged % exchange row(s) older than % in % batch(es)', total, retention_interval, batches;
END
$$;
