-- The demo's deployment script. pgmi has loaded every file of this project into
-- pg_temp; this script decides what runs, in which order, in which transaction.

BEGIN;

-- Apply the project's files in plan order (path order unless <pgmi-meta> says otherwise).
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT path, content FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP
        RAISE NOTICE 'applying %', f.path;
        EXECUTE f.content;
    END LOOP;
END $$;

-- Run the tests in __test__/ inside this transaction; each rolls back after itself.
-- A failing test aborts the deployment before COMMIT, so nothing is applied.
CALL pgmi_test();

COMMIT;
