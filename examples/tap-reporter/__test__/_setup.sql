-- Two known items for every test; rolled back afterwards.
SELECT upsert_item('widget', 10);
SELECT upsert_item('gadget', 5);
