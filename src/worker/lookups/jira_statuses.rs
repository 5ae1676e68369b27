//! Jira's statuses for inbound status sync (docs/reference.md §5.7): the ids of the
//! `done` category, fetched with `GET /rest/api/2/status` signed with the
//! integration's credentials and cached per integration for a few minutes, shared
//! by all of the worker's tasks. Called by the webhook handler.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::db::DbPool;

use super::cache::Cache;
use crate::integration::Integration;
use crate::queue::handler::Failure;
use crate::worker::failure;

/// How long a list of statuses is reused.
const TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many integrations are remembered.
const MAX_ENTRIES: usize = 1_000;

/// The ids of the statuses in the `done` category.
pub type DoneIds = Arc<HashSet<String>>;

/// The in-process cache of Jira statuses per integration.
pub struct StatusCache(Cache<i64, DoneIds>);

impl Default for StatusCache {
    fn default() -> Self {
        Self(Cache::new(TTL, MAX_ENTRIES))
    }
}

impl StatusCache {
    /// The `done` status ids of `integration`'s Jira, from the cache or from
    /// Jira; `None` when the integration has no access token. Jira 5xx, 429 and
    /// timeouts are passing failures and not cached.
    pub async fn done_ids(
        &self,
        pool: &DbPool,
        integration: &Integration,
    ) -> Result<Option<DoneIds>, Failure> {
        self.0
            .get_or_fetch(integration.id, || async {
                let statuses = integration
                    .with_jira(pool, |jira| async move { jira.get_statuses().await })
                    .await
                    .map_err(|error| failure::access("fetch the statuses from Jira", error))?;
                Ok::<_, Failure>(statuses.map(|statuses| {
                    let done = statuses
                        .into_iter()
                        .filter(|status| status.is_done())
                        .map(|status| status.id)
                        .collect();
                    Arc::new(done)
                }))
            })
            .await
    }
}
