//! Checkpoint storage in a directory: a local path, a file system every node mounts, or a
//! prefix in an S3-compatible object store (see [`Location`]).

use std::sync::Arc;

use weir_state::storage::{Location, LocationError};

use tracing::warn;

use crate::base::error::{Result, WeirError};
use crate::base::fs::FileSystem;
use crate::base::ids::JobId;
use crate::runtime::checkpoint::{CheckpointMetadata, RestoreFrom, TaskSnapshot, TaskStateHandle};

/// The file whose presence makes a checkpoint (or savepoint) complete.
pub(crate) const METADATA: &str = "_metadata";

/// The file in a job's checkpoint directory holding the checkpoint ids' high water mark (see
/// [`CheckpointIds`](crate::cluster::checkpoint_ids::CheckpointIds)).
pub(crate) const RESERVED_IDS: &str = "checkpoint-ids";

/// The checkpoints of one job: `<root>/<job>/chk-<n>/…`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointStorage {
    job_dir: Location,
    /// Where local files are written and synced (a crash-testing layer in tests); every
    /// process writes to its local file system.
    #[serde(skip, default = "crate::base::fs::local")]
    fs: Arc<dyn FileSystem>,
}

impl PartialEq for CheckpointStorage {
    fn eq(&self, other: &Self) -> bool {
        self.job_dir == other.job_dir
    }
}

impl Eq for CheckpointStorage {}

fn io(what: &str, at: &Location, e: std::io::Error) -> WeirError {
    WeirError::io(format!("cannot {what} checkpoint file '{at}'"), e)
}

fn write_error((what, at, e): LocationError) -> WeirError {
    io(what, &at, e)
}

/// Stores one subtask's state in checkpoint directory `dir`, which the coordinator made when
/// it triggered the checkpoint (blocking: call it off the processing loop).
///
/// The file is named by vertex, subtask and execution `attempt`: a cancelled attempt still
/// writing (its upload outlived it) cannot overwrite the state of the attempt that replaced it,
/// and once the checkpoint was aborted and its directory deleted, a late write fails instead of
/// making the directory again.
pub(crate) fn write_task_in(
    fs: &dyn FileSystem,
    dir: &Location,
    snapshot: &TaskSnapshot,
    attempt: u32,
) -> Result<TaskStateHandle> {
    let file = format!("{}-{}-a{attempt}", snapshot.vertex, snapshot.subtask);
    let path = dir.join(&file);
    // (An object store has no directories to tell an aborted checkpoint by: see
    // weir_state::storage.)
    if dir.as_local().is_some_and(|dir| !dir.is_dir()) {
        return Err(WeirError::runtime(format!(
            "checkpoint {} was aborted: its directory '{dir}' is gone",
            snapshot.checkpoint
        )));
    }
    // Encoded straight into the file: the keyed state in it is already bytes in memory, and
    // a second copy of them would be the largest allocation of a checkpoint.
    let bytes = path
        .write_with(fs, |file| {
            postcard::to_io(snapshot, file)
                .map(drop)
                .map_err(|e| std::io::Error::other(format!("cannot encode a snapshot: {e}")))
        })
        .map_err(write_error)?;
    let operators = snapshot.operators.iter().filter(|s| !s.is_empty()).map(|s| s.node).collect();
    let shared = snapshot
        .operators
        .iter()
        .filter_map(|s| s.incremental.as_ref())
        .flat_map(|h| h.shared.iter().map(|f| f.name.clone()))
        .collect();
    Ok(TaskStateHandle {
        vertex: snapshot.vertex,
        subtask: snapshot.subtask,
        file,
        bytes,
        operators,
        shared,
        union_state: snapshot.operators.iter().any(|s| s.operator.is_some() || s.lists.is_some()),
        finished: snapshot.finished,
        clock: snapshot.clock,
    })
}

