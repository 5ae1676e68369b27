//! A small in-process cache of Jira's answers, shared by all of a worker's tasks
//! (hidden emails, statuses): bounded in age and size, with a slot per key whose
//! async lock makes concurrent look-ups of one key wait for the first instead of
//! each asking Jira.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One key's answer and when it was fetched.
type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// Answers by key, each reused for `ttl`; at most `max_entries` keys.
pub struct Cache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    ttl: Duration,
    max_entries: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            slots: Mutex::default(),
            ttl,
            max_entries,
        }
    }

    /// The answer for `key`, from the cache or from `fetch`. Only `Ok(Some(_))` is
    /// kept: an error, or `Ok(None)` (nothing could be asked), is not.
    pub async fn get_or_fetch<E, Fut>(
        &self,
        key: K,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Option<V>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if let Some((fetched, answer)) = cached.as_ref()
            && fetched.elapsed() < self.ttl
        {
            tracing::debug!("answered from the cache");
            return Ok(Some(answer.clone()));
        }
        let answer = fetch().await?;
        if let Some(answer) = &answer {
            *cached = Some((Instant::now(), answer.clone()));
        }
        Ok(answer)
    }

    /// The slot of `key`, created if needed; a full cache is first pruned of
    /// expired answers, and emptied if that is not enough.
    fn slot(&self, key: K) -> Slot<V> {
        // A poisoned lock only means another task panicked mid-insert; the map is usable.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slots.contains_key(&key) && slots.len() >= self.max_entries {
            let ttl = self.ttl;
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(answer) => answer.as_ref().is_some_and(|(at, _)| at.elapsed() < ttl),
                Err(_) => true, // a look-up in flight
            });
            if slots.len() >= self.max_entries {
                slots.clear();
            }
        }
        Arc::clone(slots.entry(key).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_drops_expired_answers_and_stays_bounded() {
        let cache: Cache<usize, ()> = Cache::new(Duration::from_secs(300), 100);
        for n in 0..105 {
            let _ = cache.slot(n);
        }
        let len = cache.slots.lock().expect("lock").len();
        assert!(len <= 100, "cache holds {len} entries");
    }

    #[test]
    fn the_same_key_shares_one_slot() {
        let cache: Cache<(i64, &str), ()> = Cache::new(Duration::from_secs(300), 100);
        let a = cache.slot((1, "K"));
        let b = cache.slot((1, "K"));
        let other = cache.slot((2, "K"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[tokio::test]
    async fn answers_are_reused_and_absences_and_errors_are_not() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(300), 100);
        let asked = std::sync::atomic::AtomicU32::new(0);
        let fetch = || async {
            Ok::<_, ()>(Some(
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            ))
        };
        assert_eq!(cache.get_or_fetch(1, fetch).await, Ok(Some(0)));
        assert_eq!(cache.get_or_fetch(1, fetch).await, Ok(Some(0)), "reused");
        assert_eq!(
            cache.get_or_fetch(2, || async { Ok::<_, ()>(None) }).await,
            Ok(None)
        );
        assert_eq!(
            cache.get_or_fetch(2, fetch).await,
            Ok(Some(1)),
            "absence not kept"
        );
        assert_eq!(cache.get_or_fetch(3, || async { Err(()) }).await, Err(()));
        assert_eq!(
            cache.get_or_fetch(3, fetch).await,
            Ok(Some(2)),
            "error not kept"
        );
    }
}
