//! Keyed state for Weir operators: typed tables scoped by key group, key and namespace, behind
//! one object-safe backend trait, plus the timer queue of a keyed operator.
//!
//! A keyed operator owns a [`KeyedStateStore`]: it registers its states once (getting cheap
//! `Copy` handles) and then reads and writes through the handles on every record. The store keeps
//! them in a backend: [`MemoryBackend`] (typed objects in hash maps) or [`RocksDbBackend`] (bytes
//! in a local RocksDB database).
//!
//! At a checkpoint the store starts a [`PendingKeyedSnapshot`] between two records and
//! materializes it into a [`KeyedStateHandle`] off the processing loop: a canonical
//! [`KeyedSnapshot`], with each state's entries per key group, for the memory backend (whose
//! key groups are frozen at the barrier, entries copied on write, and serialized later); an
//! incremental set of RocksDB files for the RocksDB backend, whose shared files a
//! [`SharedStateRegistry`] counts. Either restores at another parallelism, loading just the key
//! groups it owns. A savepoint is the canonical snapshot of either backend, and restores on both.
//!
//! ```
//! use weir_state::{KeyedStateStore, MemoryBackend};
//!
//! let mut store = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..128)));
//! let count = store.value_state::<(), u64>("count")?;
//! let key = "alice".to_owned();
//! for _ in 0..3 {
//!     store.value(count).upsert(7, &key, &(), &mut |v| match v {
//!         Some(v) => { *v += 1; None }
//!         None => Some(1),
//!     })?;
//! }
//! assert_eq!(store.value(count).get(7, &key, &())?, Some(3));
//! # Ok::<(), weir_state::StateError>(())
//! ```

mod backend;
mod bytes;
mod checkpoint;
pub mod durable;
mod error;
pub mod fs;
mod memory;
mod rocks;
mod snapshot;
pub mod storage;
mod store;
#[cfg(test)]
mod test_support;
mod timers;

pub use backend::{
    EntryVisitor, FrozenTable, KeyedStateBackend, ListTable, MapTable, RawTable, StateKind, TableFactory, ValueTable,
};
pub use checkpoint::{
    IncrementalHandle, IncrementalState, KeyedStateHandle, PendingKeyedSnapshot, PrivateFile, SharedFile,
    SharedStateRegistry, SnapshotTarget,
};
pub use error::{Result, StateError};
pub use memory::MemoryBackend;
pub use rocks::{RocksDbBackend, RocksDbConfig};
pub use snapshot::{KeyedSnapshot, StateSnapshot};
pub use store::{KeyedStateStore, ListStateHandle, MapStateHandle, ValueStateHandle};
pub use timers::TimerService;

/// Marks the types a factory, handle or table stands for without owning them, so it is `Send`,
/// `Sync` and `Copy` whatever they are.
type Types<T> = std::marker::PhantomData<fn() -> T>;

/// A key group: the unit in which keyed state is partitioned, snapshotted and redistributed.
pub type KeyGroup = u16;

/// Event or processing time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// A value that can live in keyed state: owned, sendable between threads, and serializable so
/// that a byte-oriented backend (and snapshots) can store it. `Sync` because a checkpoint of
/// the memory backend reads the state on another thread while the operator reads it too (the
/// key groups are shared copy-on-write, see `memory.rs`).
pub trait StateData: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static {}

impl<T> StateData for T where T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static {}

/// State data that can also address state: a key, a namespace or a map's user key.
pub trait StateKey: StateData + std::hash::Hash + Eq {}

impl<T> StateKey for T where T: StateData + std::hash::Hash + Eq {}
