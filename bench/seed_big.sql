-- The rest of an installation of realistic size, around bench/seed.sql's data (run
-- after it): {orgs} more organizations with sync on, each with a project and a team;
-- {users} users big<N>@example.org spread over them (2 % share an email with
-- another user: 20 per 1,000); {issues} issues BIG-<N> spread over the
-- organizations, each linked to its own group; {events} rows of audit trail.
-- Used by examples/bench/ (--big) and, smaller, by tests/suite/query_plans.rs.
CREATE TEMP TABLE big_orgs AS
  WITH created AS (
    INSERT INTO organizations (slug, name)
    SELECT 'big-' || n, 'Big ' || n FROM generate_series(1, {orgs}) n RETURNING id)
  SELECT id, row_number() OVER (ORDER BY id) AS k FROM created;
INSERT INTO projects (organization_id, slug, name) SELECT id, 'p', 'P' FROM big_orgs;
INSERT INTO teams (organization_id, slug, name) SELECT id, 't', 'T' FROM big_orgs;
INSERT INTO project_teams
  SELECT p.id, t.id FROM big_orgs o
    JOIN projects p ON p.organization_id = o.id JOIN teams t ON t.organization_id = o.id;
INSERT INTO organization_integrations (organization_id, integration_id, config)
  SELECT o.id, i.id, '{"sync_reverse_assignment": true}' FROM big_orgs o, integrations i;
CREATE TEMP TABLE big_users AS
  WITH created AS (
    INSERT INTO users (username) SELECT 'big' || n FROM generate_series(1, {users}) n
    RETURNING id, username)
  SELECT id, substr(username, 4)::int AS n FROM created;
INSERT INTO user_emails (user_id, email, is_verified)
  SELECT id, 'big' || CASE WHEN n % 50 = 0 THEN n - 1 ELSE n END || '@example.org', true
    FROM big_users;
INSERT INTO organization_members (organization_id, user_id)
  SELECT o.id, u.id FROM big_users u JOIN big_orgs o ON o.k = (u.n - 1) % {orgs} + 1;
INSERT INTO team_members (team_id, organization_member_id)
  SELECT t.id, m.id FROM big_orgs o
    JOIN organization_members m ON m.organization_id = o.id JOIN teams t ON t.organization_id = o.id;
INSERT INTO external_issues (organization_id, integration_id, key)
  SELECT o.id, i.id, 'BIG-' || n
    FROM generate_series(1, {issues}) n JOIN big_orgs o ON o.k = (n - 1) % {orgs} + 1
   CROSS JOIN integrations i;
-- Analyzed as the tables grow: with statistics from before this seed (a few hundred
-- rows, every key and title BENCH-… or REC-…) the joins below were planned for a
-- handful of BIG- rows, as nested loops over a million (minutes instead of seconds).
ANALYZE;
INSERT INTO groups (project_id, title)
  SELECT p.id, ei.key FROM external_issues ei JOIN projects p ON p.organization_id = ei.organization_id
   WHERE ei.key LIKE 'BIG-%';
ANALYZE groups;
INSERT INTO group_links (group_id, project_id, linked_type, linked_id)
  SELECT g.id, g.project_id, 'issue', ei.id
    FROM groups g JOIN projects p ON p.id = g.project_id
    JOIN external_issues ei ON ei.key = g.title AND ei.organization_id = p.organization_id
   WHERE g.title LIKE 'BIG-%';
INSERT INTO sync_events (message_id, integration_id, issue_key, kind, organization_id, outcome, detail, created_at)
  SELECT 'seed', i.id, 'BIG-' || (n % {issues} + 1), 'assignee', NULL, 'assigned', '{"groups": []}',
         now() - make_interval(secs => ({events} - n) * (29 * 86400.0) / {events})
    FROM generate_series(1, {events}) n CROSS JOIN integrations i;
ANALYZE;
