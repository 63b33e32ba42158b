DO $$
BEGIN
    PERFORM upsert_item('widget', 99);
    IF (SELECT qty FROM item WHERE name = 'widget') IS DISTINCT FROM 99 THEN
        RAISE EXCEPTION 'widget should have been updated to qty 99';
    END IF;
    IF EXISTS (SELECT 1 FROM item WHERE name = 'sprocket') THEN
        RAISE EXCEPTION 'sprocket leaked from another test: tests must be isolated';
    END IF;
END
$$;
