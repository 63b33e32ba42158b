/*
<pgmi-meta id="1b8d6645-02ea-4eee-b9fc-b1a9c14ebdf1" idempotent="true">
  <description>Read-only smoke check, run twice: right after the schema and again at the very end.</description>
  <sortKeys>
    <key>150/000</key>
    <key>400/000</key>
  </sortKeys>
</pgmi-meta>
*/
DO $$
DECLARE
    n_products bigint;
    n_prices   bigint;
    n_bad      bigint;
    n_orphans  bigint;
BEGIN
    IF to_regclass('catalog.product') IS NULL OR to_regclass('catalog.price') IS NULL THEN
        RAISE EXCEPTION 'smoke: the catalog tables are missing';
    END IF;
    SELECT count(*) INTO n_products FROM catalog.product;
    SELECT count(*) INTO n_prices FROM catalog.price;
    SELECT count(*) INTO n_bad FROM catalog.price WHERE amount_cents <= 0;
    IF n_bad > 0 THEN
        RAISE EXCEPTION 'smoke: % price(s) are zero or negative', n_bad;
    END IF;
    SELECT count(*) INTO n_orphans
      FROM catalog.price AS pr
     WHERE NOT EXISTS (SELECT 1 FROM catalog.product AS p WHERE p.sku = pr.sku);
    IF n_orphans > 0 THEN
        RAISE EXCEPTION 'smoke: % price(s) refer to no product', n_orphans;
    END IF;
    RAISE NOTICE 'smoke: ok (% products, % prices)', n_products, n_prices;
END
$$;
