-- What the operator console shows of each integration beyond its rows (CONTRACT
-- §12.10): recorded by the workers (`src/db/activity.rs`), pruned after 30 days
-- with `sync_events` (`src/worker/periodic/prune.rs`).

-- When a worker last handled a webhook whose token verified for the integration,
-- whatever came of it; one row per integration, written at most every few seconds
-- by each worker.
CREATE TABLE integration_webhooks_seen (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    last_webhook_at timestamptz NOT NULL
);
-- Pruning finds the rows not written for 30 days.
CREATE INDEX integration_webhooks_seen_at_idx ON integration_webhooks_seen (last_webhook_at);

-- Each message a worker dead-lettered that it could attribute to an integration:
-- a webhook whose token verified, a job or an outbound push naming it. A replay
-- takes none back. `reason` is the dead letter's `x-jirasync-error` (one line);
-- never the body or the token.
CREATE TABLE integration_dead_letters (
    id bigserial PRIMARY KEY,
    integration_id bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    message_id text NOT NULL,
    reason text NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
);
-- The console counts an integration's last 24 hours.
CREATE INDEX integration_dead_letters_recent_idx
    ON integration_dead_letters (integration_id, dead_lettered_at);
-- Pruning finds the rows older than 30 days.
CREATE INDEX integration_dead_letters_at_idx ON integration_dead_letters (dead_lettered_at);
