//! Prompt-cache state shared by the emulated providers: entries that live in memory until
//! their time to live runs out, and the prefix bookkeeping every provider's rule builds on.
//!
//! A prompt is seen as a list of *segments* in the order the service reads them (tools,
//! system, then messages or blocks). Each segment boundary has a running hash of everything
//! before it and a running token count; providers store the boundaries they cache and look up
//! the longest stored one on the next request.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::text;

/// Most entries a map keeps unless told otherwise: the emulator runs inside a Hub for as
/// long as the Hub runs, so what it remembers must stay bounded however many calls it answers.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Entries keyed by `K`, each expiring after its own TTL; past its capacity the entry closest
/// to expiry goes first.
#[derive(Debug)]
pub struct TtlMap<K: Ord, V> {
    entries: Mutex<BTreeMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Ord + Clone, V: Clone> Default for TtlMap<K, V> {
    fn default() -> Self {
        TtlMap::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<K: Ord + Clone, V: Clone> TtlMap<K, V> {
    pub fn with_capacity(capacity: usize) -> Self {
        TtlMap {
            entries: Mutex::new(BTreeMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The live entries, with expired ones dropped first.
    fn live(&self) -> MutexGuard<'_, BTreeMap<K, (Instant, V)>> {
        let mut map = match self.entries.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        map.retain(|_, (expires, _)| *expires > now);
        map
    }

    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        let mut map = self.live();
        map.insert(key, (Instant::now() + ttl, value));
        while map.len() > self.capacity {
            let soonest = map
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| k.clone());
            match soonest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.live().get(key).map(|(_, v)| v.clone())
    }

    /// The value and the time it has left.
    pub fn get_with_ttl(&self, key: &K) -> Option<(V, Duration)> {
        let now = Instant::now();
        self.live()
            .get(key)
            .map(|(expires, v)| (v.clone(), expires.saturating_duration_since(now)))
    }

    pub fn contains(&self, key: &K) -> bool {
        self.live().contains_key(key)
    }

    /// Gives a live entry a new TTL from now; false when there is none.
    pub fn refresh(&self, key: &K, ttl: Duration) -> bool {
        match self.live().get_mut(key) {
            Some(entry) => {
                entry.0 = Instant::now() + ttl;
                true
            }
            None => false,
        }
    }

    pub fn remove(&self, key: &K) -> Option<V> {
        self.live().remove(key).map(|(_, v)| v)
    }

    /// Every live entry in key order.
    pub fn values(&self) -> Vec<V> {
        self.live().values().map(|(_, v)| v.clone()).collect()
    }
}

/// One boundary after a segment: the hash of everything up to it and its token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    pub hash: u64,
    pub tokens: u32,
}

/// Builds the boundaries of a prompt, segment by segment.
#[derive(Debug, Clone)]
pub struct Prefix {
    hash: u64,
    tokens: u32,
    pub boundaries: Vec<Boundary>,
}

impl Prefix {
    /// A prefix for `model`: caches are per model.
    pub fn new(model: &str) -> Prefix {
        Prefix {
            hash: text::seed_of(model.as_bytes()),
            tokens: 0,
            boundaries: Vec::new(),
        }
    }

    /// Adds a segment: `value` (without any `cache_control` marker, which is not content)
    /// costing `tokens`.
    pub fn push(&mut self, value: &Value, tokens: u32) -> Boundary {
        let mut content = value.clone();
        if let Some(map) = content.as_object_mut() {
            map.remove("cache_control");
        }
        self.hash = text::seed_of(format!("{:x}{content}", self.hash).as_bytes());
        self.tokens += tokens;
        let boundary = Boundary {
            hash: self.hash,
            tokens: self.tokens,
        };
        self.boundaries.push(boundary);
        boundary
    }

    /// The tokens the segments so far cost.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_expire() {
        let map: TtlMap<u64, u32> = TtlMap::default();
        map.insert(1, 10, Duration::from_secs(60));
        map.insert(2, 20, Duration::ZERO);
        assert_eq!(map.get(&1), Some(10));
        assert!(!map.contains(&2));
        assert!(map.refresh(&1, Duration::from_secs(1)));
        assert_eq!(map.remove(&1), Some(10));
        assert!(map.values().is_empty());
    }

    #[test]
    fn a_full_map_drops_the_entry_closest_to_expiry() {
        let map: TtlMap<u64, u32> = TtlMap::with_capacity(3);
        for (k, secs) in [(1, 50), (2, 10), (3, 60), (4, 70)] {
            map.insert(k, 0, Duration::from_secs(secs));
        }
        let kept: Vec<bool> = (1..=4).map(|k| map.contains(&k)).collect();
        assert_eq!(kept, vec![true, false, true, true]);
        map.insert(5, 0, Duration::from_secs(80));
        assert_eq!(map.values().len(), 3);
        assert!(!map.contains(&1));
    }

    #[test]
    fn prefixes_ignore_cache_markers_and_differ_by_model() {
        let mut a = Prefix::new("m");
        let mut b = Prefix::new("m");
        let mut c = Prefix::new("other");
        let plain = json!({"type": "text", "text": "hi"});
        let marked = json!({"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}});
        assert_eq!(a.push(&plain, 1), b.push(&marked, 1));
        assert_ne!(a.push(&plain, 1).hash, c.push(&plain, 1).hash);
        assert_eq!(a.tokens(), 2);
    }
}
