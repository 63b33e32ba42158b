DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_name = 'orders' AND column_name = 'status' AND is_nullable = 'NO') THEN
        RAISE EXCEPTION 'orders.status must exist and be NOT NULL';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_amount_nonneg') THEN
        RAISE EXCEPTION 'constraint orders_amount_nonneg must exist';
    END IF;
    IF (SELECT count(*) FROM orders) IS DISTINCT FROM 100000::bigint THEN
        RAISE EXCEPTION 'orders must hold the 100000 demo rows';
    END IF;
END
$$;
