-- Fixture for the API tests: Alice owns "Acme Corp", Bob is an active member, Carol is a
-- system administrator (membership role 'superuser').
DO $$
DECLARE
    alice uuid := membership.upsert_user('google', 'alice-sub', 'alice@example.com', 'Alice');
    bob   uuid := membership.upsert_user('github', 'bob-sub', 'bob@example.com', 'Bob');
    carol uuid := membership.upsert_user('google', 'carol-sub', 'carol@example.com', 'Carol');
    acme  uuid;
BEGIN
    INSERT INTO membership.organization (name, slug, owner_user_id) VALUES ('Acme Corp', 'acme', alice)
    RETURNING object_id INTO acme;
    INSERT INTO membership.organization_member (organization_id, user_id, role, status, joined_at)
    VALUES (acme, alice, 'admin', 'active', now()), (acme, bob, 'reader', 'active', now());
    INSERT INTO membership.user_role (user_object_id, role_name) VALUES (carol, 'superuser');
END
$$;
