//! Rebuilding a backend's database from incremental handles, at the same or another
//! parallelism (see the module doc of `rocks.rs`).

use std::cmp::Reverse;
use std::ops::Range;
use std::path::Path;

use rocksdb::{DEFAULT_COLUMN_FAMILY_NAME, ReadOptions, WriteBatch};

use super::checkpoint::{FileMap, Uploads, copy_hashed, hash_file};
use super::{DB_DIR, Database, Db, RESTORE_DIR, RocksDbConfig, column_family_of, rocks_error};
use crate::checkpoint::{IncrementalHandle, IncrementalState, SharedFile};
use crate::storage::Location;
use crate::{KeyGroup, Result, StateError};

/// A rescaling restore writes the entries it copies in batches of about this many bytes.
const COPY_BATCH_BYTES: usize = 4 << 20;

/// A restored database and what the backend needs to know about it.
pub(super) struct Restored {
    pub(super) db: Database,
    pub(super) states: Vec<IncrementalState>,
    pub(super) uploads: Uploads,
}

/// The number of key groups two ranges share.
fn overlap(a: &Range<KeyGroup>, b: &Range<KeyGroup>) -> u16 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// Opens the database of `dir` for `key_groups` from `handles` (see `RocksDbBackend::restore`).
pub(super) fn restore(
    dir: &Path,
    key_groups: &Range<KeyGroup>,
    config: &RocksDbConfig,
    handles: &[IncrementalHandle],
    shared_dir: &Location,
) -> Result<Restored> {
    let db_path = dir.join(DB_DIR);
    let relevant = || handles.iter().enumerate().filter(|(_, h)| overlap(&h.key_groups, key_groups) > 0);
    // The handle sharing the most key groups is rebuilt as it is; ties go to the first.
    let Some((base_index, base)) = relevant().max_by_key(|&(i, h)| (overlap(&h.key_groups, key_groups), Reverse(i)))
    else {
        let db = Database::open(config, &db_path, vec![DEFAULT_COLUMN_FAMILY_NAME.to_owned()], dir)?;
        return Ok(Restored { db, states: Vec::new(), uploads: Uploads::default() });
    };
    let files = rebuild(base, &db_path, shared_dir)?;
    let db = Database::open(config, &db_path, column_families(&db_path, base)?, dir)?;
    let mut states = base.states.clone();
    clip(&db, &states, &base.key_groups, key_groups)?;
    for (index, handle) in relevant().filter(|&(i, _)| i != base_index) {
        let scratch = dir.join(RESTORE_DIR).join(index.to_string());
        rebuild(handle, &scratch, shared_dir)?;
        let source = Db::open_cf_descriptors_read_only(
            &config.db_options(),
            &scratch,
            config.descriptors(column_families(&scratch, handle)?),
            false,
        )
        .map_err(|e| rocks_error(format_args!("cannot open the database rebuilt in '{}'", scratch.display()), e))?;
        let range = key_groups.start.max(handle.key_groups.start)..key_groups.end.min(handle.key_groups.end);
        for state in &handle.states {
            let target = target_state(&db, config, &mut states, state, handle)?;
            copy_range(&source, &state.column_family, &db, &target, &range)?;
        }
        drop(source);
        std::fs::remove_dir_all(&scratch).map_err(|e| StateError::io("delete the scratch database", &scratch, e))?;
    }
    tracing::debug!(
        base = base.checkpoint,
        base_key_groups = ?base.key_groups,
        ?key_groups,
        copied_from = relevant().count() - 1,
        "restored rocksdb state"
    );
    Ok(Restored { db, states, uploads: Uploads::restored(base.checkpoint, shared_dir, files) })
}

/// The column family that `state` of `handle` is copied into, created if the database lacks it.
fn target_state(
    db: &Database,
    config: &RocksDbConfig,
    states: &mut Vec<IncrementalState>,
    state: &IncrementalState,
    handle: &IncrementalHandle,
) -> Result<String> {
    match states.iter().find(|s| s.name == state.name) {
        Some(existing) if existing.kind != state.kind => Err(StateError::Corrupt {
            what: format!(
                "state {:?} is a {:?} state in checkpoint {} for key groups {:?} but a {:?} state in another handle",
                state.name, state.kind, handle.checkpoint, handle.key_groups, existing.kind
            ),
        }),
        Some(existing) => Ok(existing.column_family.clone()),
        None => {
            let column_family = column_family_of(&state.name);
            db.db.create_cf(&column_family, &config.column_family_options()).map_err(|e| {
                rocks_error(format_args!("cannot create the column family of state {:?}", state.name), e)
            })?;
            states.push(IncrementalState { column_family: column_family.clone(), ..state.clone() });
            Ok(column_family)
        }
    }
}

