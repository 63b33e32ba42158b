-- deploy_lock.sql -- try to take the pgmi deploy lock of the current database.
--
-- The deploy lock is a session-level advisory lock, so it is released when the session
-- ends, however it ends (a killed pgmi cannot leave it behind). Its key is derived from
-- the database name: two deploys into one database never interleave, while deploys into
-- different databases never block each other. This file is the ONE place that formula is
-- written; the key is returned so that retries and lock_holder.sql reuse it as a parameter.
-- pg_try_advisory_lock (not pg_advisory_lock) keeps any wait in the client, bounded and
-- interruptible by --lock-wait and --timeout.
SELECT k AS lock_key, pg_try_advisory_lock(k) AS acquired
  FROM (SELECT hashtextextended('pgmi.deploy.' || current_database(), 0) AS k) AS key;
