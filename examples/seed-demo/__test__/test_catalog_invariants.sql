-- Invariants of the catalog, whatever the seed file says.
DO $$
DECLARE
    n_empty bigint;
    unused  text;
BEGIN
    SELECT count(*) INTO n_empty
      FROM role AS r
     WHERE r.deprecated_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM role_permission AS rp WHERE rp.role_id = r.role_id);
    IF n_empty > 0 THEN
        RAISE EXCEPTION 'catalog invariant violated: % active role(s) with no permissions', n_empty;
    END IF;

    SELECT string_agg(p.key, ', ' ORDER BY p.key) INTO unused
      FROM permission AS p
     WHERE p.deprecated_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM role_permission AS rp WHERE rp.permission_id = p.permission_id);
    IF unused IS NOT NULL THEN
        RAISE NOTICE '  note: permission(s) granted to no role: %', unused;
    END IF;
END
$$;