/// Completes the checkpoint in `dir` by writing its `_metadata`, last.
pub(crate) fn write_metadata_in(fs: &dyn FileSystem, dir: &Location, metadata: &CheckpointMetadata) -> Result<()> {
    crate::base::fence::check("completing a checkpoint")?;
    let json =
        serde_json::to_vec_pretty(metadata).map_err(|e| WeirError::runtime(format!("cannot encode metadata: {e}")))?;
    dir.join(METADATA).write_atomically(fs, &json).map_err(write_error)
}

/// Reads the `_metadata` of the checkpoint in `dir`; a missing or corrupt file, or one of
/// another format version, is an error naming it.
pub(crate) fn read_metadata_in(dir: &Location) -> Result<CheckpointMetadata> {
    let path = dir.join(METADATA);
    let bytes = path.read().map_err(|e| io("read", &path, e))?;
    let metadata: CheckpointMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| WeirError::runtime(format!("checkpoint file '{path}' is corrupt: {e}")))?;
    if metadata.version == CheckpointMetadata::VERSION
        && let Err(e) = metadata.validate()
    {
        return Err(WeirError::runtime(format!("checkpoint file '{path}' is corrupt: {e}")));
    }
    if metadata.version != CheckpointMetadata::VERSION {
        return Err(WeirError::runtime(format!(
            "checkpoint file '{path}' is in format {} (this build reads format {})",
            metadata.version,
            CheckpointMetadata::VERSION
        )));
    }
    Ok(metadata)
}

/// Reads one subtask's state of checkpoint `checkpoint` in `dir`; a missing or corrupt file
/// is an error naming it.
pub(crate) fn read_task_in(dir: &Location, checkpoint: u64, handle: &TaskStateHandle) -> Result<TaskSnapshot> {
    let path = dir.join(&handle.file);
    let bytes = path.read().map_err(|e| io("read", &path, e))?;
    let snapshot: TaskSnapshot = postcard::from_bytes(&bytes)
        .map_err(|e| WeirError::runtime(format!("checkpoint file '{path}' is corrupt: {e}")))?;
    if (snapshot.checkpoint, snapshot.vertex, snapshot.subtask) != (checkpoint, handle.vertex, handle.subtask) {
        return Err(WeirError::runtime(format!("checkpoint file '{path}' holds another subtask's state")));
    }
    Ok(snapshot)
}

impl CheckpointStorage {
    /// The storage of `job` under `root`.
    pub fn new(root: impl Into<Location>, job: JobId) -> Self {
        CheckpointStorage::at(root.into().join(&job.to_string()))
    }

    /// The storage whose job directory is `job_dir`.
    pub fn at(job_dir: impl Into<Location>) -> Self {
        CheckpointStorage { job_dir: job_dir.into(), fs: crate::base::fs::local() }
    }

