/*
<pgmi-meta id="58c91962-e859-48ea-9f14-c6b11a83adea" idempotent="true">
  <description>Admin API: stats views (exchanges, queue, membership), claims of the caller, /admin/stats and /admin/queue</description>
  <sortKeys><key>005/000/010</key></sortKeys>
</pgmi-meta>
*/
-- Operators need numbers: how often is each handler called and how often does it fail,
-- what is waiting in the queue, how many users and keys exist. The views below answer
-- that. They are readable by the admin role only (operators connecting with psql or a
-- dashboard); the REST routes at the end serve the same data to signed-in system
-- administrators through the gateway. Sort key 005/000/010: after membership/, whose
-- tables the membership view reads.

-- Per handler: calls, failures (REST/RPC: status >= 400; MCP: an error or isError) and the
-- last call. Handlers never called show with zero calls.
CREATE OR REPLACE VIEW api.vw_exchange_stats AS
WITH calls AS (
    SELECT handler_object_id, (response).status_code >= 400 AS failed, enqueued_at FROM api.rest_exchange
    UNION ALL
    SELECT handler_object_id, (response).status_code >= 400, enqueued_at FROM api.rpc_exchange
    UNION ALL
    SELECT handler_object_id, response ? 'error' OR coalesce((response -> 'result' ->> 'isError')::boolean, false),
           enqueued_at
      FROM api.mcp_exchange
)
SELECT h.object_id AS handler_object_id, h.handler_type::text AS handler_type, h.name, h.public_name,
       count(c.handler_object_id) AS calls,
       count(c.handler_object_id) FILTER (WHERE c.failed) AS failures,
       max(c.enqueued_at) AS last_call_at
  FROM api.handler AS h
  LEFT JOIN calls AS c ON c.handler_object_id = h.object_id
 WHERE h.deleted_at IS NULL
 GROUP BY h.object_id, h.handler_type, h.name, h.public_name;

-- Per topic and status: how many, the oldest, the most attempts.
CREATE OR REPLACE VIEW api.vw_queue_stats AS
SELECT topic, status, count(*) AS messages, min(enqueued_at) AS oldest_enqueued_at, max(attempts) AS max_attempts_used
  FROM api.inbound_message
 GROUP BY topic, status;

CREATE OR REPLACE VIEW api.vw_membership_stats AS
SELECT (SELECT count(*) FROM membership."user") AS users,
       (SELECT count(*) FROM membership."user" WHERE is_active) AS active_users,
       (SELECT count(*) FROM membership.organization WHERE is_active) AS active_organizations,
       (SELECT count(*) FROM membership.organization_member WHERE status = 'active') AS active_memberships,
       (SELECT count(*) FROM membership.organization_member WHERE status = 'pending') AS pending_invitations,
       (SELECT count(*) FROM membership.api_key WHERE status = 'active') AS active_api_keys;

-- The caller as a set of claims, for handlers and gateways that want one document rather
-- than several calls: who, which organizations with which role, administrator or not.
-- Anonymous callers get {"authenticated": false}.
CREATE OR REPLACE FUNCTION api.current_claims()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN me IS NULL THEN jsonb_build_object('authenticated', false)
           ELSE jsonb_build_object(
               'authenticated', true,
               'sub', api.current_idp_subject(),
               'userId', me,
               'email', (SELECT u.email FROM membership."user" AS u WHERE u.object_id = me),
               'admin', api.current_user_is_admin(),
               'organizations', coalesce((
                   SELECT jsonb_agg(jsonb_build_object('id', o.object_id, 'slug', o.slug, 'role', m.role)
                                    ORDER BY o.slug)
                     FROM membership.organization_member AS m
                     JOIN membership.organization AS o ON o.object_id = m.organization_id
                    WHERE m.user_id = me AND m.organization_id = ANY (api.current_member_org_ids())), '[]'))
           END
      FROM (SELECT api.current_user_id() AS me) AS caller;
$$;

-- The data behind the admin routes. SECURITY DEFINER (the views are not granted to the
-- gateway role), so it checks the caller itself: system administrators only (P0403).
CREATE OR REPLACE FUNCTION internal.admin_report(p_section text, p_limit int DEFAULT 50, p_offset int DEFAULT 0)
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT coalesce(api.current_user_is_admin(), false) THEN
        RAISE EXCEPTION 'administrators only' USING ERRCODE = 'P0403';
    END IF;
    IF p_section = 'stats' THEN
        RETURN jsonb_build_object(
            'handlers', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.calls DESC, s.name), '[]')
                           FROM api.vw_exchange_stats AS s),
            'membership', (SELECT to_jsonb(m) FROM api.vw_membership_stats AS m));
    ELSIF p_section = 'queue' THEN
        RETURN jsonb_build_object(
            'topics', (SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.topic, q.status), '[]') FROM api.vw_queue_stats AS q),
            'deadLetters', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'topic', d.topic,
                                                                         'attempts', d.attempts, 'lastError', d.last_error,
                                                                         'finishedAt', d.finished_at) ORDER BY d.id), '[]')
                              FROM (SELECT * FROM api.inbound_message WHERE status = 'dead'
                                     ORDER BY id LIMIT p_limit OFFSET p_offset) AS d));
    END IF;
    RAISE EXCEPTION 'unknown report section %', p_section USING ERRCODE = 'P0404';
END
$$;

SELECT api.create_or_replace_rest_handler($spec$
{"id": "8652bc19-2203-4224-851a-02c52e12db87", "name": "admin_stats", "method": "GET", "route": "/admin/stats",
 "description": "Calls and failures per handler, membership counts (system administrators)", "readOnly": true}
$spec$::jsonb, $body$
BEGIN
    IF NOT api.current_user_is_admin() THEN
        RETURN api.problem(403, 'Forbidden', 'administrators only');
    END IF;
    RETURN api.json_response(200, internal.admin_report('stats'));
END
$body$);

SELECT api.create_or_replace_rest_handler($spec$
{"id": "02a91d09-f35d-42dd-8027-75bf6016d433", "name": "admin_queue", "method": "GET", "route": "/admin/queue",
 "description": "Queue depth per topic and the dead letters, ?limit=&offset= (system administrators)",
 "readOnly": true}
$spec$::jsonb, $body$
DECLARE
    page record := api.page((request).url, 50, 500);
BEGIN
    IF NOT api.current_user_is_admin() THEN
        RETURN api.problem(403, 'Forbidden', 'administrators only');
    END IF;
    RETURN api.json_response(200, internal.admin_report('queue', page.page_limit, page.page_offset));
END
$body$);

DO $$
DECLARE
    admin_role text := (SELECT value FROM internal.setting WHERE key = 'admin_role');
BEGIN
    EXECUTE format('GRANT SELECT ON api.vw_exchange_stats, api.vw_queue_stats, api.vw_membership_stats TO %I',
                   admin_role);
END
$$;
