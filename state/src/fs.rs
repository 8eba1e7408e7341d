//! The file operations whose durability exactly-once rests on, behind one trait, so that
//! tests can crash a machine under them.
//!
//! A rename, a link, an unlink or a new file or directory is durable only once its directory
//! is synced; a file's bytes only once the file is synced. A process crash loses neither (the
//! kernel has them), a machine crash may lose both. The two-phase file sink and the checkpoint
//! storage write through a [`FileSystem`]: [`LocalFs`] in production, [`CrashFs`] in tests,
//! which keeps what was made durable beside the real files and at [`CrashFs::crash`] puts the
//! directory back to exactly that, as a machine that lost power would find it. Reads go to the
//! real files directly: between crashes they are what a reader sees.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file operations that change what a machine crash leaves behind. The namespace
/// operations default to the local file system's; what differs between implementations is
/// what a sync makes durable.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<File> {
        File::create(path)
    }

    /// Makes `file`'s (at `path`) bytes durable.
    fn sync_file(&self, path: &Path, file: &File) -> io::Result<()>;

    /// Renames a file (atomically, replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    /// Gives a file a second name; fails if `to` exists.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    /// Removes a name.
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    /// Creates a directory and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    /// Makes the names in `dir` (created, renamed, linked, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Creates a directory and any missing parents, each durable in its parent (files synced
    /// into it must not vanish with its name at a machine crash).
    fn create_dir_durably(&self, path: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = path.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.is_dir()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.create_dir_all(path)?;
        for dir in missing.iter().rev() {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

/// The local file system, as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFs;

impl FileSystem for LocalFs {
    fn sync_file(&self, _path: &Path, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The file system every component uses unless told otherwise.
pub fn local() -> Arc<dyn FileSystem> {
    Arc::new(LocalFs)
}

/// A local directory tree whose machine can crash (tests).
///
/// Operations go to the real files; beside them it keeps the durable image: each durable
/// name (and the file it names, by inode) and each file's last synced bytes. [`crash`]
/// replaces the tree by that image. Files are told apart by inode, so links and renames
/// keep their identity. Operations outside the root go to the local file system unrecorded.
/// One approximation: a new file that reuses the inode of a removed one, and is never synced,
/// comes back after a crash with the removed file's last synced bytes rather than empty (tests
/// are short enough that the kernel rarely reuses an inode within one).
///
/// [`crash`]: CrashFs::crash
#[derive(Debug, Clone)]
pub struct CrashFs {
    root: PathBuf,
    image: Arc<Mutex<Image>>,
}

/// What survives a machine crash.
#[derive(Debug, Default)]
struct Image {
    /// Durable directories, relative to the root (the root itself is `""`).
    dirs: BTreeSet<PathBuf>,
    /// Durable file names, relative to the root, and their file's inode.
    names: BTreeMap<PathBuf, u64>,
    /// The synced bytes of each file.
    bytes: BTreeMap<u64, Vec<u8>>,
}

fn inode(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::symlink_metadata(path)?.ino())
}

impl CrashFs {
    /// Everything under `root` (made if missing) is durable as it is now.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<CrashFs> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let fs = CrashFs { root, image: Arc::default() };
        fs.image_everything()?;
        Ok(fs)
    }

    /// The directory tree under test.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn image(&self) -> std::sync::MutexGuard<'_, Image> {
        self.image.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// The durable image is the tree as it is.
    fn image_everything(&self) -> io::Result<()> {
        let mut image = Image::default();
        let mut stack = vec![PathBuf::new()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(self.root.join(&dir))? {
                let entry = entry?;
                let relative = dir.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    stack.push(relative);
                } else {
                    let ino = inode(&entry.path())?;
                    image.bytes.entry(ino).or_insert(std::fs::read(entry.path())?);
                    image.names.insert(relative, ino);
                }
            }
            image.dirs.insert(dir);
        }
        *self.image() = image;
        Ok(())
    }

    /// A machine crash and its restart: the tree becomes its durable image. Files whose bytes
    /// were never synced come back empty; names never synced into their directory are gone,
    /// and names removed without a sync are back.
    pub fn crash(&self) -> io::Result<()> {
        let image = std::mem::take(&mut *self.image());
        for entry in std::fs::read_dir(&self.root)? {
            let path = entry?.path();
            if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
        }
        // A directory or name survives only if every directory above it does.
        let reachable = |path: &Path| path.ancestors().skip(1).all(|a| image.dirs.contains(a));
        for dir in image.dirs.iter().filter(|d| reachable(d)) {
            std::fs::create_dir_all(self.root.join(dir))?;
        }
        let mut made: BTreeMap<u64, PathBuf> = BTreeMap::new();
        for (name, ino) in image.names.iter().filter(|(n, _)| reachable(n)) {
            let path = self.root.join(name);
            match made.get(ino) {
                Some(first) => std::fs::hard_link(first, &path)?,
                None => {
                    std::fs::write(&path, image.bytes.get(ino).map(Vec::as_slice).unwrap_or_default())?;
                    made.insert(*ino, path);
                }
            }
        }
        self.image_everything()
    }
}

impl FileSystem for CrashFs {
    fn sync_file(&self, path: &Path, file: &File) -> io::Result<()> {
        file.sync_all()?;
        if self.relative(path).is_some() {
            let bytes = std::fs::read(path)?;
            self.image().bytes.insert(inode(path)?, bytes);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()?;
        let Some(relative) = self.relative(dir) else { return Ok(()) };
        let mut image = self.image();
        image.names.retain(|name, _| name.parent() != Some(relative));
        image.dirs.retain(|d| d.parent() != Some(relative) || self.root.join(d).is_dir());
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                image.dirs.insert(name);
            } else {
                image.names.insert(name, inode(&entry.path())?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
