/*
<pgmi-meta id="09a9b0f3-0c47-4efe-9771-19f26f64ec36" idempotent="true">
  <description>Catalog schema: products and their dated prices (constraints come later, in post/).</description>
  <sortKeys>
    <key>100/010</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE SCHEMA IF NOT EXISTS catalog;

CREATE TABLE IF NOT EXISTS catalog.product (
    sku  text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE IF NOT EXISTS catalog.price (
    sku          text    NOT NULL,
    valid_from   date    NOT NULL,
    amount_cents integer NOT NULL,
    PRIMARY KEY (sku, valid_from)
);
