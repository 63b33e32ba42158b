-- sql/session_contract_v1_tests.sql: pg_temp.pgmi_test_generate, the public (API v1) half of
-- the test machinery.
--
-- What: returns the SQL text that replaces one `CALL pgmi_test(pattern, callback)` macro in
-- deploy.sql. pgmi finds the macro client-side, calls this function, and splices the result
-- in verbatim; nothing about the plan or the generated statements is decided in Python.
--
-- Why generated text and not a procedure: isolation needs SAVEPOINT / ROLLBACK TO SAVEPOINT
-- at the top level of the deploy transaction, which PL/pgSQL cannot issue. The text is
-- therefore a flat list of statements, one per line:
--   suite_start event
--   per fixture:  SAVEPOINT __pgmi_d<k>__ (once per directory), fixture events around
--                 SELECT pg_temp.pgmi_run_test_source(<path>, <tests done>, <total tests>)
--   per test:     directory savepoint if none yet, SAVEPOINT __pgmi_t<k>__ (once per
--                 directory, reused), test events around the run, rollback event,
--                 ROLLBACK TO SAVEPOINT __pgmi_t<k>__
--   per teardown: teardown events around ROLLBACK TO + RELEASE of the directory savepoint
--   suite_end event (ordinal = last plan step), no trailing newline.
-- Test content is never inlined (the runner EXECUTEs it from _pgmi_test_source), so no path
-- or content can break out of the generated text. An empty plan becomes one DO statement
-- raising P0002, so an empty test gate can never pass silently.
--
-- The extra runner arguments (index, total) switch on pgmi's machine-readable progress
-- events; see sql/session_tests.sql. When: right after sql/session_contract_v1.sql.

-- Bodies are not validated at creation, for this script's transaction only: the reason is in
-- sql/session_schema.sql, which does the same.
SELECT set_config('check_function_bodies', 'off', true);

CREATE OR REPLACE FUNCTION pg_temp.pgmi_test_generate(
    p_pattern text DEFAULT NULL,
    p_callback text DEFAULT 'pg_temp.pgmi_test_callback'
) RETURNS text
LANGUAGE plpgsql AS $pgmi$
DECLARE
    v_pattern  text := pg_temp.pgmi_validate_pattern(nullif(p_pattern, ''));
    v_cb       text := coalesce(nullif(p_callback, ''), 'pg_temp.pgmi_test_callback');
    v_out      text[] := '{}';
    v_k        integer := 0;
    v_total    integer;
    v_last     integer;
    v_done     integer := 0;
    v_dir_sp   jsonb := '{}';
    v_test_sp  jsonb := '{}';
    v_ev       text;
    v_step     record;
