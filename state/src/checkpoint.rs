//! What keyed state hands to a checkpoint: a snapshot started synchronously
//! ([`PendingKeyedSnapshot`]) and materialized off the processing loop into a serializable
//! [`KeyedStateHandle`]; and the reference counts that decide when an incremental checkpoint's
//! shared files may be deleted ([`SharedStateRegistry`]).
//!
//! Two kinds of handle, as Flink's: a memory backend's state is a canonical [`KeyedSnapshot`]
//! inside the handle; a RocksDB backend's is an [`IncrementalHandle`], which names the SST files
//! it needs in the job's shared directory (`<root>/<job>/shared/`) and carries the few small
//! files that describe the database (MANIFEST, CURRENT) itself. An SST file is
//! immutable, so once uploaded it is referenced by every later checkpoint that still needs it,
//! as long as the checkpoint that uploaded it completed (see
//! [`KeyedStateStore::notify_checkpoint_complete`](crate::KeyedStateStore::notify_checkpoint_complete)).
//!
//! ## Deleting shared files
//!
//! The coordinator owns a [`SharedStateRegistry`]. When checkpoint `n` completes, it registers
//! `n`'s shared files **before** releasing the checkpoints `n` subsumes; each release returns the
//! files no retained checkpoint references any more, to delete. An aborted checkpoint was never
//! registered: the files it uploaded itself are referenced by nothing else (a backend only
//! references files of completed checkpoints), so [`SharedStateRegistry::unreferenced`] of its
//! files gives exactly those to delete. Every upload has a name of its own (backend instance,
//! checkpoint, SST number), so deleting one never touches a file another checkpoint uploaded.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::backend::StateKind;
use crate::snapshot::KeyedSnapshot;
use crate::storage::Location;
use crate::{KeyGroup, Result, StateError};

#[cfg(test)]
mod tests;

/// Where a checkpoint's keyed state goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTarget {
    shared_dir: Location,
}

impl SnapshotTarget {
    /// A target that uploads shared files into `shared_dir`, the job's `<root>/<job>/shared/`
    /// (created if missing), a local directory or an object store prefix.
    pub fn new(shared_dir: impl Into<Location>) -> Self {
        SnapshotTarget { shared_dir: shared_dir.into() }
    }

    /// The directory of shared files.
    pub fn shared_dir(&self) -> &Location {
        &self.shared_dir
    }
}

/// A checkpoint of a keyed state store whose synchronous part is done: processing may go on
/// while [`materialize`](Self::materialize) stores it.
///
/// Dropping it without materializing abandons the checkpoint and frees what it holds (RocksDB:
/// its local checkpoint directory; memory: its share of the copy-on-write key groups).
#[derive(Debug)]
pub struct PendingKeyedSnapshot {
    inner: Pending,
}

#[derive(Debug)]
enum Pending {
    /// A snapshot that is complete already.
    Ready(Box<KeyedStateHandle>),
    /// Frozen tables to serialize into a canonical snapshot.
    Frozen(crate::store::FrozenStore),
    /// A RocksDB checkpoint to upload.
    RocksDb(crate::rocks::PendingCheckpoint),
}

// The subtask materializes on a blocking thread (`spawn_blocking`).
const _: fn() = || {
    fn sendable<T: Send + 'static>() {}
    sendable::<PendingKeyedSnapshot>();
};

impl PendingKeyedSnapshot {
    /// A pending snapshot that is complete already.
    pub(crate) fn ready(handle: KeyedStateHandle) -> Self {
        PendingKeyedSnapshot { inner: Pending::Ready(Box::new(handle)) }
    }

    /// A canonical snapshot of frozen tables, serialized by `materialize`.
    pub(crate) fn frozen(frozen: crate::store::FrozenStore) -> Self {
        PendingKeyedSnapshot { inner: Pending::Frozen(frozen) }
    }

