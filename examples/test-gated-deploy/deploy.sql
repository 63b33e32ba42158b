-- test-gated-deploy: migrations, tests and COMMIT in one transaction.
--
-- The tests run against the freshly migrated schema inside the same transaction. If any of
-- them fails, the transaction aborts and nothing below BEGIN is committed: not the tests'
-- data, and not the migrations either.

BEGIN;

-- 1. Project facts and the target environment (pgmi.yaml: params.env).
DO $$
DECLARE
    project jsonb;
    files   integer;
    tests   integer;
BEGIN
    SELECT content::jsonb INTO STRICT project FROM pg_temp.pgmi_source_view WHERE path = './project.json';
    -- The same count as pgmi's "Loaded N files": project files and test files together.
    SELECT count(*) INTO tests FROM pg_temp.pgmi_test_source_view;
    SELECT count(*) + tests INTO files FROM pg_temp.pgmi_source_view;
    RAISE NOTICE '[%] Deploying % v% (% files loaded, % of them tests)',
        coalesce(current_setting('pgmi.env', true), 'development'),
        project ->> 'app_name', project ->> 'version', files, tests;
END
$$;

-- 2. Migrations, in path order, SQL files only. A failure names the file and re-raises the
--    original error, SQLSTATE, DETAIL and position included.
DO $$
DECLARE
    f       record;
BEGIN
    FOR f IN SELECT path, content FROM pg_temp.pgmi_source_view
              WHERE directory = './migrations/' AND is_sql_file
              ORDER BY path COLLATE "C" LOOP
        BEGIN
            EXECUTE f.content;
        EXCEPTION WHEN OTHERS THEN
            -- Name the file, then re-raise the original error (bare RAISE): its SQLSTATE,
            -- DETAIL and position survive, so pgmi reports the migration's file:line:column.
            RAISE WARNING 'Failed in %', f.path;
            RAISE;
        END;
    END LOOP;
END
$$;

-- 3. Development seed data (skipped when pgmi.env = production).
DO $$
BEGIN
    IF coalesce(current_setting('pgmi.env', true), '') <> 'production' THEN
        PERFORM upsert_user('admin@example.com', 'Administrator');
        RAISE NOTICE 'seeded the development administrator';
    END IF;
END
$$;

-- 4. The gate. The savepoint around the suite also undoes anything the tests' fixtures
--    or callbacks left behind in this transaction.
SAVEPOINT _tests;
CALL pgmi_test();
ROLLBACK TO SAVEPOINT _tests;

COMMIT;

-- After the first COMMIT, statements run one by one (psql style) and are not gated.
DO $$ BEGIN RAISE NOTICE 'DONE: migrations committed, every test passed'; END $$;
