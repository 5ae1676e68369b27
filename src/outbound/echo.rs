//! What jirasync wrote to Jira (docs/reference.md §10.7 b), kept so that the
//! webhook Jira sends for it is recognised as an echo: the value is recorded,
//! and committed, before the write is sent (an echo can arrive before the write's
//! answer), then Jira's `updated` read back after the write.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;
use tokio_postgres::types::Type;

use super::Kind;

/// `$1` external issues, `$2` kinds, `$3` values: about to be written (a value
/// written again is new again).
pub const WRITING_ALL: &str = "INSERT INTO outbound_writes (external_issue_id, kind, value)
 SELECT DISTINCT * FROM unnest($1::bigint[], $2::text[], $3::text[])
 ON CONFLICT (external_issue_id, kind, value)
   DO UPDATE SET written_at = now(), jira_updated = NULL";

/// `$1` external issue, `$2` kind, `$3` value, `$4` Jira's `updated` after the write.
pub const WRITTEN: &str = "UPDATE outbound_writes SET jira_updated = $4
  WHERE external_issue_id = $1 AND kind = $2 AND value = $3";

/// Records that each value is about to be written to its issue, in one
/// statement (committed before any of the writes is sent).
pub async fn writing_all<'a>(
    client: &impl GenericClient,
    records: impl Iterator<Item = (i64, Kind, &'a str)>,
) -> Result<(), Error> {
    let (mut ids, mut kinds, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for (id, kind, value) in records {
        ids.push(id);
        kinds.push(kind.as_str());
        values.push(value);
    }
    client
        .execute(
            &client.prepare_cached(WRITING_ALL).await?,
            &[&ids, &kinds, &values],
        )
        .await?;
    Ok(())
}

/// Records Jira's `updated` after the write of `value`.
///
/// Planned at each call (an unnamed statement), not once per connection: a
/// plan made while `outbound_writes` held a few rows reads it whole, and the
/// table grows by a row per write — a backlog of 10,000 pushes into a new
/// install spent a third of Postgres's time scanning it (docs/performance.md,
/// "A plan made while the table was small").
pub async fn written(
    client: &tokio_postgres::Client,
    external_issue_id: i64,
    kind: Kind,
    value: &str,
    jira_updated: DateTime<Utc>,
) -> Result<(), Error> {
    client
        .query_typed(
            WRITTEN,
            &[
                (&external_issue_id, Type::INT8),
                (&kind.as_str(), Type::TEXT),
                (&value, Type::TEXT),
                (&jira_updated, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
    Ok(())
}
