-- After a deploy the database says exactly what seeds/roles.json says (read again here, so the
-- test does not trust the deploy's own parsing).
DO $$
DECLARE
    doc      jsonb;
    problems text;
BEGIN
    SELECT content::jsonb INTO STRICT doc FROM pg_temp.pgmi_source_view WHERE path = './seeds/roles.json';

    WITH file_role AS (
        SELECT r ->> 'key' AS key, coalesce(r ->> 'description', '') AS description,
               coalesce(r -> 'grants', '[]'::jsonb) AS grants
          FROM jsonb_array_elements(doc -> 'roles') AS r
    ), file_permission AS (
        SELECT p ->> 'key' AS key, coalesce(p ->> 'description', '') AS description
          FROM jsonb_array_elements(doc -> 'permissions') AS p
    ), file_grant AS (
        SELECT f.key AS role_key, g AS permission_key
          FROM file_role AS f, jsonb_array_elements_text(f.grants) AS g
    ), live_grant AS (
        SELECT r.key AS role_key, p.key AS permission_key
          FROM role_permission AS rp
          JOIN role AS r ON r.role_id = rp.role_id
          JOIN permission AS p ON p.permission_id = rp.permission_id
         WHERE r.key IN (SELECT key FROM file_role)
    ), issue AS (
        SELECT format('role %s is missing, deprecated or described differently', f.key) AS msg
          FROM file_role AS f LEFT JOIN role AS r ON r.key = f.key
         WHERE r.role_id IS NULL OR r.deprecated_at IS NOT NULL OR r.description IS DISTINCT FROM f.description
        UNION ALL
        SELECT format('permission %s is missing or described differently', f.key)
          FROM file_permission AS f LEFT JOIN permission AS p ON p.key = f.key
         WHERE p.permission_id IS NULL OR p.description IS DISTINCT FROM f.description
        UNION ALL
        SELECT format('live role %s is not in the file', r.key)
          FROM role AS r
         WHERE r.deprecated_at IS NULL AND r.key NOT IN (SELECT key FROM file_role)
        UNION ALL
        SELECT format('grant %s -> %s is missing', m.role_key, m.permission_key)
          FROM (SELECT * FROM file_grant EXCEPT SELECT * FROM live_grant) AS m
        UNION ALL
        SELECT format('grant %s -> %s is not in the file', s.role_key, s.permission_key)
          FROM (SELECT * FROM live_grant EXCEPT SELECT * FROM file_grant) AS s
    )
    SELECT string_agg(msg, '; ' ORDER BY msg) INTO problems FROM issue;

    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'catalog does not match seeds/roles.json: %', problems;
    END IF;
    RAISE NOTICE '  + catalog matches seeds/roles.json exactly';
END
$$;
