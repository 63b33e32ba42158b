-- Normalisation, ranking and the shortfall check against the running transaction
-- (the deploy transaction runs at the default READ COMMITTED).
DO $$
BEGIN
    IF internal.normalize_transaction_isolation('Repeatable_Read') IS DISTINCT FROM 'repeatable read' THEN
        RAISE EXCEPTION 'separators and case must be tolerated';
    END IF;
    IF internal.normalize_transaction_isolation('READ UNCOMMITTED') IS DISTINCT FROM 'read committed' THEN
        RAISE EXCEPTION 'read uncommitted must fold into read committed';
    END IF;
    IF internal.normalize_transaction_isolation(NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'NULL must stay NULL';
    END IF;
    IF internal.normalize_transaction_isolation('chaos', false) IS NOT NULL THEN
        RAISE EXCEPTION 'unknown level without raise must give NULL';
    END IF;
    BEGIN
        PERFORM internal.normalize_transaction_isolation('chaos');
        RAISE EXCEPTION 'unknown level must raise' USING ERRCODE = 'P0001';
    EXCEPTION WHEN invalid_parameter_value THEN
        NULL;  -- expected
    END;
    IF internal.transaction_isolation_rank('serializable') IS DISTINCT FROM 3 THEN
        RAISE EXCEPTION 'serializable must rank 3';
    END IF;
    IF current_setting('transaction_isolation') IS DISTINCT FROM 'read committed' THEN
        RAISE EXCEPTION 'this test assumes the deploy runs at read committed, not %', current_setting('transaction_isolation');
    END IF;
    IF internal.transaction_isolation_shortfall('read committed') IS NOT NULL THEN
        RAISE EXCEPTION 'read committed satisfies read committed';
    END IF;
    IF internal.transaction_isolation_shortfall('serializable') IS NULL THEN
        RAISE EXCEPTION 'read committed must fall short of serializable';
    END IF;
    IF internal.transaction_isolation_shortfall(NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'no requirement means no shortfall';
    END IF;
END
$$;
