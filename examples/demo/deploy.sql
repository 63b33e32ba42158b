-- The demo's deployment script. pgmi has loaded every file of this project into
-- pg_temp; this script decides what runs, in which order, in which transaction.

BEGIN;

-- Apply the project's SQL files in plan order (path order unless <pgmi-meta> says otherwise).
-- The plan lists every loaded file (pgmi.yaml too), so keep only the SQL ones.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.path, p.content FROM pg_temp.pgmi_plan_view p
             JOIN pg_temp.pgmi_source_view s USING (path)
             WHERE s.is_sql_file ORDER BY p.execution_order LOOP
        RAISE NOTICE 'applying %', f.path;
        EXECUTE f.content;
    END LOOP;
END $$;

-- Run the tests in __test__/ inside this transaction; each rolls back after itself.
-- A failing test aborts the deployment before COMMIT, so nothing is applied.
CALL pgmi_test();

COMMIT;
