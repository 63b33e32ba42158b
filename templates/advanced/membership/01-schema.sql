/*
<pgmi-meta id="e67b5a5e-3c67-4ac6-8baf-5990ef2984f8" idempotent="true">
  <description>Membership tables: users, identities, organizations, members, roles, API keys</description>
  <sortKeys><key>005/000/001</key></sortKeys>
</pgmi-meta>
*/
-- Tables whose object_id is a core.entity_id also get created_at / deleted_at from the
-- entity standards after all scripts ran (deploy.sql); they are not spelled out here.

DO $$
BEGIN
    IF to_regtype('membership.member_role') IS NULL THEN
        CREATE TYPE membership.member_role AS ENUM ('reader', 'contributor', 'admin');
    END IF;
    IF to_regtype('membership.invitation_status') IS NULL THEN
        CREATE TYPE membership.invitation_status AS ENUM ('pending', 'active', 'declined', 'removed');
    END IF;
    IF to_regtype('membership.api_key_status') IS NULL THEN
        CREATE TYPE membership.api_key_status AS ENUM ('active', 'disabled', 'revoked');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS membership."user" (
    object_id      core.entity_id PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name   text,
    email_verified boolean NOT NULL DEFAULT false,
    is_active      boolean NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One user, many ways to sign in: ('google', '1234'), ('github', 'octocat'), ('apikey', '<key id>').
CREATE TABLE IF NOT EXISTS membership.user_identity (
    object_id      core.entity_id PRIMARY KEY,
    user_object_id uuid NOT NULL REFERENCES membership."user" ON DELETE CASCADE,
    idp_provider   text NOT NULL CHECK (idp_provider ~ '^[a-z0-9_.-]+$'),
    idp_subject_id text NOT NULL CHECK (idp_subject_id <> ''),
    UNIQUE (idp_provider, idp_subject_id)
);

-- System-wide roles (not PostgreSQL roles): 'superuser' unlocks the admin endpoints.
CREATE TABLE IF NOT EXISTS membership.role (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT ''
);
INSERT INTO membership.role (name, description)
VALUES ('superuser', 'Full access to the administrative endpoints')
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description
WHERE membership.role.description IS DISTINCT FROM EXCLUDED.description;

CREATE TABLE IF NOT EXISTS membership.user_role (
    user_object_id uuid NOT NULL REFERENCES membership."user" ON DELETE CASCADE,
    role_name      text NOT NULL REFERENCES membership.role,
    PRIMARY KEY (user_object_id, role_name)
);

CREATE TABLE IF NOT EXISTS membership.organization (
    object_id     core.entity_id PRIMARY KEY,
    name          text NOT NULL CHECK (btrim(name) <> ''),
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    owner_user_id uuid NOT NULL REFERENCES membership."user",
    is_personal   boolean NOT NULL DEFAULT false,
    is_active     boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS membership.organization_member (
    object_id       core.entity_id PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES membership.organization ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES membership."user" ON DELETE CASCADE,
    role            membership.member_role NOT NULL DEFAULT 'reader',
    status          membership.invitation_status NOT NULL DEFAULT 'pending',
    invited_at      timestamptz NOT NULL DEFAULT now(),
    joined_at       timestamptz,
    UNIQUE (organization_id, user_id)
);

-- API keys: only the SHA-256 of the full key is stored. The key itself is shown once, at
-- creation, and cannot be recovered from the database.
CREATE TABLE IF NOT EXISTS membership.api_key (
    object_id       core.entity_id PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES membership.organization ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES membership."user" ON DELETE CASCADE,
    key_id          text NOT NULL UNIQUE CHECK (length(key_id) >= 6),
    key_hash        text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    display_name    text NOT NULL CHECK (btrim(display_name) <> ''),
    status          membership.api_key_status NOT NULL DEFAULT 'active',
    activated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    last_used_at    timestamptz
);
