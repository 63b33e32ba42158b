-- Fixture for the membership tests: Alice signs in with Google, Bob with GitHub. Each
-- gets a personal organization at first sign-in.
SELECT membership.upsert_user('google', 'alice-sub', 'alice@example.com', 'Alice', true);
SELECT membership.upsert_user('github', 'bob-sub', 'bob@example.com', 'Bob');
