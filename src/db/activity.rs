//! What the operator console shows of each integration's traffic (CONTRACT §12.10,
//! `migrations/V9__console.sql`): when a worker last handled a webhook whose
//! token verified for it, and each dead-lettering a worker could attribute to it.
//! The worker writes them (`worker::jobs::webhook`, `worker::dispatch`) through a
//! [`Recorder`], its pruner deletes them after [`RETENTION`] like `sync_events`, and
//! the console reads them with [`activity`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use crate::db::DbPool;
use crate::shutdown::Shutdown;
pub use crate::sync::audit::RETENTION;

/// One integration's activity, as the console's overview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The integration (`integrations.id`).
    pub integration_id: i64,
    /// When a worker last handled a webhook whose token verified for it (within
    /// [`RETENTION`]), if ever.
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// Its dead-letterings in the last 24 hours (a replay takes none back).
    pub dead_lettered_24h: i64,
}

/// Every integration, whatever its status or provider, by id, with its activity.
pub const ACTIVITY: &str = "SELECT i.id, w.last_webhook_at,
       (SELECT count(*) FROM integration_dead_letters d
         WHERE d.integration_id = i.id AND d.dead_lettered_at > now() - interval '24 hours')
  FROM integrations i
  LEFT JOIN integration_webhooks_seen w ON w.integration_id = i.id
 ORDER BY i.id";

/// The activity of every integration (one entry each, by id; none for an
/// integration created since the query began).
pub async fn activity(client: &tokio_postgres::Client) -> Result<Vec<Activity>, Error> {
    let rows = client.query(ACTIVITY, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| Activity {
            integration_id: row.get(0),
            last_webhook_at: row.get(1),
            dead_lettered_24h: row.get(2),
        })
        .collect())
}

/// `$1` integration: a webhook whose token verified for it was handled now (a
/// later time already written wins: workers' transactions end in any order).
pub const WEBHOOK_SEEN: &str =
    "INSERT INTO integration_webhooks_seen (integration_id, last_webhook_at)
 SELECT id, now() FROM integrations WHERE id = $1
 ON CONFLICT (integration_id) DO UPDATE
   SET last_webhook_at = GREATEST(integration_webhooks_seen.last_webhook_at, EXCLUDED.last_webhook_at)";

/// Records that a webhook whose token verified for `integration_id` was handled now.
pub async fn webhook_seen(client: &impl GenericClient, integration_id: i64) -> Result<(), Error> {
    client.execute(WEBHOOK_SEEN, &[&integration_id]).await?;
    Ok(())
}

/// `$1` integration, `$2` message id, `$3` reason: one dead-lettering (none
/// when the integration is gone).
pub const DEAD_LETTERED: &str =
    "INSERT INTO integration_dead_letters (integration_id, message_id, reason)
 SELECT id, $2, $3 FROM integrations WHERE id = $1";

/// Longest reason kept, in characters: as `x-jirasync-error` is cut.
pub const MAX_REASON: usize = 500;

/// Records that message `message_id`, attributed to `integration_id`, was
/// dead-lettered now for `reason` (kept on one line, at most [`MAX_REASON`]
/// characters).
pub async fn dead_lettered(
    client: &impl GenericClient,
    integration_id: i64,
    message_id: &str,
    reason: &str,
) -> Result<(), Error> {
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    client
        .execute(DEAD_LETTERED, &[&integration_id, &message_id, &reason])
        .await?;
    Ok(())
}

/// Rows one prune statement deletes at most.
pub const PRUNE_BATCH: u64 = 5000;

/// `$1` seconds: deletes a batch of dead-letterings older than that.
pub const PRUNE_DEAD_LETTERS: &str = "DELETE FROM integration_dead_letters WHERE id = ANY (ARRAY(
   SELECT id FROM integration_dead_letters WHERE dead_lettered_at < now() - make_interval(secs => $1)
    ORDER BY dead_lettered_at LIMIT 5000 FOR UPDATE SKIP LOCKED))";

/// `$1` seconds: forgets the last webhooks older than that.
pub const PRUNE_WEBHOOKS_SEEN: &str = "DELETE FROM integration_webhooks_seen WHERE last_webhook_at < now() - make_interval(secs => $1)";

