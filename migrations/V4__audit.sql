-- The audit trail (docs/reference.md §5.9): one row per decision about an issue and
-- organization, written in the transaction of the change it describes; `jirasync
-- explain` reads it, newest first. Pruned after 30 days by the workers.
CREATE TABLE sync_events (
    id bigserial PRIMARY KEY,
    message_id text,
    integration_id bigint,
    issue_key text NOT NULL,
    kind text NOT NULL,
    event_time timestamptz,
    organization_id bigint,
    outcome text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_events_issue_idx ON sync_events (issue_key);
-- No index on created_at: rows arrive in id order, and pruning finds the old ones
-- by the primary key (src/sync/audit.rs), so every insert maintains one index less.
-- A moved issue's history is found by its old key too.
CREATE INDEX sync_events_moved_from_idx ON sync_events ((detail->>'from')) WHERE kind = 'key';

-- Jira users an admin mapped to users (docs/reference.md §5.10), for assignees whose
-- email Jira hides or that matches no candidate. `jira_user` is the Jira user's
-- `name`, else its `key`.
CREATE TABLE jira_user_mappings (
    id bigserial PRIMARY KEY,
    integration_id bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    jira_user text NOT NULL,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, jira_user)
);
