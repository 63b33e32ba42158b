-- session_attrs.sql -- is this server what target_session_attrs asks for?
--
-- pgmilib/conn/connect.py runs this right after connecting when a connection string (or
-- $PGTARGETSESSIONATTRS) names target_session_attrs other than `any`, and closes the
-- connection when the answer does not match. libpq asks the same two questions:
-- transaction_read_only is `on` on a hot standby and wherever default_transaction_read_only
-- is set for the database or role (read-write / read-only), and pg_is_in_recovery() tells a
-- standby from a primary (primary / standby / prefer-standby).
SELECT current_setting('transaction_read_only') = 'on' AS read_only,
       pg_is_in_recovery() AS in_recovery;
