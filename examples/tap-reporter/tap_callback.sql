-- A TAP 14 reporter for pgmi's test events.
--
-- Test numbers come from a temporary sequence: sequences ignore rollbacks, and every test
-- runs inside a savepoint that is rolled back, so a counter kept in a table would reset.
CREATE TEMP SEQUENCE IF NOT EXISTS _pgmi_tap_seq;

CREATE OR REPLACE FUNCTION pg_temp.pgmi_tap_callback(e pg_temp.pgmi_test_event)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    planned integer;
BEGIN
    IF e.event = 'suite_start' THEN
        SELECT count(*) INTO planned FROM pg_temp.pgmi_test_plan() WHERE step_type = 'test';
        RAISE NOTICE 'TAP version 14';
        RAISE NOTICE '1..%', planned;
    ELSIF e.event = 'test_end' THEN
        -- test_end only fires when the test succeeded; a failure aborts the suite first,
        -- so a consumer sees fewer "ok" lines than the plan announced.
        RAISE NOTICE 'ok % - %', nextval('pg_temp._pgmi_tap_seq'), e.path;
    END IF;
END
$$;
