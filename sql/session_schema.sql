-- sql/session_schema.sql: the internal tier of the pgmi session.
--
-- What: the session-scoped tables pgmi fills with the project's files and parameters
-- (`_pgmi_parameter`, `_pgmi_source`, `_pgmi_source_metadata`, `_pgmi_test_directory`,
-- `_pgmi_test_source`) and the two helpers that belong with them (`pgmi_is_sql_file`,
-- `pgmi_register_file`). Everything lives in pg_temp, so it disappears with the session and
-- never touches the target database's schemas.
--
-- Why this shape: the CHECK constraints are part of the contract (they make odd paths fail
-- loudly instead of loading something a deploy loop would misread), and the loader in
-- pgmilib/session.py COPYs rows straight into these tables, so the constraints are also what
-- keeps the Python-side derivation of path columns honest.
--
-- Sent as one multi-statement simple query as soon as the session is open, without waiting for
-- the answer: the server builds these objects while the client scans the project (they are
-- private to the session, so the deploy lock is taken after them). The test machinery
-- (sql/session_tests.sql) travels in the same query and relies on the tables created here.

-- Function bodies are not validated at creation. pgmi's functions are its own SQL, which its
-- test suite calls, so the check only repeated work each session pays for: ~1.2 ms of a fresh
-- session's set-up (compiling PL/pgSQL and parsing SQL bodies that most deploys never call).
-- A body is still parsed when it is first called.
-- The commit does not wait for its WAL to reach the disk either: these are temporary objects,
-- which a server crash takes away with the session anyway. A durable server saves a WAL flush
-- (an fsync: ~0.5 ms on the development machine's disk, more on networked storage).
-- Both settings are local to the transaction that runs this script: the implicit one of the
-- single simple query pgmi sends it in, so the session's own values are back before anything
-- else runs.
SELECT set_config('check_function_bodies', 'off', true), set_config('synchronous_commit', 'off', true);

-- Re-runnable cleanup. Only when this session already has a temp schema: on a fresh session
-- `DROP ... pg_temp.x` would raise "schema pg_temp does not exist, skipping" notices, and
-- session preparation must stay silent at the default client_min_messages. The drops run
-- with client_min_messages raised locally so "does not exist, skipping" and "drop cascades
-- to ..." notices stay quiet too; the previous value is restored before the block ends.
-- Kept small: on a fresh session only the IF runs, and PL/pgSQL parses the statements inside
-- it only when they run.
DO $pgmi_cleanup$
DECLARE
    previous text;
BEGIN
    IF pg_my_temp_schema() <> 0 THEN
        previous := current_setting('client_min_messages');
        PERFORM set_config('client_min_messages', 'warning', true);
        DROP TABLE IF EXISTS pg_temp._pgmi_source_metadata, pg_temp._pgmi_source, pg_temp._pgmi_parameter,
                             pg_temp._pgmi_test_source, pg_temp._pgmi_test_directory CASCADE;
        DROP TYPE IF EXISTS pg_temp.pgmi_test_event CASCADE;
        PERFORM set_config('client_min_messages', previous, true);
    END IF;
END
$pgmi_cleanup$;

-- Parameters from pgmi.yaml / --params-file / --param. pgmi writes only `key` (lower-cased)
-- and `value`; the other columns keep their defaults (declaring parameters is a template
-- concern, not core).
CREATE TEMP TABLE _pgmi_parameter (
    key           text PRIMARY KEY CHECK (key ~ '^\w+$'),
    value         text,
    type          text NOT NULL DEFAULT 'text' CHECK (type IN ('text', 'int', 'integer', 'bigint', 'numeric',
                                                               'boolean', 'bool', 'uuid', 'timestamp',
                                                               'timestamptz', 'name')),
    required      boolean NOT NULL DEFAULT false,
    default_value text,
    description   text
);

-- Every non-test project file, SQL or not, with the path split into the columns a deploy
-- loop filters on. `content` is the BOM-stripped text; `checksum` is SHA-256 of its bytes,
-- `pgmi_checksum` SHA-256 of the normalised text (comments/case/whitespace-insensitive).
CREATE TEMP TABLE _pgmi_source (
    path               text PRIMARY KEY,
    name               text NOT NULL,
    directory          text NOT NULL,
    extension          text NOT NULL,
    depth              integer NOT NULL,
    content            text NOT NULL,
    size_bytes         bigint NOT NULL,
    checksum           text NOT NULL,
    pgmi_checksum      text NOT NULL,
    path_parts         text[] NOT NULL,
    is_sql_file        boolean NOT NULL,
    is_test_file       boolean NOT NULL,
    parent_folder_name text,
    CONSTRAINT pgmi_source_path_format
        CHECK (path LIKE './%' AND strpos(path, '\') = 0 AND strpos(path, '//') = 0),
    CONSTRAINT pgmi_source_name_format
        CHECK (strpos(name, '/') = 0 AND btrim(name, ' ') <> ''),
    CONSTRAINT pgmi_source_directory_format
        CHECK (directory ~ '^\./(?:[^/]+/)*$' AND strpos(directory, '\') = 0),
    CONSTRAINT pgmi_source_extension_format
        CHECK (extension ~ '^(\.[a-zA-Z0-9]+)?$'),
    CONSTRAINT pgmi_source_depth_range
        CHECK (depth BETWEEN 0 AND 100),
    CONSTRAINT pgmi_source_size
        CHECK (size_bytes >= 0 AND octet_length(content) = size_bytes),
    -- Same rule as '^[a-fA-F0-9]{32,64}$', written without the bounded repetition, which
    -- PostgreSQL's regex engine runs about 10x slower (it dominated the cost of loading).
    CONSTRAINT pgmi_source_checksums
        CHECK (length(checksum) BETWEEN 32 AND 64 AND checksum ~ '^[a-fA-F0-9]+$'
               AND length(pgmi_checksum) BETWEEN 32 AND 64 AND pgmi_checksum ~ '^[a-fA-F0-9]+$'),
    CONSTRAINT pgmi_source_path_parts
        CHECK (cardinality(path_parts) > 0
               AND cardinality(path_parts) = depth + 2
               AND array_position(path_parts, '') IS NULL
               AND path_parts[1] = '.'
               AND path_parts[cardinality(path_parts)] = name),
    CONSTRAINT pgmi_source_parent_folder
        CHECK ((parent_folder_name IS NULL) = (depth = 0)
               AND strpos(coalesce(parent_folder_name, ''), '/') = 0),
    CONSTRAINT pgmi_source_path_is_directory_plus_name
        CHECK (path = directory || name),
    CONSTRAINT pgmi_source_not_a_test
        CHECK (path !~ '/__tests?__/')
);

-- Parsed <pgmi-meta> blocks, one row per file that has one. sort_keys is never NULL (an
-- absent <sortKeys> is an empty array), description is '' when absent.
CREATE TEMP TABLE _pgmi_source_metadata (
    path        text PRIMARY KEY REFERENCES pg_temp._pgmi_source (path),
    id          uuid NOT NULL,
    idempotent  boolean NOT NULL,
    sort_keys   text[] NOT NULL DEFAULT '{}',
    description text
);
CREATE INDEX ON pg_temp._pgmi_source_metadata USING gin (sort_keys);

-- Directories holding test files (__test__/ or __tests__/ anywhere in the path), linked to
-- the nearest recorded ancestor so the test plan can walk them depth-first.
CREATE TEMP TABLE _pgmi_test_directory (
    path        text PRIMARY KEY
        CHECK (path LIKE './%' AND path ~ '/__tests?__/' AND path LIKE '%/'),
    parent_path text,
    depth       int NOT NULL DEFAULT 0
);
CREATE INDEX ON pg_temp._pgmi_test_directory (parent_path);

-- SQL test files (and _setup fixtures). Kept apart from _pgmi_source so a deploy loop can
-- never execute a test by accident.
CREATE TEMP TABLE _pgmi_test_source (
    path       text PRIMARY KEY CHECK (path LIKE './%'),
    directory  text NOT NULL REFERENCES pg_temp._pgmi_test_directory (path),
    filename   text NOT NULL,
    content    text NOT NULL,
    is_fixture boolean NOT NULL DEFAULT false
);
CREATE INDEX ON pg_temp._pgmi_test_source (directory);

-- File contents are the bulk of what pgmi loads; lz4 TOAST compression (PostgreSQL 14+, when
-- the server was built with it) cuts the load time by about a third against pglz
-- (measured when the loader was designed). A column setting, so no session setting changes.
-- Tried rather than looked up: a server built without lz4 refuses the ALTER with
-- feature_not_supported, which rolls back this block's subtransaction and leaves pglz. Reading
-- the build's choices from pg_settings instead cost ~1.4 ms (the view materialises every setting).
DO $pgmi_compression$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN  -- no SET COMPRESSION before 14
        EXECUTE 'ALTER TABLE pg_temp._pgmi_source ALTER COLUMN content SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE pg_temp._pgmi_test_source ALTER COLUMN content SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- built without lz4: the columns keep the server's default (pglz)
END
$pgmi_compression$;

-- Which files count as SQL: decided by the extension only, case-insensitively. Must agree
-- with the Python-side list in pgmilib/project.py (a test checks the pair).
CREATE OR REPLACE FUNCTION pg_temp.pgmi_is_sql_file(filename text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$ SELECT filename ~* '\.(sql|ddl|dml|dql|dcl|psql|pgsql|plpgsql)$' $$;

-- Register one file: normalise the path (trim spaces, '\' -> '/', './' prefix, collapse '//'),
-- derive every column and insert. pgmi itself COPYs rows with the same derivation done in
-- Python (pgmilib/project.py: normalise_path/path_columns); this function stays for
-- deploy scripts that register generated files, and as the reference the tests compare with.
CREATE OR REPLACE FUNCTION pg_temp.pgmi_register_file(in_path text, in_content text, in_checksum text,
                                                      in_pgmi_checksum text)
RETURNS pg_temp._pgmi_source
LANGUAGE plpgsql
AS $$
DECLARE
    v_path  text := replace(btrim(in_path, ' '), '\', '/');
    v_parts text[];
    v_depth int;
    v_name  text;
    v_row   pg_temp._pgmi_source;
BEGIN
    IF v_path NOT LIKE './%' THEN
        v_path := './' || regexp_replace(v_path, '^(\./|/)+', '');
    END IF;
    v_path := regexp_replace(v_path, '/{2,}', '/', 'g');
    v_parts := string_to_array(v_path, '/');
    v_depth := cardinality(v_parts) - 2;
    v_name := v_parts[cardinality(v_parts)];

    INSERT INTO pg_temp._pgmi_source (path, name, directory, extension, depth, content, size_bytes,
                                      checksum, pgmi_checksum, path_parts, is_sql_file, is_test_file,
                                      parent_folder_name)
    VALUES (v_path,
            v_name,
            CASE WHEN v_depth = 0 THEN './'
                 ELSE array_to_string(v_parts[1:v_depth + 1], '/') || '/' END,
            coalesce(substring(v_name FROM '\.[a-zA-Z0-9]+$'), ''),
            v_depth,
            in_content,
            octet_length(in_content),
            in_checksum,
            in_pgmi_checksum,
            v_parts,
            pg_temp.pgmi_is_sql_file(v_path),
            v_path ~ '(^|/)__tests?__/',
            CASE WHEN v_depth > 0 THEN v_parts[cardinality(v_parts) - 1] END)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

GRANT SELECT ON pg_temp._pgmi_parameter, pg_temp._pgmi_source, pg_temp._pgmi_source_metadata,
                pg_temp._pgmi_test_directory, pg_temp._pgmi_test_source TO PUBLIC;
