-- Undoes bench/seed_reconcile.sql after row (8) of examples/bench/, so the rows
-- after it see the installation they saw before: the REC-<N> issues, their groups
-- (with their assignments, links and activities) and audit rows, the credentials,
-- the base URL. examples/bench/reconcile.rs then vacuums the tables, so (7) finds
-- them without the dead rows.
DELETE FROM sync_events WHERE issue_key LIKE 'REC-%';
DELETE FROM groups WHERE title LIKE 'REC-%';
DELETE FROM external_issues WHERE key LIKE 'REC-%';
DELETE FROM integration_credentials
 WHERE integration_id IN (SELECT id FROM integrations WHERE external_id = 'bench.jira.local:bench');
UPDATE integrations SET metadata = metadata || jsonb_build_object('base_url', 'http://bench.jira.local')
 WHERE external_id = 'bench.jira.local:bench';
DELETE FROM integration_reconciliations;
