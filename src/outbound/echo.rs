//! What jirasync wrote to Jira (docs/reference.md §10.7 b), kept so that the
//! webhook Jira sends for it is recognised as an echo: the value is recorded,
//! and committed, before the write is sent (an echo can arrive before the write's
//! answer), then Jira's `updated` read back after the write.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::Kind;

/// `$1` external issue, `$2` kind, `$3` value: about to be written.
pub const WRITING: &str =
    "INSERT INTO outbound_writes (external_issue_id, kind, value) VALUES ($1, $2, $3)
 ON CONFLICT (external_issue_id, kind, value)
   DO UPDATE SET written_at = now(), jira_updated = NULL";

/// `$1` external issue, `$2` kind, `$3` value, `$4` Jira's `updated` after the write.
pub const WRITTEN: &str = "UPDATE outbound_writes SET jira_updated = $4
  WHERE external_issue_id = $1 AND kind = $2 AND value = $3";

/// Records that `value` is about to be written to the issue (in its own
/// statement: committed before the write is sent).
pub async fn writing(
    client: &impl GenericClient,
    external_issue_id: i64,
    kind: Kind,
    value: &str,
) -> Result<(), Error> {
    client
        .execute(
            &client.prepare_cached(WRITING).await?,
            &[&external_issue_id, &kind.as_str(), &value],
        )
        .await?;
    Ok(())
}

/// Records Jira's `updated` after the write of `value`.
pub async fn written(
    client: &impl GenericClient,
    external_issue_id: i64,
    kind: Kind,
    value: &str,
    jira_updated: DateTime<Utc>,
) -> Result<(), Error> {
    client
        .execute(
            &client.prepare_cached(WRITTEN).await?,
            &[&external_issue_id, &kind.as_str(), &value, &jira_updated],
        )
        .await?;
    Ok(())
}
