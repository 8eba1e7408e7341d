//! The RocksDB backend: keyed state on local disk, one database per operator subtask, a column
//! family per state, checkpointed incrementally.
//!
//! Keys are key group (2 bytes, big-endian) ‖ postcard(key) ‖ postcard(namespace) (‖
//! postcard(user key) for a map), as DESIGN §6 says, so that a key group, and a key-group range,
//! is one contiguous range of every column family: what a snapshot of a key group scans and what
//! a rescale copies or deletes. The typed codecs live in `bytes.rs`; this module stores bytes.
//!
//! Writes skip RocksDB's write-ahead log, as Flink's do: durability comes from checkpoints, and a
//! failed subtask restores from the last one rather than from its local files. A list state grows
//! through RocksDB's merge operator, which concatenates the appended elements, so adding to a
//! list never reads it.
//!
//! ## Checkpoints
//!
//! [`checkpoint`](KeyedStateBackend::checkpoint) is the synchronous part: RocksDB's `Checkpoint`
//! flushes the memtables and hard-links the live SST files into a local directory: it costs a
//! flush of what was written since the last one, not a copy of the state. The pending checkpoint
//! then uploads, off the
//! processing loop, the SST files that the last **completed** checkpoint did not upload (SST files
//! never change, and their numbers are never reused), references the others, and embeds the small
//! files that describe the database (see `rocks/checkpoint.rs`). As in Flink's
//! `RocksIncrementalSnapshotStrategy`, only a checkpoint the coordinator confirmed complete may
//! serve as a base; the coordinator deletes an aborted one's uploads (`checkpoint.rs`).
//!
//! ## Restore
//!
//! [`RocksDbBackend::restore`] rebuilds the database from the handle that overlaps the new
//! key-group range most (hard-linking its shared files, falling back to a copy), deletes the key
//! groups outside the range, and copies the range's entries in from the other handles, each
//! opened read-only in a scratch directory (see `rocks/restore.rs`). Without rescaling, that is
//! one handle rebuilt and nothing copied. The rebuilt handle's files are the base of the next
//! checkpoint, so a restore is not followed by a full upload; after a rescale, such a file may
//! also hold other key groups' entries (deleted) until a compaction rewrites it.
//!
//! ## Departures from DESIGN §6
//!
//! The column family of a state is `state.<name>`, not the bare name, since RocksDB reserves
//! `default`. A restored state that the operator never registers again is kept (and checkpointed)
//! rather than dropped or refused, as Flink does.
//!
//! The tables reach their column family by name on every access (a read lock and a lookup in a
//! small map, tens of nanoseconds against the microsecond of a RocksDB access): the `rocksdb`
//! crate's column-family handles borrow the database, and keeping one beside the database in a
//! table would need `unsafe`.

mod cache;
mod checkpoint;
mod restore;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBWithThreadMode, LogLevel, MergeOperands,
    MultiThreaded, Options, ReadOptions, WriteBatch, WriteOptions,
};

pub(crate) use checkpoint::PendingCheckpoint;
use checkpoint::Uploads;

use crate::backend::{EntryVisitor, KeyedStateBackend, RawTable, TableFactory};
use crate::checkpoint::{IncrementalHandle, IncrementalState, PendingKeyedSnapshot};
use crate::{KeyGroup, Result, StateError};

/// A database whose column families can be created while tables use it.
type Db = DBWithThreadMode<MultiThreaded>;

/// The name of the merge operator that appends to lists; recorded in the database's files, so
/// it must never change.
const APPEND_OPERATOR: &str = "weir.append";

/// Where the database lives inside the backend's directory.
const DB_DIR: &str = "db";
/// Where local checkpoints are hard-linked before their upload.
const CHECKPOINTS_DIR: &str = "checkpoints";
/// Where other subtasks' databases are opened during a rescaling restore.
const RESTORE_DIR: &str = "restore";

