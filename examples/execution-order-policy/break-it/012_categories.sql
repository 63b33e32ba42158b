/*
<pgmi-meta id="b4112878-1e3c-400b-8a3a-2ce82856188d" idempotent="true">
  <description>Break-it: claims position 200/010, already taken by load/010_products.sql.</description>
  <sortKeys>
    <key>200/010</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS catalog.category (code text PRIMARY KEY, label text NOT NULL);
INSERT INTO catalog.category (code, label) VALUES ('brew', 'Brewing'), ('cups', 'Cups')
ON CONFLICT (code) DO NOTHING;
