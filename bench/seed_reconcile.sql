-- The data of the reconciliation row (8) of examples/bench/ ({prefix} REC) and of
-- the outbound rows (10)-(11) ({prefix} OUT), after bench/seed.sql: {issues} more
-- issues {prefix}-<N> of the benchmark's integration, each linked to its own group
-- of the benchmark's project, none assigned yet. The integration's base URL becomes
-- the benchmark's fake Jira ({base_url}) and it authenticates with a personal access
-- token ({token}; plaintext: the benchmark runs without JIRASYNC_SECRET_KEY).
-- bench/unseed_reconcile.sql takes it all away again.
UPDATE integrations SET metadata = metadata || jsonb_build_object('base_url', '{base_url}')
 WHERE external_id = 'bench.jira.local:bench';
INSERT INTO integration_credentials (integration_id, consumer_key, private_key, access_token, auth_method)
  SELECT id, '', '', '{token}', 'pat' FROM integrations WHERE external_id = 'bench.jira.local:bench';
INSERT INTO external_issues (organization_id, integration_id, key)
  SELECT o.id, i.id, '{prefix}-' || n
    FROM organizations o, integrations i, generate_series(1, {issues}) n
   WHERE o.slug = 'bench' AND i.external_id = 'bench.jira.local:bench';
INSERT INTO groups (project_id, title)
  SELECT p.id, '{prefix}-' || n
    FROM projects p JOIN organizations o ON o.id = p.organization_id, generate_series(1, {issues}) n
   WHERE o.slug = 'bench';
INSERT INTO group_links (group_id, project_id, linked_type, linked_id)
  SELECT g.id, g.project_id, 'issue', ei.id
    FROM groups g JOIN external_issues ei ON ei.key = g.title
   WHERE g.title LIKE '{prefix}-%';
ANALYZE;
