-- database_settings.sql -- what `pgmi deploy --overwrite` must carry over when it drops
-- and recreates the target database (encoding, locale, owner, limits, settings, comment).
--
-- Run on the maintenance database with :database = the target's name. One row, or none
-- when the database does not exist. Encoding/collation/ctype are compared with template1:
-- only a database that differs is recreated from template0 with explicit ENCODING/LC_*,
-- so a database that matches template1 keeps the site's additions made to template1.
-- `settings` holds the database-wide GUCs (ALTER DATABASE ... SET), i.e. the rows of
-- pg_db_role_setting that belong to no particular role (setrole = 0).
-- The locale provider (PostgreSQL 15+: libc/icu, 17+: builtin) and its locale are read
-- through to_jsonb(row) so the same text runs on servers where those columns do not
-- exist (they read as NULL there). The column order is dbadmin.SETTINGS_COLUMNS.
SELECT pg_encoding_to_char(d.encoding)                        AS encoding,
       d.datcollate                                            AS collate,
       d.datctype                                              AS ctype,
       pg_get_userbyid(d.datdba)                               AS owner,
       d.datconnlimit                                          AS connection_limit,
       COALESCE((SELECT s.setconfig
                   FROM pg_db_role_setting AS s
                  WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'::text[]) AS settings,
       shobj_description(d.oid, 'pg_database')                 AS comment,
       to_jsonb(d) ->> 'datlocprovider'                        AS locale_provider,
       COALESCE(to_jsonb(d) ->> 'datlocale',
                to_jsonb(d) ->> 'daticulocale')                AS provider_locale,
       (d.encoding <> t.encoding
        OR d.datcollate <> t.datcollate
        OR d.datctype <> t.datctype
        OR (to_jsonb(d) ->> 'datlocprovider') IS DISTINCT FROM (to_jsonb(t) ->> 'datlocprovider')
        OR COALESCE(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale')
           IS DISTINCT FROM COALESCE(to_jsonb(t) ->> 'datlocale', to_jsonb(t) ->> 'daticulocale')
       )                                                       AS differs_from_template1
  FROM pg_database AS d
 CROSS JOIN pg_database AS t
 WHERE d.datname = :database
   AND t.datname = 'template1';
