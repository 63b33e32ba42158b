-- deploy.sql: the orchestrator of the advanced template.
--
--   1. parameters   session.json declares them; defaults, validation, published as GUCs
--   2. privileges   roles (owner / admin / api / customer) and extensions: the only part
--                   that needs CREATEROLE; everything after runs as the owner role
--   3. ledger       internal.deployment_script*: which script ran, with which content
--   4. scripts      every file with <pgmi-meta>, in sort-key order; apply-once files
--                   (idempotent="false") run once, idempotent files every deploy
--   5. convergence  EXECUTE privileges are re-derived from scratch every deploy
--   6. tests        CALL pgmi_test(); the transaction commits only if they all pass
--
-- Steps 1-6 and the DONE banner are one transaction, with nothing after its COMMIT.

BEGIN;

-- Two deploys of the same database queue up instead of interleaving.
SELECT pg_advisory_xact_lock(hashtext('pgmi_deploy_' || current_database()));

-- ---------------------------------------------------------------------------------------
-- 1. Parameters
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE deployment_parameter (
    key          text PRIMARY KEY,   -- normalised: lower case, [a-z0-9_]
    value        text,
    description  text,
    declared     boolean NOT NULL
) ON COMMIT DROP;

DO $$
DECLARE
    spec       jsonb;
    unknown    text;
    missing    text;
    defaulted  text;
    env        text;
    p          record;
BEGIN
    -- JSON rather than XML: jsonb is in every PostgreSQL build, xml only in those built with
    -- libxml (the embedded server `pgmi deploy --ephemeral` may start has none).
    SELECT content::jsonb INTO spec FROM pg_temp.pgmi_source_view WHERE path = './session.json';
    IF spec IS NULL THEN
        RAISE EXCEPTION 'session.json is missing: it declares the parameters this project accepts';
    END IF;

    INSERT INTO pg_temp.deployment_parameter (key, value, description, declared)
    SELECT coalesce(d.key, c.key), c.value, d.description, d.key IS NOT NULL
      FROM (SELECT regexp_replace(lower(trim(x.key)), '[^a-z0-9]+', '_', 'g') AS key, x.description
              FROM jsonb_to_recordset(spec -> 'parameters') AS x(key text, description text)) AS d
      FULL JOIN (SELECT regexp_replace(lower(trim(key)), '[^a-z0-9]+', '_', 'g') AS key, value
                   FROM pg_temp.pgmi_parameter_view) AS c ON c.key = d.key;

    SELECT string_agg(key, ', ' ORDER BY key) INTO unknown FROM pg_temp.deployment_parameter WHERE NOT declared;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'Unknown parameters: %', unknown USING HINT = 'declare them in session.json';
    END IF;

    -- Defaults: role names derive from the database name, so two databases on one
    -- server never share roles.
    UPDATE pg_temp.deployment_parameter SET value = 'dev' WHERE key = 'env' AND value IS NULL;
    UPDATE pg_temp.deployment_parameter
       SET value = current_database() || '_' || split_part(key, '_', 2)
     WHERE key LIKE 'database\_%\_role' AND value IS NULL;
    SELECT value INTO env FROM pg_temp.deployment_parameter WHERE key = 'env';

    -- In dev (and test) a missing password leaves the login role without one: it exists,
    -- but nobody can log in with it until a password is set. Elsewhere it is an error.
    IF env IN ('dev', 'test') THEN
        SELECT string_agg(key, ', ' ORDER BY key) INTO defaulted
          FROM pg_temp.deployment_parameter WHERE key LIKE '%password' AND value IS NULL;
        IF defaulted IS NOT NULL THEN
            RAISE WARNING 'No value for %: the roles get no password (env %)', defaulted, env;
            UPDATE pg_temp.deployment_parameter SET value = '' WHERE key LIKE '%password' AND value IS NULL;
        END IF;
    END IF;

    SELECT string_agg(key, ', ' ORDER BY key) INTO missing FROM pg_temp.deployment_parameter WHERE value IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'Missing required parameters: %', missing
            USING HINT = 'pass them with --params-file secrets.params (KEY=VALUE lines)';
    END IF;

    -- Publish for the scripts and the tests: current_setting('deployment.<key>').
    FOR p IN SELECT key, value FROM pg_temp.deployment_parameter ORDER BY key LOOP
        PERFORM set_config('deployment.' || p.key, p.value, false);
        PERFORM set_config('pgmi.' || p.key, p.value, false);
        RAISE NOTICE '[pgmi] Parameter: % = %', p.key,
            CASE WHEN p.key ~ '(password|secret|token|key|credential|auth)' THEN '********' ELSE p.value END;
    END LOOP;
