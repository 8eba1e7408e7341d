//! The serializable snapshot of a keyed state store: each state's entries as bytes per key
//! group, so that a restore at another parallelism picks just the key groups it owns.
//!
//! A key group's bytes are canonical, the same for equal contents whichever backend wrote them:
//! the postcard encoding of its entries as a list of `(key, namespace, value)`, where a list
//! state's value is the list and a map state's is its `(user key, value)` pairs, sorted by the
//! postcard encoding of key and namespace (and of the user key within a map). That order is
//! bytewise order of RocksDB keys too (key group ‖ postcard(key) ‖ postcard(namespace) ‖
//! postcard(user key)), so the byte tables emit their entries in scan order without sorting.

use std::ops::Range;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::StateKind;
use crate::{KeyGroup, Result, StateError};

#[cfg(test)]
mod tests;

/// A key group's entries as its snapshot encodes them: `(key, namespace, value)`, where the value
/// of a map is its `(user key, value)` pairs.
pub(crate) type Entries<K, N, T> = Vec<(K, N, T)>;

/// Postcard-encodes a key group's [`Entries`] (or a sort key of them).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(cannot_encode)
}

/// Appends the postcard encoding of `value` (a part of a key group's [`Entries`]) to `buf`.
pub(crate) fn append<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<()> {
    *buf = postcard::to_extend(value, std::mem::take(buf)).map_err(cannot_encode)?;
    Ok(())
}

fn cannot_encode(e: postcard::Error) -> StateError {
    StateError::Backend(format!("cannot encode state entries for a snapshot: {e}"))
}

/// Decodes a whole key-group snapshot; bytes left over mean it was not one.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((entries, [])) => Ok(entries),
        Ok((_, rest)) => {
            Err(StateError::Corrupt { what: format!("bytes left over after the entries ({})", rest.len()) })
        }
        Err(e) => Err(StateError::Corrupt { what: format!("cannot decode the entries: {e}") }),
    }
}

/// The keyed state of one or more operator subtasks at a checkpoint.
///
/// Made by [`KeyedStateStore::snapshot`](crate::KeyedStateStore::snapshot), combined across
/// subtasks with [`merge`](Self::merge), and loaded with
/// [`KeyedStateStore::restore`](crate::KeyedStateStore::restore), which skips the key groups the
/// restoring store does not own.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyedSnapshot {
    /// The snapshotted states, in the order their store registered them.
    pub states: Vec<StateSnapshot>,
}

/// The snapshot of one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateSnapshot {
    /// The name the state is registered under.
    pub name: String,
    /// The kind of the state.
    pub kind: StateKind,
    /// The backend's bytes for each non-empty key group, by ascending key group.
    pub key_groups: Vec<(KeyGroup, Vec<u8>)>,
}

impl KeyedSnapshot {
    /// The number of payload bytes over all states and key groups (names and framing excluded).
    pub fn size_bytes(&self) -> usize {
        self.states.iter().map(StateSnapshot::size_bytes).sum()
    }

    /// Adds the states of `other`, e.g. another subtask's snapshot, to restore at another
    /// parallelism from the union.
    ///
    /// A state of the same name and kind gets `other`'s key groups, kept in ascending order; a key
    /// group present in both is kept twice, and a restore applies both. A state of the same name
    /// but another kind is kept apart, so that restoring it fails with
    /// [`StateError::TypeMismatch`](crate::StateError::TypeMismatch) rather than silently.
    pub fn merge(&mut self, other: KeyedSnapshot) {
        for state in other.states {
            match self.states.iter_mut().find(|s| s.name == state.name && s.kind == state.kind) {
                Some(existing) => {
                    existing.key_groups.extend(state.key_groups);
                    // Stable, so the two copies of a key group present twice keep their order.
                    existing.key_groups.sort_by_key(|&(kg, _)| kg);
                }
                None => self.states.push(state),
            }
        }
    }

    /// Drops the key groups outside `range`, and the states left with none.
    pub fn retain_key_groups(&mut self, range: Range<KeyGroup>) {
        for state in &mut self.states {
            state.key_groups.retain(|(kg, _)| range.contains(kg));
        }
        self.states.retain(|state| !state.key_groups.is_empty());
    }
}

impl StateSnapshot {
    /// The number of payload bytes over all key groups.
    pub fn size_bytes(&self) -> usize {
        self.key_groups.iter().map(|(_, bytes)| bytes.len()).sum()
    }
}
