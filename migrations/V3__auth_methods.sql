-- One auth method per integration (docs/reference.md §7): OAuth 1.0a as before, OAuth
-- 2.0 through an External application link, or a personal access token. The access
-- token column holds the token every REST call carries, whatever the method.
ALTER TABLE integration_credentials
    ADD COLUMN auth_method text NOT NULL DEFAULT 'oauth1'
        CHECK (auth_method IN ('oauth1', 'oauth2', 'pat')),
    ADD COLUMN client_id text,
    ADD COLUMN client_secret text,
    ADD COLUMN refresh_token text,
    ADD COLUMN access_token_expires_at timestamptz,
    ADD COLUMN refreshed_at timestamptz,
    -- Set when Jira refused the credentials for good (a refresh token answered
    -- invalid_grant, a PAT answered 401): an admin must connect the integration again.
    ADD COLUMN needs_reauth_at timestamptz,
    ADD COLUMN auth_error text;

-- OAuth 2.0 install sessions: the client (its id in consumer_key), the PKCE verifier
-- and the `state` that binds Jira's redirect to the session.
ALTER TABLE oauth_sessions
    ADD COLUMN flow text NOT NULL DEFAULT 'oauth1' CHECK (flow IN ('oauth1', 'oauth2')),
    ADD COLUMN client_secret text,
    ADD COLUMN scope text,
    ADD COLUMN code_verifier text,
    ADD COLUMN oauth2_state text;
CREATE UNIQUE INDEX oauth_sessions_oauth2_state_idx ON oauth_sessions (oauth2_state);
