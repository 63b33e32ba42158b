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
BEGIN
    SELECT content::jsonb INTO STRICT project FROM pg_temp.pgmi_source_view WHERE path = './project.json';
    SELECT count(*) INTO files FROM pg_temp.pgmi_source_view;
    RAISE NOTICE '[%] Deploying % v% (% file(s) in project)',
        coalesce(current_setting('pgmi.env', true), 'development'),
        project ->> 'app_name', project ->> 'version', files;
END
$$;

-- 2. Migrations, in path order, SQL files only. A failure names the file and keeps the
--    original SQLSTATE and DETAIL.
DO $$
DECLARE
    f       record;
    state   text;
    message text;
    detail  text;
BEGIN
    FOR f IN SELECT path, content FROM pg_temp.pgmi_source_view
              WHERE directory = './migrations/' AND is_sql_file
              ORDER BY path COLLATE "C" LOOP
        BEGIN
            EXECUTE f.content;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'Failed in %: %', f.path, message USING ERRCODE = state, DETAIL = detail;
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
