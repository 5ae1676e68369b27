-- Undoes bench/seed_reconcile.sql after row (8), (14) or rows (10)-(11) of
-- examples/bench/, so the rows after them see the installation they saw before:
-- the {prefix}-<N> issues, their groups (with their assignments, links, activities,
-- pending pushes and echo records) and audit rows, what is still captured, the
-- credentials of {external_id}, its base URL ({home_url} again), the push flag of
-- rows (10)-(11). examples/bench/main.rs (`unlink_issues`) then vacuums the tables,
-- so (7) finds them without the dead rows.
DELETE FROM sync_events WHERE issue_key LIKE '{prefix}-%';
DELETE FROM groups WHERE title LIKE '{prefix}-%';
DELETE FROM external_issues WHERE key LIKE '{prefix}-%';
DELETE FROM integration_credentials
 WHERE integration_id IN (SELECT id FROM integrations WHERE external_id = '{external_id}');
UPDATE integrations SET metadata = metadata || jsonb_build_object('base_url', '{home_url}')
 WHERE external_id = '{external_id}';
DELETE FROM integration_reconciliations;
DELETE FROM outbound_changes;
DELETE FROM outbound_pending;
DELETE FROM outbound_throttles;
UPDATE organization_integrations SET config = config - 'sync_forward_assignment'
 WHERE organization_id IN (SELECT id FROM organizations WHERE slug = 'bench');
