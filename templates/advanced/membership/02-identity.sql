/*
<pgmi-meta id="a7f00500-0000-4000-8000-000000000002" idempotent="true">
  <description>Who is calling: identity from auth.idp_subject, membership lookups, JIT user provisioning</description>
  <sortKeys><key>005/000/002</key></sortKeys>
</pgmi-meta>
*/
-- The gateway authenticates the caller (JWT, session, API key) and states the result in
-- one transaction-local setting: SET LOCAL auth.idp_subject = '<provider>|<subject>'.
-- Everything below derives from it. The lookups are SECURITY DEFINER so that row-level
-- security policies can call them without granting the tables themselves.

CREATE OR REPLACE FUNCTION api.current_idp_subject()
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('auth.idp_subject', true), '');
$$;

CREATE OR REPLACE FUNCTION api.parse_idp_provider(p_subject text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN strpos(p_subject, '|') > 1 THEN split_part(p_subject, '|', 1) END;
$$;

CREATE OR REPLACE FUNCTION api.parse_idp_subject_id(p_subject text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN strpos(p_subject, '|') > 1 THEN nullif(substr(p_subject, strpos(p_subject, '|') + 1), '') END;
$$;

-- The active user behind the current identity; NULL when anonymous or unknown. An API-key
-- identity counts only while its key is active and unexpired.
CREATE OR REPLACE FUNCTION api.current_user_id()
RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.object_id
      FROM membership.user_identity AS i
      JOIN membership."user" AS u ON u.object_id = i.user_object_id
     WHERE i.idp_provider = api.parse_idp_provider(api.current_idp_subject())
       AND i.idp_subject_id = api.parse_idp_subject_id(api.current_idp_subject())
       AND u.is_active
       AND (i.idp_provider <> 'apikey' OR EXISTS (
               SELECT 1 FROM membership.api_key AS k
                WHERE k.key_id = i.idp_subject_id AND k.status = 'active' AND k.activated_at <= now()
                  AND (k.expires_at IS NULL OR k.expires_at > now())));
$$;

CREATE OR REPLACE FUNCTION api.is_authenticated()
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT api.current_user_id() IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION api.current_user_is_admin()
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM membership.user_role
                    WHERE user_object_id = api.current_user_id() AND role_name = 'superuser');
$$;

-- The organization an API key belongs to; NULL for other identities.
CREATE OR REPLACE FUNCTION api.current_api_key_org_id()
RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT organization_id FROM membership.api_key
     WHERE api.parse_idp_provider(api.current_idp_subject()) = 'apikey'
       AND key_id = api.parse_idp_subject_id(api.current_idp_subject());
$$;

-- Organizations the caller may see: active memberships in active organizations. A session
-- authenticated by an API key is confined to the key's organization.
CREATE OR REPLACE FUNCTION api.current_member_org_ids()
RETURNS uuid[] LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(m.organization_id ORDER BY m.organization_id), '{}')
      FROM membership.organization_member AS m
      JOIN membership.organization AS o ON o.object_id = m.organization_id
     WHERE m.user_id = api.current_user_id() AND m.status = 'active' AND o.is_active
       AND (api.current_api_key_org_id() IS NULL OR m.organization_id = api.current_api_key_org_id());
$$;

CREATE OR REPLACE FUNCTION membership.get_user_by_email(p_email text)
RETURNS membership."user" LANGUAGE sql STABLE AS $$
    SELECT * FROM membership."user" WHERE email = lower(trim(p_email));
$$;

CREATE OR REPLACE FUNCTION membership.get_member_role(p_user_id uuid, p_org_id uuid)
RETURNS membership.member_role LANGUAGE sql STABLE AS $$
    SELECT m.role FROM membership.organization_member AS m
      JOIN membership.organization AS o ON o.object_id = m.organization_id
     WHERE m.user_id = p_user_id AND m.organization_id = p_org_id AND m.status = 'active' AND o.is_active;
$$;

CREATE OR REPLACE FUNCTION membership.has_organization_access(p_user_id uuid, p_org_id uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT membership.get_member_role(p_user_id, p_org_id) IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION membership.is_organization_owner(p_user_id uuid, p_org_id uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM membership.organization WHERE object_id = p_org_id AND owner_user_id = p_user_id);
$$;

-- The user's personal organization (created at first sign-in).
CREATE OR REPLACE FUNCTION membership.get_user_default_organization(p_user_id uuid)
RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT object_id FROM membership.organization WHERE owner_user_id = p_user_id AND is_personal;
$$;

-- Just-in-time provisioning, called by the gateway after a successful sign-in:
--   known identity          -> that user (display name refreshed when given);
--   unknown identity, known e-mail -> the identity is linked to the existing user;
--   both unknown            -> new user with a personal organization it administers.
CREATE OR REPLACE FUNCTION membership.upsert_user(p_provider text, p_subject_id text, p_email text,
                                                  p_display_name text DEFAULT NULL, p_email_verified boolean DEFAULT false)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_user uuid;
    v_org  uuid;
BEGIN
    SELECT user_object_id INTO v_user FROM membership.user_identity
     WHERE idp_provider = p_provider AND idp_subject_id = p_subject_id;
    IF v_user IS NOT NULL THEN
        UPDATE membership."user"
           SET display_name = coalesce(p_display_name, display_name),
               email_verified = email_verified OR p_email_verified, updated_at = now()
         WHERE object_id = v_user;
        RETURN v_user;
    END IF;

    SELECT object_id INTO v_user FROM membership."user" WHERE email = lower(trim(p_email));
    IF v_user IS NULL THEN
        INSERT INTO membership."user" (email, display_name, email_verified)
        VALUES (lower(trim(p_email)), p_display_name, p_email_verified)
        RETURNING object_id INTO v_user;
        INSERT INTO membership.organization (name, slug, owner_user_id, is_personal)
        VALUES ('Personal', 'personal-' || v_user, v_user, true)
        RETURNING object_id INTO v_org;
        INSERT INTO membership.organization_member (organization_id, user_id, role, status, joined_at)
        VALUES (v_org, v_user, 'admin', 'active', now());
    END IF;
    INSERT INTO membership.user_identity (user_object_id, idp_provider, idp_subject_id)
    VALUES (v_user, p_provider, p_subject_id);
    RETURN v_user;
END
$$;

-- Invitations: pending until accepted; only active members count for access.
CREATE OR REPLACE FUNCTION membership.invite_member(p_org_id uuid, p_user_id uuid,
                                                    p_role membership.member_role DEFAULT 'reader')
RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO membership.organization_member (organization_id, user_id, role, status)
    VALUES (p_org_id, p_user_id, p_role, 'pending')
    ON CONFLICT (organization_id, user_id) DO UPDATE SET role = EXCLUDED.role, status = 'pending', joined_at = NULL
    RETURNING object_id;
$$;

CREATE OR REPLACE FUNCTION membership.accept_invitation(p_org_id uuid, p_user_id uuid)
RETURNS boolean LANGUAGE sql AS $$
    WITH accepted AS (
        UPDATE membership.organization_member SET status = 'active', joined_at = now()
         WHERE organization_id = p_org_id AND user_id = p_user_id AND status = 'pending'
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM accepted);
$$;