/// Tuning of a [`RocksDbBackend`]; the defaults suit a job, tests turn compactions off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksDbConfig {
    /// Bytes a column family's memtable takes before it is flushed to an SST file.
    pub write_buffer_size: usize,
    /// LZ4-compress SST files.
    pub compression: bool,
    /// Background flush and compaction threads (RocksDB's pool is shared by the process).
    pub background_jobs: i32,
    /// Compact automatically. Off, SST files change only by flushes and by
    /// [`RocksDbBackend::compact`], which tests that count files need.
    pub auto_compactions: bool,
    /// Bytes of the write-back cache in front of the database (`rocks/cache.rs`): hot
    /// entries are read and written in memory and reach RocksDB in a batch at the next
    /// checkpoint. 0 turns it off (every access goes to RocksDB).
    pub write_cache_bytes: usize,
}

impl Default for RocksDbConfig {
    fn default() -> Self {
        RocksDbConfig {
            write_buffer_size: 64 << 20,
            compression: true,
            background_jobs: 2,
            auto_compactions: true,
            write_cache_bytes: 32 << 20,
        }
    }
}

impl RocksDbConfig {
    /// The options of every column family.
    fn column_family_options(&self) -> Options {
        let mut opts = Options::default();
        opts.set_merge_operator_associative(APPEND_OPERATOR, append_operator);
        opts.set_write_buffer_size(self.write_buffer_size);
        opts.set_compression_type(if self.compression { DBCompressionType::Lz4 } else { DBCompressionType::None });
        opts.set_disable_auto_compactions(!self.auto_compactions);
        opts
    }

    /// The options of the database (and its default column family).
    fn db_options(&self) -> Options {
        let mut opts = self.column_family_options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(self.background_jobs);
        // Checkpoints embed the MANIFEST: a small one keeps every checkpoint small.
        opts.set_max_manifest_file_size(1 << 20);
        opts.set_log_level(LogLevel::Warn);
        opts.set_keep_log_file_num(2);
        opts.set_stats_dump_period_sec(0);
        opts
    }

    /// Descriptors of the column families `names`.
    fn descriptors(&self, names: impl IntoIterator<Item = String>) -> Vec<ColumnFamilyDescriptor> {
        names.into_iter().map(|name| ColumnFamilyDescriptor::new(name, self.column_family_options())).collect()
    }
}

/// The merge operator of list states: concatenates the appended bytes (each a framed element).
fn append_operator(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let existing = existing.unwrap_or_default();
    let mut merged = Vec::with_capacity(existing.len() + operands.iter().map(<[u8]>::len).sum::<usize>());
    merged.extend_from_slice(existing);
    for operand in operands {
        merged.extend_from_slice(operand);
    }
    Some(merged)
}

/// A RocksDB failure, saying what was being done.
#[cold]
fn rocks_error(what: impl std::fmt::Display, e: rocksdb::Error) -> StateError {
    StateError::Backend(format!("{what}: rocksdb: {e}"))
}

/// The column family of state `name`.
fn column_family_of(name: &str) -> String {
    format!("state.{name}")
}

/// The database of a backend, shared by its tables. When the last of them is dropped, the
/// database closes and then its directory is deleted (fields drop in order).
struct Database {
    db: Db,
    /// Writes skip the write-ahead log (see the module doc).
    write: WriteOptions,
    /// Default reads, made once: `get_pinned_cf` would create and free options on every call.
    read: ReadOptions,
    /// Hot entries, written back at checkpoints (used by the subtask's thread only, so the
    /// lock is never contended).
    cache: Mutex<cache::WriteCache>,
    _dir: RemoveOnDrop,
}

impl Database {
    /// Opens (creating if missing) the database in `path` with the column families `names`.
    fn open(config: &RocksDbConfig, path: &Path, names: Vec<String>, backend_dir: &Path) -> Result<Self> {
        let db = Db::open_cf_descriptors(&config.db_options(), path, config.descriptors(names))
            .map_err(|e| rocks_error(format_args!("cannot open the database in '{}'", path.display()), e))?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(Database {
            db,
            write,
            read: ReadOptions::default(),
            cache: Mutex::new(cache::WriteCache::new(config.write_cache_bytes)),
            _dir: RemoveOnDrop(backend_dir.to_path_buf()),
        })
    }

