//! The integration each webhook's token names (docs/reference.md §5.1), its row
//! kept for a while so that a burst does not read it from Postgres once per
//! webhook, and never trusted beyond what a cheap check confirms:
//!
//! - a change prepared with a kept row carries the row's [`Version`]; the batch
//!   that applies it reads the versions of its integrations in its first round
//!   trip and leaves out a change whose row was written since, or is no longer
//!   active (`sync::unit::Error::IntegrationChanged`): the webhook is then
//!   prepared again with a fresh read;
//! - any other outcome reached with a kept row (a rejected token or signature,
//!   a malformed body, nothing to sync) is first confirmed with the row's
//!   current version ([`Integrations::current`]), so `integration disable` and
//!   a rotation of the webhook secrets act on the next webhook, as when every
//!   webhook read the row;
//! - a row is kept no longer than [`KEEP`]. (The end of a rotation's overlap
//!   needs no new read: tokens and signatures are checked against the previous
//!   secrets only while the clock is before `previous_valid_until`.)

use std::sync::Arc;
use std::time::Duration;

use super::cache::{Cache, Read};
use crate::db::DbPool;
use crate::integration::{self, Integration, Provider, Version};
use crate::queue::handler::Failure;

/// How long a row read is reused at most.
const KEEP: Duration = Duration::from_secs(30);
/// At most this many integrations are kept.
const MAX_ENTRIES: usize = 10_000;

/// An active integration as a webhook found it.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its row, its secrets opened.
    pub integration: Arc<Integration>,
    /// The version of the row when it was kept from an earlier read (`None`:
    /// read now, for this webhook).
    pub kept: Option<Version>,
}

/// The rows of active integrations, by provider and external id.
pub struct Integrations(Cache<(Provider, String), (Arc<Integration>, Version)>);

impl Default for Integrations {
    fn default() -> Self {
        Self(Cache::new(KEEP, MAX_ENTRIES))
    }
}

impl Integrations {
    /// The active integration of `provider` with `external_id`, kept or read
    /// as `read` says, in one query with the webhooks that ask for it at the
    /// same time. No connection is held after it: one held while Jira is asked
    /// would be one fewer for the others (a refresh of an OAuth 2.0 token takes
    /// one of its own).
    pub async fn active(
        &self,
        pool: &DbPool,
        provider: Provider,
        external_id: &str,
        read: Read,
    ) -> Result<Option<Found>, Failure> {
        let key = (provider, external_id.to_owned());
        let found = self
            .0
            .get(key, read, || async {
                let client = pool.get().await?;
                let found =
                    integration::find_active(&client, pool.keys(), provider, external_id).await?;
                Ok::<_, Failure>(
                    found.map(|(integration, version)| (Arc::new(integration), version)),
                )
            })
            .await?;
        Ok(found.map(|((integration, version), kept)| Found {
            integration,
            kept: kept.then_some(version),
        }))
    }

    /// Whether `found` is still its integration's current row: true when it
    /// was read for this webhook, else asked of Postgres.
    pub async fn current(&self, pool: &DbPool, found: &Found) -> Result<bool, Failure> {
        let Some(version) = found.kept else {
            return Ok(true);
        };
        let client = pool.get().await?;
        let current = integration::active_versions(&client, &[found.integration.id]).await?;
        Ok(current.contains(&(found.integration.id, version)))
    }
}
