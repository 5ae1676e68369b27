//! A small in-process cache of answers, shared by all of a worker's tasks (Jira's
//! hidden emails and statuses, the integrations' rows): bounded in age and size.
//! Concurrent look-ups of one key share the first one's answer through the
//! worker's single flight ([`SingleFlight`]) instead of each asking.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::single_flight::SingleFlight;

/// Answers by key, each reused for `ttl`; at most `max_entries` keys.
pub struct Cache<K, V> {
    /// Look-ups in progress.
    flights: SingleFlight<K, Option<V>>,
    /// Answers and until when each is reused.
    kept: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    max_entries: usize,
}

/// How a look-up may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// From the cache while its answer lasts.
    Kept,
    /// Only by a fetch (whose answer replaces what was kept).
    Fresh,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            flights: SingleFlight::default(),
            kept: Mutex::default(),
            ttl,
            max_entries,
        }
    }

    /// The answer for `key`, from the cache or from `fetch`. Only `Ok(Some(_))` is
    /// kept: an error, or `Ok(None)` (nothing could be asked), is not.
    pub async fn get_or_fetch<E, Fut>(
        &self,
        key: K,
        fetch: impl Fn() -> Fut,
    ) -> Result<Option<V>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let answer = self.get(key, Read::Kept, fetch).await?;
        Ok(answer.map(|(answer, _)| answer))
    }

    /// As [`Cache::get_or_fetch`], read as `read` says; with the answer, whether
    /// it came from the cache. A fetch that answers `Ok(None)` drops what was kept.
    pub async fn get<E, Fut>(
        &self,
        key: K,
        read: Read,
        fetch: impl Fn() -> Fut,
    ) -> Result<Option<(V, bool)>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if read == Read::Kept
            && let Some(answer) = self.fresh(&key)
        {
            tracing::debug!("answered from the cache");
            return Ok(Some((answer, true)));
        }
        let answer = self.flights.get(&key, fetch).await?;
        match &answer {
            Some(answer) => self.keep(key, answer.clone()),
            None => self.forget(&key),
        }
        Ok(answer.map(|answer| (answer, false)))
    }

    /// The answer kept for `key`, if it still lasts.
    fn fresh(&self, key: &K) -> Option<V> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        kept.get(key)
            .filter(|(until, _)| now < *until)
            .map(|(_, answer)| answer.clone())
    }

    /// Keeps `answer` for `key`; a full cache is first pruned of expired
    /// answers, and emptied if that is not enough.
    fn keep(&self, key: K, answer: V) {
        let now = Instant::now();
        // A poisoned lock only means another task panicked mid-insert; the map is usable.
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.contains_key(&key) && kept.len() >= self.max_entries {
            kept.retain(|_, (until, _)| now < *until);
            if kept.len() >= self.max_entries {
                kept.clear();
            }
        }
        kept.insert(key, (now + self.ttl, answer));
    }

    /// Drops what was kept for `key`.
    fn forget(&self, key: &K) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn a_full_cache_drops_expired_answers_and_stays_bounded() {
        let cache: Cache<usize, ()> = Cache::new(Duration::from_secs(300), 100);
        for n in 0..105 {
            cache.keep(n, ());
        }
        let len = cache.kept.lock().expect("lock").len();
        assert!(len <= 100, "cache holds {len} entries");
        assert_eq!(cache.fresh(&104), Some(()), "the newest answer is kept");
    }

    #[test]
    fn expired_answers_are_not_fresh() {
        let cache: Cache<u8, u8> = Cache::new(Duration::ZERO, 100);
        cache.keep(1, 1);
        assert_eq!(cache.fresh(&1), None);
    }

    #[tokio::test]
    async fn answers_are_reused_and_absences_and_errors_are_not() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(300), 100);
        let asked = AtomicU32::new(0);
        let fetch = || async { Ok::<_, ()>(Some(asked.fetch_add(1, Ordering::SeqCst))) };
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

    #[tokio::test]
    async fn a_fresh_read_fetches_and_replaces_what_was_kept_and_an_absence_drops_it() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(300), 100);
        let asked = AtomicU32::new(0);
        let fetch = || async { Ok::<_, ()>(Some(asked.fetch_add(1, Ordering::SeqCst))) };
        assert_eq!(cache.get(1, Read::Kept, fetch).await, Ok(Some((0, false))));
        assert_eq!(
            cache.get(1, Read::Kept, fetch).await,
            Ok(Some((0, true))),
            "kept"
        );
        assert_eq!(
            cache.get(1, Read::Fresh, fetch).await,
            Ok(Some((1, false))),
            "fetched though kept"
        );
        assert_eq!(
            cache.get(1, Read::Kept, fetch).await,
            Ok(Some((1, true))),
            "the fresh answer is kept"
        );
        let absent = || async { Ok::<_, ()>(None) };
        assert_eq!(cache.get(1, Read::Fresh, absent).await, Ok(None));
        assert_eq!(
            cache.get(1, Read::Kept, fetch).await,
            Ok(Some((2, false))),
            "the absence dropped what was kept"
        );
    }

    #[tokio::test]
    async fn concurrent_look_ups_of_one_key_ask_once() {
        let cache = Arc::new(Cache::<u8, u32>::new(Duration::from_secs(300), 100));
        let asked = Arc::new(AtomicU32::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (cache, asked, release) =
                    (Arc::clone(&cache), Arc::clone(&asked), Arc::clone(&release));
                tokio::spawn(async move {
                    cache
                        .get_or_fetch(7, || async {
                            asked.fetch_add(1, Ordering::SeqCst);
                            release.notified().await;
                            Ok::<_, ()>(Some(42))
                        })
                        .await
                })
            })
            .collect();
        while asked.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        for task in tasks {
            assert_eq!(task.await.expect("join"), Ok(Some(42)));
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }
}
