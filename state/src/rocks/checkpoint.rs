//! The asynchronous part of a RocksDB checkpoint: uploading the new SST files of a local
//! checkpoint directory into the job's shared directory, and remembering what the completed
//! checkpoints uploaded, so that later ones reference it instead.
//!
//! Of the other files, the MANIFEST, CURRENT and the (empty, as writes skip it) write-ahead log
//! are embedded in the handle; the OPTIONS file is left out (see `upload`).
//!
//! An upload is named `<instance>-<checkpoint>-<sst file>`: unique to one backend instance and
//! one checkpoint. Two checkpoints in flight before either completed both upload a new SST file,
//! under two names, so that aborting one deletes nothing the other needs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use xxhash_rust::xxh3::Xxh3;

use crate::checkpoint::{IncrementalHandle, IncrementalState, PrivateFile, SharedFile, SnapshotTarget};
use crate::storage::Location;
use crate::{KeyGroup, Result, StateError};

/// Uploaded SST files by their name in the database.
pub(super) type FileMap = BTreeMap<String, SharedFile>;

/// What earlier checkpoints of a backend uploaded.
#[derive(Debug, Default)]
pub(super) struct Uploads {
    /// The files of the newest completed checkpoint (or of the restored one), and the directory
    /// they are in: what the next checkpoint may reference.
    base: Base,
    /// The newest completed (or restored) checkpoint.
    completed: Option<u64>,
    /// The files of checkpoints materialized but not yet confirmed complete.
    materialized: BTreeMap<u64, Base>,
}

/// The files a checkpoint may reference instead of uploading them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Base {
    /// The shared directory they are in; a checkpoint into another directory references none.
    dir: Location,
    files: Arc<FileMap>,
}

impl Uploads {
    /// The uploads of a restored checkpoint, which completed by definition.
    pub(super) fn restored(checkpoint: u64, shared_dir: &Location, files: FileMap) -> Self {
        Uploads {
            base: Base { dir: shared_dir.clone(), files: Arc::new(files) },
            completed: Some(checkpoint),
            materialized: BTreeMap::new(),
        }
    }

    /// What a new checkpoint may reference.
    pub(super) fn base(&self) -> Base {
        self.base.clone()
    }

    /// Checkpoint `checkpoint` completed: its files become the base, and earlier materialized
    /// checkpoints will never be confirmed.
    pub(super) fn complete(&mut self, checkpoint: u64) {
        if self.completed.is_some_and(|c| c >= checkpoint) {
            return;
        }
        match self.materialized.remove(&checkpoint) {
            Some(base) => {
                self.base = base;
                self.completed = Some(checkpoint);
            }
            None => tracing::debug!(checkpoint, "completed checkpoint has no upload here; keeping the previous base"),
        }
        self.materialized.retain(|&n, _| n > checkpoint);
    }

    /// Checkpoint `checkpoint` was aborted: its files are never referenced.
    pub(super) fn abort(&mut self, checkpoint: u64) {
        self.materialized.remove(&checkpoint);
    }

    /// Checkpoint `checkpoint` uploaded or referenced the files of `base`.
    fn record(&mut self, checkpoint: u64, base: Base) {
        if self.completed.is_none_or(|c| c < checkpoint) {
            self.materialized.insert(checkpoint, base);
        }
    }
}

/// A RocksDB checkpoint hard-linked into a local directory, to upload. Dropping it deletes the
/// directory.
#[derive(Debug)]
pub(crate) struct PendingCheckpoint {
    pub(super) checkpoint: u64,
    /// The local checkpoint directory.
    pub(super) dir: PathBuf,
    /// The backend instance, for the names of uploads.
    pub(super) instance: String,
    pub(super) key_groups: Range<KeyGroup>,
    pub(super) states: Vec<IncrementalState>,
    /// What this checkpoint may reference.
    pub(super) base: Base,
    /// Where to record what this checkpoint uploaded or referenced.
    pub(super) uploads: Arc<Mutex<Uploads>>,
}

