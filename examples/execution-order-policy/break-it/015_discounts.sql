/*
<pgmi-meta id="d8c91c17-bd82-4ef1-90cf-7b5f3d8f8bad" idempotent="true">
  <description>Break-it: a new position (200/015) nobody added to the reviewed manifest.</description>
  <sortKeys>
    <key>200/015</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS catalog.discount (sku text PRIMARY KEY, percent integer NOT NULL);