    fn cache(&self) -> MutexGuard<'_, cache::WriteCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the cache's changed entries (of `family` only, if given) to RocksDB in one batch.
    fn write_back(&self, cache: &mut cache::WriteCache, family: Option<&str>) -> Result<()> {
        let mut batch = WriteBatch::default();
        cache.write_back(family, &mut batch, &mut |name| self.cf(name))?;
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write_opt(batch, &self.write).map_err(|e| rocks_error("cannot write the cache back", e))
    }

    /// Writes the whole cache back and empties it if it passed its size.
    fn bound_cache(&self, cache: &mut cache::WriteCache) -> Result<()> {
        if cache.full() {
            self.write_back(cache, None)?;
            cache.clear();
        }
        Ok(())
    }

    /// Compacts every column family fully.
    fn compact(&self) -> Result<()> {
        self.write_back(&mut self.cache(), None)?;
        let names = Db::list_cf(&Options::default(), self.db.path())
            .map_err(|e| rocks_error("cannot list the column families to compact", e))?;
        for name in names {
            self.db.compact_range_cf(&self.cf(&name)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// The column family `name`.
    #[inline]
    fn cf(&self, name: &str) -> Result<Arc<BoundColumnFamily<'_>>> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Backend(format!("column family {name:?} is missing")))
    }
}

/// Deletes a backend's directories when dropped (the backend owns its directory).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        clear_dir(&self.0);
        // Only if empty: the directory may be a caller's that holds other things.
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Removes what a backend keeps in `dir`, leaving anything else.
fn clear_dir(dir: &Path) {
    for sub in [DB_DIR, CHECKPOINTS_DIR, RESTORE_DIR] {
        let path = dir.join(sub);
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot delete '{}': {e}", path.display());
        }
    }
}

/// Keeps keyed state in a RocksDB database in a local directory, checkpointed incrementally.
///
/// The backend owns its directory: it deletes what an earlier backend left there when it
/// opens, and its database and local checkpoints when it is dropped (with its last table).
pub struct RocksDbBackend {
    db: Arc<Database>,
    dir: PathBuf,
    key_groups: Range<KeyGroup>,
    config: RocksDbConfig,
    /// Names this instance's uploads apart from every other's in the shared directory.
    instance: String,
    /// Every state in the database: registered, or restored and not registered (yet).
    states: Vec<IncrementalState>,
    /// What earlier checkpoints uploaded; shared with the pending checkpoints that add to it.
    uploads: Arc<Mutex<Uploads>>,
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("dir", &self.dir)
            .field("key_groups", &self.key_groups)
            .field("instance", &self.instance)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

impl RocksDbBackend {
    /// An empty database in `dir` (created if missing) covering `key_groups`.
    pub fn open(dir: impl Into<PathBuf>, key_groups: Range<KeyGroup>, config: RocksDbConfig) -> Result<Self> {
        Self::restore(dir, key_groups, config, &[], &crate::storage::Location::default())
    }

    /// A database in `dir` (created if missing) covering `key_groups`, with the entries of
    /// those key groups that `handles` hold; their shared files are in `shared_dir`.
    ///
    /// The handles are those of every subtask of the operator at one checkpoint (or any subset
    /// covering `key_groups`); handles that do not overlap `key_groups` are not read. Register
    /// the states afterwards as usual: a restored state comes back under its name, and
    /// registering it with another kind fails with [`StateError::TypeMismatch`].
    ///
    /// A missing shared file fails with [`StateError::Io`], and one whose size or checksum
    /// differs from the handle's with [`StateError::Corrupt`], both naming the file.
    pub fn restore(
        dir: impl Into<PathBuf>,
        key_groups: Range<KeyGroup>,
        config: RocksDbConfig,
        handles: &[IncrementalHandle],
        shared_dir: &crate::storage::Location,
    ) -> Result<Self> {
        let dir = dir.into();
        clear_dir(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| StateError::io("create the state directory", &dir, e))?;
        let restored =
            restore::restore(&dir, &key_groups, &config, handles, shared_dir).inspect_err(|_| clear_dir(&dir))?;
        let instance = instance_id()?;
        tracing::debug!(
            dir = %dir.display(),
            instance,
            ?key_groups,
            states = restored.states.len(),
            handles = handles.len(),
            "opened rocksdb state backend"
        );
        Ok(RocksDbBackend {
            db: Arc::new(restored.db),
            dir,
            key_groups,
            config,
            instance,
            states: restored.states,
            uploads: Arc::new(Mutex::new(restored.uploads)),
        })
    }

