-- Reconciliation of missed webhooks (issue 8 §3): per integration, when the last
-- successful reconciliation started (the next one searches from there), and when
-- the worker's scheduler last enqueued one (so many workers enqueue one job, not one each).
CREATE TABLE integration_reconciliations (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    reconciled_at timestamptz,
    scheduled_at timestamptz
);
