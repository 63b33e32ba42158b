/*
<pgmi-meta id="4d3e61e2-81d4-4484-a9f6-f45f8c3a7e81" idempotent="true">
  <description>API keys: generation, hashed storage, validation, lifecycle</description>
  <sortKeys><key>005/000/004</key></sortKeys>
</pgmi-meta>
*/
-- Key format: <prefix>_<key id: 12 hex>_<secret: 64 hex>, e.g. pgmi_1f2e3d4c5b6a_9c8b...
-- The key id is a lookup handle (safe to log); the secret makes it unguessable. Only
-- sha256(full key) is stored, so a database dump does not leak usable keys.

CREATE OR REPLACE FUNCTION membership.api_key_prefix()
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pgmi.api_key_prefix', true), ''), 'pgmi');
$$;

-- Compares every character even after a mismatch, so timing does not reveal how many
-- leading characters of a hash were right.
CREATE OR REPLACE FUNCTION membership.eq_hash_safe(a text, b text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT a IS NOT NULL AND b IS NOT NULL AND length(a) = length(b)
           AND (SELECT coalesce(sum(CASE WHEN substr(a, i, 1) = substr(b, i, 1) THEN 0 ELSE 1 END), 0) = 0
                  FROM generate_series(1, greatest(length(a), length(b))) AS i);
$$;

CREATE OR REPLACE FUNCTION membership.hash_api_key(p_raw_key text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(p_raw_key, 'UTF8')), 'hex');
$$;

CREATE OR REPLACE FUNCTION membership.generate_api_key_material()
RETURNS TABLE (key_id text, full_key text, key_hash text) LANGUAGE sql VOLATILE AS $$
    -- gen_random_uuid() (core, a cryptographically strong source) rather than pgcrypto,
    -- which builds without OpenSSL lack. A version-4 UUID has 122 random bits; its first
    -- 12 hex digits are all random (the version digit is the 13th). The secret joins two:
    -- 64 hex digits carrying 244 random bits.
    WITH m AS (SELECT left(replace(gen_random_uuid()::text, '-', ''), 12) AS kid,
                      replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '') AS secret)
    SELECT kid, membership.api_key_prefix() || '_' || kid || '_' || secret,
           membership.hash_api_key(membership.api_key_prefix() || '_' || kid || '_' || secret)
      FROM m;
$$;

CREATE OR REPLACE FUNCTION membership.can_create_api_key(p_user_id uuid, p_organization_id uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(membership.get_member_role(p_user_id, p_organization_id) IN ('admin', 'contributor'), false);
$$;

-- Issues a key in an organization for one of its members and hands back the plaintext,
-- the only time it exists outside the caller: the table keeps its hash. The key also
-- becomes a sign-in identity ('apikey|<key id>') of its holder.
-- Refusals: unknown or inactive organization P0404, a member without the right P0403
-- (the REST layer maps them to 404 / 403). p_valid_from defaults to now.
CREATE OR REPLACE FUNCTION membership.issue_api_key(p_organization_id uuid, p_holder_id uuid, p_label text,
                                                    p_valid_from timestamptz DEFAULT NULL,
                                                    p_valid_until timestamptz DEFAULT NULL)
RETURNS TABLE (plaintext text, key_id text, api_key_id uuid) LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM membership.organization AS o WHERE o.object_id = p_organization_id AND o.is_active) THEN
        RAISE EXCEPTION 'Organization not found' USING ERRCODE = 'P0404';
    END IF;
    IF NOT membership.can_create_api_key(p_holder_id, p_organization_id) THEN
        RAISE EXCEPTION 'Not allowed to create API keys in this organization' USING ERRCODE = 'P0403';
    END IF;
    -- One statement stores the key and its identity; the material is generated once (a
    -- CTE calling a volatile function is evaluated a single time).
    RETURN QUERY
    WITH material AS (
        SELECT * FROM membership.generate_api_key_material()
    ), stored AS (
        INSERT INTO membership.api_key AS k (organization_id, user_id, key_id, key_hash, display_name,
                                             activated_at, expires_at)
        SELECT p_organization_id, p_holder_id, material.key_id, material.key_hash, p_label,
               coalesce(p_valid_from, now()), p_valid_until
          FROM material
        RETURNING k.object_id, k.key_id
    ), identity AS (
        INSERT INTO membership.user_identity (user_object_id, idp_provider, idp_subject_id)
        SELECT p_holder_id, 'apikey', stored.key_id FROM stored
    )
    SELECT material.full_key, stored.key_id, stored.object_id::uuid FROM material, stored;
