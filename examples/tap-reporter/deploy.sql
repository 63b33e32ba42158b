-- tap-reporter: replace pgmi's default test reporter with a callback that prints TAP 14.

BEGIN;

-- 1. Schema files, in path order.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT path, content FROM pg_temp.pgmi_source_view
              WHERE directory = './schema/' AND is_sql_file
              ORDER BY path COLLATE "C" LOOP
        EXECUTE f.content;
    END LOOP;
END
$$;

-- 2. Install the callback. It is a project file like any other, executed from the session.
DO $$
DECLARE
    source text;
BEGIN
    SELECT content INTO STRICT source FROM pg_temp.pgmi_source_view WHERE path = './tap_callback.sql';
    EXECUTE source;
END
$$;

-- 3. Run every test, reporting through the callback. Functions in pg_temp must be named
--    with their schema: PostgreSQL never looks there for functions on its own.
CALL pgmi_test(NULL, 'pg_temp.pgmi_tap_callback');

COMMIT;
