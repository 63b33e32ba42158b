-- database_admin.sql -- statements pgmi runs on the maintenance database to create or drop
-- the target (pgmilib/deploy/dbadmin.py), by name: `read_sql_section("database_admin.sql", NAME)`.
--
-- CREATE/DROP/ALTER DATABASE themselves cannot be written here: they are utility statements
-- that take no parameters and cannot run inside a DO block (no transaction allowed), so
-- dbadmin.py builds them with a quoted identifier (docs/ARCHITECTURE.md lists them).

-- name: database_exists
-- Probed only after a connection to the target failed with 3D000: a role that may connect
-- to its own database only never needs to see pg_database.
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = :d);

-- name: terminate_sessions
-- --overwrite: every other session on the target must go before DROP DATABASE (which fails
-- with 55006 while anyone is connected). The deploy lock was checked before this runs, so
-- no pgmi deploy is among them (sql/deploy_lock_held.sql).
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid();