    /// The backend's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The id that names this instance's uploads.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Compacts every column family fully, e.g. after a rescale left other key groups'
    /// entries behind deletions.
    pub fn compact(&self) -> Result<()> {
        self.db.compact()
    }

    fn uploads(&self) -> MutexGuard<'_, Uploads> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A random id naming a backend instance's uploads, so that no two instances (other subtasks,
/// later attempts, other processes) ever upload under one name.
fn instance_id() -> Result<String> {
    let id = getrandom::u64().map_err(|e| StateError::Backend(format!("cannot draw a backend instance id: {e}")))?;
    Ok(format!("{id:016x}"))
}

impl KeyedStateBackend for RocksDbBackend {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn key_groups(&self) -> Range<KeyGroup> {
        self.key_groups.clone()
    }

    fn create_table(&mut self, name: &str, factory: &dyn TableFactory) -> Result<Box<dyn Any + Send>> {
        let kind = factory.kind();
        let column_family = match self.states.iter().find(|s| s.name == name) {
            Some(state) if state.kind != kind => return Err(StateError::TypeMismatch { name: name.to_owned() }),
            Some(state) => state.column_family.clone(),
            None => {
                let column_family = column_family_of(name);
                self.db
                    .db
                    .create_cf(&column_family, &self.config.column_family_options())
                    .map_err(|e| rocks_error(format_args!("cannot create the column family of state {name:?}"), e))?;
                self.states.push(IncrementalState {
                    name: name.to_owned(),
                    kind,
                    column_family: column_family.clone(),
                });
                column_family
            }
        };
        tracing::debug!(state = name, ?kind, column_family, "creating rocksdb state table");
        let raw = RocksTable { db: Arc::clone(&self.db), column_family, state: name.to_owned() };
        Ok(factory.byte_table(self.key_groups.clone(), Box::new(raw)))
    }

    fn checkpoint(&mut self, checkpoint: u64) -> Result<Option<PendingKeyedSnapshot>> {
        let parent = self.dir.join(CHECKPOINTS_DIR);
        let local = parent.join(format!("chk-{checkpoint}"));
        if local.exists() {
            std::fs::remove_dir_all(&local).map_err(|e| StateError::io("delete the stale checkpoint", &local, e))?;
        }
        std::fs::create_dir_all(&parent).map_err(|e| StateError::io("create the checkpoint directory", &parent, e))?;
        // What the cache changed goes in before RocksDB flushes its memtables.
        self.db.write_back(&mut self.db.cache(), None)?;
        Checkpoint::new(&self.db.db).and_then(|c| c.create_checkpoint(&local)).map_err(|e| {
            rocks_error(format_args!("cannot take checkpoint {checkpoint} into '{}'", local.display()), e)
        })?;
        let pending = PendingCheckpoint {
            checkpoint,
            dir: local,
            instance: self.instance.clone(),
            key_groups: self.key_groups.clone(),
            states: self.states.clone(),
            base: self.uploads().base(),
            uploads: Arc::clone(&self.uploads),
        };
        Ok(Some(PendingKeyedSnapshot::rocks_db(pending)))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: u64) {
        self.uploads().complete(checkpoint);
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint: u64) {
        self.uploads().abort(checkpoint);
    }
}

/// The column family of one state, as a [`RawTable`].
struct RocksTable {
    db: Arc<Database>,
    column_family: String,
    /// The state's name, for errors.
    state: String,
}

impl RocksTable {
    #[cold]
    fn error(&self, what: &str, e: rocksdb::Error) -> StateError {
        rocks_error(format_args!("state {:?}: cannot {what}", self.state), e)
    }

    /// Read options bounding a scan to the keys starting with `prefix`, so that RocksDB stops at
    /// the end of the prefix rather than at the next live key after it, however many deleted
    /// ones lie between.
    fn prefix_options(prefix: &[u8]) -> ReadOptions {
        let mut opts = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            opts.set_iterate_upper_bound(end);
        }
        opts
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (an empty prefix, or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

impl RawTable for RocksTable {
    #[inline]
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        let mut cache = self.db.cache();
        if cache.enabled() {
            match cache.get(&self.column_family, key) {
                cache::Lookup::Value(value) => return found(value).map(|()| true),
                cache::Lookup::Absent => return Ok(false),
                cache::Lookup::Unknown => {}
            }
        }
        let cf = self.db.cf(&self.column_family)?;
        match self.db.db.get_pinned_cf_opt(&cf, key, &self.db.read) {
            Ok(value) => {
                if cache.enabled() {
                    cache.fill(&self.column_family, key, value.as_deref());
                    self.db.bound_cache(&mut cache)?;
                }
                drop(cache);
                match value {
                    Some(value) => found(&value).map(|()| true),
                    None => Ok(false),
                }
            }
            Err(e) => Err(self.error("read", e)),
        }
    }

    #[inline]
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut cache = self.db.cache();
        if cache.enabled() {
            cache.put(&self.column_family, key, Some(value));
            return self.db.bound_cache(&mut cache);
        }
        let cf = self.db.cf(&self.column_family)?;
        self.db.db.put_cf_opt(&cf, key, value, &self.db.write).map_err(|e| self.error("write", e))
    }

    #[inline]
    fn append(&mut self, key: &[u8], bytes: &[u8]) -> Result<()> {
        let mut cache = self.db.cache();
        if cache.enabled() && cache.append(&self.column_family, key, bytes) {
            return self.db.bound_cache(&mut cache);
        }
        let cf = self.db.cf(&self.column_family)?;
        self.db.db.merge_cf_opt(&cf, key, bytes, &self.db.write).map_err(|e| self.error("append", e))
    }

    #[inline]
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        let mut cache = self.db.cache();
        if cache.enabled() {
            cache.put(&self.column_family, key, None);
            return self.db.bound_cache(&mut cache);
        }
        let cf = self.db.cf(&self.column_family)?;
        self.db.db.delete_cf_opt(&cf, key, &self.db.write).map_err(|e| self.error("delete", e))
    }

    /// Deletes the keys one by one in a batch, rather than with a range deletion: a map is
    /// cleared per window, and many small range tombstones slow every later read.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        // Cached changes under the prefix are deleted with it, unwritten.
        self.db.cache().forget_prefix(&self.column_family, prefix);
        let cf = self.db.cf(&self.column_family)?;
        let mut batch = WriteBatch::default();
        let mut iter = self.db.db.raw_iterator_cf_opt(&cf, Self::prefix_options(prefix));
        iter.seek(prefix);
        while let Some(key) = iter.key() {
            batch.delete_cf(&cf, key);
            iter.next();
        }
        iter.status().map_err(|e| self.error("scan", e))?;
        if batch.is_empty() {
            return Ok(());
        }
        self.db.db.write_opt(batch, &self.db.write).map_err(|e| self.error("delete", e))
    }

    fn scan(&self, prefix: &[u8], visit: &mut EntryVisitor<'_>) -> Result<()> {
        self.db.write_back(&mut self.db.cache(), Some(&self.column_family))?;
        let cf = self.db.cf(&self.column_family)?;
        let mut iter = self.db.db.raw_iterator_cf_opt(&cf, Self::prefix_options(prefix));
        iter.seek(prefix);
        while let Some((key, value)) = iter.item() {
            if !visit(key, value)? {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(|e| self.error("scan", e))
    }
}
