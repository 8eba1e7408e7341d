//! The timer queue of one keyed operator: timers per key and namespace, deduplicated, fired in
//! time order; sans-IO, so the operator's driver decides when time advances.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use rustc_hash::FxBuildHasher;

use crate::Timestamp;

#[cfg(test)]
mod tests;

/// Timers of one keyed operator, each a (timestamp, key, namespace) registered at most once.
///
/// Timers fire in timestamp order and, among equal timestamps, in registration order, so a
/// replay of the same input fires them in the same order.
pub struct TimerService<K, N> {
    /// The timers in firing order; the sequence number orders equal timestamps.
    queue: BTreeMap<(Timestamp, u64), (K, N)>,
    /// The sequence number of each timer, to deduplicate and delete without a scan.
    index: HashMap<(Timestamp, K, N), u64, FxBuildHasher>,
    next_seq: u64,
}

/// A borrowed timer that looks up a `(Timestamp, K, N)` without cloning; it hashes exactly as
/// the tuple does and must not implement `Eq` (see `memory::KeyNs`).
struct TimerRef<'a, K, N>(Timestamp, &'a K, &'a N);

impl<K: Hash, N: Hash> Hash for TimerRef<'_, K, N> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
        self.2.hash(state);
    }
}

impl<K: Eq, N: Eq> Equivalent<(Timestamp, K, N)> for TimerRef<'_, K, N> {
    #[inline]
    fn equivalent(&self, other: &(Timestamp, K, N)) -> bool {
        self.0 == other.0 && *self.1 == other.1 && *self.2 == other.2
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerService<K, N> {
    /// An empty timer queue.
    pub fn new() -> Self {
        Self { queue: BTreeMap::new(), index: HashMap::default(), next_seq: 0 }
    }

    /// Registers a timer; `false` if the same (ts, key, ns) is already registered.
    pub fn register(&mut self, ts: Timestamp, key: &K, ns: &N) -> bool {
        match self.index.entry_ref(&TimerRef(ts, key, ns)) {
            EntryRef::Occupied(_) => false,
            EntryRef::Vacant(entry) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                entry.insert_with_key((ts, key.clone(), ns.clone()), seq);
                self.queue.insert((ts, seq), (key.clone(), ns.clone()));
                true
            }
        }
    }

    /// Deletes a timer; `false` if it was not registered.
    pub fn delete(&mut self, ts: Timestamp, key: &K, ns: &N) -> bool {
        match self.index.remove(&TimerRef(ts, key, ns)) {
            Some(seq) => {
                self.queue.remove(&(ts, seq));
                true
            }
            None => false,
        }
    }

    /// The timestamp of the earliest timer.
    pub fn peek(&self) -> Option<Timestamp> {
        self.queue.first_key_value().map(|(&(ts, _), _)| ts)
    }

    /// Removes and returns the earliest timer if it is due, i.e. its timestamp is at most
    /// `upto`; among equal timestamps, the one registered first.
    pub fn pop_due(&mut self, upto: Timestamp) -> Option<(Timestamp, K, N)> {
        let entry = self.queue.first_entry()?;
        let ts = entry.key().0;
        if ts > upto {
            return None;
        }
        let (key, ns) = entry.remove();
        self.index.remove(&TimerRef(ts, &key, &ns));
        Some((ts, key, ns))
    }

    /// All timers in firing order (by timestamp, then registration), e.g. for a checkpoint.
    pub fn entries(&self) -> Vec<(Timestamp, K, N)> {
        self.queue.iter().map(|(&(ts, _), (key, ns))| (ts, key.clone(), ns.clone())).collect()
    }

    /// Registers each timer of `entries` in turn, skipping those already registered, as
    /// [`register`](Self::register) does; restoring [`entries`](Self::entries) into an empty
    /// service gives one that fires the same timers in the same order.
    pub fn restore(&mut self, entries: impl IntoIterator<Item = (Timestamp, K, N)>) {
        for (ts, key, ns) in entries {
            self.register(ts, &key, &ns);
        }
    }

    /// The number of registered timers.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> Default for TimerService<K, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, N> fmt::Debug for TimerService<K, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService")
            .field("len", &self.queue.len())
            .field("earliest", &self.queue.first_key_value().map(|(&(ts, _), _)| ts))
            .finish()
    }
}
