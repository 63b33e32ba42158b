-- lock_holder.sql -- who holds the pgmi deploy lock of the current database, so that a
-- refused deploy (exit 15) can say which session is in the way.
--
-- :lock_key is the bigint key deploy_lock.sql computed (the formula lives there only).
-- pg_locks shows a bigint advisory key split in two: classid = high 32 bits, objid =
-- low 32 bits, objsubid = 1.
-- We match on exactly that key (and this database), never on "any advisory lock", so
-- unrelated advisory locks of the application are not reported. Columns of other users'
-- sessions may be NULL without pg_read_all_stats; the caller prints what it gets.
WITH lock_key AS (
    SELECT CAST(:lock_key AS bigint) AS k
)
SELECT l.pid                                                   AS pid,
       a.application_name                                      AS application_name,
       COALESCE(host(a.client_addr), a.client_hostname,
                CASE WHEN a.pid IS NOT NULL THEN 'local socket' END) AS client,
       a.usename::text                                         AS username,
       to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS OF')    AS since,
       extract(epoch FROM now() - a.backend_start)::float8     AS held_seconds
  FROM pg_locks AS l
 CROSS JOIN lock_key
  LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
 WHERE l.locktype = 'advisory'
   AND l.granted
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid::bigint = ((lock_key.k >> 32) & 4294967295)
   AND l.objid::bigint = (lock_key.k & 4294967295)
   AND l.objsubid = 1
 ORDER BY l.pid;
