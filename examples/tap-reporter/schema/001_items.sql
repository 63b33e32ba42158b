-- Stock items and an upsert helper. Re-runnable.
CREATE TABLE IF NOT EXISTS item (
    id   serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    qty  integer NOT NULL DEFAULT 0 CHECK (qty >= 0)
);

CREATE OR REPLACE FUNCTION upsert_item(p_name text, p_qty integer DEFAULT 0) RETURNS item
LANGUAGE sql AS $$
    INSERT INTO item (name, qty) VALUES (p_name, p_qty)
    ON CONFLICT (name) DO UPDATE SET qty = excluded.qty
    RETURNING *;
$$;