END
$$;

-- Read one parameter; required ones fail loudly instead of returning NULL.
CREATE FUNCTION pg_temp.deployment_setting(p_key text, p_required boolean DEFAULT true)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text := current_setting('deployment.' || regexp_replace(lower(trim(p_key)), '[^a-z0-9]+', '_', 'g'), true);
BEGIN
    IF v IS NULL AND p_required THEN
        RAISE EXCEPTION 'Required deployment parameter "%" not set', p_key;
    END IF;
    RETURN v;
END
$$;

-- ---------------------------------------------------------------------------------------
-- 2. Privileged phase: roles and extensions (needs CREATEROLE; no superuser)
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    owner_role    text := pg_temp.deployment_setting('database_owner_role');
    admin_role    text := pg_temp.deployment_setting('database_admin_role');
    api_role      text := pg_temp.deployment_setting('database_api_role');
    customer_role text := pg_temp.deployment_setting('database_customer_role');
    r             record;
    can_create    boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
    IF NOT can_create AND EXISTS (
        SELECT 1 FROM unnest(ARRAY[owner_role, admin_role, api_role, customer_role]) AS n
         WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n)) THEN
        RAISE EXCEPTION 'the deploy user "%" lacks the CREATEROLE privilege needed to create the roles %, %, %, %',
            current_user, owner_role, admin_role, api_role, customer_role
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'ALTER ROLE ' || quote_ident(current_user) || ' CREATEROLE; or create the roles beforehand';
    END IF;

    FOR r IN SELECT * FROM (VALUES
        (owner_role,    'NOLOGIN',                     NULL::text),
        (api_role,      'NOLOGIN',                     NULL),
        (admin_role,    'LOGIN CONNECTION LIMIT 10',   pg_temp.deployment_setting('database_admin_password')),
        (customer_role, 'LOGIN CONNECTION LIMIT 100',  pg_temp.deployment_setting('database_customer_password'))
    ) AS t(name, options, password) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I %s', r.name, r.options);
        END IF;
        IF r.password IS NOT NULL AND r.password <> '' THEN  -- re-set every deploy: rotation = redeploy
            EXECUTE format('ALTER ROLE %I PASSWORD %L', r.name, r.password);
        END IF;
    END LOOP;

    -- admin holds owner and api; customer must NOT inherit the gateway role.
    EXECUTE format('GRANT %I, %I TO %I', owner_role, api_role, admin_role);
    IF pg_has_role(customer_role, api_role, 'MEMBER') THEN
        EXECUTE format('REVOKE %I FROM %I', api_role, customer_role);
    END IF;
    -- The deployer acts as owner for the scripts and as api/customer in the tests. From
    -- PostgreSQL 16 on, a CREATEROLE user is made a member of the roles it creates with
    -- ADMIN only (no SET, no INHERIT), so membership alone does not let it SET ROLE: ask
    -- for the SET privilege there (a word PostgreSQL 15 does not know).
    FOR r IN SELECT unnest(ARRAY[owner_role, api_role, customer_role]) AS name LOOP
        IF current_setting('server_version_num')::int >= 160000 THEN
            IF NOT pg_has_role(current_user, r.name, 'SET') THEN
                EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', r.name, current_user);
            END IF;
        ELSIF NOT pg_has_role(current_user, r.name, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r.name, current_user);
        END IF;
    END LOOP;
    EXECUTE format('GRANT CREATE, CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), owner_role);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), admin_role, customer_role);
    EXECUTE format('ALTER DATABASE %I SET search_path = core, api, membership, internal, extensions, common',
                   current_database());

    -- Extensions live in their own schema, usable by everyone. hstore is "trusted": a
    -- database owner can create it without superuser. It is the only one: random bytes
    -- and UUIDs come from the core gen_random_uuid(), hashes from the core sha256(), so
    -- the template runs on builds without OpenSSL or libuuid (pgcrypto, uuid-ossp).
    CREATE SCHEMA IF NOT EXISTS extensions;
    GRANT USAGE ON SCHEMA extensions TO PUBLIC;
    CREATE EXTENSION IF NOT EXISTS hstore SCHEMA extensions;
END
$$;

-- The scripts below qualify their names; this is for the tests and for convenience. New
-- sessions get the same path from ALTER DATABASE ... SET search_path above.
SET LOCAL search_path = core, api, membership, internal, extensions, common, public;

-- ---------------------------------------------------------------------------------------
-- 3. Schemas and the script ledger (as the owner role)
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    owner_role    text := pg_temp.deployment_setting('database_owner_role');
    admin_role    text := pg_temp.deployment_setting('database_admin_role');
    api_role      text := pg_temp.deployment_setting('database_api_role');
    customer_role text := pg_temp.deployment_setting('database_customer_role');
BEGIN
    PERFORM set_config('role', owner_role, true);
    CREATE SCHEMA IF NOT EXISTS internal;
    CREATE SCHEMA IF NOT EXISTS common;
    CREATE SCHEMA IF NOT EXISTS core;
    CREATE SCHEMA IF NOT EXISTS api;
    CREATE SCHEMA IF NOT EXISTS membership;
    COMMENT ON SCHEMA internal IS 'Deployment ledger and private helpers; owner only';
    COMMENT ON SCHEMA common IS 'Pure helper functions (casts, text)';
    COMMENT ON SCHEMA core IS 'Domain foundations: entity ids, row-level security helpers';
    COMMENT ON SCHEMA api IS 'Handler registry and the REST / RPC / MCP entry points';
    COMMENT ON SCHEMA membership IS 'Users, identities, organizations, API keys';
    REVOKE ALL ON SCHEMA internal, common, core, api, membership FROM PUBLIC;
    EXECUTE format('GRANT USAGE ON SCHEMA common, membership TO %I, %I, %I', admin_role, api_role, customer_role);
    EXECUTE format('GRANT USAGE ON SCHEMA api TO %I, %I', api_role, customer_role);
    EXECUTE format('GRANT USAGE ON SCHEMA core TO %I', api_role);
    -- New functions are not executable by PUBLIC; section 5 grants what each role needs.
    ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

    -- Role names for code that runs outside a deploy (e.g. registering a handler later).
    CREATE TABLE IF NOT EXISTS internal.setting (key text PRIMARY KEY, value text NOT NULL);
    INSERT INTO internal.setting (key, value)
    VALUES ('owner_role', owner_role), ('admin_role', admin_role), ('api_role', api_role),
           ('customer_role', customer_role)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE internal.setting.value IS DISTINCT FROM EXCLUDED.value;

    -- The ledger. Scripts are identified by their <pgmi-meta> id, contents by their hash.
    CREATE TABLE IF NOT EXISTS internal.deployment_script (
        object_id     uuid PRIMARY KEY,
        registered_at timestamptz NOT NULL DEFAULT now(),
        registered_by text NOT NULL DEFAULT current_user
    );
    CREATE TABLE IF NOT EXISTS internal.deployment_script_content (
        checksum      text PRIMARY KEY CHECK (checksum = encode(sha256(convert_to(value, 'UTF8')), 'hex')),
        value         text NOT NULL,
        registered_at timestamptz NOT NULL DEFAULT now(),
        registered_by text NOT NULL DEFAULT current_user
    );
    CREATE TABLE IF NOT EXISTS internal.deployment_script_execution_log (
        id                                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        deployment_script_object_id        uuid NOT NULL REFERENCES internal.deployment_script,
        deployment_script_content_checksum text NOT NULL REFERENCES internal.deployment_script_content,
        xact_id                            xid8 NOT NULL DEFAULT pg_current_xact_id(),
        file_path                          text NOT NULL,
        idempotent                         boolean NOT NULL,
        sort_key                           text NOT NULL,
        executed_at                        timestamptz NOT NULL DEFAULT now(),
        executed_by                        text NOT NULL DEFAULT session_user
    );
    CREATE INDEX IF NOT EXISTS deployment_script_execution_log_once
        ON internal.deployment_script_execution_log (deployment_script_object_id, idempotent)
        WHERE idempotent = false;
    CREATE OR REPLACE VIEW internal.vw_deployment_script AS
        SELECT s.object_id, max(l.executed_at) AS last_execution, count(l.id) AS execution_count
          FROM internal.deployment_script AS s
          LEFT JOIN internal.deployment_script_execution_log AS l ON l.deployment_script_object_id = s.object_id
         GROUP BY s.object_id;
    PERFORM set_config('role', 'none', true);
END
$$;

-- ---------------------------------------------------------------------------------------
-- 4. Scripts, in plan order, each as the owner role
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.deploy() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    owner_role text := pg_temp.deployment_setting('database_owner_role');
    s          record;
    script_id  uuid;
    hash       text;
    executed   int := 0;
    skipped    int := 0;
BEGIN
    FOR s IN SELECT p.path, p.content, p.id, p.generic_id, p.idempotent, p.sort_key
               FROM pg_temp.pgmi_plan_view AS p
               JOIN pg_temp.pgmi_source_view AS f USING (path)
              WHERE f.is_sql_file AND p.id IS NOT NULL          -- only scripts with <pgmi-meta>
              ORDER BY p.execution_order
    LOOP
        script_id := coalesce(s.id, s.generic_id);
        -- An apply-once script is skipped only when it already ran *as apply-once*. So
        -- flipping an idempotent script to idempotent="false" runs it exactly once more.
        IF NOT s.idempotent AND EXISTS (
            SELECT 1 FROM internal.deployment_script_execution_log
             WHERE deployment_script_object_id = script_id AND idempotent = false) THEN
            skipped := skipped + 1;
            CONTINUE;
        END IF;

        hash := encode(sha256(convert_to(s.content, 'UTF8')), 'hex');
        INSERT INTO internal.deployment_script (object_id) VALUES (script_id) ON CONFLICT DO NOTHING;
        INSERT INTO internal.deployment_script_content (checksum, value) VALUES (hash, s.content) ON CONFLICT DO NOTHING;

        RAISE NOTICE '[pgmi] Executing: %', s.path;
        PERFORM set_config('role', owner_role, true);
        BEGIN
            EXECUTE s.content;
        EXCEPTION WHEN OTHERS THEN
            -- Name the script, then re-raise the original error (bare RAISE): its SQLSTATE,
            -- DETAIL and position survive, so pgmi reports the script's file:line:column.
            -- A new RAISE EXCEPTION would point at this line of deploy.sql instead.
            RAISE WARNING '[pgmi] Script failed: %', s.path;
            RAISE;
        END;
        PERFORM set_config('role', 'none', true);

        INSERT INTO internal.deployment_script_execution_log
               (deployment_script_object_id, deployment_script_content_checksum, file_path, idempotent, sort_key)
        VALUES (script_id, hash, s.path, s.idempotent, s.sort_key);
        executed := executed + 1;
    END LOOP;
    RAISE NOTICE '[pgmi] Scripts: % executed, % skipped (already applied once)', executed, skipped;
END
$$;

-- Test progress for the log: each event pgmi_test() reports is turned into at most one
-- line, worded like pgmi's default reporter, so a CI log reads the same with either.
-- Events without a line (test_end, rollback, teardown_*) stay silent: a failure aborts
-- the deploy with the test's own error, which says everything.
CREATE FUNCTION pg_temp.test_observer(e pg_temp.pgmi_test_event) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    line text := CASE e.event
                     WHEN 'test_start'    THEN '[pgmi] Test: ' || e.path
                     WHEN 'fixture_start' THEN '[pgmi] Fixture: ' || e.path
                     WHEN 'suite_start'   THEN '[pgmi] Test suite started'
                     WHEN 'suite_end'     THEN format('[pgmi] Test suite completed (%s steps)', e.ordinal)
                 END;
BEGIN
    IF line IS NOT NULL THEN
        RAISE NOTICE '%', line;
    END IF;
END
$$;

SELECT pg_temp.deploy();

-- Tables that opted into entity standards (object_id core.entity_id) get created_at /
-- deleted_at. Runs after every script and before the tests, which check the result.
SELECT pg_temp.apply_entity_standards_all();

-- ---------------------------------------------------------------------------------------
-- 5. Privilege convergence: derived from scratch, so a hand-made GRANT cannot linger
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    owner_role    text := pg_temp.deployment_setting('database_owner_role');
    admin_role    text := pg_temp.deployment_setting('database_admin_role');
    api_role      text := pg_temp.deployment_setting('database_api_role');
    customer_role text := pg_temp.deployment_setting('database_customer_role');
BEGIN
    PERFORM set_config('role', owner_role, true);
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api, membership, core, common, internal FROM PUBLIC;
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api, membership, core, common, internal FROM %I, %I',
                   api_role, customer_role);
    -- admin: everything in api and membership; the only holder of handler registration.
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api, membership, common TO %I', admin_role);
    -- api (the gateway): every api routine except registration.
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA api, common TO %I', api_role);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION api.create_or_replace_rest_handler(jsonb, text), '
                   'api.create_or_replace_rpc_handler(jsonb, text), api.create_or_replace_mcp_handler(jsonb, text), '
                   'api.create_or_replace_mcp_resource(jsonb, text), api.create_or_replace_mcp_prompt(jsonb, text), '
                   'api.delete_handler(uuid) FROM %I', api_role);
    EXECUTE format('REVOKE EXECUTE ON PROCEDURE api.purge_exchanges(interval, int, int, boolean) FROM %I', api_role);
    -- The queue: the gateway may enqueue, claim, ack and nack; subscribing handlers,
    -- running the worker pass and requeueing dead letters are for administrators.
    EXECUTE format('REVOKE EXECUTE ON FUNCTION api.queue_subscribe(text, regprocedure), '
                   'api.queue_process(text, int, interval, interval), api.requeue_dead(bigint) FROM %I', api_role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION membership.validate_api_key(text) TO %I', api_role);
    -- The dispatchers' private helpers (routing, status mapping, policy) live in internal;
    -- the gateway may call them, but reads no internal table and cannot register handlers.
    EXECUTE format('GRANT USAGE ON SCHEMA internal TO %I', api_role);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA internal TO %I', api_role);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION internal.register_handler(api.handler_type, jsonb, text, text, text, text) '
                   'FROM %I', api_role);
    -- customer: only what its row-level security policies and self-service need.
    EXECUTE format('GRANT EXECUTE ON FUNCTION api.current_idp_subject(), api.current_user_id(), '
                   'api.is_authenticated(), api.current_member_org_ids(), api.current_user_is_admin() TO %I',
                   customer_role);
    PERFORM set_config('role', 'none', true);
END
$$;

-- ---------------------------------------------------------------------------------------
-- 6. Tests: committed only if every one passes; their changes are rolled back
-- ---------------------------------------------------------------------------------------
SAVEPOINT _tests;
CALL pgmi_test(NULL, 'pg_temp.test_observer');
ROLLBACK TO SAVEPOINT _tests;

-- Every script ran and every test passed; only the COMMIT (which also releases the
-- deployment lock) is left. Nothing follows it, so `pgmi deploy --rehearse` can run the
-- whole script and roll it back.
DO $$
BEGIN
    RAISE NOTICE E'\n  ____   ___  _   _ _____\n |  _ \\ / _ \\| \\ | | ____|\n | | | | | | |  \\| |  _|\n | |_| | |_| | |\\  | |___\n |____/ \\___/|_| \\_|_____|\n';
END
$$;

COMMIT;
