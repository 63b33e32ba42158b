-- session_ahead.sql -- the session API sent behind the login, before the client knows its session.
--
-- A local deploy sends the session API as soon as the server accepts the login without an
-- exchange (pgmilib/conn/early.py): the server then builds it while the client is still
-- importing its driver. At that moment the client cannot yet know which server session runs
-- it: PostgreSQL announces its backend's pid (BackendKeyData) only after the login, and a proxy
-- or pooler on the socket announces a key of its own while the query runs in whichever server
-- session it picked. So the API runs inside a transaction, and only the announced backend
-- commits it (pgmilib/deploy/session.py `adopt_api_ahead`): anywhere else the transaction is
-- rolled back, the server session is left as it was found, and the API is installed again the
-- usual way once the pooler check has passed. A transaction-mode pooler keeps a session for as
-- long as its transaction is open, so the rollback reaches the session that ran the API.

-- name: begin
-- Sent in front of the API's scripts, in the same message. The client logs in and imports
-- while this transaction waits for its commit (tens of milliseconds): a server's
-- idle_in_transaction_session_timeout must not end the session meanwhile (LOCAL: the setting
-- is back to the server's own value after the commit).
BEGIN;
SET LOCAL idle_in_transaction_session_timeout = 0;

-- name: commit
-- Sent once the login has announced the backend's pid ({pid}, an integer the client fills in),
-- without waiting for the API's answer. In another backend the DO raises, the transaction is
-- aborted and the COMMIT after it in this message is skipped: the client then rolls back.
DO $$
BEGIN
    IF pg_backend_pid() <> {pid} THEN
        RAISE EXCEPTION 'pgmi: the session API ran in another server session than the one announced';
    END IF;
END
$$;
COMMIT;
