-- common.try_cast converts or falls back to the default, never raises.
DO $$
BEGIN
    IF common.try_cast('42', 0) IS DISTINCT FROM 42 THEN
        RAISE EXCEPTION 'integer 42 must convert';
    END IF;
    IF common.try_cast('forty-two', -1) IS DISTINCT FROM -1 THEN
        RAISE EXCEPTION 'non-number must fall back to the default';
    END IF;
    IF common.try_cast('99999999999', 0) IS DISTINCT FROM 0 THEN
        RAISE EXCEPTION 'integer overflow must fall back to the default';
    END IF;
    IF common.try_cast('a0eebc999c0b4ef8bb6d6bb9bd380a11', NULL::uuid)
       IS DISTINCT FROM 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid THEN
        RAISE EXCEPTION 'uuid without dashes must convert';
    END IF;
    IF common.try_cast('not-a-uuid', NULL::uuid) IS NOT NULL THEN
        RAISE EXCEPTION 'bad uuid must give the NULL default';
    END IF;
    IF common.try_cast('yes', false) IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'yes must be true';
    END IF;
    IF common.try_cast('1.5', 0::numeric) IS DISTINCT FROM 1.5 THEN
        RAISE EXCEPTION 'numeric 1.5 must convert';
    END IF;
    IF common.try_cast('2 hours', '0'::interval) IS DISTINCT FROM '2 hours'::interval THEN
        RAISE EXCEPTION 'interval must convert';
    END IF;
    IF common.try_cast('someday', 'epoch'::timestamptz) IS DISTINCT FROM 'epoch'::timestamptz THEN
        RAISE EXCEPTION 'bad timestamp must fall back';
    END IF;
    IF common.uuid_is_nil('00000000-0000-0000-0000-000000000000') IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'nil uuid not recognised';
    END IF;
END
$$;
