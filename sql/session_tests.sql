-- sql/session_tests.sql: the session objects behind pgmi's built-in database tests.
--
-- What: the event type handed to test callbacks, the default callback, the pattern
-- validator, the depth-first test planner, the plan exporter and the runner that executes
-- one stored test/fixture file. Everything lives in pg_temp, so it vanishes with the
-- session and never touches the target database's own schemas.
--
-- Why server-side: pgmi plans and generates the test SQL inside PostgreSQL (pure SQL and
-- PL/pgSQL), so what runs is exactly what `pg_temp.pgmi_test_plan()` shows from deploy.sql,
-- and the client only splices text (see sql/session_contract_v1_tests.sql).
--
-- When: right after sql/session_schema.sql (which creates _pgmi_test_directory and
-- _pgmi_test_source and, on a re-run, drops the type below CASCADE), before any file is
-- loaded. Re-runnable in one session; must raise no NOTICE on a fresh session.
--
-- Deliberate differences from the original tool:
-- * pgmi_run_test_source takes two optional reporting arguments (p_index, p_total). With
--   them it sends machine-readable INFO messages (message text exactly 'pgmi-test-event',
--   DETAIL = one JSON object) before and after the file runs, timed with clock_timestamp()
--   on the server. INFO always reaches the client whatever client_min_messages says;
--   pgmi consumes these messages (pgmilib/testing.py), other clients just see them.
-- * a failure keeps the original HINT (the original dropped it) and adds the failing line
--   of the test file when it can be derived, as HINT `at <path> line <n>`.
-- * ASSERT failures (SQLSTATE P0004, not caught by WHEN OTHERS) are wrapped like any other.
-- * a directory with several fixtures opens one directory savepoint, not one per fixture.

-- Bodies are not validated at creation, for this script's transaction only: the reason is in
-- sql/session_schema.sql, which does the same.
SELECT set_config('check_function_bodies', 'off', true);

-- A re-run in the same session replaces the type; session_schema.sql normally dropped it
-- already. Guarded so a fresh session (no temp schema yet) gets no "does not exist" notice.
DO $pgmi$
BEGIN
    IF to_regtype('pg_temp.pgmi_test_event') IS NOT NULL THEN
        DROP TYPE pg_temp.pgmi_test_event CASCADE;
    END IF;
END
$pgmi$;

