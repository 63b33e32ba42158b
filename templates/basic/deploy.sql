-- deploy.sql: the whole deployment, in SQL. pgmi loaded every project file into session
-- temp views (pgmi_source_view, pgmi_plan_view, pgmi_parameter_view) and now runs this
-- file. Everything up to COMMIT is one transaction: the migrations, the seed and the tests
-- succeed together or nothing is applied.
--
-- Two ways to run migrations (pick one, see README.md):
--   * default: every migration runs on every deploy, so each must be re-runnable
--     (CREATE ... IF NOT EXISTS, CREATE OR REPLACE, upserts);
--   * apply-once: uncomment the three lines marked (A), (B) and (C) below; a ledger table
--     _migration then remembers which files ran, and they are skipped afterwards.

BEGIN;

DO $$
DECLARE
    env     text := coalesce(current_setting('pgmi.env', true), 'development');
    project jsonb;
    files   int;
    tests   int;
    m       record;
BEGIN
    -- Non-SQL project files are data too: project.json describes the application.
    -- INTO STRICT: a missing project.json stops the deploy instead of running blind.
    SELECT content::jsonb INTO STRICT project FROM pg_temp.pgmi_source_view WHERE path = './project.json';
    -- The same count as pgmi's "Loaded N files": project files and test files together.
    SELECT count(*) INTO tests FROM pg_temp.pgmi_test_source_view;
    SELECT count(*) + tests INTO files FROM pg_temp.pgmi_source_view;
    RAISE NOTICE '[%] Deploying % v% (% files loaded, % of them tests)', env, project ->> 'app_name',
        project ->> 'version', files, tests;

    -- (A) apply-once ledger: one row per migration that ran.
    -- CREATE TABLE IF NOT EXISTS _migration (path text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());

    FOR m IN SELECT path, content, pgmi_checksum FROM pg_temp.pgmi_source_view
              WHERE directory = './migrations/' AND is_sql_file   -- skips README.md, editor backups
              ORDER BY path COLLATE "C"                            -- 001_, 002_, ... byte order
    LOOP
        -- (B) skip what already ran:
        -- CONTINUE WHEN EXISTS (SELECT 1 FROM _migration WHERE path = m.path);
        BEGIN
            EXECUTE m.content;
        EXCEPTION WHEN OTHERS THEN
            -- Say which file failed, then re-raise the error itself (a bare RAISE): it keeps
            -- the server's SQLSTATE, DETAIL and the position inside the file's text, so pgmi
            -- reports migrations/00N_x.sql:line:column. A new RAISE EXCEPTION here would
            -- replace all that with a generic error at this line of deploy.sql.
            RAISE WARNING 'Failed in %', m.path;
            RAISE;
        END;
        -- (C) record it (pgmi_checksum ignores whitespace-only edits):
        -- INSERT INTO _migration (path, checksum) VALUES (m.path, m.pgmi_checksum);
    END LOOP;

    -- Environment-aware seed: development and test databases get an administrator.
    -- Deploy with --param env=production to skip it; --param admin_email=... changes it.
    IF env IS DISTINCT FROM 'production' THEN
        PERFORM upsert_user(coalesce(current_setting('pgmi.admin_email', true), 'admin@example.com'), 'Administrator');
        RAISE NOTICE '[%] Seeded administrator %', env, coalesce(current_setting('pgmi.admin_email', true), 'admin@example.com');
    END IF;
END
$$;

-- The test gate: __test__/ scripts run here, against the just-migrated schema. The
-- savepoint rollback removes their fixtures; a failing test aborts the transaction, so the
-- COMMIT below never happens.
SAVEPOINT _tests;
CALL pgmi_test();
ROLLBACK TO SAVEPOINT _tests;

-- Every migration ran and every test passed; only the COMMIT is left. Nothing follows it,
-- so `pgmi deploy --rehearse` can run the whole script and roll it back.
DO $$
BEGIN
    RAISE NOTICE E'\n  ____   ___  _   _ _____\n |  _ \\ / _ \\| \\ | | ____|\n | | | | | | |  \\| |  _|\n | |_| | |_| | |\\  | |___\n |____/ \\___/|_| \\_|_____|\n';
END
$$;

COMMIT;
