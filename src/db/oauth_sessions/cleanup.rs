//! What workers prune of `oauth_sessions` (docs/reference.md §8), at start and
//! hourly (`worker::periodic::prune`): the secrets of sessions that did not install, a day
//! after their last update, and every session a month after it.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::ENDED;

/// How long after its last update a session that is not installed keeps its
/// secrets (docs/reference.md §8): a flow is done or abandoned long before.
pub const SCRUB_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long after its last update any session is kept at all.
pub const DELETE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The most sessions one statement of [`scrub_stale`] or [`delete_old`] touches.
pub const CLEANUP_BATCH: i64 = 1_000;

/// Clears the secrets ([`ENDED`]) of up to [`CLEANUP_BATCH`] sessions that are
/// not installed and were last updated more than [`SCRUB_AFTER`] ago; their state,
/// error and `updated_at` stay. Rows another worker is cleaning are skipped.
/// How many.
pub async fn scrub_stale(client: &impl GenericClient) -> Result<u64, Error> {
    let sql = format!(
        "UPDATE oauth_sessions SET {ENDED}
          WHERE id IN (
            SELECT id FROM oauth_sessions
             WHERE state <> 'installed'
               AND updated_at < now() - make_interval(secs => $1)
               AND (private_key <> '' OR client_secret IS NOT NULL
                    OR code_verifier IS NOT NULL OR request_token_secret IS NOT NULL)
             LIMIT $2 FOR UPDATE SKIP LOCKED)"
    );
    client
        .execute(&sql, &[&SCRUB_AFTER.as_secs_f64(), &CLEANUP_BATCH])
        .await
}

/// Deletes up to [`CLEANUP_BATCH`] sessions, whatever their state, last updated
/// more than [`DELETE_AFTER`] ago. Rows another worker is deleting are skipped.
/// How many.
pub async fn delete_old(client: &impl GenericClient) -> Result<u64, Error> {
    client
        .execute(
            "DELETE FROM oauth_sessions
              WHERE id IN (
                SELECT id FROM oauth_sessions
                 WHERE updated_at < now() - make_interval(secs => $1)
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&DELETE_AFTER.as_secs_f64(), &CLEANUP_BATCH],
        )
        .await
}