-- Runs the stored content of one test or fixture as a single EXECUTE. Any error comes back
-- as `Failed in <path>: <message>` with the original SQLSTATE and DETAIL, so the deploy
-- error names the file. Not part of the public contract: only generated test SQL calls it.
CREATE OR REPLACE FUNCTION pg_temp.pgmi_run_test_source(
    p_path text,
    p_index integer DEFAULT NULL,
    p_total integer DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $pgmi$
DECLARE
    v_content    text;
    v_kind       text;
    v_started    timestamptz;
    v_ms         numeric;
    v_state      text;
    v_message    text;
    v_detail     text;
    v_hint       text;
    v_context    text;
    v_line       integer;
    v_frame      text[];
    v_lines      text[];
    v_candidate  integer;
    v_found      integer;
    v_token      text;
BEGIN
    SELECT s.content, CASE WHEN s.is_fixture THEN 'fixture' ELSE 'test' END
      INTO v_content, v_kind
      FROM pg_temp._pgmi_test_source AS s
     WHERE s.path = p_path;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Failed in %: no such test file in the session', p_path
            USING ERRCODE = 'no_data_found';
    END IF;

    IF p_total IS NOT NULL THEN
        RAISE INFO 'pgmi-test-event' USING DETAIL = jsonb_build_object(
            'event', 'start', 'kind', v_kind, 'path', p_path, 'index', p_index, 'total', p_total)::text;
    END IF;
    v_started := clock_timestamp();

    BEGIN
        EXECUTE v_content;
    EXCEPTION WHEN assert_failure OR others THEN
        GET STACKED DIAGNOSTICS
            v_state = RETURNED_SQLSTATE,
            v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL,
            v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        v_ms := round((extract(epoch FROM clock_timestamp() - v_started) * 1000)::numeric, 3);

        -- Where in the file? PostgreSQL reports lines of a DO body relative to the body, so
        -- map "inline_code_block line N at KEYWORD" onto the DO blocks of the file and keep
        -- the answer only when exactly one block fits. A syntax error names its token; keep
        -- the line when that token occurs on exactly one line.
        v_lines := string_to_array(v_content, E'\n');
        v_frame := regexp_match(coalesce(v_context, ''), 'inline_code_block line ([0-9]+) at ([A-Za-z]+)');
        IF v_frame IS NOT NULL THEN
            v_found := 0;
            FOR i IN 1 .. coalesce(array_length(v_lines, 1), 0) LOOP
                IF v_lines[i] ~* '(^|[^A-Za-z0-9_])DO([ \t]+LANGUAGE[ \t]+[A-Za-z_]+)?[ \t]*\$([A-Za-z_][A-Za-z_0-9]*)?\$' THEN
                    v_candidate := i + v_frame[1]::integer - 1;
                    IF v_candidate <= array_length(v_lines, 1)
                       AND (upper(v_frame[2]) = 'SQL'
                            OR v_lines[v_candidate] ~* ('(^|[^A-Za-z0-9_])' || v_frame[2] || '([^A-Za-z0-9_]|$)')) THEN
                        v_found := v_found + 1;
                        v_line := v_candidate;
                    END IF;
                END IF;
            END LOOP;
            IF v_found <> 1 THEN
                v_line := NULL;
            END IF;
        ELSIF v_state = '42601' THEN
            v_token := (regexp_match(v_message, 'at or near "(.+)"$'))[1];
            IF v_token IS NOT NULL THEN
                v_found := 0;
                FOR i IN 1 .. coalesce(array_length(v_lines, 1), 0) LOOP
                    -- a word token must match as a whole word (SELEC is inside SELECT)
                    IF (CASE WHEN v_token ~ '^[A-Za-z0-9_]+$'
                             THEN v_lines[i] ~ ('(^|[^A-Za-z0-9_])' || v_token || '([^A-Za-z0-9_]|$)')
                             ELSE strpos(v_lines[i], v_token) > 0 END) THEN
                        v_found := v_found + 1;
                        v_line := i;
                    END IF;
                END LOOP;
                IF v_found <> 1 THEN
                    v_line := NULL;
                END IF;
            END IF;
        END IF;

        IF v_state = '42883' AND v_message ~ 'pgmi_test' THEN
            v_hint := concat_ws(E'\n', nullif(v_hint, ''),
                'CALL pgmi_test() is a deploy.sql macro that pgmi expands; a test cannot start a nested test suite');
        ELSIF v_message = 'EXECUTE of transaction commands is not implemented' THEN
            v_hint := concat_ws(E'\n', nullif(v_hint, ''),
                'tests run inside savepoints that pgmi manages: COMMIT, ROLLBACK and SAVEPOINT are not allowed in a test file');
        END IF;

        IF p_total IS NOT NULL THEN
            -- The event's context leaves out the frames every test shares: the whole file
            -- quoted as one "SQL statement" and this runner's own EXECUTE line.
            RAISE INFO 'pgmi-test-event' USING DETAIL = jsonb_build_object(
                'event', 'fail', 'kind', v_kind, 'path', p_path, 'index', p_index, 'total', p_total,
                'ms', v_ms, 'sqlstate', v_state, 'message', v_message, 'detail', nullif(v_detail, ''),
                'hint', nullif(v_hint, ''), 'line', v_line,
                'context', nullif(btrim(regexp_replace(
                    replace(coalesce(v_context, ''), format('SQL statement "%s"', v_content), ''),
                    '[^\n]*pgmi_run_test_source[^\n]*', '', 'g'), E'\n'), ''))::text;
        END IF;
        IF v_line IS NOT NULL THEN
            v_hint := concat_ws(E'\n', nullif(v_hint, ''), format('at %s line %s', p_path, v_line));
        END IF;
        RAISE EXCEPTION USING
            MESSAGE = format('Failed in %s: %s', p_path, v_message),
            ERRCODE = v_state,
            DETAIL = coalesce(v_detail, ''),
            HINT = coalesce(v_hint, '');
    END;

    IF p_total IS NOT NULL THEN
        v_ms := round((extract(epoch FROM clock_timestamp() - v_started) * 1000)::numeric, 3);
        RAISE INFO 'pgmi-test-event' USING DETAIL = jsonb_build_object(
            'event', 'pass', 'kind', v_kind, 'path', p_path, 'index', p_index, 'total', p_total,
            'ms', v_ms)::text;
    END IF;
END
$pgmi$;

-- One row per callback invocation. path is NULL for suite and teardown events, directory
-- is the empty string for suite events.
CREATE TYPE pg_temp.pgmi_test_event AS (
    event     text,     -- suite_start, fixture_start, fixture_end, test_start, test_end,
                        -- rollback, teardown_start, teardown_end, suite_end
    path      text,     -- script path; NULL for suite and teardown events
    directory text,     -- test directory; '' for suite events
    depth     integer,  -- 0 = a root __test__/ directory
    ordinal   integer,  -- plan ordinal; 0 for suite_start, the last ordinal for suite_end
    context   jsonb     -- reserved, always NULL
);

-- The default reporter: human NOTICE lines, DEBUG lines for rollbacks and teardowns.
CREATE OR REPLACE FUNCTION pg_temp.pgmi_test_callback(e pg_temp.pgmi_test_event)
RETURNS void
LANGUAGE plpgsql AS $pgmi$
BEGIN
    CASE e.event
        WHEN 'suite_start' THEN
            RAISE NOTICE '[pgmi] Test suite started';
        WHEN 'suite_end' THEN
            RAISE NOTICE '[pgmi] Test suite completed (% steps)', e.ordinal;
        WHEN 'fixture_start' THEN
            RAISE NOTICE '[pgmi] Fixture: %', e.path;
        WHEN 'test_start' THEN
            RAISE NOTICE '[pgmi] Test: %', e.path;
        WHEN 'rollback' THEN
            RAISE DEBUG '[pgmi] Rollback: %', coalesce(e.path, e.directory);
        WHEN 'teardown_start' THEN
            RAISE DEBUG '[pgmi] Teardown: %', e.directory;
        ELSE
            NULL;
    END CASE;
END
$pgmi$;

-- NULL stays NULL (no filter); anything else must compile as a PostgreSQL POSIX regex.
-- Checked up front so a bad pattern fails while deploy.sql is expanded, not mid-suite.
CREATE OR REPLACE FUNCTION pg_temp.pgmi_validate_pattern(p_pattern text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $pgmi$
BEGIN
    IF p_pattern IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM '' ~ p_pattern;
    RETURN p_pattern;
EXCEPTION WHEN invalid_regular_expression THEN
    RAISE EXCEPTION 'Invalid regex pattern: %', p_pattern
        USING HINT = 'The pattern must be a valid PostgreSQL POSIX regular expression (matched with ~ against paths like ./__test__/test_x.sql), not a glob.';
END
$pgmi$;

-- Does this directory, or any directory below it, hold a test (not a fixture) matching the pattern?
CREATE OR REPLACE FUNCTION pg_temp.pgmi_has_tests(p_directory text, p_pattern text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE AS $pgmi$
    WITH RECURSIVE subtree(path) AS (
        SELECT p_directory
        UNION
        SELECT d.path
          FROM pg_temp._pgmi_test_directory AS d
          JOIN subtree AS s ON d.parent_path = s.path
    ), pat(p) AS (
        SELECT pg_temp.pgmi_validate_pattern(p_pattern)
    )
    SELECT EXISTS (
        SELECT 1
          FROM pg_temp._pgmi_test_source AS t, pat
         WHERE t.directory IN (SELECT path FROM subtree)
           AND NOT t.is_fixture
           AND (pat.p IS NULL OR t.path ~ pat.p)
    );
$pgmi$;

-- The depth-first test plan. A directory is relevant when its subtree holds a matching test.
-- Entering a relevant directory emits its fixtures (never filtered), then its matching tests
-- by file name, then its relevant child directories by path; leaving it emits one teardown.
-- Order keys are the chain of directory paths from the root joined by \x01 and compared
-- byte-wise (COLLATE "C"): a directory's own steps end their key at the chain, its children
-- extend it with './...' paths, and its teardown extends it with '~' (0x7E > '.'), so the
-- teardown sorts after every child. Locale collation would reorder siblings: never drop "C".
CREATE OR REPLACE FUNCTION pg_temp.pgmi_test_plan(p_pattern text DEFAULT NULL)
RETURNS TABLE (ordinal integer, step_type text, script_path text, directory text, depth integer)
LANGUAGE sql STABLE AS $pgmi$
    WITH RECURSIVE pat(p) AS (
        SELECT pg_temp.pgmi_validate_pattern(p_pattern)
    ), matching AS (
        SELECT t.path, t.directory
          FROM pg_temp._pgmi_test_source AS t, pat
         WHERE NOT t.is_fixture
           AND (pat.p IS NULL OR t.path ~ pat.p)
    ), relevant(path) AS (
        SELECT m.directory FROM matching AS m
        UNION
        SELECT d.parent_path
          FROM pg_temp._pgmi_test_directory AS d
          JOIN relevant AS r ON r.path = d.path
         WHERE d.parent_path IS NOT NULL
    ), walk(path, depth, chain) AS (
        SELECT d.path, d.depth, d.path
          FROM pg_temp._pgmi_test_directory AS d
         WHERE d.path IN (SELECT path FROM relevant)
           AND (d.parent_path IS NULL OR d.parent_path NOT IN (SELECT path FROM relevant))
        UNION ALL
        SELECT c.path, c.depth, w.chain || E'\x01' || c.path
          FROM walk AS w
          JOIN pg_temp._pgmi_test_directory AS c ON c.parent_path = w.path
         WHERE c.path IN (SELECT path FROM relevant)
    ), steps AS (
        SELECT w.chain || E'\x01' AS sort_key, 0 AS sub, t.filename, 'fixture' AS step_type,
               t.path AS script_path, w.path AS directory, w.depth
          FROM walk AS w
          JOIN pg_temp._pgmi_test_source AS t ON t.directory = w.path AND t.is_fixture
        UNION ALL
        SELECT w.chain || E'\x01', 1, t.filename, 'test', t.path, w.path, w.depth
          FROM walk AS w
          JOIN pg_temp._pgmi_test_source AS t ON t.directory = w.path
         WHERE t.path IN (SELECT path FROM matching)
        UNION ALL
        SELECT w.chain || E'\x01~', 2, '', 'teardown', NULL, w.path, w.depth
          FROM walk AS w
    )
    SELECT (row_number() OVER (ORDER BY s.sort_key COLLATE "C", s.sub, s.filename COLLATE "C"))::integer,
           s.step_type, s.script_path, s.directory, s.depth
      FROM steps AS s
     ORDER BY 1;
$pgmi$;

-- Copies the plan into a permanent table <target_schema>.pgmi_test_plan for outside tools
-- (dashboards, CI diffs). pgmi itself never calls it.
CREATE OR REPLACE FUNCTION pg_temp.pgmi_persist_test_plan(target_schema text, p_pattern text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $pgmi$
BEGIN
    -- Checked first rather than IF NOT EXISTS, which would send a "skipping" NOTICE.
    IF to_regclass(format('%I.pgmi_test_plan', target_schema)) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I.pgmi_test_plan ('
            'ordinal integer PRIMARY KEY, step_type text NOT NULL, script_path text, '
            'directory text NOT NULL, depth integer NOT NULL)', target_schema);
    END IF;
    EXECUTE format('TRUNCATE %I.pgmi_test_plan', target_schema);
    EXECUTE format(
        'INSERT INTO %I.pgmi_test_plan (ordinal, step_type, script_path, directory, depth) '
        'SELECT ordinal, step_type, script_path, directory, depth FROM pg_temp.pgmi_test_plan($1)',
        target_schema) USING p_pattern;
END
$pgmi$;
