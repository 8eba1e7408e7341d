//! The write-back cache in front of a RocksDB database: hot entries are read and written in
//! memory, and reach RocksDB in one write batch at the next checkpoint (or when the cache is
//! full), so a key updated by every record costs RocksDB one write per checkpoint instead of a
//! read and a write per record.
//!
//! What a checkpoint or a restore sees is unchanged: the backend writes the cache back before
//! RocksDB takes its checkpoint, and a prefix scan or deletion writes back the entries of its
//! column family first. The cache holds what was read (a miss reads RocksDB once and keeps the
//! value, or its absence) and what was written but not yet written back; when its entries pass
//! the configured size it writes back and starts empty. An append to a list that is not cached
//! goes straight to RocksDB's merge operator (it reads nothing); one to a cached list appends
//! in memory.
//!
//! Each column family's entries are ordered by key, so a prefix (a key's map, a key group) is
//! a range.

use std::collections::{BTreeMap, HashMap};

use rocksdb::WriteBatch;

/// One cached key.
#[derive(Debug)]
struct Cached {
    /// The value, or `None` if the key has none (read so, or deleted).
    value: Option<Vec<u8>>,
    /// Changed since RocksDB last had it.
    dirty: bool,
}

/// Bookkeeping per entry on top of its bytes, for the size bound.
const ENTRY_OVERHEAD: usize = 64;

/// The cache of one database; see the module docs.
#[derive(Debug, Default)]
pub(super) struct WriteCache {
    /// Per column family, its cached keys.
    families: HashMap<String, BTreeMap<Vec<u8>, Cached>>,
    /// The entries' approximate size.
    bytes: usize,
    /// Past this size the cache writes back and empties; 0 turns it off.
    capacity: usize,
}

/// What the cache knows of a key.
pub(super) enum Lookup<'a> {
    /// Its value.
    Value(&'a [u8]),
    /// It has none.
    Absent,
    /// Not cached: ask RocksDB.
    Unknown,
}

impl WriteCache {
    pub(super) fn new(capacity: usize) -> Self {
        WriteCache { capacity, ..WriteCache::default() }
    }

    /// Whether the cache is in use.
    #[inline]
    pub(super) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn family(&mut self, family: &str) -> &mut BTreeMap<Vec<u8>, Cached> {
        if !self.families.contains_key(family) {
            self.families.insert(family.to_owned(), BTreeMap::new());
        }
        self.families.get_mut(family).expect("inserted above")
    }

    /// What the cache knows of `key`.
    #[inline]
    pub(super) fn get(&self, family: &str, key: &[u8]) -> Lookup<'_> {
        match self.families.get(family).and_then(|f| f.get(key)) {
            Some(Cached { value: Some(v), .. }) => Lookup::Value(v),
            Some(Cached { value: None, .. }) => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    /// Keeps what RocksDB holds for `key` (read on a miss).
    pub(super) fn fill(&mut self, family: &str, key: &[u8], value: Option<&[u8]>) {
        self.bytes += key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        self.family(family).insert(key.to_vec(), Cached { value: value.map(<[u8]>::to_vec), dirty: false });
    }

    /// Sets `key`'s value (`None`: deletes it), to be written back.
    #[inline]
    pub(super) fn put(&mut self, family: &str, key: &[u8], value: Option<&[u8]>) {
        let added = value.map_or(0, <[u8]>::len);
        let map = self.family(family);
        match map.get_mut(key) {
            Some(cached) => {
                let removed = cached.value.as_ref().map_or(0, Vec::len);
                match (value, &mut cached.value) {
                    (Some(new), Some(old)) => {
                        old.clear();
                        old.extend_from_slice(new);
                    }
                    (new, old) => *old = new.map(<[u8]>::to_vec),
                }
                cached.dirty = true;
                self.bytes = self.bytes + added - removed.min(self.bytes);
            }
            None => {
                map.insert(key.to_vec(), Cached { value: value.map(<[u8]>::to_vec), dirty: true });
                self.bytes += key.len() + added + ENTRY_OVERHEAD;
            }
        }
    }

    /// Appends `bytes` to a cached value (a list), returning false if `key` is not cached.
    #[inline]
    pub(super) fn append(&mut self, family: &str, key: &[u8], bytes: &[u8]) -> bool {
        let Some(cached) = self.families.get_mut(family).and_then(|f| f.get_mut(key)) else { return false };
        cached.value.get_or_insert_with(Vec::new).extend_from_slice(bytes);
        cached.dirty = true;
        self.bytes += bytes.len();
        true
    }

    /// Whether the cache has passed its size.
    #[inline]
    pub(super) fn full(&self) -> bool {
        self.bytes > self.capacity
    }

    /// Puts every changed entry (of `family` only, if given) into `batch` and marks it written
    /// back; `cf` gives a family's handle.
    pub(super) fn write_back<C: rocksdb::AsColumnFamilyRef>(
        &mut self,
        family: Option<&str>,
        batch: &mut WriteBatch,
        cf: &mut dyn FnMut(&str) -> crate::Result<C>,
    ) -> crate::Result<()> {
        for (name, entries) in self.families.iter_mut().filter(|(n, _)| family.is_none_or(|f| f == n.as_str())) {
            if !entries.values().any(|c| c.dirty) {
                continue;
            }
            let handle = cf(name)?;
            for (key, cached) in entries.iter_mut().filter(|(_, c)| c.dirty) {
                match &cached.value {
                    Some(value) => batch.put_cf(&handle, key, value),
                    None => batch.delete_cf(&handle, key),
                }
                cached.dirty = false;
            }
        }
        Ok(())
    }

    /// Forgets every entry (all written back).
    pub(super) fn clear(&mut self) {
        self.families.clear();
        self.bytes = 0;
    }

    /// Forgets the entries of `family` under `prefix` (written back, or deleted in RocksDB).
    pub(super) fn forget_prefix(&mut self, family: &str, prefix: &[u8]) {
        let Some(entries) = self.families.get_mut(family) else { return };
        let keys: Vec<Vec<u8>> = entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(cached) = entries.remove(&key) {
                let size = key.len() + cached.value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
                self.bytes = self.bytes.saturating_sub(size);
            }
        }
    }
}
