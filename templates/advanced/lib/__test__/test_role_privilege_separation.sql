-- Least privilege, checked from the catalog (works for any deploy user).
DO $$
DECLARE
    owner_role    text := current_setting('deployment.database_owner_role');
    admin_role    text := current_setting('deployment.database_admin_role');
    api_role      text := current_setting('deployment.database_api_role');
    customer_role text := current_setting('deployment.database_customer_role');
    leaks         text;
BEGIN
    IF pg_has_role(customer_role, api_role, 'MEMBER') THEN
        RAISE EXCEPTION 'customer must not be a member of the gateway role';
    END IF;
    IF NOT (pg_has_role(admin_role, owner_role, 'MEMBER') AND pg_has_role(admin_role, api_role, 'MEMBER')) THEN
        RAISE EXCEPTION 'admin must hold owner and api';
    END IF;
    IF (SELECT rolcanlogin FROM pg_roles WHERE rolname = owner_role) IS DISTINCT FROM false
       OR (SELECT rolcanlogin FROM pg_roles WHERE rolname = api_role) IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'owner and api must be NOLOGIN';
    END IF;
    IF has_function_privilege(customer_role, 'api.rest_invoke(text, text, extensions.hstore, bytea)', 'EXECUTE') THEN
        RAISE EXCEPTION 'customer must not execute the REST gateway';
    END IF;
    IF has_function_privilege(api_role, 'api.create_or_replace_rest_handler(jsonb, text)', 'EXECUTE')
       OR has_function_privilege(customer_role, 'api.create_or_replace_rest_handler(jsonb, text)', 'EXECUTE') THEN
        RAISE EXCEPTION 'only admin may register handlers';
    END IF;
    IF NOT has_function_privilege(admin_role, 'api.create_or_replace_rest_handler(jsonb, text)', 'EXECUTE') THEN
        RAISE EXCEPTION 'admin must be able to register handlers';
    END IF;
    IF NOT has_function_privilege(api_role, 'api.rest_invoke(text, text, extensions.hstore, bytea)', 'EXECUTE') THEN
        RAISE EXCEPTION 'the gateway role must execute api.rest_invoke';
    END IF;
    SELECT string_agg(p.oid::regprocedure::text, ', ') INTO leaks
      FROM pg_proc AS p
     WHERE p.pronamespace IN ('membership'::regnamespace, 'internal'::regnamespace, 'api'::regnamespace)
       AND has_function_privilege('public', p.oid, 'EXECUTE');
    IF leaks IS NOT NULL THEN
        RAISE EXCEPTION 'PUBLIC can execute: %', leaks;
    END IF;
    IF has_table_privilege(api_role, 'api.rest_exchange', 'SELECT') THEN
        RAISE EXCEPTION 'the gateway may write the exchange log but not read it';
    END IF;
    IF has_column_privilege(customer_role, 'membership.api_key', 'key_hash', 'SELECT') THEN
        RAISE EXCEPTION 'nobody but the owner reads key hashes';
    END IF;
    IF has_function_privilege(customer_role, 'membership.generate_api_key_material()', 'EXECUTE') THEN
        RAISE EXCEPTION 'customer must not mint key material';
    END IF;
END
$$;