impl PendingCheckpoint {
    /// Uploads the files no completed checkpoint uploaded, references the others, embeds the
    /// small ones; on failure deletes what it uploaded.
    pub(crate) fn materialize(self, target: &SnapshotTarget) -> Result<IncrementalHandle> {
        let shared_dir = target.shared_dir();
        if let Some(local) = shared_dir.as_local() {
            std::fs::create_dir_all(local).map_err(|e| StateError::io("create the shared directory", local, e))?;
        }
        let mut uploaded = Vec::new();
        let result = self.upload(shared_dir, &mut uploaded);
        if result.is_err() {
            for path in &uploaded {
                if let Err(e) = path.remove_file() {
                    tracing::warn!("cannot delete '{path}' of a failed checkpoint: {e}");
                }
            }
        }
        let handle = result?;
        let files = handle.shared.iter().map(|f| (f.local.clone(), f.clone())).collect();
        let base = Base { dir: shared_dir.clone(), files: Arc::new(files) };
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner).record(self.checkpoint, base);
        tracing::debug!(
            checkpoint = self.checkpoint,
            files = handle.shared.len(),
            uploaded = uploaded.len(),
            bytes = handle.size_bytes(),
            new_bytes = handle.incremental_bytes(),
            "materialized rocksdb checkpoint"
        );
        Ok(handle)
    }

    /// The handle, with each upload's path pushed to `uploaded` as soon as it exists.
    fn upload(&self, shared_dir: &Location, uploaded: &mut Vec<Location>) -> Result<IncrementalHandle> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| StateError::io("list the checkpoint", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io("list the checkpoint", &self.dir, e))?;
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(name) => {
                    return Err(StateError::Backend(format!(
                        "checkpoint '{}' holds a file with a non-UTF-8 name {name:?}",
                        self.dir.display()
                    )));
                }
            }
        }
        names.sort_unstable();
        let referable = if self.base.dir == *shared_dir { Some(&*self.base.files) } else { None };
        let mut shared = Vec::new();
        let mut private = Vec::new();
        for name in names {
            let path = self.dir.join(&name);
            if name.starts_with("OPTIONS-") {
                // Tens of KB per checkpoint, and not needed: a restore opens the database with
                // the backend's options, and RocksDB writes a new OPTIONS file then.
                continue;
            }
            if !name.ends_with(".sst") {
                let bytes = std::fs::read(&path).map_err(|e| StateError::io("read checkpoint file", &path, e))?;
                private.push(PrivateFile { name, bytes });
                continue;
            }
            if let Some(file) = referable.and_then(|files| files.get(&name)) {
                shared.push(file.clone());
                continue;
            }
            let upload = format!("{}-{}-{name}", self.instance, self.checkpoint);
            let to = shared_dir.join(&upload);
            let (bytes, checksum) = upload_hashed(&path, &to, uploaded)?;
            shared.push(SharedFile { name: upload, local: name, bytes, checksum, uploaded_in: self.checkpoint });
        }
        if let Some(local) = shared_dir.as_local() {
            File::open(local)
                .and_then(|d| d.sync_all())
                .map_err(|e| StateError::io("sync the shared directory", local, e))?;
        }
        Ok(IncrementalHandle {
            checkpoint: self.checkpoint,
            backend: self.instance.clone(),
            key_groups: self.key_groups.clone(),
            states: self.states.clone(),
            shared,
            private,
        })
    }
}

impl Drop for PendingCheckpoint {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot delete local checkpoint '{}': {e}", self.dir.display());
        }
    }
}

/// Read and write in pieces of this size.
const CHUNK: usize = 1 << 20;

/// Copies `from` into a new file `to` (pushed to `created` once it exists), synced, returning
/// its size and XXH3-64.
pub(super) fn copy_hashed(from: &Path, to: &Path, created: &mut Vec<PathBuf>) -> Result<(u64, u64)> {
    let mut dst = File::create_new(to).map_err(|e| StateError::io("create file", to, e))?;
    created.push(to.to_path_buf());
    let hashed = read_hashed(from, &mut |chunk| dst.write_all(chunk).map_err(|e| StateError::io("write file", to, e)))?;
    dst.sync_all().map_err(|e| StateError::io("sync file", to, e))?;
    Ok(hashed)
}

/// Copies local file `from` to `to` (pushed to `created` once it may exist): a synced local
/// copy, or an object uploaded whole; returns its size and XXH3-64.
fn upload_hashed(from: &Path, to: &Location, created: &mut Vec<Location>) -> Result<(u64, u64)> {
    if let Some(local) = to.as_local() {
        let mut made = Vec::new();
        let copied = copy_hashed(from, local, &mut made);
        created.extend(made.into_iter().map(Location::Local));
        return copied;
    }
    created.push(to.clone());
    let mut hashed = None;
    to.write_with(&crate::fs::LocalFs, |out| {
        let read = read_hashed(from, &mut |chunk| out.write_all(chunk).map_err(|e| StateError::io_at("upload", to, e)));
        hashed = Some(read.map_err(std::io::Error::other)?);
        Ok(())
    })
    .map_err(|(what, at, e)| StateError::io_at(what, &at, e))?;
    Ok(hashed.expect("the upload read the file"))
}

/// The size and XXH3-64 of the file `path`.
pub(super) fn hash_file(path: &Path) -> Result<(u64, u64)> {
    read_hashed(path, &mut |_| Ok(()))
}

/// Reads `path` in chunks, handing each to `chunk`, and returns its size and XXH3-64.
fn read_hashed(path: &Path, chunk: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<(u64, u64)> {
    let mut file = File::open(path).map_err(|e| StateError::io("open file", path, e))?;
    let mut buf = vec![0; CHUNK];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| StateError::io("read file", path, e))?;
        if n == 0 {
            return Ok((total, hasher.digest()));
        }
        hasher.update(&buf[..n]);
        chunk(&buf[..n])?;
        total += n as u64;
    }
}
