DO $$
BEGIN
    PERFORM upsert_item('sprocket', 3);
    IF (SELECT qty FROM item WHERE name = 'sprocket') IS DISTINCT FROM 3 THEN
        RAISE EXCEPTION 'sprocket should have been inserted with qty 3';
    END IF;
    IF (SELECT count(*) FROM item) IS DISTINCT FROM 3 THEN
        RAISE EXCEPTION 'expected the two fixture items plus sprocket';
    END IF;
END
$$;