    pub(crate) fn rocks_db(pending: crate::rocks::PendingCheckpoint) -> Self {
        PendingKeyedSnapshot { inner: Pending::RocksDb(pending) }
    }

    /// Stores the snapshot: blocking, so run it off the processing loop (`spawn_blocking`).
    ///
    /// Frozen memory tables: serializes them into the canonical snapshot of the moment they
    /// were frozen ([`KeyedStateHandle::Full`]; `target` is not needed).
    ///
    /// RocksDB: copies every SST file that no completed checkpoint has uploaded into
    /// `target`'s shared directory, references the others, embeds the small files, and deletes
    /// the local checkpoint directory. A failure deletes what this call uploaded. Without a
    /// `target` (a job with no checkpoint storage) this fails.
    pub fn materialize(self, target: Option<&SnapshotTarget>) -> Result<KeyedStateHandle> {
        match self.inner {
            Pending::Ready(handle) => Ok(*handle),
            Pending::Frozen(frozen) => frozen.snapshot().map(KeyedStateHandle::Full),
            Pending::RocksDb(pending) => {
                let target = target.ok_or_else(|| {
                    StateError::Backend("an incremental checkpoint needs checkpoint storage for its files".to_owned())
                })?;
                pending.materialize(target).map(KeyedStateHandle::Incremental)
            }
        }
    }
}

/// The keyed state of one operator subtask in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyedStateHandle {
    /// A canonical snapshot (memory backend, savepoints), self-contained.
    Full(KeyedSnapshot),
    /// A RocksDB checkpoint referencing files in the job's shared directory.
    Incremental(IncrementalHandle),
}

impl KeyedStateHandle {
    /// The shared files this handle references (none for a full snapshot).
    pub fn shared_files(&self) -> &[SharedFile] {
        match self {
            KeyedStateHandle::Full(_) => &[],
            KeyedStateHandle::Incremental(handle) => &handle.shared,
        }
    }

    /// The bytes of state this handle stands for: the snapshot's payload, or the sizes of the
    /// shared files plus the embedded files.
    pub fn size_bytes(&self) -> u64 {
        match self {
            KeyedStateHandle::Full(snapshot) => snapshot.size_bytes() as u64,
            KeyedStateHandle::Incremental(handle) => handle.size_bytes(),
        }
    }

    /// The bytes this checkpoint newly stored: all of a full snapshot; of an incremental one,
    /// the shared files it uploaded itself plus the embedded files.
    pub fn incremental_bytes(&self) -> u64 {
        match self {
            KeyedStateHandle::Full(snapshot) => snapshot.size_bytes() as u64,
            KeyedStateHandle::Incremental(handle) => handle.incremental_bytes(),
        }
    }
}

/// A RocksDB checkpoint: the database's files, the big ones by reference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncrementalHandle {
    /// The checkpoint.
    pub checkpoint: u64,
    /// The backend instance that took it (part of the names of the files it uploaded).
    pub backend: String,
    /// The key groups the database covered.
    pub key_groups: Range<KeyGroup>,
    /// The database's states and their column families.
    pub states: Vec<IncrementalState>,
    /// The SST files, in the job's shared directory.
    pub shared: Vec<SharedFile>,
    /// The other files of the database (MANIFEST, CURRENT, the empty write-ahead log),
    /// embedded.
    pub private: Vec<PrivateFile>,
}

impl IncrementalHandle {
    /// Bytes of the shared files plus the embedded files.
    pub fn size_bytes(&self) -> u64 {
        self.shared.iter().map(|f| f.bytes).sum::<u64>() + self.private_bytes()
    }

    /// Bytes of the shared files this checkpoint uploaded plus the embedded files.
    pub fn incremental_bytes(&self) -> u64 {
        self.uploaded().map(|f| f.bytes).sum::<u64>() + self.private_bytes()
    }

