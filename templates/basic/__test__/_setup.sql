-- Fixture: runs before every test in this directory and is rolled back after each one.
INSERT INTO "user" (email, name) VALUES
    ('alice@example.com', 'Alice'),
    ('bob@example.com', 'Bob'),
    ('charlie@example.com', 'Charlie');
