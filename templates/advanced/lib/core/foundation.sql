/*
<pgmi-meta id="3c13bbd9-5790-4b6e-aea0-cc7e2b1de6bf" idempotent="true">
  <description>core.entity_id domain and core.apply_org_rls</description>
  <sortKeys><key>003/000</key></sortKeys>
</pgmi-meta>
*/

-- Declaring a column `object_id core.entity_id` opts a table into the entity standards
-- (created_at / deleted_at, see entity-standards.sql). Created once; a domain cannot be
-- "replaced" without dropping every column that uses it.
DO $$
BEGIN
    IF to_regtype('core.entity_id') IS NULL THEN
        CREATE DOMAIN core.entity_id AS uuid NOT NULL DEFAULT gen_random_uuid();
    END IF;
END
$$;

-- Tenant isolation in one call: the table must have organization_id (and, when
-- p_has_created_by, created_by_user_id). Rows are visible and writable only inside the
-- organizations the current identity is an active member of. FORCE applies it to the
-- table owner too, so even the deployer's queries through this table are scoped.
CREATE OR REPLACE FUNCTION core.apply_org_rls(p_table regclass, p_has_created_by boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    scope text := 'organization_id = ANY ((SELECT api.current_member_org_ids())::uuid[])';
    name  text := (SELECT relname FROM pg_class WHERE oid = p_table);
    old   record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = p_table AND attname = 'organization_id'
                     AND NOT attisdropped) THEN
        RAISE EXCEPTION 'apply_org_rls: % has no organization_id column', p_table;
    END IF;
    IF p_has_created_by AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = p_table
                                          AND attname = 'created_by_user_id' AND NOT attisdropped) THEN
        RAISE EXCEPTION 'apply_org_rls: % has no created_by_user_id column', p_table;
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    FOR old IN SELECT polname FROM pg_policy WHERE polrelid = p_table
                 AND polname IN (name || '_select', name || '_insert', name || '_update', name || '_delete') LOOP
        EXECUTE format('DROP POLICY %I ON %s', old.polname, p_table);
    END LOOP;
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT USING (%s)', name || '_select', p_table, scope);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT WITH CHECK (%s%s)', name || '_insert', p_table, scope,
                   CASE WHEN p_has_created_by THEN ' AND created_by_user_id = (SELECT api.current_user_id())' ELSE '' END);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE USING (%s) WITH CHECK (%s)', name || '_update', p_table, scope, scope);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE USING (%s)', name || '_delete', p_table, scope);
END
$$;
