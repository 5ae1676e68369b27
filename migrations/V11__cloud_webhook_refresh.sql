-- The dynamic webhook of a Jira Cloud 3LO integration expires 30 days after it
-- was registered or last refreshed (docs/reference.md §11.3). Every worker's
-- scheduler claims here, in Postgres, the integrations whose webhook is due for
-- a refresh, so that of many workers one enqueues `jira_cloud.webhook_refresh`
-- per interval: `refreshed_at` is when jirasync last registered or refreshed the
-- webhook, `scheduled_at` when a refresh was last enqueued.
CREATE TABLE cloud_webhook_refreshes (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    refreshed_at timestamptz,
    scheduled_at timestamptz
);
