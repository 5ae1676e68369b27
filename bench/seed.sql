-- The benchmark's data (examples/bench/, tests/bench_script.rs): one Jira Server
-- integration, one organization with sync on, a project and a team, {users} members
-- with verified emails bench<N>@example.org, and {issues} issues BENCH-<N>, each
-- linked to its own group. {secret} is the integration's webhook secret.
INSERT INTO integrations (provider, external_id, name, metadata)
  VALUES ('jira_server', 'bench.jira.local:bench', 'Bench',
          jsonb_build_object('base_url', 'http://bench.jira.local', 'webhook_secret', '{secret}'));
INSERT INTO organizations (slug, name) VALUES ('bench', 'Bench');
INSERT INTO projects (organization_id, slug, name) SELECT id, 'p', 'P' FROM organizations;
INSERT INTO teams (organization_id, slug, name) SELECT id, 't', 'T' FROM organizations;
INSERT INTO project_teams SELECT p.id, t.id FROM projects p, teams t;
INSERT INTO organization_integrations (organization_id, integration_id, config)
  SELECT o.id, i.id, '{"sync_reverse_assignment": true}' FROM organizations o, integrations i;
INSERT INTO users (username) SELECT 'bench' || n FROM generate_series(1, {users}) n;
INSERT INTO user_emails (user_id, email, is_verified) SELECT id, username || '@example.org', true FROM users;
INSERT INTO organization_members (organization_id, user_id) SELECT o.id, u.id FROM organizations o, users u;
INSERT INTO team_members (team_id, organization_member_id) SELECT t.id, m.id FROM teams t, organization_members m;
INSERT INTO external_issues (organization_id, integration_id, key)
  SELECT o.id, i.id, 'BENCH-' || n FROM organizations o, integrations i, generate_series(1, {issues}) n;
INSERT INTO groups (project_id, title) SELECT p.id, 'BENCH-' || n FROM projects p, generate_series(1, {issues}) n;
INSERT INTO group_links (group_id, project_id, linked_type, linked_id)
  SELECT g.id, g.project_id, 'issue', ei.id FROM groups g JOIN external_issues ei ON ei.key = g.title;
