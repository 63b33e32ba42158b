/*
<pgmi-meta id="9f143f00-c316-49b1-a9ea-79e9312a70d8" idempotent="true">
  <description>Row-level security and grants on the membership tables</description>
  <sortKeys><key>005/000/003</key></sortKeys>
</pgmi-meta>
*/
-- The api and customer roles read membership tables directly, and RLS decides which rows
-- they see: their own user, identities and keys; the organizations they belong to. The
-- owner (and admin, a member of owner) is not subject to these policies.
-- Policies are dropped and re-created so that editing one here takes effect on redeploy.

DO $$
DECLARE
    api_role      text := (SELECT value FROM internal.setting WHERE key = 'api_role');
    customer_role text := (SELECT value FROM internal.setting WHERE key = 'customer_role');
    admin_role    text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
    p             record;
BEGIN
    FOR p IN SELECT * FROM (VALUES
        ('membership."user"',                'user_see_self',           'FOR SELECT USING (object_id = (SELECT api.current_user_id()))'),
        ('membership.user_identity',         'identity_own_only',       'FOR SELECT USING (user_object_id = (SELECT api.current_user_id()))'),
        ('membership.role',                  'role_public_read',        'FOR SELECT USING (true)'),
        ('membership.user_role',             'user_role_own_only',      'FOR SELECT USING (user_object_id = (SELECT api.current_user_id()))'),
        ('membership.organization',          'org_member_access',       'FOR SELECT USING (object_id = ANY ((SELECT api.current_member_org_ids())::uuid[]))'),
        ('membership.organization_member',   'org_member_see_own_org',  'FOR SELECT USING (organization_id = ANY ((SELECT api.current_member_org_ids())::uuid[]))'),
        ('membership.api_key',               'api_key_customer_select', 'FOR SELECT USING (user_id = (SELECT api.current_user_id()))')
    ) AS t(tbl, policy, rule) LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p.tbl);
        IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = p.tbl::regclass AND polname = p.policy) THEN
            EXECUTE format('DROP POLICY %I ON %s', p.policy, p.tbl);
        END IF;
        EXECUTE format('CREATE POLICY %I ON %s %s', p.policy, p.tbl, p.rule);
        IF p.tbl <> 'membership.api_key' THEN
            EXECUTE format('GRANT SELECT ON %s TO %I, %I', p.tbl, api_role, customer_role);
        END IF;
        EXECUTE format('GRANT ALL ON %s TO %I', p.tbl, admin_role);
    END LOOP;
    -- Never the hash: the key columns a holder may see about their own keys.
    EXECUTE format('GRANT SELECT (object_id, organization_id, user_id, key_id, display_name, status, activated_at, '
                   'expires_at, last_used_at) ON membership.api_key TO %I, %I', api_role, customer_role);
END
$$;