BEGIN
    IF v_cb !~ '^[a-zA-Z_][a-zA-Z0-9_]*([.][a-zA-Z_][a-zA-Z0-9_]*)?$' THEN
        RAISE EXCEPTION 'Invalid callback name: %. Expected [schema.]function identifier.', v_cb
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT count(*) FILTER (WHERE p.step_type = 'test'), max(p.ordinal)
      INTO v_total, v_last
      FROM pg_temp.pgmi_test_plan(v_pattern) AS p;

    IF v_total = 0 THEN
        -- Fixed texts only: the user's pattern must never land inside this dollar quote.
        IF v_pattern IS NULL THEN
            RETURN 'DO $__pgmi_no_tests__$ BEGIN RAISE EXCEPTION ''pgmi: no tests were discovered'' '
                || 'USING HINT = ''CALL pgmi_test() ran nothing: tests are *.sql files under a __test__/ '
                || '(or __tests__/) directory. Remove the call if this project has no tests.'', '
                || 'ERRCODE = ''no_data_found''; END $__pgmi_no_tests__$;';
        END IF;
        RETURN 'DO $__pgmi_no_tests__$ BEGIN RAISE EXCEPTION ''pgmi: no tests matched the requested pattern'' '
            || 'USING HINT = ''CALL pgmi_test() ran nothing: compare the pattern with the path column of '
            || 'pg_temp.pgmi_test_source_view (a POSIX regex matched with ~, not a glob).'', '
            || 'ERRCODE = ''no_data_found''; END $__pgmi_no_tests__$;';
    END IF;

    -- One callback statement; %L quotes like quote_literal and writes NULL for NULL.
    v_ev := 'SELECT ' || v_cb || '(ROW(%L, %L, %L, %s, %s, NULL)::pg_temp.pgmi_test_event);';

    v_out := v_out || format(v_ev, 'suite_start', NULL, '', 0, 0);

    FOR v_step IN SELECT * FROM pg_temp.pgmi_test_plan(v_pattern) ORDER BY ordinal LOOP
        IF v_step.step_type = 'fixture' THEN
            IF NOT v_dir_sp ? v_step.directory THEN
                v_k := v_k + 1;
                v_dir_sp := v_dir_sp || jsonb_build_object(v_step.directory, format('__pgmi_d%s__', v_k));
                v_out := v_out || format('SAVEPOINT %s;', v_dir_sp ->> v_step.directory);
            END IF;
            v_out := v_out || format(v_ev, 'fixture_start', v_step.script_path, v_step.directory,
                                     v_step.depth, v_step.ordinal);
            v_out := v_out || format('SELECT pg_temp.pgmi_run_test_source(%L, %s, %s);',
                                     v_step.script_path, v_done, v_total);
            v_out := v_out || format(v_ev, 'fixture_end', v_step.script_path, v_step.directory,
                                     v_step.depth, v_step.ordinal);

        ELSIF v_step.step_type = 'test' THEN
            IF NOT v_dir_sp ? v_step.directory THEN
                v_k := v_k + 1;
                v_dir_sp := v_dir_sp || jsonb_build_object(v_step.directory, format('__pgmi_d%s__', v_k));
                v_out := v_out || format('SAVEPOINT %s;', v_dir_sp ->> v_step.directory);
            END IF;
            IF NOT v_test_sp ? v_step.directory THEN
                v_k := v_k + 1;
                v_test_sp := v_test_sp || jsonb_build_object(v_step.directory, format('__pgmi_t%s__', v_k));
                v_out := v_out || format('SAVEPOINT %s;', v_test_sp ->> v_step.directory);
            END IF;
            v_done := v_done + 1;
            v_out := v_out || format(v_ev, 'test_start', v_step.script_path, v_step.directory,
                                     v_step.depth, v_step.ordinal);
            v_out := v_out || format('SELECT pg_temp.pgmi_run_test_source(%L, %s, %s);',
                                     v_step.script_path, v_done, v_total);
            v_out := v_out || format(v_ev, 'test_end', v_step.script_path, v_step.directory,
                                     v_step.depth, v_step.ordinal);
            v_out := v_out || format(v_ev, 'rollback', v_step.script_path, v_step.directory,
                                     v_step.depth, v_step.ordinal);
            v_out := v_out || format('ROLLBACK TO SAVEPOINT %s;', v_test_sp ->> v_step.directory);

        ELSE  -- teardown
            v_out := v_out || format(v_ev, 'teardown_start', NULL, v_step.directory,
                                     v_step.depth, v_step.ordinal);
            IF v_dir_sp ? v_step.directory THEN
                v_out := v_out || format('ROLLBACK TO SAVEPOINT %s;', v_dir_sp ->> v_step.directory);
                v_out := v_out || format('RELEASE SAVEPOINT %s;', v_dir_sp ->> v_step.directory);
            END IF;
            v_out := v_out || format(v_ev, 'teardown_end', NULL, v_step.directory,
                                     v_step.depth, v_step.ordinal);
        END IF;
    END LOOP;

    v_out := v_out || format(v_ev, 'suite_end', NULL, '', 0, v_last);
    RETURN array_to_string(v_out, E'\n');
END
$pgmi$;
