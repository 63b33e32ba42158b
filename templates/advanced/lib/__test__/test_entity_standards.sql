-- Tables with object_id core.entity_id carry created_at and deleted_at after the deploy.
DO $$
DECLARE
    lacking text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_temp.entity_standard_tables() AS t WHERE t = 'membership.user'::regclass) THEN
        RAISE EXCEPTION 'membership.user must be an entity-standard table';
    END IF;
    SELECT string_agg(t::text, ', ') INTO lacking
      FROM pg_temp.entity_standard_tables() AS t
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t AND attname = 'created_at' AND attnotnull)
        OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t AND attname = 'deleted_at');
    IF lacking IS NOT NULL THEN
        RAISE EXCEPTION 'missing created_at / deleted_at on %', lacking;
    END IF;
    CREATE TABLE pg_temp.not_an_entity (object_id uuid);
    IF EXISTS (SELECT 1 FROM pg_temp.entity_standard_tables() AS t WHERE t = 'pg_temp.not_an_entity'::regclass) THEN
        RAISE EXCEPTION 'a plain uuid object_id must not opt in';
    END IF;
END
$$;
