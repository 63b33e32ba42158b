/*
<pgmi-meta id="38a9c6cb-9b37-4260-a2c2-77caaf5cf814" idempotent="true">
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

-- Who the session speaks for: the user linked to the current identity, if that user is
-- active. Identities of the 'apikey' provider name a key; such an identity is honoured
-- only while the key itself may be used (active status, inside its validity window).
-- NULL means anonymous, whatever the reason.
CREATE OR REPLACE FUNCTION api.current_user_id()
RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH caller AS (
        SELECT api.parse_idp_provider(subject) AS provider, api.parse_idp_subject_id(subject) AS handle
          FROM api.current_idp_subject() AS subject
    ), linked AS (
        SELECT ident.user_object_id, caller.provider, caller.handle
          FROM caller
          JOIN membership.user_identity AS ident
            ON (ident.idp_provider, ident.idp_subject_id) = (caller.provider, caller.handle)
    )
    SELECT linked.user_object_id
      FROM linked
     WHERE (SELECT person.is_active FROM membership."user" AS person WHERE person.object_id = linked.user_object_id)
       AND CASE WHEN linked.provider = 'apikey'
                THEN EXISTS (SELECT 1 FROM membership.api_key AS usable
                              WHERE usable.key_id = linked.handle AND usable.status = 'active'
                                AND now() >= usable.activated_at
                                AND now() < coalesce(usable.expires_at, 'infinity'))
                ELSE true END;
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

-- Just-in-time provisioning after a successful sign-in. Three cases, tried in order:
--   1. the identity is known: refresh that user's display name / verified flag;
--   2. the e-mail is known: link the new identity to that user (account linking);
--   3. neither: a new user, with a personal organization it administers.
-- Returns the user's id.
CREATE OR REPLACE FUNCTION membership.upsert_user(p_provider text, p_subject_id text, p_email text,
                                                  p_display_name text DEFAULT NULL, p_email_verified boolean DEFAULT false)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    address text := lower(trim(p_email));
    person  uuid;
BEGIN
    UPDATE membership."user" AS u
       SET display_name = coalesce(p_display_name, u.display_name),
           email_verified = u.email_verified OR p_email_verified,
           updated_at = now()
      FROM membership.user_identity AS known
     WHERE known.user_object_id = u.object_id
       AND known.idp_provider = p_provider AND known.idp_subject_id = p_subject_id
    RETURNING u.object_id INTO person;
    IF FOUND THEN
        RETURN person;                                              -- case 1
    END IF;

    person := (SELECT u.object_id FROM membership."user" AS u WHERE u.email = address);
    IF person IS NULL THEN                                          -- case 3
        WITH fresh AS (
            INSERT INTO membership."user" (email, display_name, email_verified)
            VALUES (address, p_display_name, p_email_verified)
            RETURNING object_id
        ), home AS (
            INSERT INTO membership.organization (name, slug, owner_user_id, is_personal)
            SELECT 'Personal', 'personal-' || fresh.object_id, fresh.object_id, true FROM fresh
            RETURNING object_id, owner_user_id
        )
        INSERT INTO membership.organization_member (organization_id, user_id, role, status, joined_at)
        SELECT home.object_id, home.owner_user_id, 'admin', 'active', now() FROM home
        RETURNING user_id INTO person;
    END IF;

    INSERT INTO membership.user_identity (user_object_id, idp_provider, idp_subject_id)
    VALUES (person, p_provider, p_subject_id);                      -- cases 2 and 3
    RETURN person;
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
