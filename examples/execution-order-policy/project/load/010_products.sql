/*
<pgmi-meta id="391599cc-0cb7-407d-af7b-d17099b51046" idempotent="true">
  <description>Upsert the five catalog products.</description>
  <sortKeys>
    <key>200/010</key>
  </sortKeys>
</pgmi-meta>
*/
INSERT INTO catalog.product (sku, name) VALUES
    ('ESP-1001', 'Espresso machine'),
    ('GRD-2001', 'Burr grinder'),
    ('KTL-3001', 'Gooseneck kettle'),
    ('FLT-4001', 'Paper filters (100)'),
    ('MUG-5001', 'Stoneware mug')
ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name;
