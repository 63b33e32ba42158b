-- Adding a column with a constant default is instant (no table rewrite) since PostgreSQL 11.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'pending';

-- NOT VALID: new rows are checked at once, existing rows later (phase 4 of deploy.sql),
-- without holding a blocking lock while the whole table is scanned.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_amount_nonneg' AND conrelid = 'orders'::regclass) THEN
        ALTER TABLE orders ADD CONSTRAINT orders_amount_nonneg CHECK (amount >= 0) NOT VALID;
    END IF;
END
$$;