    /// Writes through `fs` (tests crash a machine under it with
    /// [`CrashFs`](crate::base::fs::CrashFs)).
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Where its files are written.
    pub(crate) fn file_system(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The job's directory.
    pub fn job_dir(&self) -> &Location {
        &self.job_dir
    }

    /// Checkpoint `n`'s directory.
    pub fn checkpoint_dir(&self, n: u64) -> Location {
        self.job_dir.join(&format!("chk-{n}"))
    }

    /// Checkpoint `n`'s directory, which tests know to be local.
    #[cfg(test)]
    pub(crate) fn local_dir(&self, n: u64) -> std::path::PathBuf {
        self.checkpoint_dir(n).as_local().expect("a local checkpoint directory").to_path_buf()
    }

    /// Makes checkpoint `n`'s directory, before its barriers go out (the coordinator does).
    /// The directory is durable in the job's directory (and that in its parent) before any
    /// file is written into it: a checkpoint whose `_metadata` was synced must not vanish with
    /// its directory's name at a machine crash.
    pub fn begin(&self, n: u64) -> Result<Location> {
        let dir = self.checkpoint_dir(n);
        dir.create_dir_durably(&*self.fs).map_err(|e| io("create the directory of", &dir, e))?;
        Ok(dir)
    }

    /// Stores one subtask's state, of execution `attempt` (blocking: call it off the
    /// processing loop); the checkpoint's directory must exist ([`begin`](Self::begin)).
    pub fn write_task(&self, snapshot: &TaskSnapshot, attempt: u32) -> Result<TaskStateHandle> {
        write_task_in(&*self.fs, &self.checkpoint_dir(snapshot.checkpoint), snapshot, attempt)
    }

    /// Completes checkpoint `metadata.checkpoint` by writing its `_metadata`, last.
    pub fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<()> {
        write_metadata_in(&*self.fs, &self.checkpoint_dir(metadata.checkpoint), metadata)
    }

    /// Reads checkpoint `n`'s metadata; a missing or corrupt file is an error naming it.
    pub fn read_metadata(&self, n: u64) -> Result<CheckpointMetadata> {
        let dir = self.checkpoint_dir(n);
        let metadata = read_metadata_in(&dir)?;
        if metadata.checkpoint != n {
            return Err(WeirError::runtime(format!(
                "checkpoint file '{}' describes checkpoint {} (expected {n})",
                dir.join(METADATA),
                metadata.checkpoint
            )));
        }
        Ok(metadata)
    }

    /// Reads one subtask's state; a missing or corrupt file is an error naming it.
    pub fn read_task(&self, checkpoint: u64, handle: &TaskStateHandle) -> Result<TaskSnapshot> {
        read_task_in(&self.checkpoint_dir(checkpoint), checkpoint, handle)
    }

    /// Ids of every checkpoint directory, complete or not, ascending (none when the job's
    /// directory cannot be listed: a warning says why).
    pub fn checkpoint_dirs(&self) -> Vec<u64> {
        let names = self.job_dir.children().unwrap_or_else(|e| {
            warn!("cannot list checkpoints in '{}': {e}", self.job_dir);
            Vec::new()
        });
        let mut ids: Vec<u64> = names.iter().filter_map(|name| name.strip_prefix("chk-")?.parse().ok()).collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of the completed checkpoints (those with a `_metadata`), ascending.
    pub fn completed(&self) -> Vec<u64> {
        self.checkpoint_dirs()
            .into_iter()
            .filter(|n| {
                let metadata = self.checkpoint_dir(*n).join(METADATA);
                metadata.is_file().unwrap_or_else(|e| {
                    warn!(checkpoint = n, "cannot tell whether '{metadata}' exists: {e}");
                    false
                })
            })
            .collect()
    }

    /// The checkpoint ids' high water mark: no id at or above it was issued. `None` when the
    /// job has none yet; an error naming the file when it cannot be read.
    pub fn reserved_ids(&self) -> Result<Option<u64>> {
        let path = self.job_dir.join(RESERVED_IDS);
        match path.read() {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                text.trim().parse().map(Some).map_err(|e| {
                    WeirError::runtime(format!("checkpoint file '{path}' is corrupt ({:?}: {e})", text.trim()))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    /// Makes `upto` the checkpoint ids' high water mark, durably, before an id under it is issued.
    pub fn reserve_ids(&self, upto: u64) -> Result<()> {
        crate::base::fence::check("reserving checkpoint ids")?;
        self.job_dir.join(RESERVED_IDS).write_atomically(&*self.fs, format!("{upto}\n").as_bytes()).map_err(write_error)
    }

    /// The newest completed checkpoint that looks whole from its metadata: its `_metadata`
    /// reads, it was taken by this plan, and every file it lists is there with the size it
    /// lists. Reading and decoding every file (all the job's state) is left to the subtasks,
    /// each of which reads only its own; a checkpoint for which `thorough` is true (one that a
    /// failing attempt had restored) is decoded here whole. A broken one is skipped with a
    /// warning naming the file, falling back to the one before.
    pub fn latest_valid(&self, fingerprint: u64, thorough: impl Fn(u64) -> bool) -> Option<RestoreFrom> {
        for n in self.completed().into_iter().rev() {
            let valid = self.read_metadata(n).and_then(|metadata| {
                if metadata.fingerprint != fingerprint {
                    return Err(WeirError::runtime(format!(
                        "checkpoint {n} was taken by another plan (fingerprint {:016x}, the job's is {fingerprint:016x})",
                        metadata.fingerprint
                    )));
                }
                let decode = thorough(n);
                for handle in &metadata.tasks {
                    let path = self.checkpoint_dir(n).join(&handle.file);
                    let size = path.size().map_err(|e| io("read", &path, e))?;
                    if size != handle.bytes {
                        return Err(WeirError::runtime(format!(
                            "checkpoint file '{path}' has {size} bytes, and its checkpoint lists {}",
                            handle.bytes
                        )));
                    }
                    if decode {
                        self.read_task(n, handle)?;
                    }
                }
                Ok(metadata)
            });
            match valid {
                Ok(metadata) => return Some(RestoreFrom::same_plan(self.checkpoint_dir(n), metadata)),
                Err(e) => warn!(checkpoint = n, "cannot restore from checkpoint {n}: {e}; trying an older one"),
            }
        }
        None
    }

    /// Deletes checkpoint `n` (aborted, or no longer retained).
    pub fn discard(&self, n: u64) {
        let dir = self.checkpoint_dir(n);
        if let Err(e) = crate::base::fence::check("deleting a checkpoint") {
            warn!(checkpoint = n, "{e}");
            return;
        }
        if let Err(e) = dir.remove_dir_all() {
            warn!(checkpoint = n, "cannot delete '{dir}': {e}");
        }
    }

    /// Keeps the newest `retained` completed checkpoints; deletes older ones and any
    /// incomplete checkpoint older than the newest completed.
    pub fn prune(&self, retained: usize) {
        let completed = self.completed();
        let Some(&newest) = completed.last() else { return };
        for &n in &completed[..completed.len().saturating_sub(retained.max(1))] {
            self.discard(n);
        }
        for n in self.checkpoint_dirs().into_iter().filter(|n| *n < newest && !completed.contains(n)) {
            self.discard(n);
        }
        self.release_shared_files();
    }

    /// Deletes the files of the shared directory (incremental RocksDB checkpoints) that no
    /// retained checkpoint references any more: those of subsumed checkpoints, and those an
    /// aborted checkpoint uploaded. The reference counts are rebuilt from the retained
    /// checkpoints' `_metadata`, so a restarted coordinator keeps them right; it runs when a
    /// checkpoint completed and before the next is triggered, so no upload is in flight.
    /// A retained checkpoint whose metadata cannot be read keeps every file (nothing is
    /// deleted rather than something needed).
    pub fn release_shared_files(&self) {
        if let Err(e) = crate::base::fence::check("deleting shared files") {
            warn!("{e}");
            return;
        }
        let shared = crate::runtime::checkpoint::shared_dir(&self.job_dir);
        let files = match shared.children() {
            Ok(files) if !files.is_empty() => files,
            Ok(_) => return,
            Err(e) => {
                warn!("not deleting shared files: cannot list '{shared}': {e}");
                return;
            }
        };
        let mut retained = Vec::new();
        for n in self.completed() {
            match self.read_metadata(n) {
                Ok(m) => retained.push((n, m.tasks.into_iter().flat_map(|t| t.shared).collect::<Vec<_>>())),
                Err(e) => {
                    warn!(checkpoint = n, "not deleting shared files: {e}");
                    return;
                }
            }
        }
        let registry = weir_state::SharedStateRegistry::rebuild(retained);
        for file in registry.unreferenced(files.iter().map(String::as_str)) {
            let path = shared.join(&file);
            if let Err(e) = path.remove_file() {
                warn!("cannot delete '{path}': {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
