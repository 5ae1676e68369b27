-- pgbench script, run with `pgbench -M prepared` (the worker prepares each statement
-- once per connection): per transaction, exactly the statements a worker runs for
-- one assignment webhook, in its order, with its parameters — the integration of the
-- token (src/integration/store.rs), then in one transaction the issue rows locked, the
-- watermark moved, the linked groups, the user, the upsert (naming the integration
-- its origin, so the capture of migrations/V7__outbound.sql records it) and, when it changed
-- something, the activity (src/db/sync.rs), and the audit row (src/sync/audit/store.rs).
-- tests/bench_script.rs checks every
-- statement against those constants and runs the script. Data: bench/seed.sql.
-- Variables: -D issues=N -D users=N -D external_id=bench.jira.local:bench.
\set n random(1, :issues)
\set u random(1, :users)
\set ga_id 0
-- The webhook's values (not a worker statement: the worker has them from the payload).
SELECT 'BENCH-' || :n::int AS key, 'bench' || :u::int || '@example.org' AS email, now() AS at \gset
SELECT id, metadata FROM integrations
  WHERE provider = 'jira_server' AND external_id = :external_id AND status = 'active' \gset integration_
BEGIN;
SELECT ei.id, ei.organization_id, ei.assignee_synced_at
   FROM external_issues ei
   JOIN organization_integrations oi
     ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
   JOIN organizations o ON o.id = ei.organization_id
  WHERE ei.integration_id = :integration_id
    AND oi.status = 'active' AND oi.config->>'sync_reverse_assignment' = 'true' AND o.status = 'active'
    AND ei.key = :key
  ORDER BY ei.id
    FOR UPDATE OF ei \gset ei_
UPDATE external_issues
    SET assignee_synced_at = GREATEST(COALESCE(assignee_synced_at, :at), :at)
  WHERE id = :ei_id;
SELECT g.id, g.project_id, p.slug
   FROM group_links gl
   JOIN groups g ON g.id = gl.group_id
   JOIN projects p ON p.id = g.project_id
  WHERE gl.linked_type = 'issue'
    AND gl.linked_id = :ei_id
    AND p.organization_id = :ei_organization_id
    AND g.status NOT IN ('pending_deletion', 'deletion_in_progress')
  ORDER BY g.id \gset g_
SELECT u.id, ue.email, u.username, t.slug
   FROM user_emails ue
   JOIN users u ON u.id = ue.user_id AND u.is_active
   JOIN organization_members om ON om.user_id = u.id
   JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
   JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
               AND t.organization_id = om.organization_id
   JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = :g_project_id
  WHERE lower(ue.email) = lower(:email)
    AND ue.is_verified
  ORDER BY u.id, ue.id, t.id
  LIMIT 1 \gset u_
INSERT INTO group_assignees (group_id, project_id, user_id, team_id)
 SELECT :g_id, :g_project_id, :u_id, NULL
   FROM (SELECT set_config('jirasync.origin', :integration_id::bigint::text, true) AS origin) tagged
  WHERE tagged.origin IS NOT NULL
 ON CONFLICT (group_id) DO UPDATE
    SET user_id = EXCLUDED.user_id, team_id = NULL,
        project_id = EXCLUDED.project_id, date_added = now()
  WHERE group_assignees.user_id IS DISTINCT FROM EXCLUDED.user_id
     OR group_assignees.team_id IS NOT NULL
 RETURNING id \aset ga_
\if :ga_id > 0
INSERT INTO activities (group_id, project_id, type, user_id, data)
 VALUES (:g_id, :g_project_id, 'assigned', NULL, jsonb_build_object('assignee', :u_id::text, 'assigneeEmail', :u_email::text, 'assigneeType', 'user', 'integration', 'jira_server', 'integration_id', :integration_id::bigint));
\endif
INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 VALUES ('bench', :integration_id, :key, :at, 'assignee', :ei_organization_id, 'assigned', jsonb_build_object('email', :email::text, 'jira_user', 'u', 'groups', jsonb_build_array(jsonb_build_object('group_id', :g_id::bigint, 'project', :g_slug::text, 'result', 'assigned', 'via', 'email', 'user', jsonb_build_object('id', :u_id::bigint, 'username', :u_username::text, 'email', :u_email::text, 'team', :u_slug::text)))));
COMMIT;
