-- Copy me into __test__/ to watch the gate close: no migration writes a 'deploy' event,
-- so this test fails, the deploy exits 13, and not even the tables get committed.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_log WHERE event = 'deploy') THEN
        RAISE EXCEPTION 'audit_log must contain a deploy event';
    END IF;
END
$$;