END
$$;

-- One row telling whether the key may be used, and if not, why.
CREATE OR REPLACE FUNCTION membership.validate_api_key(p_raw_key text)
RETURNS TABLE (is_valid boolean, user_id uuid, organization_id uuid, key_id text, reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parts text[] := regexp_match(p_raw_key, '^(.+)_([0-9a-f]{12})_([0-9a-f]{64})$');
    k     membership.api_key;
    why   text;
BEGIN
    IF parts IS NULL OR parts[1] IS DISTINCT FROM membership.api_key_prefix() THEN
        RETURN QUERY SELECT false, NULL::uuid, NULL::uuid, NULL::text, 'malformed key';
        RETURN;
    END IF;
    SELECT * INTO k FROM membership.api_key AS a WHERE a.key_id = parts[2];
    why := CASE
        WHEN k.object_id IS NULL THEN 'unknown key'
        WHEN NOT membership.eq_hash_safe(k.key_hash, membership.hash_api_key(p_raw_key)) THEN 'invalid secret'
        WHEN k.status = 'disabled' THEN 'key is disabled'
        WHEN k.status = 'revoked' THEN 'key is revoked'
        WHEN k.activated_at > now() THEN 'key not yet active'
        WHEN k.expires_at <= now() THEN 'key expired'
        WHEN NOT (SELECT is_active FROM membership."user" WHERE object_id = k.user_id) THEN 'user is inactive'
        WHEN NOT (SELECT is_active FROM membership.organization WHERE object_id = k.organization_id)
            THEN 'organization is inactive'
    END;
    IF why IS NULL AND NOT current_setting('transaction_read_only')::boolean THEN
        UPDATE membership.api_key SET last_used_at = now() WHERE object_id = k.object_id;
    END IF;
    RETURN QUERY SELECT why IS NULL, CASE WHEN why IS NULL THEN k.user_id END,
                        CASE WHEN why IS NULL THEN k.organization_id END, parts[2], why;
END
$$;

-- The key's own user or an admin of its organization.
CREATE OR REPLACE FUNCTION membership.can_manage_api_key(p_key_id text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM membership.api_key AS k
                    WHERE k.key_id = p_key_id
                      AND (k.user_id = api.current_user_id()
                           OR membership.get_member_role(api.current_user_id(), k.organization_id) = 'admin'));
$$;

CREATE OR REPLACE FUNCTION membership.set_api_key_status(p_key_id text, p_status membership.api_key_status)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT membership.can_manage_api_key(p_key_id) THEN
        RAISE EXCEPTION 'API key not found' USING ERRCODE = 'P0404';
    END IF;
    IF EXISTS (SELECT 1 FROM membership.api_key WHERE key_id = p_key_id AND status = 'revoked') THEN
        RAISE EXCEPTION 'a revoked key cannot change status' USING ERRCODE = 'P0409';
    END IF;
    UPDATE membership.api_key SET status = p_status WHERE key_id = p_key_id;
    IF p_status = 'revoked' THEN   -- the identity goes too: nothing can sign in with it again
        DELETE FROM membership.user_identity WHERE idp_provider = 'apikey' AND idp_subject_id = p_key_id;
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION membership.disable_api_key(p_key_id text) RETURNS boolean LANGUAGE sql AS $$
    SELECT membership.set_api_key_status(p_key_id, 'disabled');
$$;
CREATE OR REPLACE FUNCTION membership.enable_api_key(p_key_id text) RETURNS boolean LANGUAGE sql AS $$
    SELECT membership.set_api_key_status(p_key_id, 'active');
$$;
CREATE OR REPLACE FUNCTION membership.revoke_api_key(p_key_id text) RETURNS boolean LANGUAGE sql AS $$
    SELECT membership.set_api_key_status(p_key_id, 'revoked');
$$;
