//! Duplicate Cloud deliveries (docs/reference.md §11.4): Jira Cloud redelivers with
//! the same `X-Atlassian-Webhook-Identifier`. The pair (integration, identifier)
//! of every verified delivery is recorded in `cloud_webhook_deliveries` in the
//! transaction that handles it (`sync::unit`), with the message that carried it;
//! a later message of the pair is a duplicate. The same message again (a
//! redelivery after a crash) is not a duplicate of itself. Rows are kept
//! [`RETENTION`], pruned by the worker's housekeeping.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
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

/// `$1` integrations, `$2` identifiers, `$3` message ids, each pair once: see
/// [`record_all`]. Returns the pairs it recorded; a pair recorded before (or by a
/// transaction that committed it meanwhile: the insert waits for it) is not returned.
pub const RECORD_ALL: &str = "INSERT INTO cloud_webhook_deliveries (integration_id, identifier, message_id)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS w(integration_id, identifier, message_id)
 ORDER BY integration_id, identifier
ON CONFLICT (integration_id, identifier) DO NOTHING
RETURNING integration_id, identifier";

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
/// One statement records the batch's pairs; only a pair it did not record
/// (a duplicate, or the same message again) is looked up.
pub async fn record_all(
    client: &impl GenericClient,
    deliveries: &[(i64, &str, &str)],
) -> Result<Vec<Seen>, Error> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    // The batch's first delivery of each pair, by pair.
    let mut first: HashMap<(i64, &str), &str> = HashMap::with_capacity(deliveries.len());
    let (mut integrations, mut identifiers, mut messages) = (
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
    );
    for &(integration_id, identifier, message_id) in deliveries {
        if let Entry::Vacant(slot) = first.entry((integration_id, identifier)) {
            slot.insert(message_id);
            integrations.push(integration_id);
            identifiers.push(identifier);
            messages.push(message_id);
        }
    }
    let statement = client.prepare_cached(RECORD_ALL).await?;
    let recorded: HashSet<(i64, String)> = client
        .query(&statement, &[&integrations, &identifiers, &messages])
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut seen = Vec::with_capacity(deliveries.len());
    for &(integration_id, identifier, message_id) in deliveries {
        let first_message_id = first.get(&(integration_id, identifier)).copied();
        seen.push(
            if recorded.contains(&(integration_id, identifier.to_owned())) {
                match first_message_id {
                    Some(first) if first != message_id => Seen::Duplicate {
                        first_message_id: first.to_owned(),
                    },
                    _ => Seen::First,
                }
            } else {
                // Recorded before this statement, or committed since it began.
                self::seen(client, integration_id, identifier, message_id).await?
            },
        );
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
