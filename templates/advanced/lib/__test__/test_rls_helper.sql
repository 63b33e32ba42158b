-- core.apply_org_rls: policies per command, FORCE, and a clear error for unfit tables.
DO $$
BEGIN
    CREATE TABLE core.test_note (organization_id uuid, created_by_user_id uuid, body text);
    PERFORM core.apply_org_rls('core.test_note');
    PERFORM core.apply_org_rls('core.test_note');   -- re-applying replaces, never duplicates
    IF (SELECT count(*) FROM pg_policy WHERE polrelid = 'core.test_note'::regclass) IS DISTINCT FROM 4::bigint THEN
        RAISE EXCEPTION 'expected 4 policies on core.test_note';
    END IF;
    IF (SELECT relforcerowsecurity FROM pg_class WHERE oid = 'core.test_note'::regclass) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'row-level security must be forced';
    END IF;
    CREATE TABLE core.test_plain (body text);
    BEGIN
        PERFORM core.apply_org_rls('core.test_plain');
        RAISE EXCEPTION 'a table without organization_id must be refused' USING ERRCODE = 'P0002';
    EXCEPTION WHEN raise_exception THEN
        NULL;  -- the helper's own error (P0001)
    END;
END
$$;
