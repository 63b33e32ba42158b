-- Runs inside a savepoint during the deploy; its changes are rolled back afterwards.
DO $$
BEGIN
    IF demo.greet('pgmi') IS DISTINCT FROM 'Hello, pgmi!' THEN
        RAISE EXCEPTION 'unexpected greeting: %', demo.greet('pgmi');
    END IF;
END $$;
