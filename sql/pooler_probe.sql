-- pooler_probe.sql -- which server session answers, and does it still carry our mark?
--
-- pgmi keeps its session API in pg_temp for the whole deploy, so every statement must reach
-- the same server session. pgmilib/deploy/pooler.py first sets a session-level setting
-- `pgmi.pooler_probe` to a random token, then runs this query again (and from a second
-- connection): a transaction-mode pooler (PgBouncer pool_mode=transaction, RDS Proxy when
-- it does not pin) shows up as a different pid, a missing mark, or our pid / our mark seen
-- by another client. The second argument of current_setting makes a missing setting NULL.
SELECT pg_backend_pid() AS pid,
       current_setting('pgmi.pooler_probe', true) AS mark;
