-- sql/session_contract_v1.sql: the public session contract, API v1.
--
-- What: the `pgmi_*_view` views a project's deploy.sql reads. They are the stable surface
-- (the `_pgmi_*` tables behind them may change between releases); column names, order and
-- types are part of the contract and pinned by tests. `pgmi_test_generate` (also v1) lives in
-- sql/session_contract_v1_tests.sql, which runs right after this script.
--
-- Why views over the tables: deploy.sql can rely on one name per concept whatever the
-- internal layout, and pgmi_plan_view carries the one ordering rule (sort keys, byte order)
-- so every project executes in the same, locale-independent order.
--
-- Sent once per session in the same simple query as sql/session_schema.sql and
-- sql/session_tests.sql, before anything is loaded: views are read when queried, so creating
-- them over the empty tables is the same as after the load, and the server builds them while
-- the client scans the project.

-- Temporary objects only: the commit need not wait for a WAL flush, as in sql/session_schema.sql.
SELECT set_config('synchronous_commit', 'off', true);

CREATE TEMP VIEW pgmi_source_view AS
SELECT path, name, directory, extension, depth, content, size_bytes, checksum, pgmi_checksum,
       path_parts, is_sql_file, is_test_file, parent_folder_name
FROM pg_temp._pgmi_source;

CREATE TEMP VIEW pgmi_parameter_view AS
SELECT key, value, type, required, default_value, description
FROM pg_temp._pgmi_parameter;

CREATE TEMP VIEW pgmi_test_source_view AS
SELECT path, directory, filename, content, is_fixture
FROM pg_temp._pgmi_test_source;

CREATE TEMP VIEW pgmi_test_directory_view AS
SELECT path, parent_path, depth
FROM pg_temp._pgmi_test_directory;

CREATE TEMP VIEW pgmi_source_metadata_view AS
SELECT path, id, idempotent, sort_keys, description
FROM pg_temp._pgmi_source_metadata;

-- The execution plan: every loaded file (SQL or not: a deploy loop must filter on
-- pgmi_source_view.is_sql_file itself), one row per sort key. A file without metadata, or
-- with an empty <sortKeys>, has the single key = its path. Keys and path fallbacks share one
-- ordering domain compared byte by byte (COLLATE "C"): './...' sorts before '0'..'9', so
-- files without keys come first. Do not drop the COLLATE "C": a linguistic collation would
-- make the order depend on the server's locale.
-- `checksum` here is the normalised checksum (pgmi_checksum), so comment-only edits do not
-- look like changes. `generic_id` is the 16 MD5 bytes of the path's bytes read as a UUID; the
-- text->bytea cast is safe only because paths never contain a backslash (a CHECK on
-- _pgmi_source), and it must stay this cast: clients compute the same id from the UTF-8 path.
CREATE OR REPLACE TEMP VIEW pgmi_plan_view AS
SELECT s.path,
       s.content,
       s.pgmi_checksum AS checksum,
       md5(s.path::bytea)::uuid AS generic_id,
       m.id,
       coalesce(m.idempotent, true) AS idempotent,
       coalesce(m.description, '') AS description,
       k.sort_key,
       row_number() OVER (ORDER BY k.sort_key COLLATE "C", s.path COLLATE "C") AS execution_order
FROM pg_temp._pgmi_source AS s
LEFT JOIN pg_temp._pgmi_source_metadata AS m ON m.path = s.path
CROSS JOIN LATERAL unnest(
    CASE WHEN m.path IS NULL OR cardinality(m.sort_keys) = 0 THEN ARRAY[s.path] ELSE m.sort_keys END
) AS k(sort_key)
ORDER BY execution_order;

GRANT SELECT ON pg_temp.pgmi_source_view, pg_temp.pgmi_parameter_view, pg_temp.pgmi_test_source_view,
                pg_temp.pgmi_test_directory_view, pg_temp.pgmi_source_metadata_view, pg_temp.pgmi_plan_view
    TO PUBLIC;
