-- execution-order-policy: the execution plan is data, so the project can check it before running it.
--
-- 1. print the plan;  2. refuse two files at one position;  3. compare the plan with a reviewed
-- manifest;  4. run it.  Steps 1-3 execute nothing from the project, so a bad plan changes nothing.

BEGIN;

-- 1. The plan as pgmi computed it: one row per sort key, ordered bytewise by key, then path.
DO $$
DECLARE
    step    record;
    listing text := '';
BEGIN
    FOR step IN SELECT execution_order, sort_key, path FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP
        listing := listing || format(E'\n  #%s | %s | %s', step.execution_order, step.sort_key, step.path);
    END LOOP;
    RAISE NOTICE 'deployment plan:%', listing;
END
$$;

-- 2. Project rule: a position (sort key) belongs to one file. Ties would be broken by path,
--    silently; here they are an error instead.
DO $$
DECLARE
    clashes text;
BEGIN
    SELECT string_agg(format('%s: %s', k, paths), E'\n' ORDER BY k)
      INTO clashes
      FROM (SELECT k, string_agg(path, ', ' ORDER BY path COLLATE "C") AS paths
              FROM (SELECT sort_key COLLATE "C" AS k, path FROM pg_temp.pgmi_plan_view) AS rows
             GROUP BY k
            HAVING count(*) > 1) AS grouped;
    IF clashes IS NOT NULL THEN
        RAISE EXCEPTION E'duplicate plan positions:\n%', clashes
            USING HINT = 'give each file its own sort key in its <pgmi-meta> block';
    END IF;
END
$$;

-- 3. The reviewed manifest: any difference, in either direction, stops the deployment.
DO $$
DECLARE
    drift text;
BEGIN
    WITH manifest (execution_order, sort_key, path) AS (
        VALUES (1::bigint, '100/010', './schema/010_catalog.sql'),
               (2, '150/000', './checks/smoke.sql'),
               (3, '200/010', './load/010_products.sql'),
               (4, '200/020', './load/020_prices.sql'),
               (5, '300/010', './post/010_indexes.sql'),
               (6, '400/000', './checks/smoke.sql')
    ), compared AS (
        SELECT coalesce(m.execution_order, p.execution_order) AS n,
               m.sort_key AS m_key, m.path AS m_path, p.sort_key AS p_key, p.path AS p_path
          FROM manifest AS m
          FULL JOIN pg_temp.pgmi_plan_view AS p ON p.execution_order = m.execution_order
         WHERE m.path IS DISTINCT FROM p.path OR m.sort_key IS DISTINCT FROM p.sort_key
    )
    SELECT string_agg(
               CASE
                   WHEN m_path IS NULL THEN format('#%s: not in manifest — plan has (%s, %s)', n, p_key, p_path)
                   WHEN p_path IS NULL THEN format('#%s: manifest has (%s, %s), plan has nothing', n, m_key, m_path)
                   ELSE format('#%s: manifest has (%s, %s), plan has (%s, %s)', n, m_key, m_path, p_key, p_path)
               END, E'\n' ORDER BY n)
      INTO drift
      FROM compared;
    IF drift IS NOT NULL THEN
        RAISE EXCEPTION E'plan does not match the reviewed manifest:\n%', drift
            USING HINT = 'review the change, then update the manifest in deploy.sql';
    END IF;
END
$$;

-- 4. Run every step; a file with two keys (checks/smoke.sql) runs at both positions.
DO $$
DECLARE
    step record;
BEGIN
    FOR step IN SELECT execution_order, sort_key, path, content
                  FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP
        RAISE NOTICE 'executing #% % (sort_key %)', step.execution_order, step.path, step.sort_key;
        EXECUTE step.content;
    END LOOP;
END
$$;

COMMIT;
