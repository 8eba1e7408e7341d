//! Key groups: the stable assignment of keys to state shards and of shards to subtasks, as
//! Flink's `KeyGroupRangeAssignment`.
//!
//! The hash decides where keyed state lives, so it must give the same answer in every process,
//! build and restart: it is xxh3 (seed 0) over the postcard encoding of the key, and the table
//! in the unit tests pins it.

mod encoder;

use crate::{DataplaneError, Result};

/// A shard of keyed state: `0..max_parallelism`.
pub type KeyGroup = u16;

/// The number of key groups when a job does not say otherwise.
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;

/// The largest number of key groups a job may have (as Flink).
pub const UPPER_MAX_PARALLELISM: u16 = 32768;

/// Keys whose postcard encoding fits in this many bytes are hashed without allocating.
const STACK_KEY_BYTES: usize = 128;

/// The stable 64-bit hash of key bytes: xxh3_64 with seed 0. Must never change.
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The key group of a key hash.
///
/// # Panics
/// If `max_parallelism` is 0.
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u16) -> KeyGroup {
    let n = u64::from(max_parallelism);
    // The remainder is below max_parallelism, so it fits. For a power of two (the default
    // 128) it is the low bits: the same number without a 64-bit division per record.
    (if n.is_power_of_two() { hash & (n - 1) } else { hash % n }) as KeyGroup
}

/// The key group of a key: the [`stable_hash`] of its postcard encoding.
///
/// Called once per record on hash edges, so small keys are encoded into a stack buffer; only
/// keys whose encoding exceeds it go through a heap buffer.
///
/// # Panics
/// If `max_parallelism` is 0, or if postcard cannot encode the key (for example a sequence
/// of unknown length): such a key type is a programming error.
#[inline]
pub fn key_group_of<K: serde::Serialize + ?Sized>(key: &K, max_parallelism: u16) -> KeyGroup {
    let mut buf = [0u8; STACK_KEY_BYTES];
    let mut encoder = encoder::KeyEncoder::new(&mut buf);
    let hash = match key.serialize(&mut encoder) {
        Ok(()) => stable_hash(encoder.written()),
        Err(_) => {
            let bytes = postcard::to_stdvec(key).expect("key cannot be encoded with postcard");
            stable_hash(&bytes)
        }
    };
    key_group_for_hash(hash, max_parallelism)
}

/// A contiguous, half-open range of key groups `[start, end)`: the shards one subtask owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// The first key group in the range.
    pub start: KeyGroup,
    /// One past the last key group in the range.
    pub end: KeyGroup,
}

impl KeyGroupRange {
    /// The range `[start, end)`; empty if `end <= start`.
    pub fn new(start: KeyGroup, end: KeyGroup) -> Self {
        Self { start, end }
    }

    /// The key groups subtask `index` of `parallelism` owns, out of `max_parallelism`.
    ///
    /// As Flink's `computeKeyGroupRangeForOperatorIndex`: the ranges of subtasks
    /// `0..parallelism` are contiguous, disjoint and cover `0..max_parallelism`.
    pub fn for_subtask(max_parallelism: u16, parallelism: usize, index: usize) -> Self {
        debug_assert!(parallelism > 0 && index < parallelism, "subtask {index} of {parallelism}");
        let max = usize::from(max_parallelism);
        let start = (index * max).div_ceil(parallelism);
        // Flink's inclusive end is ((index + 1) * max - 1) / p; this is one past it, and
        // equals `start` when the subtask owns nothing (parallelism > max_parallelism).
        let end = ((index + 1) * max).div_ceil(parallelism);
        Self { start: start as KeyGroup, end: end as KeyGroup }
    }

    /// Whether `kg` is in the range.
    pub fn contains(&self, kg: KeyGroup) -> bool {
        self.start <= kg && kg < self.end
    }

    /// The number of key groups in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end.saturating_sub(self.start))
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key groups in the range, in order (the same as [`KeyGroupRange::as_range`]).
    pub fn iter(&self) -> std::ops::Range<KeyGroup> {
        self.as_range()
    }

    /// The range as a `std::ops::Range`.
    pub fn as_range(&self) -> std::ops::Range<KeyGroup> {
        self.start..self.end
    }
}

impl IntoIterator for KeyGroupRange {
    type Item = KeyGroup;
    type IntoIter = std::ops::Range<KeyGroup>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_range()
    }
}

/// The subtask of `parallelism` that owns key group `kg` (as Flink's
/// `computeOperatorIndexForKeyGroup`); agrees with [`KeyGroupRange::for_subtask`].
pub fn subtask_for_key_group(max_parallelism: u16, parallelism: usize, kg: KeyGroup) -> usize {
    usize::from(kg) * parallelism / usize::from(max_parallelism)
}

/// Checks that `parallelism` is in `1..=max_parallelism`, so that every subtask owns at least
/// one key group.
pub fn check_parallelism(parallelism: usize, max_parallelism: u16) -> Result<()> {
    if parallelism == 0 || parallelism > usize::from(max_parallelism) {
        return Err(DataplaneError::InvalidParallelism { parallelism, max_parallelism });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
