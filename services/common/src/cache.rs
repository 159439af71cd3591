//! A small in-process cache with a time-to-live and a size bound, for tenant placements and
//! verified API keys. Entries also leave early through explicit invalidation (lifecycle events),
//! and an entry may carry a deadline of its own shorter than the TTL ([`TtlCache::insert_until`]:
//! a key that expires in ten seconds is not served from the cache for five minutes).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    /// Each entry with the instant it stops being served.
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value, if present and neither older than the TTL nor past its own deadline.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        entries
            .get(key)
            .filter(|(until, _)| now < *until)
            .map(|(_, v)| v.clone())
    }

    /// Caches `value` for the TTL.
    pub fn insert(&self, key: K, value: V) {
        self.insert_until(key, value, None);
    }

    /// Caches `value` for the TTL, or until `deadline` if that comes first (`None`: the TTL).
    /// A deadline already past caches nothing.
    pub fn insert_until(&self, key: K, value: V, deadline: Option<Instant>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = match deadline {
            Some(d) => d.min(now + self.ttl),
            None => now + self.ttl,
        };
        if until <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (until, _)| now < *until);
            // Still full of live entries: start over rather than grow. Callers that must not
            // lose entries to a flood keep the flood in a cache of its own.
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (until, value));
    }

    pub fn remove(&self, key: &K) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Drops every entry for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, (_, v)| keep(k, v));
    }

    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_bounded() {
        let c = TtlCache::new(Duration::from_millis(30), 2);
        c.insert("a", 1);
        assert_eq!(c.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&"a"), None);
        c.insert("b", 2);
        c.insert("c", 3);
        c.insert("d", 4);
        assert!(c.len() <= 2);
        assert_eq!(c.get(&"d"), Some(4));
        c.retain(|k, _| *k != "d");
        assert_eq!(c.get(&"d"), None);
    }

    #[test]
    fn an_entry_never_outlives_its_own_deadline() {
        let c = TtlCache::new(Duration::from_secs(300), 10);
        c.insert_until("soon", 1, Some(Instant::now() + Duration::from_millis(20)));
        c.insert_until("past", 2, Some(Instant::now()));
        c.insert_until("later", 3, Some(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(c.get(&"soon"), Some(1));
        assert_eq!(c.get(&"past"), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get(&"soon"), None);
        assert_eq!(c.get(&"later"), Some(3));
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let c = TtlCache::new(Duration::ZERO, 10);
        c.insert(1, 1);
        assert_eq!(c.get(&1), None);
    }
}
