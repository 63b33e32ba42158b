/*
<pgmi-meta id="a8166ba8-15a1-47e3-a9fe-2dd7189187ba" idempotent="true">
  <description>common text helpers: regex validity, semantic fingerprint</description>
  <sortKeys><key>001/000</key></sortKeys>
</pgmi-meta>
*/

-- True when the text compiles as a PostgreSQL regular expression (routes are stored as regexes).
CREATE OR REPLACE FUNCTION common.is_regexp(pattern text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM '' ~ pattern;
    RETURN pattern IS NOT NULL;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN false;
END
$$;

-- A hash that ignores case, surrounding and repeated whitespace: two handler bodies that
-- differ only in layout have the same fingerprint (used to detect real definition drift).
CREATE OR REPLACE FUNCTION common.semantic_fingerprint(body text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(lower(trim(regexp_replace(body, '\s+', ' ', 'g'))), 'UTF8')), 'hex');
$$;