/// Puts the files of `handle` into the new directory `path`: its shared files hard-linked from
/// `shared_dir` (copied where linking fails), or downloaded from an object store several at a
/// time, and checked against their size and checksum, its private files written. Returns the shared files by their name in the database.
fn rebuild(handle: &IncrementalHandle, path: &Path, shared_dir: &Location) -> Result<FileMap> {
    std::fs::create_dir_all(path).map_err(|e| StateError::io("create the database directory", path, e))?;
    let fetch = |file: &SharedFile| -> Result<()> {
        let from = shared_dir.join(plain_name(&file.name, handle)?);
        let to = path.join(plain_name(&file.local, handle)?);
        let found = match from.as_local().map(|local| (local, std::fs::hard_link(local, &to))) {
            Some((_, Ok(()))) => hash_file(&to)?,
            Some((local, Err(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::io("find shared file", local, e));
            }
            // Another filesystem, or links not allowed: copy.
            Some((local, Err(_))) => copy_hashed(local, &to, &mut Vec::new())?,
            None => {
                from.download_to(&to).map_err(|e| StateError::io_at("download shared file", &from, e))?;
                hash_file(&to)?
            }
        };
        check(file, found, &from, handle)
    };
    if shared_dir.as_local().is_some() {
        handle.shared.iter().try_for_each(fetch)?;
    } else {
        download_in_parallel(&handle.shared, &fetch)?;
    }
    let files = handle.shared.iter().map(|file| (file.local.clone(), file.clone())).collect();
    for file in &handle.private {
        let to = path.join(plain_name(&file.name, handle)?);
        std::fs::write(&to, &file.bytes).map_err(|e| StateError::io("write database file", &to, e))?;
    }
    if !handle.private.iter().any(|f| f.name == "CURRENT") {
        return Err(StateError::Corrupt {
            what: format!(
                "the rocksdb handle of checkpoint {} for key groups {:?} has no CURRENT file",
                handle.checkpoint, handle.key_groups
            ),
        });
    }
    Ok(files)
}

/// Shared files downloaded at once from an object store: one download is a sequence of ranged
/// reads, bound by their round trips rather than the bandwidth.
const PARALLEL_DOWNLOADS: usize = 4;

/// Runs `fetch` on every file, [`PARALLEL_DOWNLOADS`] at a time; the first error stops the
/// downloads not yet started and is returned.
pub(super) fn download_in_parallel(
    files: &[SharedFile],
    fetch: &(dyn Fn(&SharedFile) -> Result<()> + Sync),
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_DOWNLOADS.min(files.len()) {
            scope.spawn(|| {
                while let Some(file) = files.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let result = fetch(file);
                    let mut failed = failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Err(e) = result {
                        failed.get_or_insert(e);
                    }
                    if failed.is_some() {
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Fails unless the file read from `path` has the size and checksum `file` recorded.
fn check(file: &SharedFile, (bytes, checksum): (u64, u64), path: &Location, handle: &IncrementalHandle) -> Result<()> {
    if (bytes, checksum) == (file.bytes, file.checksum) {
        return Ok(());
    }
    Err(StateError::Corrupt {
        what: format!(
            "shared file '{}' of checkpoint {} has {bytes} bytes with checksum {checksum:016x}, \
             but the checkpoint recorded {} bytes with checksum {:016x}",
            path, handle.checkpoint, file.bytes, file.checksum
        ),
    })
}

/// `name` if it names a file inside a directory (no separators, not `.` or `..`): a handle is
/// read from a checkpoint, which must not reach outside the directories it is restored into.
fn plain_name<'a>(name: &'a str, handle: &IncrementalHandle) -> Result<&'a str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(StateError::Corrupt {
            what: format!("the rocksdb handle of checkpoint {} names a file {name:?}", handle.checkpoint),
        });
    }
    Ok(name)
}

/// The column families of the database rebuilt in `path`, checked against `handle`'s states.
fn column_families(path: &Path, handle: &IncrementalHandle) -> Result<Vec<String>> {
    let names = Db::list_cf(&rocksdb::Options::default(), path)
        .map_err(|e| rocks_error(format_args!("cannot read the database rebuilt in '{}'", path.display()), e))?;
    if let Some(state) = handle.states.iter().find(|s| !names.contains(&s.column_family)) {
        return Err(StateError::Corrupt {
            what: format!(
                "the rocksdb handle of checkpoint {} has state {:?} in column family {:?}, which its database lacks",
                handle.checkpoint, state.name, state.column_family
            ),
        });
    }
    Ok(names)
}

/// The first key of key group `kg` (and the bound after the key groups before it).
fn key_group_start(kg: KeyGroup) -> [u8; 2] {
    kg.to_be_bytes()
}

/// Deletes the entries of the key groups of `from` outside `to` from every state.
fn clip(db: &Database, states: &[IncrementalState], from: &Range<KeyGroup>, to: &Range<KeyGroup>) -> Result<()> {
    let mut outside = Vec::new();
    if from.start < to.start {
        outside.push(from.start..to.start.min(from.end));
    }
    if to.end < from.end {
        outside.push(to.end.max(from.start)..from.end);
    }
    for state in states {
        let cf = db.cf(&state.column_family)?;
        for range in &outside {
            db.db
                .delete_range_cf_opt(&cf, key_group_start(range.start), key_group_start(range.end), &db.write)
                .map_err(|e| {
                    rocks_error(format_args!("cannot delete key groups {range:?} of state {:?}", state.name), e)
                })?;
        }
    }
    Ok(())
}

/// Copies the entries of key groups `range` from column family `from_cf` of `source` into
/// `to_cf` of `target`: one contiguous scan.
fn copy_range(source: &Db, from_cf: &str, target: &Database, to_cf: &str, range: &Range<KeyGroup>) -> Result<()> {
    let from = source
        .cf_handle(from_cf)
        .ok_or_else(|| StateError::Backend(format!("column family {from_cf:?} is missing")))?;
    let to = target.cf(to_cf)?;
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(key_group_start(range.end));
    opts.fill_cache(false);
    let mut iter = source.raw_iterator_cf_opt(&from, opts);
    iter.seek(key_group_start(range.start));
    let mut batch = WriteBatch::default();
    let write = |batch: WriteBatch| {
        target.db.write_opt(batch, &target.write).map_err(|e| rocks_error("cannot write restored entries", e))
    };
    while let Some((key, value)) = iter.item() {
        batch.put_cf(&to, key, value);
        if batch.size_in_bytes() >= COPY_BATCH_BYTES {
            write(std::mem::take(&mut batch))?;
        }
        iter.next();
    }
    iter.status().map_err(|e| rocks_error(format_args!("cannot read column family {from_cf:?} to restore"), e))?;
    if !batch.is_empty() { write(batch) } else { Ok(()) }
}
