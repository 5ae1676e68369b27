//! The statements of a migration (docs/reference.md §11.7). Each takes the
//! caller's connection or transaction; `moves` owns the order and the commit.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Error;

/// A `jira_user_mappings` row of the source, with the user's verified emails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMapping {
    /// The Data Center user (`name` or `key`).
    pub jira_user: String,
    /// The user.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Their verified emails, lowest id first.
    pub emails: Vec<String>,
}

/// The user map of `integration_id`, oldest first, with each user's verified
/// emails (only verified ones are ever sent to Jira).
pub async fn source_mappings(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Vec<SourceMapping>, Error> {
    let rows = client
        .query(
            "SELECT m.jira_user, m.user_id, u.username,
                    ARRAY(SELECT e.email FROM user_emails e
                           WHERE e.user_id = m.user_id AND e.is_verified ORDER BY e.id)
               FROM jira_user_mappings m JOIN users u ON u.id = m.user_id
              WHERE m.integration_id = $1
              ORDER BY m.id",
            &[&integration_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| SourceMapping {
            jira_user: row.get(0),
            user_id: row.get(1),
            username: row.get(2),
            emails: row.get(3),
        })
        .collect())
}

/// Maps `account_id` of `integration_id` to `user_id` unless the integration
/// maps that account already; whether it was written.
pub async fn map_account(
    client: &impl GenericClient,
    integration_id: i64,
    account_id: &str,
    user_id: i64,
) -> Result<bool, Error> {
    let written = client
        .execute(
            "INSERT INTO jira_user_mappings (integration_id, jira_user, user_id)
             VALUES ($1, $2, $3)
             ON CONFLICT (integration_id, jira_user) DO NOTHING",
            &[&integration_id, &account_id, &user_id],
        )
        .await?;
    Ok(written > 0)
}

/// An `external_issues` row of the source, or of the target with a key a
/// source row has in the same organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRow {
    /// Row id.
    pub id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// Its integration.
    pub integration_id: i64,
    /// Its key.
    pub key: String,
    /// The event time of the last move applied to it (§5.8).
    pub key_synced_at: Option<DateTime<Utc>>,
}

/// `$1` source, `$2` target, `$3` project keys (empty: all): see [`lock_issues`].
pub const LOCK_ISSUES: &str =
    "SELECT ei.id, ei.organization_id, ei.integration_id, ei.key, ei.key_synced_at
   FROM external_issues ei
  WHERE ei.integration_id IN ($1, $2)
    AND EXISTS (SELECT 1 FROM external_issues s
                 WHERE s.integration_id = $1 AND s.key = ei.key
                   AND s.organization_id = ei.organization_id
                   AND (cardinality($3::text[]) = 0
                        OR EXISTS (SELECT 1 FROM unnest($3::text[]) p
                                    WHERE starts_with(s.key, p || '-'))))
  ORDER BY ei.id FOR UPDATE OF ei";

/// The source's rows (of `projects`' keys, when given) and the target's rows of
/// the same organization and key, locked in id order: the order every change of
/// an issue locks its rows in (`db::sync`, `db::rekey`), so a webhook or push of
/// either integration waits for the migration, and the migration for it.
pub async fn lock_issues(
    client: &impl GenericClient,
    from: i64,
    to: i64,
    projects: &[String],
) -> Result<Vec<IssueRow>, Error> {
    let rows = client.query(LOCK_ISSUES, &[&from, &to, &projects]).await?;
    Ok(rows
        .iter()
        .map(|row| IssueRow {
            id: row.get(0),
            organization_id: row.get(1),
            integration_id: row.get(2),
            key: row.get(3),
            key_synced_at: row.get(4),
        })
        .collect())
}

/// Re-points row `id` (and its undecided outbound changes) from integration
/// `from` to `to`; its links and watermarks stay. The number of its issue links.
pub async fn move_issue(
    client: &impl GenericClient,
    id: i64,
    from: i64,
    to: i64,
) -> Result<u64, Error> {
    client
        .execute(
            "UPDATE external_issues SET integration_id = $2 WHERE id = $1",
            &[&id, &to],
        )
        .await?;
    client
        .execute(
            "UPDATE outbound_pending SET integration_id = $3
              WHERE external_issue_id = $1 AND integration_id = $2",
            &[&id, &from, &to],
        )
        .await?;
    let links: i64 = client
        .query_one(
            "SELECT count(*) FROM group_links WHERE linked_type = 'issue' AND linked_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    Ok(u64::try_from(links).unwrap_or_default())
}

/// Hands row `from`'s undecided outbound changes to row `into` of integration
/// `to`, of the kinds it has none of (the merge then drops the rest with `from`).
pub async fn hand_over_pending(
    client: &impl GenericClient,
    from: i64,
    into: i64,
    to: i64,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE outbound_pending p SET external_issue_id = $2, integration_id = $3
              WHERE p.external_issue_id = $1
                AND NOT EXISTS (SELECT 1 FROM outbound_pending kept
                                 WHERE kept.external_issue_id = $2 AND kept.kind = p.kind)",
            &[&from, &into, &to],
        )
        .await?;
    Ok(())
}

/// An `organization_integrations` row's config and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLink {
    /// Row id.
    pub id: i64,
    /// `config`: the sync flags.
    pub config: Value,
    /// `status`.
    pub status: String,
}

/// The link of `organization_id` to `integration_id`, locked, if any.
pub async fn org_link(
    client: &impl GenericClient,
    organization_id: i64,
    integration_id: i64,
) -> Result<Option<OrgLink>, Error> {
    let row = client
        .query_opt(
            "SELECT id, config, status FROM organization_integrations
              WHERE organization_id = $1 AND integration_id = $2 FOR UPDATE",
            &[&organization_id, &integration_id],
        )
        .await?;
    Ok(row.map(|row| OrgLink {
        id: row.get(0),
        config: row.get(1),
        status: row.get(2),
    }))
}

/// Links `organization_id` to `integration_id` with `config` and `status`.
pub async fn link_org(
    client: &impl GenericClient,
    organization_id: i64,
    integration_id: i64,
    config: &Value,
    status: &str,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO organization_integrations (organization_id, integration_id, config, status)
             VALUES ($1, $2, $3, $4)",
            &[&organization_id, &integration_id, config, &status],
        )
        .await?;
    Ok(())
}

/// Sets link `id`'s config.
pub async fn set_config(client: &impl GenericClient, id: i64, config: &Value) -> Result<(), Error> {
    client
        .execute(
            "UPDATE organization_integrations SET config = $2 WHERE id = $1",
            &[&id, config],
        )
        .await?;
    Ok(())
}

/// Copies the status maps (§10.6) of `from`'s organization links to the same
/// organizations' links to `to`, for the projects those have none of.
pub async fn copy_status_maps(
    client: &impl GenericClient,
    from: i64,
    to: i64,
) -> Result<u64, Error> {
    client
        .execute(
            "INSERT INTO integration_external_projects
                    (organization_integration_id, external_id, resolved_status,
                     unresolved_status, resolution)
             SELECT t.id, p.external_id, p.resolved_status, p.unresolved_status, p.resolution
               FROM organization_integrations s
               JOIN organization_integrations t
                 ON t.organization_id = s.organization_id AND t.integration_id = $2
               JOIN integration_external_projects p ON p.organization_integration_id = s.id
              WHERE s.integration_id = $1
              ORDER BY p.id
             ON CONFLICT (organization_integration_id, external_id) DO NOTHING",
            &[&from, &to],
        )
        .await
}
