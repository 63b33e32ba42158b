-- The table, and 100 000 demo rows the first time (so the index builds take a moment).
CREATE TABLE IF NOT EXISTS orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO orders (customer_id, amount, created_at)
SELECT 1 + (g % 5000), round((g % 997)::numeric * 1.25, 2), now() - (g % 4000) * interval '1 day'
  FROM generate_series(1, 100000) AS g
 WHERE NOT EXISTS (SELECT 1 FROM orders);
