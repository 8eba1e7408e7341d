//! Where durable files live: a directory of the local file system (or of a file system every
//! node mounts), or a prefix in an S3-compatible object store (`s3://bucket/prefix`).
//!
//! Checkpoints, savepoints and the shared files of incremental RocksDB checkpoints are written
//! and read through a [`Location`], so that one rule holds on every store: a file is either
//! absent or whole, and a checkpoint exists iff its `_metadata` does (written last).
//!
//! - **Local**: every write goes through a temporary file, fsync and rename, and the directory
//!   is synced ([`durable`]), through a [`FileSystem`] (tests crash a machine
//!   under it).
//! - **Object store**: a `PUT` is atomic (an object is absent or whole), so a file is one
//!   object; one larger than [`PART_SIZE`] is a multipart upload, which is invisible until it
//!   completes. There are no directories: a directory is the prefix of its objects' keys, made
//!   by its first object and gone with its last. One local rule does not carry over: a subtask
//!   whose checkpoint was aborted (and its directory deleted) while it still uploaded cannot be
//!   stopped by a missing directory, so its late object may land under the deleted checkpoint's
//!   prefix. Nothing reads it (the checkpoint has no `_metadata`), and the next prune deletes it
//!   with every incomplete checkpoint older than the newest completed one.
//!
//! The object store client is `object_store`'s S3 client (path-style requests, so self-hosted
//! stores work), configured from the standard `AWS_*` environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`, …) and then from [`configure_s3`] (the `[s3]` section of `weir.toml`). Its
//! calls are async; a [`Location`] is used from blocking code (checkpoint writes run on blocking
//! threads), so they run on a small runtime of their own and the caller waits for them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable::{self, WriteError};
use crate::fs::FileSystem;

mod object;

pub use object::{PART_SIZE, S3Options, configure_s3, configure_s3_bucket};

/// A directory or file of durable storage: a local path, or an object store prefix or key.
///
/// Written and read as text: a plain path (or a `file://` URL) is local, `s3://bucket/key` is
/// in an S3-compatible store. It serializes as that text, so a plain path stored by an older
/// build reads back as the same local location.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// A path of the local file system (or of one every node mounts).
    Local(PathBuf),
    /// A key (or key prefix, for a directory) in a bucket of an S3-compatible store.
    Object(ObjectKey),
}

/// A key in a bucket; `key` has no leading or trailing `/` (empty for the bucket's root).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    bucket: String,
    key: String,
}

