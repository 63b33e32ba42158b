-- seed-demo: reference data kept in a JSON file, converged into tables on every deploy.
--
-- Everything runs in one transaction: validate the file, migrate, show what will change,
-- apply it, then let the tests decide whether the result is committed.

BEGIN;

-- 1. Read and validate the seed file before touching any table. The parsed rows live in temp
--    tables that disappear at COMMIT.
DO $$
DECLARE
    doc     jsonb;
    problem text;
BEGIN
    SELECT content::jsonb INTO STRICT doc FROM pg_temp.pgmi_source_view WHERE path = './seeds/roles.json';

    CREATE TEMP TABLE seed_permission ON COMMIT DROP AS
        SELECT p ->> 'key' AS key, coalesce(p ->> 'description', '') AS description
          FROM jsonb_array_elements(doc -> 'permissions') AS p;
    CREATE TEMP TABLE seed_role ON COMMIT DROP AS
        SELECT r ->> 'key' AS key, coalesce(r ->> 'description', '') AS description,
               coalesce(r -> 'grants', '[]'::jsonb) AS grants
          FROM jsonb_array_elements(doc -> 'roles') AS r;
    CREATE TEMP TABLE seed_grant ON COMMIT DROP AS
        SELECT DISTINCT s.key AS role_key, g AS permission_key
          FROM seed_role AS s, jsonb_array_elements_text(s.grants) AS g;

    SELECT string_agg(kind || ' ' || key, ', ' ORDER BY kind, key) INTO problem
      FROM (SELECT 'permission' AS kind, key FROM seed_permission GROUP BY key HAVING count(*) > 1
            UNION ALL
            SELECT 'role', key FROM seed_role GROUP BY key HAVING count(*) > 1) AS dupes;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate keys in seed file: %', problem;
    END IF;

    SELECT string_agg(DISTINCT g.permission_key, ', ') INTO problem
      FROM seed_grant AS g
     WHERE NOT EXISTS (SELECT 1 FROM seed_permission AS p WHERE p.key = g.permission_key);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'seed file grants undeclared permissions: %', problem;
    END IF;

    RAISE NOTICE 'seed file validated: ./seeds/roles.json';
END
$$;

-- 2. Schema: the migrations, in path order (SQL files only).
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT path, content FROM pg_temp.pgmi_source_view
              WHERE path LIKE './migrations/%' AND is_sql_file
              ORDER BY path COLLATE "C" LOOP
        RAISE NOTICE 'applying %', f.path;
        EXECUTE f.content;
    END LOOP;
END
$$;

-- 3. Show the difference between the database and the file before changing anything.
DO $$
DECLARE
    change record;
BEGIN
    FOR change IN
        SELECT 1 AS ord, s.key AS k, format('role %s: live=%L seed=%L', s.key, r.description, s.description) AS msg
          FROM seed_role AS s JOIN role AS r ON r.key = s.key
         WHERE r.description IS DISTINCT FROM s.description
        UNION ALL
        SELECT 2, s.key, format('permission %s: live=%L seed=%L', s.key, p.description, s.description)
          FROM seed_permission AS s JOIN permission AS p ON p.key = s.key
         WHERE p.description IS DISTINCT FROM s.description
        UNION ALL
        SELECT 3, g.role_key || ' ' || g.permission_key, format('grant + %s -> %s', g.role_key, g.permission_key)
          FROM seed_grant AS g
         WHERE NOT EXISTS (SELECT 1 FROM role_permission AS rp
                             JOIN role AS r ON r.role_id = rp.role_id
                             JOIN permission AS p ON p.permission_id = rp.permission_id
                            WHERE r.key = g.role_key AND p.key = g.permission_key)
        UNION ALL
        SELECT 4, r.key || ' ' || p.key, format('grant - %s -> %s', r.key, p.key)
          FROM role_permission AS rp
          JOIN role AS r ON r.role_id = rp.role_id
          JOIN permission AS p ON p.permission_id = rp.permission_id
         WHERE r.key IN (SELECT key FROM seed_role)
           AND NOT EXISTS (SELECT 1 FROM seed_grant AS g WHERE g.role_key = r.key AND g.permission_key = p.key)
        UNION ALL
        SELECT 5, r.key, format('role - %s (deprecate)', r.key)
          FROM role AS r
         WHERE r.deprecated_at IS NULL AND r.key NOT IN (SELECT key FROM seed_role)
        UNION ALL
        SELECT 6, p.key, format('permission - %s (deprecate)', p.key)
          FROM permission AS p
         WHERE p.deprecated_at IS NULL AND p.key NOT IN (SELECT key FROM seed_permission)
        ORDER BY 1, 2
    LOOP
        RAISE NOTICE 'plan: %', change.msg;
    END LOOP;
END
$$;

-- 4. Upsert permissions and roles (bringing deprecated ones back) and add missing grants.
WITH perm AS (
    INSERT INTO permission (key, description)
    SELECT key, description FROM seed_permission
    ON CONFLICT (key) DO UPDATE SET description = EXCLUDED.description, deprecated_at = NULL
    RETURNING permission_id, key
), rol AS (
    INSERT INTO role (key, description)
    SELECT key, description FROM seed_role
    ON CONFLICT (key) DO UPDATE SET description = EXCLUDED.description, deprecated_at = NULL
    RETURNING role_id, key
)
INSERT INTO role_permission (role_id, permission_id)
SELECT rol.role_id, perm.permission_id
  FROM seed_grant AS g
  JOIN rol ON rol.key = g.role_key
  JOIN perm ON perm.key = g.permission_key
ON CONFLICT DO NOTHING;

-- 5. Roles in the file lose the grants the file no longer lists.
DELETE FROM role_permission AS rp
 USING role AS r, permission AS p
 WHERE rp.role_id = r.role_id AND rp.permission_id = p.permission_id
   AND r.key IN (SELECT key FROM seed_role)
   AND NOT EXISTS (SELECT 1 FROM seed_grant AS g WHERE g.role_key = r.key AND g.permission_key = p.key);

-- 6. Whatever left the file is deprecated, never deleted.
UPDATE role SET deprecated_at = now()
 WHERE deprecated_at IS NULL AND key NOT IN (SELECT key FROM seed_role);
UPDATE permission SET deprecated_at = now()
 WHERE deprecated_at IS NULL AND key NOT IN (SELECT key FROM seed_permission);

-- 7. The tests see the converged data; their own writes are rolled back; a failure aborts it all.
SAVEPOINT _tests;
CALL pgmi_test();
ROLLBACK TO SAVEPOINT _tests;

COMMIT;
