//! A map whose entries expire a fixed time after they were last refreshed, and
//! that holds at most a fixed number of them, the least recently refreshed
//! dropped first: the ingress's bounded memory of verdicts, of the tokens it
//! awaits verdicts on and of the clients they count against (`verdicts.rs`).
//! Not synchronized: its owner locks it. Time is passed in, so tests set it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Entries by key, each live for `ttl` after its last refresh; `capacity` at most.
pub struct Expiring<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// The keys by last refresh (then a sequence number: two refreshes can share
    /// an instant), oldest first.
    order: BTreeMap<(Instant, u64), K>,
    ttl: Duration,
    capacity: usize,
    next: u64,
}

struct Entry<V> {
    refreshed: Instant,
    seq: u64,
    value: V,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    /// An empty map.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            ttl,
            capacity: capacity.max(1),
            next: 0,
        }
    }

    /// How many entries it holds, expired ones not yet dropped included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn live(&self, entry: &Entry<V>, now: Instant) -> bool {
        now.saturating_duration_since(entry.refreshed) < self.ttl
    }

    /// Whether `key` has a live entry at `now`.
    pub fn contains(&self, key: &K, now: Instant) -> bool {
        self.get(key, now).is_some()
    }

    /// The live value of `key` at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|entry| self.live(entry, now))
            .map(|entry| &entry.value)
    }

    /// The live value of `key` at `now`, to change in place (not refreshed).
    pub fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let ttl = self.ttl;
        self.entries
            .get_mut(key)
            .filter(|entry| now.saturating_duration_since(entry.refreshed) < ttl)
            .map(|entry| &mut entry.value)
    }

    /// The value of `key`, refreshed as of `now`: the live one, else `fresh()`
    /// in place of a missing or expired one.
    pub fn refresh(&mut self, key: K, now: Instant, fresh: impl FnOnce() -> V) -> &mut V {
        self.prune(now);
        let seq = self.next;
        self.next += 1;
        let ttl = self.ttl;
        let expired = |entry: &Entry<V>| now.saturating_duration_since(entry.refreshed) >= ttl;
        match self.entries.get_mut(&key) {
            Some(entry) => {
                self.order.remove(&(entry.refreshed, entry.seq));
                if expired(entry) {
                    entry.value = fresh();
                }
                entry.refreshed = entry.refreshed.max(now);
                entry.seq = seq;
                self.order.insert((entry.refreshed, seq), key.clone());
            }
            None => {
                self.order.insert((now, seq), key.clone());
                self.entries.insert(
                    key.clone(),
                    Entry {
                        refreshed: now,
                        seq,
                        value: fresh(),
                    },
                );
                while self.entries.len() > self.capacity {
                    let Some((_, oldest)) = self.order.pop_first() else {
                        break;
                    };
                    self.entries.remove(&oldest);
                }
            }
        }
        let entry = self.entries.get_mut(&key).expect("the entry was just set");
        &mut entry.value
    }

    /// Sets `key` to `value`, refreshed as of `now`.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        let mut value = Some(value);
        let slot = self.refresh(key, now, || value.take().expect("fresh() is called once"));
        if let Some(value) = value {
            *slot = value;
        }
    }

    /// Takes `key`'s entry out, live or not.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&(entry.refreshed, entry.seq));
        Some(entry.value)
    }

    /// Drops the entries expired at `now` (each insert does it first, so memory
    /// follows the live entries).
    pub fn prune(&mut self, now: Instant) {
        while let Some(entry) = self.order.first_entry() {
            let (refreshed, _) = *entry.key();
            if now.saturating_duration_since(refreshed) < self.ttl {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn an_entry_lives_for_its_ttl_after_its_last_refresh() {
        let t0 = Instant::now();
        let mut map = Expiring::new(TTL, 10);
        map.insert("a", 1, t0);
        assert_eq!(map.get(&"a", t0 + Duration::from_secs(9)), Some(&1));
        assert_eq!(map.get(&"a", t0 + TTL), None);
        *map.refresh("a", t0 + Duration::from_secs(5), || 0) += 1;
        assert_eq!(map.get(&"a", t0 + Duration::from_secs(14)), Some(&2));
        // Expired: refreshed with a fresh value.
        assert_eq!(*map.refresh("a", t0 + Duration::from_secs(30), || 7), 7);
        assert!(map.contains(&"a", t0 + Duration::from_secs(39)));
    }

    #[test]
    fn beyond_its_capacity_the_least_recently_refreshed_go_first() {
        let t0 = Instant::now();
        let mut map = Expiring::new(TTL, 3);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            map.insert(key, i, t0 + Duration::from_millis(i as u64));
        }
        // "a" refreshed: "b" is now the oldest.
        map.insert("a", 10, t0 + Duration::from_millis(5));
        map.insert("d", 3, t0 + Duration::from_millis(6));
        assert_eq!(map.len(), 3);
        let now = t0 + Duration::from_millis(7);
        assert!(!map.contains(&"b", now));
        for key in ["a", "c", "d"] {
            assert!(map.contains(&key, now), "{key}");
        }
        // Many more: never over the capacity.
        for i in 0..1000u64 {
            map.insert("x", 0, now);
            map.insert(
                if i % 2 == 0 { "y" } else { "z" },
                0,
                now + Duration::from_millis(i),
            );
            assert!(map.len() <= 3);
        }
    }

    #[test]
    fn inserting_drops_what_has_expired_and_removing_takes_it_out() {
        let t0 = Instant::now();
        let mut map = Expiring::new(TTL, 100);
        for i in 0..50 {
            map.insert(i, (), t0);
        }
        map.insert(1000, (), t0 + TTL);
        assert_eq!(map.len(), 1);
        assert_eq!(map.remove(&1000), Some(()));
        assert_eq!(map.remove(&1000), None);
        assert_eq!(map.len(), 0);
        assert!(map.order.is_empty());
    }
}