/// What failed in a write to a [`Location`]: the step, where, and the error.
pub type LocationError = (&'static str, Location, io::Error);

fn local_error((what, path, e): WriteError) -> LocationError {
    (what, Location::Local(path), e)
}

impl Location {
    /// Parses a location: `s3://bucket[/prefix]`, `file:///path`, or a plain path. Another
    /// scheme, or an `s3://` URL without a bucket, is an error naming it.
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("'{text}' names no bucket (expected s3://bucket/prefix)"));
            }
            let key = key.trim_matches('/');
            if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !key.is_empty() {
                return Err(format!("'{text}' has an empty, '.' or '..' path segment"));
            }
            return Ok(Location::Object(ObjectKey { bucket: bucket.to_owned(), key: key.to_owned() }));
        }
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!("'{text}' is not an absolute file:// URL (expected file:///path)"));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(format!(
                "'{text}': storage scheme '{scheme}://' is not supported (use a path, file:// or s3://)"
            ));
        }
        if text.is_empty() {
            return Err("an empty path".to_owned());
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The location of `name` in this directory (`name` may hold `/`-separated segments).
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(path) => Location::Local(path.join(name)),
            Location::Object(o) => {
                let name = name.trim_matches('/');
                let key = if o.key.is_empty() { name.to_owned() } else { format!("{}/{name}", o.key) };
                Location::Object(ObjectKey { bucket: o.bucket.clone(), key })
            }
        }
    }

    /// The directory this is in; `None` at a root.
    pub fn parent(&self) -> Option<Location> {
        match self {
            Location::Local(path) => path.parent().map(|p| Location::Local(p.to_path_buf())),
            Location::Object(o) if o.key.is_empty() => None,
            Location::Object(o) => Some(Location::Object(ObjectKey {
                bucket: o.bucket.clone(),
                key: o.key.rsplit_once('/').map_or("", |(parent, _)| parent).to_owned(),
            })),
        }
    }

    /// The last segment (file or directory name).
    pub fn name(&self) -> Option<&str> {
        match self {
            Location::Local(path) => path.file_name()?.to_str(),
            Location::Object(o) => o.key.rsplit('/').next().filter(|n| !n.is_empty()),
        }
    }

    /// The local path, if it is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Object(_) => None,
        }
    }

    /// Whether `self` is `other` or inside it.
    pub fn starts_with(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => a.starts_with(b),
            (Location::Object(a), Location::Object(b)) => {
                a.bucket == b.bucket
                    && (b.key.is_empty()
                        || a.key == b.key
                        || a.key.strip_prefix(&b.key).is_some_and(|rest| rest.starts_with('/')))
            }
            _ => false,
        }
    }

    /// The file's bytes.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        match self {
            Location::Local(path) => std::fs::read(path),
            Location::Object(o) => object::read(o),
        }
    }

    /// The file's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            Location::Local(path) => Ok(std::fs::metadata(path)?.len()),
            Location::Object(o) => object::size(o),
        }
    }

    /// Whether the file exists (an error only when that cannot be told).
    pub fn is_file(&self) -> io::Result<bool> {
        match self {
            Location::Local(path) => Ok(path.is_file()),
            Location::Object(o) => match object::size(o) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Whether the directory exists: locally, as a directory; in an object store, as the
    /// prefix of at least one object.
    pub fn is_dir(&self) -> io::Result<bool> {
        match self {
            Location::Local(path) => Ok(path.is_dir()),
            Location::Object(o) => Ok(!object::children(o)?.is_empty()),
        }
    }

    /// The names of what the directory holds directly (files and directories), unsorted; a
    /// directory that does not exist holds nothing.
    pub fn children(&self) -> io::Result<Vec<String>> {
        match self {
            Location::Local(path) => match std::fs::read_dir(path) {
                Ok(entries) => {
                    Ok(entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            Location::Object(o) => object::children(o),
        }
    }

    /// Makes the directory (and its parents), durably; nothing to do in an object store.
    pub fn create_dir_durably(&self, fs: &dyn FileSystem) -> io::Result<()> {
        match self {
            Location::Local(path) => fs.create_dir_durably(path),
            Location::Object(_) => Ok(()),
        }
    }

    /// Writes `bytes` as the whole file, atomically (see [`durable::write_atomically`] for a
    /// local file; one `PUT` in an object store), making its directory if missing.
    pub fn write_atomically(&self, fs: &dyn FileSystem, bytes: &[u8]) -> Result<(), LocationError> {
        match self {
            Location::Local(path) => durable::write_atomically(fs, path, bytes).map_err(local_error),
            Location::Object(o) => object::put(o, bytes.to_vec()).map_err(|e| ("write", self.clone(), e)),
        }
    }

    /// As [`write_atomically`](Self::write_atomically), the contents written by `write`, never
    /// whole in memory (a local file is written in place of a temporary one, an object in parts
    /// of [`PART_SIZE`]). A local directory must exist (see
    /// [`durable::write_atomically_in_place_with`]). Returns the bytes written.
    pub fn write_with(
        &self,
        fs: &dyn FileSystem,
        write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<u64, LocationError> {
        match self {
            Location::Local(path) => {
                let mut bytes = 0;
                durable::write_atomically_in_place_with(fs, path, |file| {
                    let mut counted = Counted { inner: file, bytes: 0 };
                    write(&mut counted)?;
                    bytes = counted.bytes;
                    Ok(())
                })
                .map_err(local_error)?;
                Ok(bytes)
            }
            Location::Object(o) => {
                let mut upload = object::Upload::new(o.clone());
                let written = write(&mut upload).and_then(|()| upload.finish());
                written.map_err(|e| ("write", self.clone(), e))
            }
        }
    }

    /// Copies local file `from` here, atomically (a local copy is synced), returning its size.
    pub fn upload_from(&self, fs: &dyn FileSystem, from: &Path) -> Result<u64, LocationError> {
        let mut file = std::fs::File::open(from).map_err(|e| ("read", Location::Local(from.to_path_buf()), e))?;
        self.write_with(fs, |out| io::copy(&mut file, out).map(drop))
    }

    /// Copies this file to local path `to` (not synced: what is downloaded is a cache of what is
    /// durable here), returning its size.
    pub fn download_to(&self, to: &Path) -> io::Result<u64> {
        match self {
            Location::Local(path) => std::fs::copy(path, to),
            Location::Object(o) => object::download(o, to),
        }
    }

    /// Deletes the file; a missing one is not an error.
    pub fn remove_file(&self) -> io::Result<()> {
        let removed = match self {
            Location::Local(path) => std::fs::remove_file(path),
            Location::Object(o) => object::delete(o),
        };
        match removed {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Deletes the directory and everything in it; a missing one is not an error.
    pub fn remove_dir_all(&self) -> io::Result<()> {
        let removed = match self {
            Location::Local(path) => std::fs::remove_dir_all(path),
            Location::Object(o) => object::delete_prefix(o),
        };
        match removed {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// The empty local path: nowhere (what a subtask that restores nothing has as its shared
/// directory).
impl Default for Location {
    fn default() -> Self {
        Location::Local(PathBuf::new())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Local(path)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Self {
        Location::Local(path.clone())
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Self {
        Location::Local(path.to_path_buf())
    }
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Location::parse(text)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Object(o) if o.key.is_empty() => write!(f, "s3://{}", o.bucket),
            Location::Object(o) => write!(f, "s3://{}/{}", o.bucket, o.key),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Location::Local(path) => path.serialize(serializer),
            Location::Object(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Location {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Location::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A writer that counts the bytes written through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: io::Write> io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
