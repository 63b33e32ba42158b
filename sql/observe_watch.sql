-- observe_watch.sql -- what the live watcher asks the server about a running deploy, about
-- once a second, from a second connection (pgmilib/observe/probe.py). Each statement is tiny:
-- one row of pg_stat_activity and the progress views' rows of one pid. The watcher runs in
-- autocommit, so the catalog locks these reads take (AccessShareLock on system views) end
-- with each statement: it never holds anything the deploy could need between two looks.
-- Read with `read_sql_section("observe_watch.sql", NAME)`.

-- name: session_settings
-- The watcher must never be the one that waits: a statement of its own that queues behind a
-- lock (a deploy that LOCKs a system catalog, say) gives up after lock_timeout instead of
-- joining the queue, and nothing it runs can take long. Read-only by default as a last
-- guard: it only ever reads.
SELECT set_config('lock_timeout', '500ms', false),
       set_config('statement_timeout', '5s', false),
       set_config('default_transaction_read_only', 'on', false),
       current_setting('server_version_num')::int;

-- name: activity
-- The deploy's backend (:pid) as pg_stat_activity shows it: state, what it waits for, how long
-- the current statement has run. Only when it waits for a heavyweight lock (wait_event_type
-- 'Lock') are pg_blocking_pids() and pg_locks read: both take the lock manager's partition
-- locks briefly, which is cheap once a second but pointless when nothing waits (the LATERAL's
-- condition on the outer row becomes a one-time filter: pg_locks is not even scanned then).
-- `waitstart` exists from PostgreSQL 14; reading it through to_jsonb() keeps one statement
-- for every version (NULL before 14: the watcher then counts from when it first saw the wait).
-- The relation name is only asked for in this database (or a shared catalog): another
-- database's OIDs mean nothing here. A relation the deploy created in its still-open
-- transaction is invisible to us, so regclass prints its OID instead of a name.
SELECT a.state                                                             AS state,
       a.wait_event_type                                                   AS wait_event_type,
       a.wait_event                                                        AS wait_event,
       extract(epoch FROM clock_timestamp() - a.query_start)::float8       AS query_seconds,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocking_pids,
       w.mode                                                              AS lock_mode,
       w.locktype                                                          AS lock_type,
       w.relation                                                          AS lock_relation,
       extract(epoch FROM clock_timestamp() - w.waitstart)::float8         AS lock_wait_seconds
  FROM pg_stat_activity AS a
  LEFT JOIN LATERAL (
        SELECT l.mode, l.locktype,
               CASE WHEN l.relation IS NOT NULL
                         AND l.database IN (0, (SELECT d.oid FROM pg_database AS d
                                                 WHERE d.datname = current_database()))
                    THEN l.relation::regclass::text END AS relation,
               (to_jsonb(l) ->> 'waitstart')::timestamptz AS waitstart
          FROM pg_locks AS l
         WHERE a.wait_event_type = 'Lock' AND l.pid = a.pid AND NOT l.granted
         LIMIT 1) AS w ON true
 WHERE a.pid = :pid;

-- The progress views, one section each, with one shape: command, phase, done, total, what
-- done/total count, the relation, and tuples processed (where the view counts them). The
-- watcher runs, as one UNION ALL, only the sections the server has (the views arrived in
-- different releases: each section names the first; probe.py holds the same numbers). Sizes are whole blocks or
-- bytes; a total of 0 means the server does not know it (COPY from a pipe, say).

-- name: progress_create_index
-- PostgreSQL 12+. CREATE INDEX / REINDEX: the phase ("building index: scanning table") and blocks done of
-- blocks total; phases that sort or load tuples count tuples instead, so those are used
-- when the block counts are empty.
SELECT p.command::text, p.phase::text,
       CASE WHEN p.blocks_total > 0 THEN p.blocks_done ELSE p.tuples_done END::bigint,
       CASE WHEN p.blocks_total > 0 THEN p.blocks_total ELSE p.tuples_total END::bigint,
       CASE WHEN p.blocks_total > 0 THEN 'blocks' ELSE 'tuples' END,
       p.relid::regclass::text, NULL::bigint
  FROM pg_stat_progress_create_index AS p WHERE p.pid = :pid

-- name: progress_copy
-- PostgreSQL 14+. COPY: bytes processed of bytes total (0 when the source size is unknown) and tuples.
SELECT p.command::text, NULL::text, p.bytes_processed::bigint, p.bytes_total::bigint, 'bytes',
       p.relid::regclass::text, p.tuples_processed::bigint
  FROM pg_stat_progress_copy AS p WHERE p.pid = :pid

-- name: progress_cluster
-- PostgreSQL 12+. CLUSTER / VACUUM FULL: heap blocks scanned of the table's blocks, and tuples scanned.
SELECT p.command::text, p.phase::text, p.heap_blks_scanned::bigint, p.heap_blks_total::bigint, 'blocks',
       p.relid::regclass::text, p.heap_tuples_scanned::bigint
  FROM pg_stat_progress_cluster AS p WHERE p.pid = :pid

-- name: progress_vacuum
-- PostgreSQL 9.6+. VACUUM (deploy.sql's own, in the tail): heap blocks scanned of the table's blocks.
SELECT 'VACUUM', p.phase::text, p.heap_blks_scanned::bigint, p.heap_blks_total::bigint, 'blocks',
       p.relid::regclass::text, NULL::bigint
  FROM pg_stat_progress_vacuum AS p WHERE p.pid = :pid

-- name: progress_analyze
-- PostgreSQL 13+. ANALYZE: sample blocks scanned of the sample's blocks.
SELECT 'ANALYZE', p.phase::text, p.sample_blks_scanned::bigint, p.sample_blks_total::bigint, 'blocks',
       p.relid::regclass::text, NULL::bigint
  FROM pg_stat_progress_analyze AS p WHERE p.pid = :pid
