/*
<pgmi-meta id="c5de5064-c746-442f-b2c3-c8cd36547e53" idempotent="true">
  <description>common.try_cast: convert text or fall back to a default instead of raising</description>
  <sortKeys><key>001/000</key></sortKeys>
</pgmi-meta>
*/
-- Request input (query strings, JSON fields) is text; handlers need typed values without
-- a 500 for every typo. try_cast returns the default when the text does not convert.
-- One overload per type; the default value's type picks the overload.

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value uuid)
RETURNS uuid LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::uuid;            -- also accepts the 32-hex-digit form without dashes
EXCEPTION WHEN invalid_text_representation THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value boolean)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::boolean;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value integer)
RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::integer;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value bigint)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::bigint;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value numeric)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::numeric;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$  -- STABLE: depends on TimeZone
BEGIN
    RETURN input::timestamptz;
EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.try_cast(input text, default_value interval)
RETURNS interval LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN input::interval;
EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
          OR interval_field_overflow THEN
    RETURN default_value;
END
$$;

CREATE OR REPLACE FUNCTION common.uuid_is_nil(value uuid)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT value = '00000000-0000-0000-0000-000000000000'::uuid;
$$;
