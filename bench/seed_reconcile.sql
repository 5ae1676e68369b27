-- The data of the reconciliation rows (8) ({prefix} REC) and (14) ({prefix} CLD) of
-- examples/bench/ and of the outbound rows (10)-(11) ({prefix} OUT), after
-- bench/seed.sql: {issues} more issues {prefix}-<N> of one of the benchmark's
-- integrations ({external_id}: the Data Center one, or the Jira Cloud one main.rs
-- adds), each linked to its own group of the benchmark's project, none assigned yet.
-- The integration's base URL becomes the benchmark's fake Jira ({base_url}) and its
-- credentials {auth_method}: a personal access token ({token}) for Data Center, an
-- API token ({token}) of the account {email} for Cloud. Plaintext: the benchmark runs
-- without JIRASYNC_SECRET_KEY. bench/unseed_reconcile.sql takes it all away again.
UPDATE integrations SET metadata = metadata || jsonb_build_object('base_url', '{base_url}')
 WHERE external_id = '{external_id}';
INSERT INTO integration_credentials (integration_id, consumer_key, private_key, access_token, auth_method, client_id)
  SELECT id, '', '', '{token}', '{auth_method}', NULLIF('{email}', '')
    FROM integrations WHERE external_id = '{external_id}';
INSERT INTO external_issues (organization_id, integration_id, key)
  SELECT o.id, i.id, '{prefix}-' || n
    FROM organizations o, integrations i, generate_series(1, {issues}) n
   WHERE o.slug = 'bench' AND i.external_id = '{external_id}';
INSERT INTO groups (project_id, title)
  SELECT p.id, '{prefix}-' || n
    FROM projects p JOIN organizations o ON o.id = p.organization_id, generate_series(1, {issues}) n
   WHERE o.slug = 'bench';
INSERT INTO group_links (group_id, project_id, linked_type, linked_id)
  SELECT g.id, g.project_id, 'issue', ei.id
    FROM groups g JOIN external_issues ei ON ei.key = g.title
   WHERE g.title LIKE '{prefix}-%';
ANALYZE;
