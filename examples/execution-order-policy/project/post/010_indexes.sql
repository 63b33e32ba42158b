/*
<pgmi-meta id="7daf11b3-fc35-4858-bfc7-dd8bc9a48173" idempotent="true">
  <description>Index and foreign key on prices, added once the data is loaded.</description>
  <sortKeys>
    <key>300/010</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE INDEX IF NOT EXISTS price_sku_ix ON catalog.price (sku);

DO $$
BEGIN
    -- Add the key without scanning the table, then validate it (a no-op once validated).
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'price_sku_fk' AND conrelid = 'catalog.price'::regclass) THEN
        ALTER TABLE catalog.price
            ADD CONSTRAINT price_sku_fk FOREIGN KEY (sku) REFERENCES catalog.product (sku) NOT VALID;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conname = 'price_sku_fk' AND conrelid = 'catalog.price'::regclass AND NOT convalidated) THEN
        ALTER TABLE catalog.price VALIDATE CONSTRAINT price_sku_fk;
    END IF;
END
$$;
