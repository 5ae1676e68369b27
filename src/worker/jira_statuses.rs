//! Jira's statuses for inbound status sync (issue 8 §1): the ids of the `done`
//! category, fetched with `GET /rest/api/2/status` signed with the integration's
//! credentials and cached per integration for a few minutes, shared by all of
//! the worker's tasks. Called by the webhook handler.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use super::jira_access::{self, jira_error};
use crate::db::integrations::Integration;
use crate::queue::consumer::HandleError;

/// How long a list of statuses is reused.
const TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many integrations are remembered; beyond, the cache is emptied.
const MAX_ENTRIES: usize = 1_000;

/// The ids of the statuses in the `done` category.
pub type DoneIds = Arc<HashSet<String>>;
/// One integration's statuses and when they were fetched; the async lock makes
/// concurrent webhooks wait for one request instead of each asking Jira.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, DoneIds)>>>;

/// The in-process cache of Jira statuses per integration.
#[derive(Default)]
pub struct StatusCache {
    slots: Mutex<HashMap<i64, Slot>>,
}

impl StatusCache {
    /// The `done` status ids of `integration`'s Jira, from the cache or from
    /// Jira; `None` when the integration has no access token. Jira 5xx, 429 and
    /// timeouts are `Retryable` and not cached.
    pub async fn done_ids(
        &self,
        db: &impl GenericClient,
        integration: &Integration,
    ) -> Result<Option<DoneIds>, HandleError> {
        let slot = self.slot(integration.id);
        let mut cached = slot.lock().await;
        if let Some((fetched, done)) = cached.as_ref()
            && fetched.elapsed() < TTL
        {
            return Ok(Some(Arc::clone(done)));
        }
        let Some(jira) = jira_access::connect(db, integration).await? else {
            return Ok(None);
        };
        let statuses = jira
            .client
            .get_statuses(&jira.access_token)
            .await
            .map_err(|error| jira_error("fetch the statuses from Jira", error))?;
        let done: DoneIds = Arc::new(
            statuses
                .into_iter()
                .filter(|status| status.is_done())
                .map(|status| status.id)
                .collect(),
        );
        *cached = Some((Instant::now(), Arc::clone(&done)));
        Ok(Some(done))
    }

    fn slot(&self, integration_id: i64) -> Slot {
        // A poisoned lock only means another task panicked mid-insert; the map is usable.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slots.contains_key(&integration_id) && slots.len() >= MAX_ENTRIES {
            slots.clear();
        }
        Arc::clone(slots.entry(integration_id).or_default())
    }
}
