//! Hidden assignee emails (issue 8 §2): when a webhook's assignee has no
//! `emailAddress`, the webhook handler asks Jira (`GET /rest/api/2/user`, signed
//! with the integration's credentials) and caches the answer per integration and
//! user for a few minutes, shared by all of the worker's tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use super::jira_access::{self, jira_error};
use crate::db::integrations::Integration;
use crate::jira::payload::AssigneeRef;
use crate::queue::consumer::HandleError;
use crate::sync::Email;

/// How long an answer (an email, or "none") is reused.
const TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many users are remembered; beyond, the cache is emptied.
const MAX_ENTRIES: usize = 10_000;

type Key = (i64, AssigneeRef);
/// One user's answer and when it was fetched; the async lock makes concurrent
/// look-ups of the same user wait for the first instead of asking Jira again.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Option<Email>)>>>;

/// What Jira said about a user whose email the webhook hid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Jira returned an email.
    Found(Email),
    /// Jira does not know the user, or hides the email too.
    NoEmail,
    /// The integration has no access token: nothing was asked.
    NoAccessToken,
}

/// The in-process cache of user look-ups, bounded in size and age.
#[derive(Default)]
pub struct EmailCache {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl EmailCache {
    /// The email of `user` in `integration`'s Jira, from the cache or from Jira.
    /// Jira 5xx, 429 and timeouts are `Retryable`; they are not cached.
    pub async fn lookup(
        &self,
        db: &impl GenericClient,
        integration: &Integration,
        user: &AssigneeRef,
    ) -> Result<Lookup, HandleError> {
        let slot = self.slot((integration.id, user.clone()));
        let mut cached = slot.lock().await;
        if let Some((fetched, email)) = cached.as_ref()
            && fetched.elapsed() < TTL
        {
            tracing::debug!("assignee email lookup answered from the cache");
            return Ok(found(email.clone()));
        }
        let Some(jira) = jira_access::connect(db, integration).await? else {
            return Ok(Lookup::NoAccessToken);
        };
        let answer = jira
            .client
            .get_user(&jira.access_token, user.as_user_ref())
            .await
            .map_err(|error| jira_error("look up the assignee in Jira", error))?;
        let email = answer
            .and_then(|user| user.email_address)
            .and_then(|email| Email::parse(&email));
        *cached = Some((Instant::now(), email.clone()));
        Ok(found(email))
    }

    /// The slot of `key`, created if needed; a full cache is first pruned of
    /// expired answers, and emptied if that is not enough.
    fn slot(&self, key: Key) -> Slot {
        // A poisoned lock only means another task panicked mid-insert; the map is usable.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slots.contains_key(&key) && slots.len() >= MAX_ENTRIES {
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(answer) => answer.as_ref().is_some_and(|(at, _)| at.elapsed() < TTL),
                Err(_) => true, // a look-up in flight
            });
            if slots.len() >= MAX_ENTRIES {
                slots.clear();
            }
        }
        Arc::clone(slots.entry(key).or_default())
    }
}

fn found(email: Option<Email>) -> Lookup {
    email.map_or(Lookup::NoEmail, Lookup::Found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_drops_expired_answers_and_stays_bounded() {
        let cache = EmailCache::default();
        for n in 0..MAX_ENTRIES + 5 {
            let _ = cache.slot((1, AssigneeRef::Username(n.to_string())));
        }
        let len = cache.slots.lock().expect("lock").len();
        assert!(len <= MAX_ENTRIES, "cache holds {len} entries");
    }

    #[test]
    fn the_same_user_of_the_same_integration_shares_one_slot() {
        let cache = EmailCache::default();
        let a = cache.slot((1, AssigneeRef::Key("K".into())));
        let b = cache.slot((1, AssigneeRef::Key("K".into())));
        let other = cache.slot((2, AssigneeRef::Key("K".into())));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
    }
}
