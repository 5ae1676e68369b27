-- Jira Cloud beside Data Center (docs/reference.md §11).

-- Cloud's ways to connect: an API token (Basic email:token; the email is kept in
-- client_id, the token in access_token) and a service account's client
-- credentials (client_id, client_secret, and the 60-minute access token).
ALTER TABLE integration_credentials DROP CONSTRAINT integration_credentials_auth_method_check;
ALTER TABLE integration_credentials ADD CONSTRAINT integration_credentials_auth_method_check
    CHECK (auth_method IN ('oauth1', 'oauth2', 'pat', 'api_token', 'client_credentials'));

-- The Cloud OAuth 2.0 (3LO) install runs as an `oauth2_cloud` session.
ALTER TABLE oauth_sessions DROP CONSTRAINT oauth_sessions_flow_check;
ALTER TABLE oauth_sessions ADD CONSTRAINT oauth_sessions_flow_check
    CHECK (flow IN ('oauth1', 'oauth2', 'oauth2_cloud'));

-- Every verified Cloud delivery's X-Atlassian-Webhook-Identifier, written in the
-- transaction that handles it (§11.4): a redelivery carrying a recorded pair is a
-- `duplicate` and changes nothing. Kept 7 days (pruned with the other records).
CREATE TABLE cloud_webhook_deliveries (
    integration_id bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    identifier text NOT NULL,
    message_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, identifier)
);
CREATE INDEX cloud_webhook_deliveries_received_idx ON cloud_webhook_deliveries (received_at);
