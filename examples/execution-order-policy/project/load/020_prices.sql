/*
<pgmi-meta id="180ceb67-f49f-4128-868b-8f8c1ff62cb7" idempotent="true">
  <description>Upsert the prices valid from 2026-07-01 (needs the products of 200/010).</description>
  <sortKeys>
    <key>200/020</key>
  </sortKeys>
</pgmi-meta>
*/
INSERT INTO catalog.price (sku, valid_from, amount_cents) VALUES
    ('ESP-1001', DATE '2026-07-01', 49900),
    ('GRD-2001', DATE '2026-07-01', 15900),
    ('KTL-3001', DATE '2026-07-01',  6900),
    ('FLT-4001', DATE '2026-07-01',   599),
    ('MUG-5001', DATE '2026-07-01',  1450)
ON CONFLICT (sku, valid_from) DO UPDATE SET amount_cents = EXCLUDED.amount_cents;
