//! Duplicate Cloud deliveries (docs/reference.md §11.4): Jira Cloud redelivers with
//! the same `X-Atlassian-Webhook-Identifier`. The pair (integration, identifier)
//! of every verified delivery is recorded in `cloud_webhook_deliveries` in the
//! transaction that handles it (`sync::unit`), with the message that carried it;
//! a later message of the pair is a duplicate. The same message again (a
//! redelivery after a crash) is not a duplicate of itself. Rows are kept
//! [`RETENTION`], pruned by the worker's housekeeping.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// How long a delivery's identifier is remembered.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whether a delivery was seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not before, or only as this very message.
    First,
    /// Another message carried the pair first: this one is a duplicate.
    Duplicate {
        /// The message that carried it first.
        first_message_id: String,
    },
}

/// `$1` integrations, `$2` identifiers, `$3` message ids: see [`record_all`].
/// Per delivery: the message that carried its pair first — recorded before
/// (seen in the statement's snapshot), or the batch's first of the pair when
/// this statement recorded it — and whether this statement recorded it; NULL
/// when neither (a transaction that committed the pair since).
pub const RECORD_ALL: &str = "WITH want AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
      WITH ORDINALITY AS w(integration_id, identifier, message_id, n)
), first AS (
    SELECT DISTINCT ON (integration_id, identifier) integration_id, identifier, message_id
      FROM want ORDER BY integration_id, identifier, n
), recorded AS (
    INSERT INTO cloud_webhook_deliveries (integration_id, identifier, message_id)
    SELECT integration_id, identifier, message_id FROM first
     ORDER BY integration_id, identifier
    ON CONFLICT (integration_id, identifier) DO NOTHING
    RETURNING integration_id, identifier
)
SELECT CASE WHEN r.identifier IS NOT NULL THEN f.message_id ELSE d.message_id END
  FROM want w
  JOIN first f USING (integration_id, identifier)
  LEFT JOIN recorded r USING (integration_id, identifier)
  LEFT JOIN cloud_webhook_deliveries d USING (integration_id, identifier)
 ORDER BY w.n";

/// `$1` integration, `$2` identifier.
const FIRST: &str = "SELECT message_id FROM cloud_webhook_deliveries
  WHERE integration_id = $1 AND identifier = $2";

/// `$1` retention in seconds.
const PRUNE: &str = "DELETE FROM cloud_webhook_deliveries
  WHERE received_at < now() - make_interval(secs => $1)";

/// Records the delivery `identifier` of `integration_id` as carried by
/// `message_id`, in the caller's transaction, unless it is recorded already:
/// then whether that was another message. A concurrent transaction recording
/// the same pair makes this one wait for its end (the primary key).
pub async fn record(
    client: &impl GenericClient,
    integration_id: i64,
    identifier: &str,
    message_id: &str,
) -> Result<Seen, Error> {
    let seen = record_all(client, &[(integration_id, identifier, message_id)]).await?;
    Ok(seen.into_iter().next().unwrap_or(Seen::First))
}

/// As [`record`], for every delivery of a batch at once, each (integration,
/// identifier, message id); whether each was seen, in their order. Two
/// deliveries of one pair in the batch: the later is a duplicate of the first.
pub async fn record_all(
    client: &impl GenericClient,
    deliveries: &[(i64, &str, &str)],
) -> Result<Vec<Seen>, Error> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let integrations: Vec<i64> = deliveries.iter().map(|d| d.0).collect();
    let identifiers: Vec<&str> = deliveries.iter().map(|d| d.1).collect();
    let messages: Vec<&str> = deliveries.iter().map(|d| d.2).collect();
    let statement = client.prepare_cached(RECORD_ALL).await?;
    let rows = client
        .query(&statement, &[&integrations, &identifiers, &messages])
        .await?;
    let mut seen = Vec::with_capacity(deliveries.len());
    for (row, &(integration_id, identifier, message_id)) in rows.iter().zip(deliveries) {
        seen.push(match row.get::<_, Option<String>>(0) {
            Some(first) if first != message_id => Seen::Duplicate {
                first_message_id: first,
            },
            Some(_) => Seen::First,
            // Committed by another transaction since the statement began: ask again.
            None => self::seen(client, integration_id, identifier, message_id).await?,
        });
    }
    Ok(seen)
}

/// Whether the delivery was recorded by another message than `message_id`;
/// records nothing (the worker asks before it calls Jira).
pub async fn seen(
    client: &impl GenericClient,
    integration_id: i64,
    identifier: &str,
    message_id: &str,
) -> Result<Seen, Error> {
    let statement = client.prepare_cached(FIRST).await?;
    let first = client
        .query_opt(&statement, &[&integration_id, &identifier])
        .await?;
    Ok(match first.map(|row| row.get::<_, String>(0)) {
        Some(first) if first != message_id => Seen::Duplicate {
            first_message_id: first,
        },
        _ => Seen::First,
    })
}

/// Deletes the identifiers recorded longer than [`RETENTION`] ago; how many.
pub async fn prune(client: &impl GenericClient) -> Result<u64, Error> {
    client.execute(PRUNE, &[&RETENTION.as_secs_f64()]).await
}
