//! The object-safe interface between typed keyed state and the backends that store it.
//!
//! Table creation is double-dispatched: the typed front end hands the backend a
//! [`TableFactory`] that knows the state's types, and the backend asks it for the kind of table
//! it stores (typed objects for memory; later, a byte table wrapped in serde codecs for RocksDB).
//! Tables are partitioned by key group so that a key-group range can be snapshotted and
//! redistributed on its own.
//!
//! Every table snapshots and restores one key group at a time, as opaque bytes: the memory
//! backend encodes its typed entries with postcard; a file-based backend may encode something
//! else, as long as its own `restore_key_group` reads it back.

use std::any::Any;
use std::ops::Range;

use crate::{KeyGroup, Result};

/// The kind of a keyed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StateKind {
    /// One value per key and namespace.
    Value,
    /// A list of values per key and namespace.
    List,
    /// A map from user keys to values per key and namespace.
    Map,
}

/// A table holding one value per (key group, key, namespace).
#[expect(
    clippy::len_without_is_empty,
    reason = "len is a whole-table statistic for metrics and tests; operators ask about one entry"
)]
pub trait ValueTable<K, N, V>: Send {
    /// A clone of the value, if any.
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>>;
    /// Sets the value, replacing any previous one.
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()>;
    /// Read-modify-write with one lookup for a present value: present -> `f(Some(&mut v))` may
    /// change `v` in place, and a returned `Some(new)` replaces it; absent -> `f(None)`, and a
    /// returned `Some(new)` is inserted.
    fn upsert(&mut self, kg: KeyGroup, key: &K, ns: &N, f: &mut dyn FnMut(Option<&mut V>) -> Option<V>) -> Result<()>;
    /// Removes the value, returning it if there was one.
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>>;
    /// The entries of key group `kg` as bytes, or `None` if it has none; equal contents give
    /// equal bytes, whatever order they were written in.
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>>;
    /// Adds the entries of a [`snapshot_key_group`](Self::snapshot_key_group) of key group `kg`
    /// to this table, replacing the values of keys and namespaces it already has.
    ///
    /// Fails with [`StateError::KeyGroupOutOfRange`](crate::StateError::KeyGroupOutOfRange) if
    /// the table does not cover `kg`, and with [`StateError::Corrupt`](crate::StateError::Corrupt)
    /// (adding nothing) if `bytes` is not such a snapshot.
    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()>;
    /// The number of entries over all key groups.
    fn len(&self) -> usize;
}

/// A table holding a list of values per (key group, key, namespace).
#[expect(
    clippy::len_without_is_empty,
    reason = "len is a whole-table statistic for metrics and tests; operators ask about one entry"
)]
pub trait ListTable<K, N, V>: Send {
    /// A clone of the list; empty if there is none.
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<V>>;
    /// Appends a value to the list.
    fn add(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()>;
    /// Replaces the list; an empty `values` clears it.
    fn update(&mut self, kg: KeyGroup, key: &K, ns: &N, values: Vec<V>) -> Result<()>;
    /// Removes the list.
    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()>;
    /// The entries of key group `kg` as bytes, or `None` if it has none; equal contents give
    /// equal bytes, whatever order they were written in.
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>>;
    /// Adds the entries of a [`snapshot_key_group`](Self::snapshot_key_group) of key group `kg`
    /// to this table, appending to the lists of keys and namespaces it already has.
    ///
    /// Fails with [`StateError::KeyGroupOutOfRange`](crate::StateError::KeyGroupOutOfRange) if
    /// the table does not cover `kg`, and with [`StateError::Corrupt`](crate::StateError::Corrupt)
    /// (adding nothing) if `bytes` is not such a snapshot.
    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()>;
    /// The number of (key, namespace) lists over all key groups.
    fn len(&self) -> usize;
}

/// A table holding a map from user keys to values per (key group, key, namespace).
#[expect(
    clippy::len_without_is_empty,
    reason = "len is a whole-table statistic for metrics and tests; operators ask about one entry"
)]
pub trait MapTable<K, N, UK, UV>: Send {
    /// A clone of the value under `user_key`, if any.
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>>;
    /// Sets the value under `user_key`, replacing any previous one.
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()>;
    /// Removes the value under `user_key`, returning it if there was one.
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>>;
    /// Whether there is a value under `user_key`.
    fn contains(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<bool>;
    /// Clones of all entries of the map, in no particular order.
    fn entries(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<(UK, UV)>>;
    /// Whether the map has no entries.
    fn is_empty(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<bool>;
    /// Removes all entries of the map.
    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()>;
    /// The entries of key group `kg` as bytes, or `None` if it has none; equal contents give
    /// equal bytes, whatever order they were written in.
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>>;
    /// Adds the entries of a [`snapshot_key_group`](Self::snapshot_key_group) of key group `kg`
    /// to this table, replacing the values of user keys it already has.
    ///
    /// Fails with [`StateError::KeyGroupOutOfRange`](crate::StateError::KeyGroupOutOfRange) if
    /// the table does not cover `kg`, and with [`StateError::Corrupt`](crate::StateError::Corrupt)
    /// (adding nothing) if `bytes` is not such a snapshot.
    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()>;
    /// The number of non-empty (key, namespace) maps over all key groups.
    fn len(&self) -> usize;
}

/// Supplied by the typed front end so that an object-safe backend can build a typed table.
pub trait TableFactory {
    /// The kind of table this factory builds.
    fn kind(&self) -> StateKind;
    /// A table that keeps typed objects, covering the given key groups: a
    /// `Box<dyn ValueTable<K, N, V>>` (or list or map table) inside the `Any`.
    fn memory_table(&self, key_groups: Range<KeyGroup>) -> Box<dyn Any + Send>;
}

/// Where the keyed state of one operator subtask lives.
pub trait KeyedStateBackend: Send {
    /// The backend's name, e.g. `"memory"`.
    fn name(&self) -> &'static str;
    /// The key groups this backend covers.
    fn key_groups(&self) -> Range<KeyGroup>;
    /// Creates the table of the state `name`, built by `factory`; the caller downcasts it.
    fn create_table(&mut self, name: &str, factory: &dyn TableFactory) -> Result<Box<dyn Any + Send>>;
}
