-- lock-safe-deploy: an atomic head, then a tail of statements that each commit on their own.
--
-- pgmi runs everything up to the first top-level COMMIT as one transaction (the "head").
-- After it, every statement runs by itself in autocommit, like psql (the "tail"). That is
-- what CREATE INDEX CONCURRENTLY needs: it cannot run inside a transaction block.

-- ---- Phase 1: the head (schema changes, all or nothing) -------------------------------
BEGIN;

-- Never queue behind a long-running query for more than a moment: waiting for an
-- ACCESS EXCLUSIVE lock blocks every reader that arrives after us. Fail fast, retry later.
SET LOCAL lock_timeout = '250ms';

-- A half-built concurrent index (the build failed or was cancelled) stays behind as
-- INVALID: it costs writes and serves no reads, and IF NOT EXISTS would keep it forever.
-- This drops such an index, and only such an index, so the tail can rebuild it.
CREATE FUNCTION pg_temp.reap_invalid_index(p_index text, p_table regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(p_index) AND NOT indisvalid) THEN
        RETURN false;
    END IF;
    PERFORM set_config('lock_timeout', '250ms', true);
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p_table);
    -- Check again under the lock: a concurrent build might have finished meanwhile.
    IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(p_index) AND NOT indisvalid) THEN
        RETURN false;
    END IF;
    RAISE NOTICE 'reaping INVALID index %', p_index;
    EXECUTE format('DROP INDEX %s', to_regclass(p_index));
    RETURN true;
END
$$;

DO $$
DECLARE
    m record;
BEGIN
    FOR m IN SELECT p.path, p.content
               FROM pg_temp.pgmi_plan_view AS p
               JOIN pg_temp.pgmi_source_view AS s USING (path)
              WHERE p.path LIKE './migrations/%' AND s.is_sql_file
              ORDER BY p.execution_order
    LOOP
        RAISE NOTICE 'applying %', m.path;
        EXECUTE m.content;
    END LOOP;
END
$$;

SAVEPOINT _tests;
CALL pgmi_test();
ROLLBACK TO SAVEPOINT _tests;

COMMIT;

-- ---- Phase 2: the tail, one statement at a time --------------------------------------
-- Session settings (not LOCAL) now, because each statement is its own transaction.
SET lock_timeout = '3s';

-- Temp views and functions live in the session, so they outlive the head's COMMIT.
DO $$
BEGIN
    RAISE NOTICE '[phase 2] plan survived COMMIT: % source file(s), % planned step(s)',
        (SELECT count(*) FROM pg_temp.pgmi_source_view), (SELECT count(*) FROM pg_temp.pgmi_plan_view);
END
$$;

SELECT pg_temp.reap_invalid_index('idx_orders_customer', 'orders');
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_orders_customer ON orders (customer_id);

-- ---- Phase 3: an explicit transaction in the tail is still atomic ---------------------
BEGIN;
UPDATE orders SET status = 'archived' WHERE status = 'pending' AND created_at < now() - interval '10 years';
COMMIT;

-- ---- Phase 4: validate the NOT VALID constraint (no long ACCESS EXCLUSIVE lock), index
ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_nonneg;

SELECT pg_temp.reap_invalid_index('idx_orders_status', 'orders');
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_orders_status ON orders (status);
