//! The object-safe interface between typed keyed state and the backends that store it.
//!
//! Table creation is double-dispatched: the typed front end hands the backend a
//! [`TableFactory`] that knows the state's types, and the backend asks it for the kind of table
//! it stores: typed objects for memory, or, for a backend that stores bytes (RocksDB), its
//! [`RawTable`] wrapped in the factory's postcard codecs. Tables are partitioned by key group so
//! that a key-group range can be snapshotted and redistributed on its own.
//!
//! Every table snapshots and restores one key group at a time in one canonical format (the
//! postcard encoding of its sorted entries, see `snapshot.rs`), whatever the backend, so that a
//! savepoint taken on one backend restores on the other. A table may also freeze its contents
//! ([`FrozenTable`]) so that a snapshot is serialized off the processing loop (memory:
//! key groups shared, entries copied on write). A backend can also take checkpoints of its own
//! ([`KeyedStateBackend::checkpoint`]): RocksDB's are incremental files.

use std::any::Any;
use std::ops::Range;

use crate::checkpoint::PendingKeyedSnapshot;
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
    /// The table's contents as they are now, for a checkpoint to serialize off the processing
    /// loop while the table changes on; `None` (the default) if the table cannot freeze them,
    /// and the checkpoint serializes it at once instead.
    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        None
    }
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
    /// The table's contents as they are now, for a checkpoint to serialize off the processing
    /// loop while the table changes on; `None` (the default) if the table cannot freeze them,
    /// and the checkpoint serializes it at once instead.
    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        None
    }
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
    /// The table's contents as they are now, for a checkpoint to serialize off the processing
    /// loop while the table changes on; `None` (the default) if the table cannot freeze them,
    /// and the checkpoint serializes it at once instead.
    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        None
    }
    /// The number of non-empty (key, namespace) maps over all key groups.
    fn len(&self) -> usize;
}

/// A table's contents frozen at a checkpoint by [`ValueTable::freeze`] (or a list or map
/// table's), kept apart from the live table, which processing goes on changing, so that the
/// checkpoint serializes them on another thread.
pub trait FrozenTable: Send {
    /// The frozen entries of key group `kg` as bytes, exactly as the table's
    /// `snapshot_key_group` gave them at the moment of freezing; the frozen table then lets go
    /// of them (each key group is taken once), so that the live table's writes to that key
    /// group no longer need to leave the frozen entries be.
    fn take_key_group(&mut self, kg: KeyGroup) -> Result<Option<Vec<u8>>>;
}

/// Supplied by the typed front end so that an object-safe backend can build a typed table.
pub trait TableFactory {
    /// The kind of table this factory builds.
    fn kind(&self) -> StateKind;
    /// A table that keeps typed objects, covering the given key groups: a
    /// `Box<dyn ValueTable<K, N, V>>` (or list or map table) inside the `Any`.
    fn memory_table(&self, key_groups: Range<KeyGroup>) -> Box<dyn Any + Send>;
    /// A table that keeps its entries as bytes in `raw`, covering the given key groups: `raw`
    /// wrapped in the state's postcard codecs, as a `Box<dyn ValueTable<K, N, V>>` (or list or
    /// map table) inside the `Any`.
    ///
    /// The wrapper lays out keys as DESIGN §6 says: key group (2 bytes, big-endian) ‖
    /// postcard(key) ‖ postcard(namespace), then ‖ postcard(user key) for a map. Postcard
    /// encodings are self-delimiting, so the first three are a prefix shared by exactly the
    /// entries of one map, and the key group alone is a prefix shared by exactly its entries.
    fn byte_table(&self, key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Box<dyn Any + Send>;
}

/// A byte-oriented key/value table of one state, as a backend that stores bytes provides it;
/// [`TableFactory::byte_table`] puts the state's types on top.
///
/// Reads hand the stored bytes to a callback rather than returning them, so that a backend can
/// lend its own buffer (RocksDB's pinned slice) and the caller decodes without a copy.
pub trait RawTable: Send {
    /// Calls `found` with the value of `key` and returns `true`, or returns `false` if there is
    /// none.
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool>;
    /// Sets the value of `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Appends `bytes` to the value of `key` (creating it if absent): how a list grows without
    /// reading it.
    fn append(&mut self, key: &[u8], bytes: &[u8]) -> Result<()>;
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Removes every key starting with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<()>;
    /// Calls `visit` with every key starting with `prefix` and its value, in ascending byte
    /// order of the keys, until it returns `false`.
    fn scan(&self, prefix: &[u8], visit: &mut EntryVisitor<'_>) -> Result<()>;
}

/// What [`RawTable::scan`] calls with each key and value: `Ok(false)` stops the scan.
pub type EntryVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Where the keyed state of one operator subtask lives.
pub trait KeyedStateBackend: Send {
    /// The backend's name, e.g. `"memory"`.
    fn name(&self) -> &'static str;
    /// The key groups this backend covers.
    fn key_groups(&self) -> Range<KeyGroup>;
    /// Creates the table of the state `name`, built by `factory`; the caller downcasts it.
    fn create_table(&mut self, name: &str, factory: &dyn TableFactory) -> Result<Box<dyn Any + Send>>;

    /// Starts checkpoint `checkpoint` in the backend's own format: the short, synchronous part,
    /// with the slow part left to [`PendingKeyedSnapshot::materialize`].
    ///
    /// `None` (the default) means the backend has no format of its own, and the store takes a
    /// canonical [`KeyedSnapshot`](crate::KeyedSnapshot) of its tables instead.
    fn checkpoint(&mut self, checkpoint: u64) -> Result<Option<PendingKeyedSnapshot>> {
        let _ = checkpoint;
        Ok(None)
    }

    /// Checkpoint `checkpoint` completed: what it stored may be referenced by later ones.
    fn notify_checkpoint_complete(&mut self, checkpoint: u64) {
        let _ = checkpoint;
    }

    /// Checkpoint `checkpoint` was aborted: nothing it stored may be referenced.
    fn notify_checkpoint_aborted(&mut self, checkpoint: u64) {
        let _ = checkpoint;
    }
}
