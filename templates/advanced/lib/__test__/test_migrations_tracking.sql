-- The ledger knows every script in the plan, by id, with the content that ran.
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(p.path, ', ') INTO missing
      FROM pg_temp.pgmi_plan_view AS p
     WHERE p.id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM internal.deployment_script_execution_log AS l
                        WHERE l.deployment_script_object_id = p.id AND l.file_path = p.path);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'scripts without a ledger entry: %', missing;
    END IF;
    IF EXISTS (SELECT 1 FROM internal.deployment_script_execution_log AS l
                 JOIN internal.deployment_script_content AS c ON c.checksum = l.deployment_script_content_checksum
                 JOIN pg_temp.pgmi_plan_view AS p ON p.id = l.deployment_script_object_id
                WHERE l.xact_id = pg_current_xact_id() AND c.value IS DISTINCT FROM p.content) THEN
        RAISE EXCEPTION 'the ledger must store exactly the content that ran in this deploy';
    END IF;
    IF (SELECT execution_count FROM internal.vw_deployment_script
         WHERE object_id = '50f3850e-a699-4375-bfc0-fd5286c01f34') IS NULL THEN
        RAISE EXCEPTION 'the ledger view must count executions';
    END IF;
    IF EXISTS (SELECT 1 FROM internal.deployment_script_content
                WHERE checksum IS DISTINCT FROM encode(sha256(convert_to(value, 'UTF8')), 'hex')) THEN
        RAISE EXCEPTION 'content rows are addressed by their sha256';
    END IF;
END
$$;
