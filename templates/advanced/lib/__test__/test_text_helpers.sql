DO $$
BEGIN
    IF common.is_regexp('^/a/([^/]+)$') IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'a valid regex must be recognised';
    END IF;
    IF common.is_regexp('(unclosed') IS DISTINCT FROM false THEN
        RAISE EXCEPTION 'an invalid regex must be rejected';
    END IF;
    IF common.semantic_fingerprint(E'SELECT  1\n') IS DISTINCT FROM common.semantic_fingerprint('select 1') THEN
        RAISE EXCEPTION 'layout and case must not change the fingerprint';
    END IF;
    IF common.semantic_fingerprint('select 1') IS NOT DISTINCT FROM common.semantic_fingerprint('select 2') THEN
        RAISE EXCEPTION 'different text must change the fingerprint';
    END IF;
END
$$;
