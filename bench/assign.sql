-- pgbench script: per transaction, the SQL a worker runs for one assignment webhook
-- (src/db/integrations.rs, src/db/sync.rs): the token's integration, the locked
-- issue rows of sync-enabled organizations, the watermark, the linked groups, the
-- user match, the assignment upsert and its activity. Variables come from
-- examples/bench.rs (-D integration=… -D issues=… -D users=…).
\set n random(1, :issues)
\set u random(1, :users)
BEGIN;
SELECT id, metadata FROM integrations
 WHERE provider = 'jira_server' AND external_id = 'bench.jira.local:bench' AND status = 'active';
SELECT ei.id, ei.organization_id, ei.assignee_synced_at
  FROM external_issues ei
  JOIN organization_integrations oi
    ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
  JOIN organizations o ON o.id = ei.organization_id
 WHERE ei.integration_id = :integration AND ei.key = 'BENCH-' || :n
   AND oi.status = 'active' AND oi.config->>'sync_reverse_assignment' = 'true' AND o.status = 'active'
 ORDER BY ei.id FOR UPDATE OF ei;
UPDATE external_issues SET assignee_synced_at = GREATEST(COALESCE(assignee_synced_at, now()), now())
 WHERE integration_id = :integration AND key = 'BENCH-' || :n;
SELECT g.id, g.project_id FROM group_links gl
  JOIN groups g ON g.id = gl.group_id JOIN projects p ON p.id = g.project_id
  JOIN external_issues ei ON ei.id = gl.linked_id
 WHERE gl.linked_type = 'issue' AND ei.integration_id = :integration AND ei.key = 'BENCH-' || :n
   AND p.organization_id = ei.organization_id
   AND g.status NOT IN ('pending_deletion', 'deletion_in_progress');
SELECT u.id, ue.email FROM user_emails ue
  JOIN users u ON u.id = ue.user_id AND u.is_active
  JOIN organization_members om ON om.user_id = u.id
  JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
  JOIN teams t ON t.id = tm.team_id AND t.status = 'active' AND t.organization_id = om.organization_id
  JOIN project_teams pt ON pt.team_id = t.id
  JOIN groups g ON g.project_id = pt.project_id
  JOIN group_links gl ON gl.group_id = g.id AND gl.linked_type = 'issue'
  JOIN external_issues ei ON ei.id = gl.linked_id AND ei.key = 'BENCH-' || :n
 WHERE lower(ue.email) = lower('bench' || :u || '@example.org') AND ue.is_verified
 ORDER BY u.id, ue.id LIMIT 1;
INSERT INTO group_assignees (group_id, project_id, user_id, team_id)
SELECT g.id, g.project_id, (SELECT user_id FROM user_emails WHERE email = 'bench' || :u || '@example.org' LIMIT 1), NULL
  FROM groups g WHERE g.title = 'BENCH-' || :n
ON CONFLICT (group_id) DO UPDATE
   SET user_id = EXCLUDED.user_id, team_id = NULL, project_id = EXCLUDED.project_id, date_added = now()
 WHERE group_assignees.user_id IS DISTINCT FROM EXCLUDED.user_id OR group_assignees.team_id IS NOT NULL;
INSERT INTO activities (group_id, project_id, type, user_id, data)
SELECT g.id, g.project_id, 'assigned', NULL, jsonb_build_object('assignee', :u::text, 'integration', 'jira_server')
  FROM groups g WHERE g.title = 'BENCH-' || :n;
COMMIT;
