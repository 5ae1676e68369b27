//! What jirasync wrote to Jira (docs/reference.md §10.7 b), kept so that the
//! webhook Jira sends for it is recognised as an echo: the value is recorded,
//! and committed, before the write is sent (an echo can arrive before the write's
//! answer), then Jira's `updated` read back after the write.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Statement};

use super::Kind;

/// `$1` external issues, `$2` kinds, `$3` values: about to be written (a value
/// written again is new again).
pub const WRITING_ALL: &str = "INSERT INTO outbound_writes (external_issue_id, kind, value)
 SELECT DISTINCT * FROM unnest($1::bigint[], $2::text[], $3::text[])
 ON CONFLICT (external_issue_id, kind, value)
   DO UPDATE SET written_at = now(), jira_updated = NULL";

/// `$1` external issues, `$2` kinds, `$3` values, `$4` Jira's `updated` after
/// each write.
pub const WRITTEN_ALL: &str = "UPDATE outbound_writes w SET jira_updated = r.jira_updated
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])
    AS r(external_issue_id, kind, value, jira_updated)
 WHERE w.external_issue_id = r.external_issue_id AND w.kind = r.kind AND w.value = r.value";

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

/// Records Jira's `updated` after each write (issue, kind, value), in one
/// statement: `statement` is [`WRITTEN_ALL`] prepared, sent when first polled.
pub async fn written_all(
    client: &impl GenericClient,
    statement: &Statement,
    writes: &[(i64, Kind, &str, DateTime<Utc>)],
) -> Result<(), Error> {
    let ids: Vec<i64> = writes.iter().map(|w| w.0).collect();
    let kinds: Vec<&str> = writes.iter().map(|w| w.1.as_str()).collect();
    let values: Vec<&str> = writes.iter().map(|w| w.2).collect();
    let times: Vec<DateTime<Utc>> = writes.iter().map(|w| w.3).collect();
    client
        .execute(statement, &[&ids, &kinds, &values, &times])
        .await?;
    Ok(())
}
