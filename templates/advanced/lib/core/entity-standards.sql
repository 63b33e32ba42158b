/*
<pgmi-meta id="f9df0d49-6d45-46d9-89d5-7cf28ac6e800" idempotent="true">
  <description>Entity standards as session functions (no event trigger, no superuser)</description>
  <sortKeys><key>003/002</key></sortKeys>
</pgmi-meta>
*/
-- Instead of an event trigger (which needs superuser), deploy.sql calls
-- pg_temp.apply_entity_standards_all() once all scripts ran. These functions live in the
-- session only: they are deployment tooling, not part of the application.

-- Tables that opted in: an `object_id` column of type core.entity_id, outside system schemas.
CREATE OR REPLACE FUNCTION pg_temp.entity_standard_tables() RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass
      FROM pg_class AS c
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
      JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'object_id' AND NOT a.attisdropped
     WHERE c.relkind IN ('r', 'p')
       AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
       AND a.atttypid = 'core.entity_id'::regtype
     ORDER BY 1;
$$;

CREATE OR REPLACE FUNCTION pg_temp.apply_entity_table_standards(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now()', p_table);
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS deleted_at timestamptz', p_table);
END
$$;

CREATE OR REPLACE FUNCTION pg_temp.apply_entity_standards_all() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t       regclass;
    lacking text;
BEGIN
    FOR t IN SELECT * FROM pg_temp.entity_standard_tables() LOOP
        PERFORM pg_temp.apply_entity_table_standards(t);
    END LOOP;
    SELECT string_agg(tbl::text, ', ') INTO lacking
      FROM pg_temp.entity_standard_tables() AS tbl
     WHERE (SELECT count(*) FROM pg_attribute WHERE attrelid = tbl AND attname IN ('created_at', 'deleted_at')
              AND NOT attisdropped) < 2;
    IF lacking IS NOT NULL THEN
        RAISE EXCEPTION 'entity standards missing on: %', lacking;
    END IF;
END
$$;