    /// The shared files this checkpoint uploaded itself (the others it references).
    pub fn uploaded(&self) -> impl Iterator<Item = &SharedFile> {
        self.shared.iter().filter(|f| f.uploaded_in == self.checkpoint)
    }

    fn private_bytes(&self) -> u64 {
        self.private.iter().map(|f| f.bytes.len() as u64).sum()
    }
}

/// A state in an [`IncrementalHandle`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncrementalState {
    /// The name the state is registered under.
    pub name: String,
    /// The kind of the state.
    pub kind: StateKind,
    /// The column family holding it.
    pub column_family: String,
}

/// An SST file in the job's shared directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedFile {
    /// The file's name in the shared directory, unique to one upload.
    pub name: String,
    /// Its name in the database (`000042.sst`), which the MANIFEST refers to.
    pub local: String,
    /// Its size.
    pub bytes: u64,
    /// The XXH3-64 of its contents, checked on restore.
    pub checksum: u64,
    /// The checkpoint that uploaded it.
    pub uploaded_in: u64,
}

/// A small file of a database, embedded in its handle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateFile {
    /// The file's name in the database (`CURRENT`, `MANIFEST-000005`, ...).
    pub name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// Reference counts of the shared files of the retained checkpoints: which files may be
/// deleted when a checkpoint is released. Pure bookkeeping; the caller deletes the files.
///
/// A checkpoint counts each file once, however many of its subtasks reference it (after a
/// rescale, several subtasks start from the same files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedStateRegistry {
    /// For each file, the number of registered checkpoints referencing it.
    counts: BTreeMap<String, usize>,
    /// The files of each registered checkpoint.
    checkpoints: BTreeMap<u64, BTreeSet<String>>,
}

impl SharedStateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry of a restarted coordinator: the retained checkpoints, each with the shared
    /// files of all its handles.
    pub fn rebuild<I, F, S>(retained: I) -> Self
    where
        I: IntoIterator<Item = (u64, F)>,
        F: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut registry = Self::new();
        for (checkpoint, files) in retained {
            registry.register(checkpoint, files);
        }
        registry
    }

    /// Records that `checkpoint` (completed) references `files`. Registering a checkpoint again
    /// adds the files it did not have (e.g. subtask by subtask).
    pub fn register<S: Into<String>>(&mut self, checkpoint: u64, files: impl IntoIterator<Item = S>) {
        let registered = self.checkpoints.entry(checkpoint).or_default();
        for file in files {
            let file = file.into();
            if !registered.contains(&file) {
                *self.counts.entry(file.clone()).or_default() += 1;
                registered.insert(file);
            }
        }
    }

    /// Forgets `checkpoint` (subsumed or discarded), returning the files no registered
    /// checkpoint references any more, which the caller deletes. Unknown checkpoints release
    /// nothing.
    pub fn release(&mut self, checkpoint: u64) -> Vec<String> {
        let mut unreferenced = Vec::new();
        for file in self.checkpoints.remove(&checkpoint).unwrap_or_default() {
            let count = self.counts.get_mut(&file).expect("a registered file is counted");
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&file);
                unreferenced.push(file);
            }
        }
        unreferenced
    }

    /// The ones of `files` that no registered checkpoint references: of an aborted checkpoint's
    /// files, those it uploaded itself, to delete.
    pub fn unreferenced<'a>(&self, files: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        files.into_iter().filter(|f| !self.counts.contains_key(*f)).map(str::to_owned).collect()
    }

    /// How many registered checkpoints reference `file`.
    pub fn references(&self, file: &str) -> usize {
        self.counts.get(file).copied().unwrap_or(0)
    }

    /// The registered checkpoints, ascending.
    pub fn checkpoints(&self) -> impl Iterator<Item = u64> + '_ {
        self.checkpoints.keys().copied()
    }

    /// The number of files referenced by some registered checkpoint.
    pub fn file_count(&self) -> usize {
        self.counts.len()
    }
}
