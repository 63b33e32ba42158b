-- session_load.sql -- the statements that fill the session tables created by session_schema.sql.
--
-- One file, several named statements: `resources.read_sql_section("session_load.sql", NAME)`
-- returns the statement after `-- name: NAME`. The column lists here are the contract with
-- the row builders in pgmilib/deploy/session.py (same order, tab-separated COPY text).
--
-- Why COPY FROM STDIN: it matches psql's own load speed, where one INSERT per file is
-- 5-10x slower, and values never become part of SQL text (no quoting, no injection).

-- name: copy_source
-- One row per project file outside __test__/ and __tests__/.
COPY pg_temp._pgmi_source (path, name, directory, extension, depth, content, size_bytes, checksum,
                           pgmi_checksum, path_parts, is_sql_file, is_test_file, parent_folder_name)
FROM STDIN;

-- name: copy_test_directory
-- Every directory that holds tests, with its parent, so the plan can nest _setup.sql fixtures.
COPY pg_temp._pgmi_test_directory (path, parent_path, depth) FROM STDIN;

-- name: copy_test_source
COPY pg_temp._pgmi_test_source (path, directory, filename, content, is_fixture) FROM STDIN;

-- name: copy_source_metadata
-- Parsed <pgmi-meta> blocks; files without one get no row (the plan falls back to the path).
COPY pg_temp._pgmi_source_metadata (path, id, idempotent, sort_keys, description) FROM STDIN;

-- name: analyze
-- Temp tables get no autovacuum statistics; without them the test plan query is ~300x slower.
-- _pgmi_source gets its row count and the statistics of the columns deploy loops join and filter
-- on; each further column costs 3-6 us per file (all 13 took 0.2 s at 10k files, these 0.06 s).
-- The statistics are of temporary tables: their commit need not wait for a WAL flush (as in
-- sql/session_schema.sql); set_config(..., true) lasts for this message's transaction only.
SELECT set_config('synchronous_commit', 'off', true);
ANALYZE pg_temp._pgmi_source (path, directory, is_sql_file), pg_temp._pgmi_source_metadata,
        pg_temp._pgmi_test_source, pg_temp._pgmi_test_directory;

-- name: copy_parameters
-- Keys arrive lower-cased: in the session they are case-insensitive GUC names.
COPY pg_temp._pgmi_parameter (key, value) FROM STDIN;

-- name: parameter_settings
-- Each parameter also becomes the session setting pgmi.<key>. Values are copied from the
-- table by this query, so no value is ever part of SQL text.
SELECT set_config('pgmi.' || key, value, false) FROM pg_temp._pgmi_parameter;

-- name: encodings
-- The loader sends the files' UTF-8 bytes; they are stored verbatim only while the client
-- encoding equals the server encoding (see pgmilib/deploy/session.py). Asked only of a
-- connection that kept no ParameterStatus reports: the server sends both at start-up.
SELECT current_setting('server_encoding'), current_setting('client_encoding');

-- name: set_client_encoding
SELECT set_config('client_encoding', :e, false);

-- name: server_version
-- pgmi needs PostgreSQL 11+ (hashtextextended for the deploy lock, procedures for pgmi_test).
-- Asked only when the version the server reported at start-up (ParameterStatus) is not
-- plainly 11 or newer: this answer then decides, and names the version in the error.
SELECT current_setting('server_version_num')::int, current_setting('server_version');
