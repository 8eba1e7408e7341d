//! Files that are either absent or whole: what the checkpoint storage and the job store write.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fs::FileSystem;

/// A failed step of [`write_atomically`]: what it was doing, to which file, and the error.
pub type WriteError = (&'static str, PathBuf, std::io::Error);

/// Writes `bytes` to `path` through a temporary file, fsync and rename, then syncs the
/// directory: after a crash at any point, the file is either absent (or as before) or complete.
/// Creates the directory if it is missing (durably).
pub fn write_atomically(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = path.parent().expect("durable files live in a directory");
    fs.create_dir_durably(dir).map_err(|e| ("create the directory of", path.to_path_buf(), e))?;
    write_atomically_in_place(fs, path, bytes)
}

/// As [`write_atomically`], into a directory that must exist: a writer that comes late (its
/// checkpoint was aborted and its directory deleted) fails instead of making it again.
///
/// Every write goes through a temporary file of its own (process id and a counter in its
/// name), so two writers of the same file (an old execution attempt still running beside the
/// new one) never write into each other's temporary file; the last rename wins whole.
pub fn write_atomically_in_place(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomically_in_place_with(fs, path, |file| file.write_all(bytes))
}

/// As [`write_atomically_in_place`], the contents written by `write` (buffered), so that a large
/// file is never whole in memory.
pub fn write_atomically_in_place_with(
    fs: &dyn FileSystem,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().expect("durable files live in a directory");
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}-{}.tmp", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let file = fs.create(&tmp).map_err(|e| ("create", tmp.clone(), e))?;
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, file);
        write(&mut buffered).map_err(|e| ("write", tmp.clone(), e))?;
        let file = buffered.into_inner().map_err(|e| ("write", tmp.clone(), e.into_error()))?;
        fs.sync_file(&tmp, &file).map_err(|e| ("sync", tmp.clone(), e))?;
        fs.rename(&tmp, path).map_err(|e| ("publish", path.to_path_buf(), e))
    })();
    if written.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    written?;
    fs.sync_dir(dir).map_err(|e| ("sync the directory of", path.to_path_buf(), e))
}
