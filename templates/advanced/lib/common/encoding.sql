/*
<pgmi-meta id="c1faf131-b654-41a5-8e5e-37735e50cc8a" idempotent="true">
  <description>common encoding helpers: percent-encoding (URLs) and base64url</description>
  <sortKeys><key>001/001</key></sortKeys>
</pgmi-meta>
*/
-- Requests arrive as text: query strings and path segments are percent-encoded, tokens
-- and cursors are often base64url. These helpers are pure and work on UTF-8.

-- '%41%20b' -> 'A b'. With p_form (query strings of HTML forms) '+' is a space too.
-- A byte sequence that is not UTF-8 raises 22021 (character_not_in_repertoire).
CREATE OR REPLACE FUNCTION common.url_decode(p_text text, p_form boolean DEFAULT false)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_from(coalesce(string_agg(
               CASE WHEN m[1] IS NOT NULL THEN decode(substr(m[1], 2), 'hex') ELSE convert_to(m[2], 'UTF8') END,
               ''::bytea ORDER BY ord), ''::bytea), 'UTF8')
      FROM regexp_matches(CASE WHEN p_form THEN replace(p_text, '+', ' ') ELSE p_text END,
                          '(%[0-9A-Fa-f]{2})|([^%]+|%)', 'g') WITH ORDINALITY AS t(m, ord)
    HAVING p_text IS NOT NULL;
$$;

-- Everything but the unreserved characters of RFC 3986 (A-Z a-z 0-9 - . _ ~) becomes
-- %XX, one per UTF-8 byte: 'a b/é' -> 'a%20b%2F%C3%A9'.
CREATE OR REPLACE FUNCTION common.url_encode(p_text text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(CASE WHEN ch ~ '^[A-Za-z0-9._~-]$' THEN ch
                                    ELSE upper(regexp_replace(encode(convert_to(ch, 'UTF8'), 'hex'), '(..)', '%\1', 'g'))
                               END, '' ORDER BY ord), '')
      FROM regexp_split_to_table(p_text, '') WITH ORDINALITY AS t(ch, ord)
    HAVING p_text IS NOT NULL;
$$;

-- base64url (RFC 4648 section 5) without padding, as JWTs and URL-safe tokens use it.
CREATE OR REPLACE FUNCTION common.base64url_encode(p_data bytea)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT translate(encode(p_data, 'base64'), E'+/=\n', '-_');
$$;

-- Accepts the text with or without padding.
CREATE OR REPLACE FUNCTION common.base64url_decode(p_text text)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT decode(rpad(translate(p_text, '-_', '+/'), (length(p_text) + 3) / 4 * 4, '='), 'base64');
$$;
