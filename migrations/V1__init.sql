-- The tables of CONTRACT §6, with the indexes the worker's lookups need.

CREATE TABLE organizations (
    id bigserial PRIMARY KEY,
    slug text UNIQUE NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active'
);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    username text UNIQUE NOT NULL,
    name text NOT NULL DEFAULT '',
    is_active boolean NOT NULL DEFAULT true
);

CREATE TABLE user_emails (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email text NOT NULL,
    is_verified boolean NOT NULL DEFAULT false
);
-- Assignment matches verified emails ignoring case.
CREATE INDEX user_emails_lower_email_idx ON user_emails (lower(email));
CREATE INDEX user_emails_user_id_idx ON user_emails (user_id);

CREATE TABLE organization_members (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL DEFAULT 'member',
    UNIQUE (organization_id, user_id)
);
CREATE INDEX organization_members_user_id_idx ON organization_members (user_id);

CREATE TABLE teams (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    slug text NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active',
    UNIQUE (organization_id, slug)
);

CREATE TABLE team_members (
    id bigserial PRIMARY KEY,
    team_id bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    organization_member_id bigint NOT NULL REFERENCES organization_members (id) ON DELETE CASCADE,
    is_active boolean NOT NULL DEFAULT true,
    UNIQUE (team_id, organization_member_id)
);
CREATE INDEX team_members_organization_member_id_idx ON team_members (organization_member_id);

CREATE TABLE projects (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    slug text NOT NULL,
    name text NOT NULL,
    UNIQUE (organization_id, slug)
);

CREATE TABLE project_teams (
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team_id bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, team_id)
);
CREATE INDEX project_teams_team_id_idx ON project_teams (team_id);

CREATE TABLE groups (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'unresolved'
        CHECK (status IN ('unresolved', 'resolved', 'ignored', 'pending_deletion', 'deletion_in_progress'))
);
CREATE INDEX groups_project_id_idx ON groups (project_id);

CREATE TABLE integrations (
    id bigserial PRIMARY KEY,
    provider text NOT NULL,
    external_id text NOT NULL,
    name text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active',
    UNIQUE (provider, external_id)
);

CREATE TABLE integration_credentials (
    integration_id bigint PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    consumer_key text NOT NULL,
    private_key text NOT NULL,
    access_token text,
    access_token_secret text
);

CREATE TABLE organization_integrations (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    config jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active',
    UNIQUE (organization_id, integration_id)
);
CREATE INDEX organization_integrations_integration_id_idx ON organization_integrations (integration_id);

CREATE TABLE external_issues (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    key text NOT NULL,
    assignee_synced_at timestamptz,
    status_synced_at timestamptz,
    UNIQUE (organization_id, integration_id, key)
);
-- The worker looks issues up by (integration, key) across organizations.
CREATE INDEX external_issues_integration_key_idx ON external_issues (integration_id, key);

CREATE TABLE group_links (
    id bigserial PRIMARY KEY,
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    linked_type text NOT NULL CHECK (linked_type IN ('issue', 'commit', 'pull_request')),
    linked_id bigint NOT NULL,
    relationship text NOT NULL DEFAULT 'references' CHECK (relationship IN ('resolves', 'references')),
    UNIQUE (group_id, linked_type, linked_id)
);
CREATE INDEX group_links_linked_idx ON group_links (linked_type, linked_id);

CREATE TABLE group_assignees (
    id bigserial PRIMARY KEY,
    group_id bigint UNIQUE NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id bigint REFERENCES users (id) ON DELETE CASCADE,
    team_id bigint REFERENCES teams (id) ON DELETE CASCADE,
    date_added timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE activities (
    id bigserial PRIMARY KEY,
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type text NOT NULL,
    user_id bigint,
    data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_group_id_idx ON activities (group_id);

CREATE TABLE oauth_sessions (
    id uuid PRIMARY KEY,
    base_url text NOT NULL,
    consumer_key text NOT NULL,
    private_key text NOT NULL,
    verify_ssl boolean NOT NULL DEFAULT true,
    state text NOT NULL CHECK (state IN ('pending', 'awaiting_authorization', 'authorizing', 'installed', 'failed')),
    request_token text,
    request_token_secret text,
    authorize_url text,
    error text,
    integration_id bigint REFERENCES integrations (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX oauth_sessions_request_token_idx ON oauth_sessions (request_token);
