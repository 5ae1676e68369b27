-- pgbench script, run with `pgbench -M prepared` (the worker prepares each statement
-- once per connection): per transaction, exactly the statements a worker runs for
-- one assignment webhook applied alone, in its order, with its parameters — in one
-- transaction the set-based statements of a batch (src/db/batch.rs) with arrays of
-- one: the version of the integration's row the worker kept checked
-- (src/integration/store.rs; the row itself is read once per integration every
-- 30 s, not per webhook); the issue rows locked; the linked groups, their
-- assignees locked, the writes of pushes and the user, sent together; then the
-- watermark, the upsert (naming the integration its origin, so the capture of
-- migrations/V7__outbound.sql records it) and the activity when the assignee
-- changed, and the audit row (src/sync/audit/store.rs). A batch of 32 runs the
-- same statements once, with arrays of 32. tests/bench_script.rs checks every
-- statement against those constants and runs the script. Data: bench/seed.sql.
-- Variables: -D issues=N -D users=N -D integration_id=N (the id of the
-- integration bench.jira.local:bench).
\set n random(1, :issues)
\set u random(1, :users)
\set ga_user_id 0
-- The webhook's values (not a worker statement: the worker has them from the payload).
SELECT 'BENCH-' || :n::int AS key, 'bench' || :u::int || '@example.org' AS email, now() AS at \gset
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT id, xmin::text::bigint FROM integrations
  WHERE id = ANY(ARRAY[:integration_id]::bigint[]) AND status = 'active' \gset version_
SELECT ei.integration_id, ei.key, ei.id, ei.organization_id,
        ei.assignee_synced_at, ei.status_synced_at,
        COALESCE(oi.config->>'sync_reverse_assignment' = 'true', false) AS syncs_assignee,
        COALESCE(oi.config->>'sync_status_reverse' = 'true', false) AS syncs_status
   FROM unnest(ARRAY[:integration_id]::bigint[], ARRAY[:key]::text[]) AS want(integration_id, key)
   JOIN external_issues ei ON ei.integration_id = want.integration_id AND ei.key = want.key
   JOIN organization_integrations oi
     ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
   JOIN organizations o ON o.id = ei.organization_id
  WHERE oi.status = 'active' AND o.status = 'active'
  ORDER BY ei.integration_id, ei.id
    FOR UPDATE OF ei \gset ei_
SELECT issue.id AS issue_id, g.id, g.project_id, p.slug
   FROM unnest(ARRAY[:ei_id]::bigint[], ARRAY[:ei_organization_id]::bigint[]) AS issue(id, organization_id)
   JOIN group_links gl ON gl.linked_type = 'issue' AND gl.linked_id = issue.id
   JOIN groups g ON g.id = gl.group_id
   JOIN projects p ON p.id = g.project_id AND p.organization_id = issue.organization_id
  WHERE g.status NOT IN ('pending_deletion', 'deletion_in_progress')
  ORDER BY issue.id, g.id \gset g_
SELECT ga.group_id, ga.user_id, ga.team_id
   FROM group_assignees ga
  WHERE ga.group_id IN (SELECT gl.group_id FROM group_links gl
                         WHERE gl.linked_type = 'issue' AND gl.linked_id = ANY(ARRAY[:ei_id]::bigint[]))
  ORDER BY ga.group_id
    FOR UPDATE OF ga \aset ga_
SELECT external_issue_id, kind, value, written_at, jira_updated,
        written_at > now() - interval '10 minutes' FROM outbound_writes WHERE external_issue_id = ANY(ARRAY[:ei_id]::bigint[]) \aset push_
SELECT DISTINCT ON (g.project_id, want.email)
        g.project_id, want.email AS wanted, u.id, ue.email, u.username, t.slug
   FROM unnest(ARRAY[:ei_id]::bigint[], ARRAY[:email]::text[]) AS want(issue_id, email)
   JOIN group_links gl ON gl.linked_type = 'issue' AND gl.linked_id = want.issue_id
   JOIN groups g ON g.id = gl.group_id
   JOIN user_emails ue ON lower(ue.email) = lower(want.email) AND ue.is_verified
   JOIN users u ON u.id = ue.user_id AND u.is_active
   JOIN organization_members om ON om.user_id = u.id
   JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
   JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
               AND t.organization_id = om.organization_id
   JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = g.project_id
  ORDER BY g.project_id, want.email, u.id, ue.id, t.id \gset u_
UPDATE external_issues ei
    SET assignee_synced_at = COALESCE(w.assignee_at, ei.assignee_synced_at),
        status_synced_at = COALESCE(w.status_at, ei.status_synced_at)
   FROM unnest(ARRAY[:ei_id]::bigint[], ARRAY[GREATEST(COALESCE(NULLIF(:ei_assignee_synced_at, '')::timestamptz, :at), :at)]::timestamptz[], ARRAY[NULL]::timestamptz[])
     AS w(id, assignee_at, status_at)
  WHERE ei.id = w.id;
-- The worker writes the assignee and its activity only when the group's assignee differs.
\if :ga_user_id != :u_id
INSERT INTO group_assignees (group_id, project_id, user_id, team_id)
 SELECT a.group_id, a.project_id, a.user_id, NULL
   FROM unnest(ARRAY[:g_id]::bigint[], ARRAY[:g_project_id]::bigint[], ARRAY[:u_id]::bigint[]) AS a(group_id, project_id, user_id), (SELECT set_config('jirasync.origin', :integration_id::bigint::text, true) AS origin) tagged
  WHERE tagged.origin IS NOT NULL
 ON CONFLICT (group_id) DO UPDATE
    SET user_id = EXCLUDED.user_id, team_id = NULL,
        project_id = EXCLUDED.project_id, date_added = now()
  WHERE group_assignees.user_id IS DISTINCT FROM EXCLUDED.user_id
     OR group_assignees.team_id IS NOT NULL;
INSERT INTO activities (group_id, project_id, type, user_id, data)
 SELECT a.group_id, a.project_id, a.type, NULL, a.data
   FROM unnest(ARRAY[:g_id]::bigint[], ARRAY[:g_project_id]::bigint[], ARRAY['assigned']::text[], ARRAY[jsonb_build_object('assignee', :u_id::text, 'assigneeEmail', :u_email::text, 'assigneeType', 'user', 'integration', 'jira_server', 'integration_id', :integration_id::bigint)]::jsonb[])
   WITH ORDINALITY AS a(group_id, project_id, type, data, n)
  ORDER BY a.n;
\endif
INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 VALUES ('bench', :integration_id, :key, :at, 'assignee', :ei_organization_id, 'assigned', jsonb_build_object('email', :email::text, 'jira_user', 'u', 'groups', jsonb_build_array(jsonb_build_object('group_id', :g_id::bigint, 'project', :g_slug::text, 'result', 'assigned', 'via', 'email', 'user', jsonb_build_object('id', :u_id::bigint, 'username', :u_username::text, 'email', :u_email::text, 'team', :u_slug::text)))));
COMMIT;
