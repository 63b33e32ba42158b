/*
<pgmi-meta id="33bfdbea-0c32-4696-91e6-b58bd101a71f" idempotent="true">
  <description>HTTP helpers: content negotiation, query / pagination / path-template parameters, WWW-Authenticate</description>
  <sortKeys><key>004/008</key></sortKeys>
</pgmi-meta>
*/
-- Handlers receive the raw request (method, url, headers, body). These helpers read the
-- parts HTTP gives meaning to, so every handler reads them the same way.

-- How much a client wants a media type, from its Accept header: the q of the most
-- specific range that matches (exact type 3, type/* 2, */* 1), or no row when none does.
-- No Accept header at all means "anything" (q 1).
CREATE OR REPLACE FUNCTION internal.accept_quality(p_accept text, p_media_type text,
                                                   OUT quality numeric, OUT specificity int)
RETURNS SETOF record LANGUAGE sql IMMUTABLE AS $$
    WITH ranges AS (
        SELECT lower(trim(split_part(r, ';', 1))) AS media_range,
               coalesce(common.try_cast(substring(r from ';\s*[qQ]\s*=\s*([0-9.]+)'), NULL::numeric), 1) AS q
          FROM regexp_split_to_table(p_accept, ',') AS r
    ), wanted AS (
        SELECT lower(trim(split_part(p_media_type, ';', 1))) AS media
    ), matched AS (
        SELECT q, CASE WHEN media_range = media THEN 3
                       WHEN media_range = split_part(media, '/', 1) || '/*' THEN 2
                       WHEN media_range = '*/*' THEN 1 END AS rank
          FROM ranges, wanted
    )
    SELECT 1::numeric, 0 WHERE coalesce(trim(p_accept), '') = ''
    UNION ALL
    (SELECT q, rank FROM matched WHERE rank IS NOT NULL AND coalesce(trim(p_accept), '') <> ''
      ORDER BY rank DESC, q ASC LIMIT 1);
$$;

-- Does the Accept header admit this type? q=0 is an explicit refusal.
CREATE OR REPLACE FUNCTION api.accept_matches(p_accept text, p_media_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((SELECT quality > 0 FROM internal.accept_quality(p_accept, p_media_type)), false);
$$;

-- The offered type the client prefers: highest q, then the more specific match, then the
-- order of p_offered (put your default first). NULL: nothing acceptable, answer 406.
CREATE OR REPLACE FUNCTION api.negotiate(p_accept text, p_offered text[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT offered
      FROM unnest(p_offered) WITH ORDINALITY AS o(offered, ord),
           LATERAL internal.accept_quality(p_accept, offered) AS a
     WHERE a.quality > 0
     ORDER BY a.quality DESC, a.specificity DESC, ord
     LIMIT 1;
$$;

-- The query string as jsonb: '/x?tag=a&tag=b&q=hello+world' -> {"q": "hello world",
-- "tag": ["a", "b"]}. Keys and values are decoded; a key without '=' has the value "".
CREATE OR REPLACE FUNCTION api.query_params(p_url text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    WITH query AS (
        SELECT CASE WHEN strpos(base, '?') > 0 THEN substr(base, strpos(base, '?') + 1) END AS text
          FROM (SELECT split_part(p_url, '#', 1) AS base) AS b
    ), pairs AS (
        SELECT common.url_decode(split_part(pair, '=', 1), true) AS key,
               common.url_decode(CASE WHEN strpos(pair, '=') > 0 THEN substr(pair, strpos(pair, '=') + 1) ELSE '' END,
                                 true) AS value,
               ord
          FROM query, regexp_split_to_table(query.text, '&') WITH ORDINALITY AS t(pair, ord)
         WHERE pair <> ''
    ), grouped AS (
        SELECT key, array_agg(value ORDER BY ord) AS vals FROM pairs GROUP BY key
    )
    SELECT coalesce(jsonb_object_agg(key, CASE WHEN cardinality(vals) = 1 THEN to_jsonb(vals[1]) ELSE to_jsonb(vals) END),
                    '{}')
      FROM grouped;
$$;

-- One query parameter (the first, when repeated), or p_default.
CREATE OR REPLACE FUNCTION api.query_param(p_url text, p_name text, p_default text DEFAULT NULL)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(CASE jsonb_typeof(v) WHEN 'array' THEN v ->> 0 ELSE v #>> '{}' END, p_default)
      FROM (SELECT api.query_params(p_url) -> p_name AS v) AS t;
$$;

-- ?limit=&offset= paging, never trusting the client: a limit outside 1..p_max_limit is
-- clamped into it, a bad or negative number falls back to the default / 0.
CREATE OR REPLACE FUNCTION api.page(p_url text, p_default_limit int DEFAULT 50, p_max_limit int DEFAULT 200,
                                    OUT page_limit int, OUT page_offset int)
LANGUAGE sql IMMUTABLE AS $$
    SELECT least(greatest(common.try_cast(api.query_param(p_url, 'limit'), p_default_limit), 1), p_max_limit),
           greatest(common.try_cast(api.query_param(p_url, 'offset'), 0), 0);
$$;

-- The {placeholders} of a route template in a path, decoded: ('/orgs/{org}/keys/{key}',
-- '/orgs/acme/keys/k%201') -> {"org": "acme", "key": "k 1"}. NULL when the path does not
-- match; {} for a template without placeholders that matches.
CREATE OR REPLACE FUNCTION api.match_path_template(p_template text, p_path text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN m IS NULL THEN NULL
                ELSE coalesce((SELECT jsonb_object_agg(name, common.url_decode(value))
                                 FROM unnest(p.params, m) AS t(name, value)
                                WHERE name IS NOT NULL), '{}') END   -- no groups: m is the whole match
      FROM internal.route_pattern(p_template) AS p,
           LATERAL (SELECT regexp_match(split_part(p_path, '?', 1), p.regex) AS m) AS matched;
$$;

-- The inside of an HTTP quoted-string: backslash and double quote escaped, control
-- characters (which could split a header) dropped.
CREATE OR REPLACE FUNCTION internal.http_quoted(p_text text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(replace(replace(p_text, '\', '\\'), '"', '\"'), '[[:cntrl:]]', '', 'g');
$$;

-- A WWW-Authenticate value for a 401 (RFC 6750): `Bearer realm="app"` when no credentials
-- came, plus error="invalid_token" and a description when they were refused.
CREATE OR REPLACE FUNCTION api.www_authenticate(p_realm text, p_error text DEFAULT NULL, p_description text DEFAULT NULL)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'Bearer ' || concat_ws(', ',
        format('realm="%s"', internal.http_quoted(p_realm)),
        CASE WHEN p_error IS NOT NULL THEN format('error="%s"', internal.http_quoted(p_error)) END,
        CASE WHEN p_description IS NOT NULL THEN format('error_description="%s"', internal.http_quoted(p_description)) END);
$$;

-- The realm the REST dispatcher names in its 401 answers.
CREATE OR REPLACE FUNCTION api.auth_realm()
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('api.auth_realm', true), ''), current_database());
$$;
