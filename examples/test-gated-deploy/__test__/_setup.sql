-- Fixture for every test in this directory (and below): three known users.
-- Rolled back after the directory's tests, like everything the tests do.
SELECT upsert_user('alice@example.com', 'Alice');
SELECT upsert_user('bob@example.com', 'Bob');
SELECT upsert_user('charlie@example.com', 'Charlie');
