//! The serializable snapshot of a keyed state store: each state's entries as opaque bytes per key
//! group, so that a restore at another parallelism picks just the key groups it owns.

use std::ops::Range;

use crate::KeyGroup;
use crate::backend::StateKind;

#[cfg(test)]
mod tests;

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
