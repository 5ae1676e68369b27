//! Seeds the contract's tables for worker tests and builds webhook tokens and bodies.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_postgres::Client;

/// The webhook secret of seeded integrations.
pub const SECRET: &str = "test-webhook-secret";

/// Ids of a seeded organization with one project, team, group and linked issue.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: i64,
    pub project_id: i64,
    pub team_id: i64,
    pub group_id: i64,
    pub external_issue_id: i64,
}

/// A seeder over one database.
pub struct Seed<'a> {
    pub db: &'a Client,
}

impl Seed<'_> {
    async fn id(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
        self.db
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// An active jira_server integration with `SECRET`; returns (id, external_id).
    pub async fn integration(&self, metadata_extra: Value) -> (i64, String) {
        let external_id = format!("jira.example.org:{}", super::unique());
        let mut metadata = json!({"base_url": "https://jira.example.org", "domain_name": "jira.example.org",
            "verify_ssl": true, "webhook_secret": SECRET});
        if let (Some(m), Some(extra)) = (metadata.as_object_mut(), metadata_extra.as_object()) {
            m.extend(extra.clone());
        }
        let id = self
            .id(
                "INSERT INTO integrations (provider, external_id, name, metadata) VALUES ('jira_server', $1, 'Jira', $2) RETURNING id",
                &[&external_id, &metadata],
            )
            .await;
        (id, external_id)
    }

    /// Credentials of `integration` for the fake Jira's application link
    /// (`tests/fixtures/jira_test_key.pem`), with or without an access token.
    pub async fn credentials(
        &self,
        integration: i64,
        consumer_key: &str,
        access_token: Option<&str>,
    ) {
        let private_key = include_str!("../../fixtures/jira_test_key.pem");
        let secret = access_token.map(|_| "access-secret");
        self.db
            .execute(
                "INSERT INTO integration_credentials (integration_id, consumer_key, private_key, access_token, access_token_secret)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&integration, &consumer_key, &private_key, &access_token, &secret],
            )
            .await
            .expect("integration credentials");
    }

    /// OAuth 2.0 credentials of `integration` for the fake's client
    /// (`fake_oauth2.rs`), with `tokens` (access, refresh) stored as expiring
    /// `expires_in_s` from now (negative: already expired).
    pub async fn oauth2_credentials(
        &self,
        integration: i64,
        tokens: &(String, String),
        expires_in_s: f64,
    ) {
        use super::fake_oauth2::{CLIENT_ID, CLIENT_SECRET};
        self.db
            .execute(
                "INSERT INTO integration_credentials
                        (integration_id, auth_method, consumer_key, private_key, access_token,
                         client_id, client_secret, refresh_token, access_token_expires_at, refreshed_at)
                 VALUES ($1, 'oauth2', '', '', $2, $3, $4, $5,
                         now() + make_interval(secs => $6), now() - interval '1 hour')",
                &[&integration, &tokens.0, &CLIENT_ID, &CLIENT_SECRET, &tokens.1, &expires_in_s],
            )
            .await
            .expect("OAuth 2.0 credentials");
    }

    /// An organization linked to `integration` (sync on or off) with a project, a team
    /// on it, a group, and the issue `key` linked to the group.
    pub async fn org(&self, integration: i64, sync: bool, key: &str) -> Org {
        let slug = format!("org-{}", super::unique());
        let id = self
            .id(
                "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id",
                &[&slug],
            )
            .await;
        let project_id = self
            .id("INSERT INTO projects (organization_id, slug, name) VALUES ($1, 'p', 'P') RETURNING id", &[&id])
            .await;
        let team_id = self
            .id("INSERT INTO teams (organization_id, slug, name) VALUES ($1, 't', 'T') RETURNING id", &[&id])
            .await;
        self.db
            .execute(
                "INSERT INTO project_teams (project_id, team_id) VALUES ($1, $2)",
                &[&project_id, &team_id],
            )
            .await
            .expect("project team");
        let config = json!({"sync_reverse_assignment": sync, "sync_status_reverse": false});
        self.db
            .execute(
                "INSERT INTO organization_integrations (organization_id, integration_id, config) VALUES ($1, $2, $3)",
                &[&id, &integration, &config],
            )
            .await
            .expect("organization integration");
        let group_id = self.group(project_id, "unresolved").await;
        let external_issue_id = self.issue(id, integration, key).await;
        self.link(group_id, project_id, "issue", external_issue_id)
            .await;
        Org {
            id,
            project_id,
            team_id,
            group_id,
            external_issue_id,
        }
    }

    /// [`org`](Self::org) with assignee sync on, and status sync on too.
    pub async fn status_org(&self, integration: i64, key: &str) -> Org {
        let org = self.org(integration, true, key).await;
        self.db
            .execute(
                "UPDATE organization_integrations SET config = config || '{\"sync_status_reverse\": true}'
                  WHERE organization_id = $1",
                &[&org.id],
            )
            .await
            .expect("status sync on");
        org
    }

    /// A group in `project`.
    pub async fn group(&self, project: i64, status: &str) -> i64 {
        self.id(
            "INSERT INTO groups (project_id, title, status) VALUES ($1, 'Error', $2) RETURNING id",
            &[&project, &status],
        )
        .await
    }

    /// An external issue row.
    pub async fn issue(&self, org: i64, integration: i64, key: &str) -> i64 {
        self.id(
            "INSERT INTO external_issues (organization_id, integration_id, key) VALUES ($1, $2, $3) RETURNING id",
            &[&org, &integration, &key],
        )
        .await
    }

    /// A group link.
    pub async fn link(&self, group: i64, project: i64, linked_type: &str, linked_id: i64) {
        self.db
            .execute(
                "INSERT INTO group_links (group_id, project_id, linked_type, linked_id) VALUES ($1, $2, $3, $4)",
                &[&group, &project, &linked_type, &linked_id],
            )
            .await
            .expect("group link");
    }

    /// A user with one email (verified or not); not a member of anything yet.
    pub async fn user(&self, email: &str, verified: bool, active: bool) -> i64 {
        let username = format!("u-{}", super::unique());
        let id = self
            .id(
                "INSERT INTO users (username, is_active) VALUES ($1, $2) RETURNING id",
                &[&username, &active],
            )
            .await;
        self.db
            .execute(
                "INSERT INTO user_emails (user_id, email, is_verified) VALUES ($1, $2, $3)",
                &[&id, &email, &verified],
            )
            .await
            .expect("user email");
        id
    }

    /// Makes `user` an (active or inactive) member of `org`'s team.
    pub async fn member(&self, org: &Org, user: i64, active: bool) {
        let member = self
            .id(
                "INSERT INTO organization_members (organization_id, user_id) VALUES ($1, $2)
                 ON CONFLICT (organization_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING id",
                &[&org.id, &user],
            )
            .await;
        self.db
            .execute(
                "INSERT INTO team_members (team_id, organization_member_id, is_active) VALUES ($1, $2, $3)",
                &[&org.team_id, &member, &active],
            )
            .await
            .expect("team member");
    }

    /// `issues` organizations (sync on), each with its issue `<NAME>-<i>`, and
    /// `users` users `<name><u>@example.org` who are members of all of them.
    pub async fn issues_with_members(
        &self,
        integration: i64,
        name: &str,
        issues: usize,
        users: usize,
    ) -> (Vec<Org>, Vec<i64>) {
        let mut orgs = Vec::new();
        for i in 0..issues {
            let key = format!("{}-{i}", name.to_uppercase());
            orgs.push(self.org(integration, true, &key).await);
        }
        let mut ids = Vec::new();
        for u in 0..users {
            let user = self
                .user(&format!("{name}{u}@example.org"), true, true)
                .await;
            for org in &orgs {
                self.member(org, user, true).await;
            }
            ids.push(user);
        }
        (orgs, ids)
    }

    /// A user with a verified email who is an active team member of `org`.
    pub async fn teammate(&self, org: &Org, email: &str) -> i64 {
        let user = self.user(email, true, true).await;
        self.member(org, user, true).await;
        user
    }
}

/// An HS256 token for `external_id` signed with `secret`.
pub fn token(external_id: &str, secret: &str) -> String {
    token_with(Algorithm::HS256, json!({ "id": external_id }), secret)
}

/// A token with any algorithm and claims.
pub fn token_with(alg: Algorithm, claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a token")
}

/// A `jira:issue_updated` body that changes the assignee of `key` to `assignee`
/// (an object, or null) at `updated`.
pub fn assignee_changed(key: &str, assignee: Value, updated: &str) -> Value {
    json!({
        "timestamp": 1_700_000_000_000_i64,
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "key": key, "fields": {"summary": "x", "assignee": assignee, "updated": updated}},
        "changelog": {"id": "1", "items": [{"field": "assignee", "fieldtype": "jira", "to": "u"}]}
    })
}

/// Jira's assignee object with an email.
pub fn jira_user(email: &str) -> Value {
    json!({"name": "u", "key": "JIRAUSER1", "emailAddress": email, "displayName": "U", "active": true})
}

/// `x-hub-signature` of `body` as Jira signs it with the webhook's `secret`:
/// `sha256=` and the HMAC-SHA256 in hex.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    jirasync::integration::token::sign_hub_signature(secret, body)
}
