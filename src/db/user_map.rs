//! Queries of `jira_user_mappings` (docs/reference.md §5.10): which user a Jira
//! user (`name`, else `key`; on Jira Cloud an `accountId`) of an integration is,
//! for `jirasync user-map`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// One mapping, with the user's name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mapping {
    /// The integration.
    pub integration_id: i64,
    /// The Jira user's `name` (or `key`).
    pub jira_user: String,
    /// The user.
    pub user_id: i64,
    /// Their user name.
    pub username: String,
}

/// Why a mapping cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// No integration (Data Center or Cloud) has this id.
    #[error("no integration has id {0}: list them with `jirasync integration list`")]
    NoIntegration(i64),
    /// No user has this user name.
    #[error("no user has username {0:?}")]
    NoUser(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] Error),
}

/// Maps `jira_user` of `integration_id` (of either provider) to the user named
/// `username`, replacing an earlier mapping of that Jira user.
pub async fn set(
    client: &impl GenericClient,
    integration_id: i64,
    jira_user: &str,
    username: &str,
) -> Result<Mapping, SetError> {
    let integration = client
        .query_opt(
            "SELECT 1 FROM integrations WHERE id = $1 AND provider = ANY ($2)",
            &[&integration_id, &&crate::integration::PROVIDERS[..]],
        )
        .await?;
    if integration.is_none() {
        return Err(SetError::NoIntegration(integration_id));
    }
    let user = client
        .query_opt("SELECT id FROM users WHERE username = $1", &[&username])
        .await?
        .ok_or_else(|| SetError::NoUser(username.to_owned()))?;
    let user_id: i64 = user.get(0);
    client
        .execute(
            "INSERT INTO jira_user_mappings (integration_id, jira_user, user_id)
             VALUES ($1, $2, $3)
             ON CONFLICT (integration_id, jira_user) DO UPDATE SET user_id = EXCLUDED.user_id",
            &[&integration_id, &jira_user, &user_id],
        )
        .await?;
    Ok(Mapping {
        integration_id,
        jira_user: jira_user.to_owned(),
        user_id,
        username: username.to_owned(),
    })
}

/// Removes the mapping of `jira_user` in `integration_id`; whether there was one.
pub async fn remove(
    client: &impl GenericClient,
    integration_id: i64,
    jira_user: &str,
) -> Result<bool, Error> {
    let removed = client
        .execute(
            "DELETE FROM jira_user_mappings WHERE integration_id = $1 AND jira_user = $2",
            &[&integration_id, &jira_user],
        )
        .await?;
    Ok(removed > 0)
}

/// Every mapping (of `integration_id`, when given), by integration and Jira user.
pub async fn list(
    client: &impl GenericClient,
    integration_id: Option<i64>,
) -> Result<Vec<Mapping>, Error> {
    let rows = client
        .query(
            "SELECT m.integration_id, m.jira_user, m.user_id, u.username
               FROM jira_user_mappings m JOIN users u ON u.id = m.user_id
              WHERE $1::bigint IS NULL OR m.integration_id = $1
              ORDER BY m.integration_id, m.jira_user",
            &[&integration_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Mapping {
            integration_id: row.get(0),
            jira_user: row.get(1),
            user_id: row.get(2),
            username: row.get(3),
        })
        .collect())
}
