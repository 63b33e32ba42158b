-- An invitation grants nothing until it is accepted.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    bob   uuid := (membership.get_user_by_email('bob@example.com')).object_id;
    org   uuid := membership.get_user_default_organization(alice);
BEGIN
    PERFORM membership.invite_member(org, bob, 'contributor');
    IF membership.has_organization_access(bob, org) IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'a pending invitation must not grant access';
    END IF;
    IF membership.accept_invitation(org, bob) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'accepting a pending invitation must succeed';
    END IF;
    IF membership.accept_invitation(org, bob) IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'accepting twice must report false';
    END IF;
    IF membership.get_member_role(bob, org) IS DISTINCT FROM 'contributor' THEN
        RAISE EXCEPTION 'bob must now be a contributor';
    END IF;
    UPDATE membership.organization SET is_active = false WHERE object_id = org;
    IF membership.has_organization_access(bob, org) IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'an inactive organization grants no access';
    END IF;
END
$$;
