-- validate_api_key says why a key is refused.
DO $$
DECLARE
    alice uuid := (membership.get_user_by_email('alice@example.com')).object_id;
    org   uuid := membership.get_user_default_organization(alice);
    good  text := (SELECT plaintext FROM membership.issue_api_key(org, alice, 'good'));
    late  text := (SELECT plaintext FROM membership.issue_api_key(org, alice, 'future', now() + interval '1 day'));
    old   text := (SELECT plaintext FROM membership.issue_api_key(org, alice, 'old', now() - interval '1 day',
                                                                   now() - interval '1 second'));
    v     record;
BEGIN
    SELECT * INTO v FROM membership.validate_api_key(good);
    IF v.is_valid IS DISTINCT FROM true OR v.user_id IS DISTINCT FROM alice OR v.organization_id IS DISTINCT FROM org THEN
        RAISE EXCEPTION 'a fresh key must be valid for alice in her org: %', row_to_json(v);
    END IF;
    IF (SELECT last_used_at FROM membership.api_key WHERE key_id = v.key_id) IS NULL THEN
        RAISE EXCEPTION 'successful validation must record last_used_at';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key('garbage')) IS DISTINCT FROM 'malformed key' THEN
        RAISE EXCEPTION 'garbage must be malformed';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key('other_' || split_part(good, '_', 2) || '_' || split_part(good, '_', 3)))
       IS DISTINCT FROM 'malformed key' THEN
        RAISE EXCEPTION 'a foreign prefix must be malformed';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key('pgmi_000000000000_' || repeat('0', 64))) IS DISTINCT FROM 'unknown key' THEN
        RAISE EXCEPTION 'an unknown key id must be reported as such';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key(left(good, -1) || CASE WHEN right(good, 1) = '0' THEN '1' ELSE '0' END))
       IS DISTINCT FROM 'invalid secret' THEN
        RAISE EXCEPTION 'a wrong secret must be invalid secret';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key(late)) IS DISTINCT FROM 'key not yet active' THEN
        RAISE EXCEPTION 'future activation must be refused';
    END IF;
    IF (SELECT reason FROM membership.validate_api_key(old)) IS DISTINCT FROM 'key expired' THEN
        RAISE EXCEPTION 'an expired key must be refused';
    END IF;
    IF membership.eq_hash_safe('abc', 'abd') IS DISTINCT FROM false OR membership.eq_hash_safe('abc', 'abc') IS DISTINCT FROM true
       OR membership.eq_hash_safe(NULL, 'abc') IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'eq_hash_safe is wrong';
    END IF;
END
$$;
