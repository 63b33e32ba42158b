-- deploy_lock_held.sql -- is a pgmi deploy running against database :database right now?
--
-- Asked from the maintenance database before `--overwrite` terminates and drops the target:
-- advisory locks belong to one database, so pg_locks is filtered on the target's oid and
-- on the deploy-lock key of that database. The key formula is the one of deploy_lock.sql
-- (there computed from current_database()); tests/test_concurrency.py checks both agree.
-- Returns the pids of the sessions holding it (none when the database is free or absent).
SELECT l.pid
  FROM pg_locks AS l
  JOIN pg_database AS d ON d.oid = l.database
 CROSS JOIN (SELECT hashtextextended('pgmi.deploy.' || CAST(:database AS text), 0) AS k) AS key
 WHERE d.datname = CAST(:database AS text)
   AND l.locktype = 'advisory'
   AND l.granted
   AND l.classid::bigint = ((key.k >> 32) & 4294967295)
   AND l.objid::bigint = (key.k & 4294967295)
   AND l.objsubid = 1
 ORDER BY l.pid;