/// Deletes the records older than [`RETENTION`], a batch at a time until none
/// is full or shutdown; how many rows.
pub async fn prune(client: &impl GenericClient, shutdown: &Shutdown) -> Result<u64, Error> {
    let seconds = RETENTION.as_secs_f64();
    let mut pruned = client.execute(PRUNE_WEBHOOKS_SEEN, &[&seconds]).await?;
    while !shutdown.is_cancelled() {
        let deleted = client.execute(PRUNE_DEAD_LETTERS, &[&seconds]).await?;
        pruned += deleted;
        if deleted < PRUNE_BATCH {
            break;
        }
    }
    Ok(pruned)
}

/// How long a worker lets pass before it writes an integration's last webhook
/// again: a busy integration costs one write in this time, not one a webhook.
pub const WEBHOOK_SEEN_EVERY: Duration = Duration::from_secs(5);

/// The worker's writer of these records: best effort (a failure is logged, the
/// message goes on), and an integration's last webhook at most once every
/// [`WEBHOOK_SEEN_EVERY`].
#[derive(Debug, Default)]
pub struct Recorder {
    /// When this worker last wrote each integration's last webhook. A std lock:
    /// held for a lookup, never across an await.
    written: Mutex<HashMap<i64, Instant>>,
}

impl Recorder {
    /// Records that a webhook whose token verified for `integration_id` is being
    /// handled, unless this worker did less than [`WEBHOOK_SEEN_EVERY`] ago.
    pub async fn webhook_seen(&self, pool: &DbPool, integration_id: i64) {
        if !self.due(integration_id, Instant::now()) {
            return;
        }
        let written = match pool.get().await {
            Ok(client) => webhook_seen(&client, integration_id)
                .await
                .map_err(anyhow::Error::new),
            Err(error) => Err(anyhow::Error::new(error)),
        };
        if let Err(error) = written {
            // Tried again by the next webhook after the interval.
            tracing::warn!(error = %format!("{error:#}"), "could not record the integration's last webhook");
        }
    }

    /// Records the dead-lettering of message `message_id`, attributed to
    /// `integration_id`, for `reason`.
    pub async fn dead_lettered(
        &self,
        pool: &DbPool,
        integration_id: i64,
        message_id: &str,
        reason: &str,
    ) {
        let written = match pool.get().await {
            Ok(client) => dead_lettered(&client, integration_id, message_id, reason)
                .await
                .map_err(anyhow::Error::new),
            Err(error) => Err(anyhow::Error::new(error)),
        };
        if let Err(error) = written {
            tracing::warn!(error = %format!("{error:#}"), "could not record the dead-lettering for the console");
        }
    }

    /// Whether the last webhook of `integration_id` is to be written at `now`;
    /// if so, taken as written then (the webhooks handled meanwhile need not).
    fn due(&self, integration_id: i64, now: Instant) -> bool {
        let mut written = match self.written.lock() {
            Ok(written) => written,
            // Nothing is left half-done under this lock.
            Err(poisoned) => poisoned.into_inner(),
        };
        match written.get(&integration_id) {
            Some(at) if now.saturating_duration_since(*at) < WEBHOOK_SEEN_EVERY => false,
            _ => {
                written.insert(integration_id, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integration_last_webhook_is_written_once_per_interval() {
        let recorder = Recorder::default();
        let start = Instant::now();
        assert!(recorder.due(1, start));
        assert!(!recorder.due(1, start + Duration::from_secs(1)));
        assert!(
            recorder.due(2, start + Duration::from_secs(1)),
            "another integration"
        );
        assert!(!recorder.due(1, start + WEBHOOK_SEEN_EVERY - Duration::from_millis(1)));
        assert!(recorder.due(1, start + WEBHOOK_SEEN_EVERY));
    }

    #[test]
    fn the_records_are_kept_as_long_as_the_sync_history() {
        assert_eq!(RETENTION.as_secs(), 30 * 24 * 3600);
        assert!(PRUNE_DEAD_LETTERS.contains(&format!("LIMIT {PRUNE_BATCH} ")));
    }
}
