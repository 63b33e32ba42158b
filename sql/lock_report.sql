-- lock_report.sql -- what a rehearsal (`pgmi deploy --rehearse`) locked and rewrote, asked of
-- the server itself rather than guessed from the SQL text. Read by pgmilib/deploy/lockreport.py
-- with `read_sql_section("lock_report.sql", NAME)`.
--
-- The order on the rehearsal's one session: `before` (autocommit, ahead of deploy.sql's head),
-- the head, `held` (still inside the head's transaction, so pg_locks shows its locks and
-- pg_class its new files), ROLLBACK, `cleanup`, then `holders` for what would block it now.
-- Every query here runs with the deploying role's own privileges: pg_locks, pg_class,
-- pg_index and pg_stat_activity are readable by every role, and the size functions need no
-- privilege on the relation.

-- name: before
-- The relations that exist before the deploy, with their current data file. A relation
-- whose file differs at the end was rewritten (a table rewrite or an index rebuild); one
-- that is missing here was created by the deploy itself and is only counted. One temp table
-- (dropped by `cleanup`) instead of a round trip of every row: the comparison at the end is
-- a join on the server. Temp relations (pgmi's own session tables) and the system catalogs
-- are left out: the report is about the user's relations. relfilenode is 0 for views and
-- partitioned tables, which have no file of their own and so can never count as rewritten.
CREATE TEMP TABLE _pgmi_rehearsal_before AS
SELECT c.oid, c.relfilenode
  FROM pg_catalog.pg_class AS c
 WHERE c.relpersistence <> 't'
   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace);

-- name: held
-- One row: a JSON document {"created": N, "locks": [...]} about the relations this
-- backend holds relation locks on, while its transaction is still open.
--   * `mode_rank` orders PostgreSQL's eight table lock modes from weakest to strongest
--     (the order of the documentation's conflict table); a backend may hold several modes
--     on one relation (one pg_locks row each), the report keeps the strongest.
--   * only modes stronger than ROW EXCLUSIVE (rank > 3) matter: ROW EXCLUSIVE is what every
--     INSERT/UPDATE/DELETE takes, and weaker modes block only DDL.
--   * toast tables are never listed: they are rewritten with their table, which is.
--   * an index whose table is listed is folded into the table's row (`indexes_rebuilt`
--     counts those that got a new file); an index locked on its own (REINDEX INDEX,
--     DROP INDEX) is listed itself.
--   * sizes: pg_total_relation_size (heap, toast and indexes: what a rewrite copies) for
--     tables; the index's own size for an index. The transaction holds a lock stronger
--     than ROW EXCLUSIVE on each, so measuring waits for nobody.
--   * rows: reltuples, the planner's estimate (-1 when the table was never vacuumed or
--     analyzed: reported as unknown).
WITH mode_rank(mode, rank) AS (
    VALUES ('AccessShareLock', 1), ('RowShareLock', 2), ('RowExclusiveLock', 3),
           ('ShareUpdateExclusiveLock', 4), ('ShareLock', 5), ('ShareRowExclusiveLock', 6),
           ('ExclusiveLock', 7), ('AccessExclusiveLock', 8)
), held AS (
    SELECT l.relation AS oid, max(r.rank) AS rank
      FROM pg_catalog.pg_locks AS l
      JOIN mode_rank AS r ON r.mode = l.mode
     WHERE l.pid = pg_backend_pid()
       AND l.locktype = 'relation'
       AND l.granted
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
     GROUP BY l.relation
), strong AS (
    SELECT h.oid, h.rank, c.relkind, c.relnamespace, c.relname, c.reltuples,
           (b.relfilenode <> 0 AND c.relfilenode <> b.relfilenode) AS rewritten,
           i.indrelid AS table_oid
      FROM held AS h
      JOIN _pgmi_rehearsal_before AS b ON b.oid = h.oid
      JOIN pg_catalog.pg_class AS c ON c.oid = h.oid
      LEFT JOIN pg_catalog.pg_index AS i ON i.indexrelid = h.oid
     WHERE h.rank > 3
       AND c.relnamespace <> 'pg_toast'::regnamespace
), listed AS (
    SELECT s.*
      FROM strong AS s
     WHERE s.table_oid IS NULL OR s.table_oid NOT IN (SELECT x.oid FROM strong AS x)
)
SELECT json_build_object(
    'created', (SELECT count(*)
                  FROM held AS h
                  JOIN pg_catalog.pg_class AS c ON c.oid = h.oid
                 WHERE c.relpersistence <> 't'
                   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)
                   AND NOT EXISTS (SELECT 1 FROM _pgmi_rehearsal_before AS b WHERE b.oid = h.oid)),
    'locks', coalesce((
        SELECT json_agg(json_build_object(
                   'oid', l.oid,
                   'schema', n.nspname,
                   'name', l.relname,
                   'kind', l.relkind,
                   'mode', (SELECT r.mode FROM mode_rank AS r WHERE r.rank = l.rank),
                   'rewritten', l.rewritten,
                   'rows', CASE WHEN l.reltuples < 0 THEN NULL ELSE l.reltuples::bigint END,
                   'bytes', CASE WHEN l.relkind IN ('r', 'm', 't')
                                 THEN pg_total_relation_size(l.oid)
                                 ELSE pg_relation_size(l.oid) END,
                   'indexes_rebuilt', (SELECT count(*) FROM strong AS x
                                        WHERE x.table_oid = l.oid AND x.rewritten)))
          FROM listed AS l
          JOIN pg_catalog.pg_namespace AS n ON n.oid = l.relnamespace), '[]'::json)
)::text AS report;

-- name: cleanup
-- After the rehearsal's ROLLBACK: the snapshot table goes, and the bounded lock wait set
-- for the head returns to the session's default (pgmi.yaml, role or database settings).
DROP TABLE IF EXISTS pg_temp._pgmi_rehearsal_before;
RESET lock_timeout;

-- name: holders
-- Other sessions' locks (held, or queued ahead) on the given relations, after the
-- rehearsal's ROLLBACK released its own. Which of them conflict with the mode the deploy
-- needs is decided by the caller (the conflict table is pgmi's, in one place). A prepared
-- transaction holds locks without a backend: pid is NULL and the gid names it.
SELECT l.relation::bigint AS relation,
       l.pid,
       l.mode,
       l.granted,
       p.gid
  FROM pg_catalog.pg_locks AS l
  LEFT JOIN pg_catalog.pg_prepared_xacts AS p
         ON l.pid IS NULL AND p.transaction::text = split_part(l.virtualtransaction, '/', 2)
 WHERE l.locktype = 'relation'
   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
   AND l.relation = ANY (CAST(:oids AS oid[]))
   AND l.pid IS DISTINCT FROM pg_backend_pid()
 ORDER BY l.granted DESC, l.pid;

-- name: resolve
-- The relations a statement names, for a lock the rehearsal could not get (55P03 names no
-- relation). to_regclass resolves each name with the session's search_path and never
-- raises for a missing one. Sizes come from the catalog (relpages, reltuples: as of the
-- last VACUUM/ANALYZE) because pg_relation_size would take a lock on a relation that
-- another session is known to hold.
SELECT c.oid::bigint AS oid,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows,
       c.relpages::bigint * current_setting('block_size')::bigint AS bytes
  FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS t(name, ord)
  JOIN pg_catalog.pg_class AS c ON c.oid = to_regclass(t.name)
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 ORDER BY t.ord;
