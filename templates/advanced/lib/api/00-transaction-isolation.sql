/*
<pgmi-meta id="50f3850e-a699-4375-bfc0-fd5286c01f34" idempotent="true">
  <description>Transaction isolation policy: normalise, rank, shortfall, resolve</description>
  <sortKeys><key>004/000</key></sortKeys>
</pgmi-meta>
*/
-- A handler may declare an isolation floor ("this must run at least REPEATABLE READ") and
-- whether it is read-only. Isolation must be chosen before the transaction's first query,
-- so the gateway asks first (api.rest_route_policy, "resolve") and then opens the
-- transaction with the answer ("open"). The dispatcher checks again and refuses (428) a
-- transaction weaker than the floor: stronger is always accepted.

-- 'Repeatable-Read', 'REPEATABLE_READ' -> 'repeatable read'. READ UNCOMMITTED behaves as
-- READ COMMITTED in PostgreSQL, so it folds into it. NULL stays NULL ("no preference").
CREATE OR REPLACE FUNCTION internal.normalize_transaction_isolation(p_value text, p_raise boolean DEFAULT true)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text := regexp_replace(lower(trim(p_value)), '[\s_-]+', ' ', 'g');
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF v = 'read uncommitted' THEN
        RETURN 'read committed';
    END IF;
    IF v IN ('read committed', 'repeatable read', 'serializable') THEN
        RETURN v;
    END IF;
    IF coalesce(p_raise, true) THEN
        RAISE EXCEPTION 'unknown transaction isolation level: %', p_value
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use read committed, repeatable read or serializable';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION internal.transaction_isolation_rank(p_level text)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE internal.normalize_transaction_isolation(p_level, false)
               WHEN 'read committed' THEN 1 WHEN 'repeatable read' THEN 2 WHEN 'serializable' THEN 3
           END;
$$;

-- NULL when the current transaction satisfies p_required, else a sentence saying why not.
CREATE OR REPLACE FUNCTION internal.transaction_isolation_shortfall(p_required text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_required IS NULL THEN NULL
        WHEN internal.transaction_isolation_rank(current_setting('transaction_isolation'))
             >= internal.transaction_isolation_rank(p_required) THEN NULL
        ELSE format('requires %s isolation, transaction is %s',
                    internal.normalize_transaction_isolation(p_required), current_setting('transaction_isolation'))
    END;
$$;

CREATE OR REPLACE FUNCTION internal.transaction_is_read_only()
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT current_setting('transaction_read_only')::boolean;
$$;

-- The policy to open a transaction with: the stronger of the handler's floor and what the
-- caller asked for (NULL = the connection's default). DEFERRABLE only helps read-only
-- serializable transactions (they then never fail with a serialization error).
CREATE OR REPLACE FUNCTION internal.resolve_transaction_policy(p_floor text, p_read_only boolean, p_requested text)
RETURNS TABLE (transaction_isolation text, transaction_read_only boolean, transaction_deferrable boolean)
LANGUAGE sql IMMUTABLE AS $$
    WITH levels (floor_level, requested) AS (
        SELECT internal.normalize_transaction_isolation(p_floor), internal.normalize_transaction_isolation(p_requested)
    ), chosen (level) AS (
        SELECT CASE WHEN internal.transaction_isolation_rank(requested) > internal.transaction_isolation_rank(floor_level)
                         OR floor_level IS NULL
                    THEN requested ELSE floor_level END
          FROM levels
    )
    SELECT level, coalesce(p_read_only, false), level = 'serializable' AND coalesce(p_read_only, false)
      FROM chosen;
$$;
