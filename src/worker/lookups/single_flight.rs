//! The worker's one single-flight mechanism: tasks that ask the same thing at
//! the same time share one lookup. In a burst the worker's tasks ask for the
//! same integration row, hidden email or statuses together; the first asks
//! Postgres or Jira (under a [`Cache`](super::cache::Cache), which keeps the
//! answer for a while); those that ask while it waits take its answer, at most
//! one lookup's time older than their own would have been. Nothing is kept here
//! once answered: keeping is the cache's.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// An answer on its way: `None` until it comes, then `Some(None)` if the asker
/// failed (each waiter then asks itself, for an error of its own).
type Answer<V> = watch::Receiver<Option<Option<V>>>;

/// Lookups in progress, by key.
pub struct SingleFlight<K, V> {
    waiting: Mutex<HashMap<K, Answer<V>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// `lookup`'s answer for `key`, or the answer of the lookup of `key` in
    /// progress; an error is never shared.
    pub async fn get<E, F>(&self, key: &K, lookup: impl Fn() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let asked = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            match waiting.get(key) {
                Some(answer) => Err(answer.clone()),
                None => {
                    let (sender, answer) = watch::channel(None);
                    waiting.insert(key.clone(), answer);
                    Ok(sender)
                }
            }
        };
        match asked {
            Ok(sender) => {
                let asking = Asking {
                    waiting: &self.waiting,
                    key,
                    sender,
                };
                let result = lookup().await;
                asking.answer(result.as_ref().ok().cloned());
                result
            }
            Err(mut answer) => {
                if let Ok(answered) = answer.wait_for(Option::is_some).await
                    && let Some(Some(value)) = answered.clone()
                {
                    return Ok(value);
                }
                lookup().await
            }
        }
    }
}

/// The lookup in progress of `key`: removed from the map when answered, and also
/// when the asker is dropped before it is (its waiters then ask themselves).
struct Asking<'a, K: Hash + Eq, V> {
    waiting: &'a Mutex<HashMap<K, Answer<V>>>,
    key: &'a K,
    sender: watch::Sender<Option<Option<V>>>,
}

impl<K: Hash + Eq, V> Asking<'_, K, V> {
    fn answer(self, value: Option<V>) {
        self.forget();
        self.sender.send_replace(Some(value));
    }

    fn forget(&self) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.key);
    }
}

impl<K: Hash + Eq, V> Drop for Asking<'_, K, V> {
    fn drop(&mut self) {
        self.forget();
        self.sender.send_if_modified(|answer| {
            let unanswered = answer.is_none();
            if unanswered {
                *answer = Some(None);
            }
            unanswered
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    /// Lookups that wait for `release` and count themselves.
    struct Fake {
        asked: AtomicUsize,
        release: Notify,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                asked: AtomicUsize::new(0),
                release: Notify::new(),
            })
        }

        async fn lookup(&self, fail: bool) -> Result<u32, String> {
            let n = self.asked.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            if fail {
                Err(format!("failure {n}"))
            } else {
                Ok(7)
            }
        }
    }

    /// A task asking `flights` for `key`, through `fake`.
    fn ask(
        flights: &Arc<SingleFlight<&'static str, u32>>,
        fake: &Arc<Fake>,
        key: &'static str,
        fail: bool,
    ) -> tokio::task::JoinHandle<Result<u32, String>> {
        let (flights, fake) = (Arc::clone(flights), Arc::clone(fake));
        tokio::spawn(async move { flights.get(&key, || fake.lookup(fail)).await })
    }

    async fn until_asked(fake: &Fake, n: usize) {
        while fake.asked.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn lookups_of_one_key_at_the_same_time_share_one_answer() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let fake = Fake::new();
        let tasks: Vec<_> = (0..5).map(|_| ask(&flights, &fake, "a", false)).collect();
        until_asked(&fake, 1).await;
        // The others join the one in progress (give them the chance to).
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        fake.release.notify_waiters();
        for task in tasks {
            assert_eq!(task.await.expect("join"), Ok(7));
        }
        assert_eq!(fake.asked.load(Ordering::SeqCst), 1);
        // Nothing is kept: the next asks anew.
        let fake2 = Fake::new();
        let next = ask(&flights, &fake2, "a", false);
        until_asked(&fake2, 1).await;
        fake2.release.notify_waiters();
        assert_eq!(next.await.expect("join"), Ok(7));
    }

    #[tokio::test]
    async fn an_error_is_not_shared_and_other_keys_ask_for_themselves() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let fake = Fake::new();
        let first = ask(&flights, &fake, "a", true);
        until_asked(&fake, 1).await;
        let waiter = ask(&flights, &fake, "a", true);
        let other = ask(&flights, &fake, "b", false);
        until_asked(&fake, 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        fake.release.notify_waiters();
        assert_eq!(first.await.expect("join"), Err("failure 0".to_owned()));
        // The waiter of the failed lookup asks itself: its own failure.
        until_asked(&fake, 3).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        fake.release.notify_waiters();
        let mine = waiter.await.expect("join");
        assert!(matches!(&mine, Err(e) if e != "failure 0"), "{mine:?}");
        assert_eq!(other.await.expect("join"), Ok(7));
    }

    #[tokio::test]
    async fn an_asker_dropped_midway_lets_its_waiters_ask_themselves() {
        let flights = Arc::new(SingleFlight::<&str, u32>::default());
        let fake = Fake::new();
        let first = ask(&flights, &fake, "a", false);
        until_asked(&fake, 1).await;
        let waiter = ask(&flights, &fake, "a", false);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        first.abort();
        until_asked(&fake, 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        fake.release.notify_waiters();
        assert_eq!(waiter.await.expect("join"), Ok(7));
    }
}
