DO $$
BEGIN
    INSERT INTO demo.visitor (name) VALUES ('test-only visitor');  -- rolled back after the test
    IF (SELECT count(*) FROM demo.visitor) IS DISTINCT FROM 4 THEN
        RAISE EXCEPTION 'expected 3 seeded visitors plus one test visitor';
    END IF;
    RAISE NOTICE 'visitors look right';
END $$;
