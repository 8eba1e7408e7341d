//! The in-memory backend: typed objects in one hash map per key group, no serialization on
//! access, since a keyed reduce updates state once per record.
//!
//! A key group's snapshot is the canonical one of `snapshot.rs`: the postcard encoding of its
//! entries as a list of `(key, namespace, value)` (the value being the list, or the map as a list
//! of `(user key, value)`), sorted by the encoded key and namespace (and user key), so that equal
//! contents give equal bytes whatever the hash maps' iteration order.
//!
//! ## Asynchronous snapshots: copy-on-write key groups
//!
//! Serializing every key group on the processing loop stalls it for as long as the state is
//! large (2 s for 10 M keys), so a checkpoint only freezes the tables there and serializes them
//! on another thread, as Flink's heap backend does with its copy-on-write state maps. Our unit
//! of copying is the key group (Flink copies its bucket array at the snapshot, then single
//! entries as they are written):
//!
//! - Each key group's map is a [`Group`]: `Owned` by the table, or `Shared` behind an `Arc`
//!   with the frozen views of checkpoints in progress.
//! - Freezing ([`KeyGroupMaps::freeze`], the synchronous part) moves each owned map into an
//!   `Arc` (its header, not its entries) and clones the `Arc`s into a frozen view: O(key
//!   groups), microseconds.
//! - Reads of a shared group read the shared map. The first write to a shared group copies
//!   it, or takes it back without a copy if every view has let go
//!   ([`Arc::unwrap_or_clone`]), so the copying is spread over the writes after the barrier
//!   and only groups actually written are copied. A frozen view never changes, so each
//!   checkpoint's view holds exactly the state of its barrier, however many are alive.
//!
//! The per-record path tells an owned group from a shared one by the enum's variant, a plain
//! load and compare, rather than by `Arc::make_mut` on every write, whose atomic
//! compare-and-swap on the reference count costs half as much again as the rest of an upsert.
//! Measured in release on the 2-core development machine: `upsert_throughput` in
//! `store/tests.rs` (20 M upserts of 100 k keys) at 103 M/s before copy-on-write, 105 M/s with
//! the enum and 69 M/s with `make_mut` on every write (medians of ten runs, +4.8 ns per upsert).
//! `weir bench --cases keyed --parallelism 1 --events 100000000` does not show it (24.8, 24.5 and
//! 24.6 M/s, medians of eight runs, within the noise), as the reduce is not what limits that
//! pipeline; it would show where state access is. The enum needs no `unsafe`. Sharing needs
//! the state types to be `Sync` (a frozen view is read on another thread while the operator
//! reads the same map), hence the bound on [`StateData`](crate::StateData).
//!
//! What copy-on-write still costs: with keys spread at random, every key group is written, and
//! so copied, within moments of each barrier, while its snapshot is being serialized; until the
//! views let go, the state is held twice. With 10 M keys and a checkpoint every second the keyed
//! benchmark runs at 1.85 M/s against 2.5 M/s without checkpoints (0.36 M/s when the snapshot
//! was serialized on the loop). Copying single entries, as Flink does, would need a hash map of
//! our own.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{FrozenTable, KeyedStateBackend, ListTable, MapTable, TableFactory, ValueTable};
use crate::snapshot::{Entries, append, decode};
use crate::{KeyGroup, Result, StateError};

#[cfg(test)]
mod tests;

/// A hash map with the fast, non-DoS-resistant hasher; keys come from the job, not an attacker.
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// Keeps keyed state as typed objects in memory, one hash map per key group.
#[derive(Debug)]
pub struct MemoryBackend {
    key_groups: Range<KeyGroup>,
}

impl MemoryBackend {
    /// A backend covering `key_groups`.
    pub fn new(key_groups: Range<KeyGroup>) -> Self {
        Self { key_groups }
    }
}

impl KeyedStateBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn key_groups(&self) -> Range<KeyGroup> {
        self.key_groups.clone()
    }

    fn create_table(&mut self, name: &str, factory: &dyn TableFactory) -> Result<Box<dyn Any + Send>> {
        tracing::debug!(state = name, kind = ?factory.kind(), "creating memory state table");
        Ok(factory.memory_table(self.key_groups.clone()))
    }
}

/// A borrowed `(key, namespace)` that looks up a `(K, N)` map key without cloning it.
///
/// It must hash exactly as the tuple `(K, N)` does (hash `K`, then `N`), and must not implement
/// `Eq`, which would clash with `Equivalent`'s blanket impl.
struct KeyNs<'a, K, N>(&'a K, &'a N);

impl<K: Hash, N: Hash> Hash for KeyNs<'_, K, N> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl<K: Eq, N: Eq> Equivalent<(K, N)> for KeyNs<'_, K, N> {
    #[inline]
    fn equivalent(&self, other: &(K, N)) -> bool {
        *self.0 == other.0 && *self.1 == other.1
    }
}

/// The hash map of one key group.
type Map<K, N, T> = FxHashMap<(K, N), T>;

/// One hash map from `(key, namespace)` to `T` per key group of a range, each copied on write
/// once a checkpoint shares it (see the module doc).
///
/// Per key group so that a key-group range can later be snapshotted and handed to another
/// subtask without scanning the others, and so that a write after a checkpoint copies one
/// key group, not the table.
struct KeyGroupMaps<K, N, T> {
    key_groups: Range<KeyGroup>,
    groups: Vec<Group<Map<K, N, T>>>,
}

/// One key group's map: the table's own, or shared with the frozen views of checkpoints.
///
/// The variant is the "shared" flag of the module doc: telling them apart is a plain load and
/// compare, no atomic operation on the `Arc`, so the per-record path pays nothing for
/// copy-on-write while a group is owned.
enum Group<M> {
    /// Only the table holds it: read and written in place.
    Owned(M),
    /// Frozen views may hold it too: read in place, made [`Owned`](Group::Owned) again before
    /// the first write.
    Shared(Arc<M>),
}

impl<M: Default> Default for Group<M> {
    fn default() -> Self {
        Group::Owned(M::default())
    }
}

impl<M: Clone + Default> Group<M> {
    #[inline]
    fn get(&self) -> &M {
        match self {
            Group::Owned(map) => map,
            Group::Shared(map) => map,
        }
    }

    #[inline]
    fn get_mut(&mut self) -> &mut M {
        match self {
            Group::Owned(map) => map,
            Group::Shared(_) => self.unshare(),
        }
    }

    /// Owns the map again: copies it while a frozen view still holds it, or takes it back
    /// without a copy once every view let go (its checkpoint was serialized or abandoned).
    #[cold]
    #[inline(never)]
    fn unshare(&mut self) -> &mut M {
        let map = match std::mem::take(self) {
            Group::Owned(map) => map,
            Group::Shared(shared) => Arc::unwrap_or_clone(shared),
        };
        *self = Group::Owned(map);
        match self {
            Group::Owned(map) => map,
            Group::Shared(_) => unreachable!("the group was just made owned"),
        }
    }

    /// The map as it is now, for a frozen view; the group is shared from now on. Moving an
    /// owned map into an `Arc` moves its few header words, not its entries.
    fn share(&mut self) -> Arc<M> {
        let shared = match std::mem::take(self) {
            Group::Owned(map) => Arc::new(map),
            Group::Shared(shared) => shared,
        };
        *self = Group::Shared(Arc::clone(&shared));
        shared
    }
}

impl<K: Hash + Eq, N: Hash + Eq, T> KeyGroupMaps<K, N, T> {
    fn new(key_groups: Range<KeyGroup>) -> Self {
        let count = usize::from(key_groups.end.saturating_sub(key_groups.start));
        let groups = (0..count).map(|_| Group::Owned(FxHashMap::default())).collect();
        Self { key_groups, groups }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone, T: Clone> KeyGroupMaps<K, N, T> {
    #[inline]
    fn group(&self, kg: KeyGroup) -> Result<&Map<K, N, T>> {
        match kg.checked_sub(self.key_groups.start).and_then(|i| self.groups.get(usize::from(i))) {
            Some(group) => Ok(group.get()),
            None => Err(out_of_range(kg, &self.key_groups)),
        }
    }

    /// Key group `kg`'s map to write, copied first if a frozen view shares it.
    #[inline]
    fn group_mut(&mut self, kg: KeyGroup) -> Result<&mut Map<K, N, T>> {
        match kg.checked_sub(self.key_groups.start).and_then(|i| self.groups.get_mut(usize::from(i))) {
            Some(group) => Ok(group.get_mut()),
            None => Err(out_of_range(kg, &self.key_groups)),
        }
    }

    #[inline]
    fn get(&self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<&T>> {
        Ok(self.group(kg)?.get(&KeyNs(key, ns)))
    }

    #[inline]
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<T>> {
        Ok(self.group_mut(kg)?.remove(&KeyNs(key, ns)))
    }

    fn len(&self) -> usize {
        self.groups.iter().map(|g| g.get().len()).sum()
    }

    /// Sets the entry, cloning the key and namespace only if it is new.
    #[inline]
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, value: T) -> Result<()> {
        match self.group_mut(kg)?.entry_ref(&KeyNs(key, ns)) {
            EntryRef::Occupied(mut entry) => {
                entry.insert(value);
            }
            EntryRef::Vacant(entry) => {
                entry.insert_with_key((key.clone(), ns.clone()), value);
            }
        }
        Ok(())
    }

    /// The entry's value, inserting `default()` first if there is none.
    #[inline]
    fn get_or_insert_with(&mut self, kg: KeyGroup, key: &K, ns: &N, default: impl FnOnce() -> T) -> Result<&mut T> {
        Ok(match self.group_mut(kg)?.entry_ref(&KeyNs(key, ns)) {
            EntryRef::Occupied(entry) => entry.into_mut(),
            EntryRef::Vacant(entry) => entry.insert_with_key((key.clone(), ns.clone()), default()),
        })
    }

    /// These maps as they are now, sharing every key group with this table: O(key groups), no
    /// entry is copied here.
    fn freeze(&mut self) -> Self {
        let groups = self.groups.iter_mut().map(|g| Group::Shared(g.share())).collect();
        KeyGroupMaps { key_groups: self.key_groups.clone(), groups }
    }
}

/// Encodes a key group's map as its canonical snapshot, `None` if it is empty: [`encode_group`]
/// or, for maps of maps, [`encode_map_group`].
type EncodeFn<K, N, T> = fn(&Map<K, N, T>) -> Result<Option<Vec<u8>>>;

/// The canonical snapshot of a key group of a value or list table.
fn encode_group<K: Serialize, N: Serialize, T: Serialize>(group: &Map<K, N, T>) -> Result<Option<Vec<u8>>> {
    if group.is_empty() {
        return Ok(None);
    }
    encode_sorted(group.iter(), |((key, ns), _), buf| append(buf, &(key, ns)), |(_, value), buf| append(buf, value))
        .map(Some)
}

/// The canonical snapshot of a key group of a map table: each map's entries sorted too.
fn encode_map_group<K: Serialize, N: Serialize, UK: Serialize, UV: Serialize>(
    group: &Map<K, N, FxHashMap<UK, UV>>,
) -> Result<Option<Vec<u8>>> {
    if group.is_empty() {
        return Ok(None);
    }
    let encode_map = |map: &FxHashMap<UK, UV>| {
        encode_sorted(map.iter(), |(user_key, _), buf| append(buf, user_key), |(_, value), buf| append(buf, value))
    };
    encode_sorted(
        group.iter(),
        |((key, ns), _), buf| append(buf, &(key, ns)),
        |(_, map), buf| {
            buf.extend_from_slice(&encode_map(map)?);
            Ok(())
        },
    )
    .map(Some)
}

/// The postcard encoding of `items` as a list, in the order of the encoding of their sort keys:
/// a total order for any serializable type, unlike `Ord`, which keys and namespaces need not
/// implement. Each item is encoded by `write_key`, which appends its sort key, then
/// `write_rest`, which appends the rest of it.
///
/// This is what a checkpoint of the memory backend spends its time on, so no item gets an
/// allocation of its own: all are encoded into one buffer, then sorted through an index that
/// carries the first eight bytes of each sort key, which settle most comparisons without
/// touching the buffer. The bytes are those of encoding the sorted list of items at once.
fn encode_sorted<I: ExactSizeIterator>(
    items: I,
    mut write_key: impl FnMut(&I::Item, &mut Vec<u8>) -> Result<()>,
    mut write_rest: impl FnMut(&I::Item, &mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    /// An item's encoding in the buffer: its sort key is `start..key_end`.
    struct Slot {
        prefix: u64,
        start: usize,
        key_end: usize,
        end: usize,
    }
    let mut buffer = Vec::new();
    let mut slots = Vec::with_capacity(items.len());
    for item in items {
        let start = buffer.len();
        write_key(&item, &mut buffer)?;
        let key_end = buffer.len();
        write_rest(&item, &mut buffer)?;
        // Big-endian and zero-padded, so that unequal prefixes order as the keys do.
        let mut prefix = [0; 8];
        let key = &buffer[start..key_end];
        let len = key.len().min(8);
        prefix[..len].copy_from_slice(&key[..len]);
        slots.push(Slot { prefix: u64::from_be_bytes(prefix), start, key_end, end: buffer.len() });
    }
    slots.sort_unstable_by(|a, b| {
        a.prefix.cmp(&b.prefix).then_with(|| buffer[a.start..a.key_end].cmp(&buffer[b.start..b.key_end]))
    });
    // A list is its length (a varint, as postcard writes any integer), then its items.
    let mut out = Vec::with_capacity(buffer.len() + 10);
    append(&mut out, &slots.len())?;
    for slot in &slots {
        out.extend_from_slice(&buffer[slot.start..slot.end]);
    }
    Ok(out)
}

/// A table's key groups as [`KeyGroupMaps::freeze`] froze them, encoded by `encode` off the
/// processing loop.
struct FrozenMaps<K, N, T> {
    maps: KeyGroupMaps<K, N, T>,
    encode: EncodeFn<K, N, T>,
}

impl<K, N, T> FrozenMaps<K, N, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    N: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Freezes `maps`, to be encoded by `encode`.
    fn boxed(maps: &mut KeyGroupMaps<K, N, T>, encode: EncodeFn<K, N, T>) -> Option<Box<dyn FrozenTable>> {
        Some(Box::new(FrozenMaps { maps: maps.freeze(), encode }))
    }
}

impl<K, N, T> FrozenTable for FrozenMaps<K, N, T>
where
    K: Hash + Eq + Clone + Send + Sync,
    N: Hash + Eq + Clone + Send + Sync,
    T: Clone + Send + Sync,
{
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        (self.encode)(self.maps.group(kg)?)
    }
}

#[cold]
fn out_of_range(key_group: KeyGroup, range: &Range<KeyGroup>) -> StateError {
    StateError::KeyGroupOutOfRange { key_group, range: range.clone() }
}

/// A [`ValueTable`] of typed objects.
pub(crate) struct MemoryValueTable<K, N, V> {
    maps: KeyGroupMaps<K, N, V>,
}

impl<K: Hash + Eq, N: Hash + Eq, V> MemoryValueTable<K, N, V> {
    pub(crate) fn new(key_groups: Range<KeyGroup>) -> Self {
        Self { maps: KeyGroupMaps::new(key_groups) }
    }
}

impl<K, N, V> ValueTable<K, N, V> for MemoryValueTable<K, N, V>
where
    K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    N: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    #[inline]
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        Ok(self.maps.get(kg, key, ns)?.cloned())
    }

    #[inline]
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()> {
        self.maps.put(kg, key, ns, value)
    }

    #[inline]
    fn upsert(&mut self, kg: KeyGroup, key: &K, ns: &N, f: &mut dyn FnMut(Option<&mut V>) -> Option<V>) -> Result<()> {
        match self.maps.group_mut(kg)?.entry_ref(&KeyNs(key, ns)) {
            EntryRef::Occupied(mut entry) => {
                if let Some(new) = f(Some(entry.get_mut())) {
                    entry.insert(new);
                }
            }
            EntryRef::Vacant(entry) => {
                if let Some(new) = f(None) {
                    entry.insert_with_key((key.clone(), ns.clone()), new);
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        self.maps.remove(kg, key, ns)
    }

    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        encode_group(self.maps.group(kg)?)
    }

    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        FrozenMaps::boxed(&mut self.maps, encode_group)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        let group = self.maps.group_mut(kg)?;
        let entries: Entries<K, N, V> = decode(bytes)?;
        group.extend(entries.into_iter().map(|(key, ns, value)| ((key, ns), value)));
        Ok(())
    }

    fn len(&self) -> usize {
        self.maps.len()
    }
}

/// A [`ListTable`] of typed objects; absent and empty lists are the same, so no empty list is
/// kept.
pub(crate) struct MemoryListTable<K, N, V> {
    maps: KeyGroupMaps<K, N, Vec<V>>,
}

impl<K: Hash + Eq, N: Hash + Eq, V> MemoryListTable<K, N, V> {
    pub(crate) fn new(key_groups: Range<KeyGroup>) -> Self {
        Self { maps: KeyGroupMaps::new(key_groups) }
    }
}

impl<K, N, V> ListTable<K, N, V> for MemoryListTable<K, N, V>
where
    K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    N: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<V>> {
        Ok(self.maps.get(kg, key, ns)?.cloned().unwrap_or_default())
    }

    fn add(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()> {
        self.maps.get_or_insert_with(kg, key, ns, Vec::new)?.push(value);
        Ok(())
    }

    fn update(&mut self, kg: KeyGroup, key: &K, ns: &N, values: Vec<V>) -> Result<()> {
        if values.is_empty() {
            self.maps.remove(kg, key, ns)?;
            Ok(())
        } else {
            self.maps.put(kg, key, ns, values)
        }
    }

    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()> {
        self.maps.remove(kg, key, ns)?;
        Ok(())
    }

    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        encode_group(self.maps.group(kg)?)
    }

    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        FrozenMaps::boxed(&mut self.maps, encode_group)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        let group = self.maps.group_mut(kg)?;
        let entries: Entries<K, N, Vec<V>> = decode(bytes)?;
        for (key, ns, values) in entries {
            // No empty list is kept; a snapshot we wrote has none, but a foreign one might.
            if !values.is_empty() {
                group.entry((key, ns)).or_default().extend(values);
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.maps.len()
    }
}

/// A [`MapTable`] of typed objects; absent and empty maps are the same, so no empty map is kept.
pub(crate) struct MemoryMapTable<K, N, UK, UV> {
    maps: KeyGroupMaps<K, N, FxHashMap<UK, UV>>,
}

impl<K: Hash + Eq, N: Hash + Eq, UK, UV> MemoryMapTable<K, N, UK, UV> {
    pub(crate) fn new(key_groups: Range<KeyGroup>) -> Self {
        Self { maps: KeyGroupMaps::new(key_groups) }
    }
}

impl<K, N, UK, UV> MapTable<K, N, UK, UV> for MemoryMapTable<K, N, UK, UV>
where
    K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    N: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    UK: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
    UV: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        Ok(self.maps.get(kg, key, ns)?.and_then(|m| m.get(user_key)).cloned())
    }

    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        self.maps.get_or_insert_with(kg, key, ns, FxHashMap::default)?.insert(user_key, value);
        Ok(())
    }

    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        let EntryRef::Occupied(mut entry) = self.maps.group_mut(kg)?.entry_ref(&KeyNs(key, ns)) else {
            return Ok(None);
        };
        let removed = entry.get_mut().remove(user_key);
        if entry.get().is_empty() {
            entry.remove();
        }
        Ok(removed)
    }

    fn contains(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        Ok(self.maps.get(kg, key, ns)?.is_some_and(|m| m.contains_key(user_key)))
    }

    fn entries(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<(UK, UV)>> {
        Ok(self
            .maps
            .get(kg, key, ns)?
            .map_or_else(Vec::new, |m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }

    fn is_empty(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<bool> {
        Ok(self.maps.get(kg, key, ns)?.is_none())
    }

    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()> {
        self.maps.remove(kg, key, ns)?;
        Ok(())
    }

    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        encode_map_group(self.maps.group(kg)?)
    }

    fn freeze(&mut self) -> Option<Box<dyn FrozenTable>> {
        FrozenMaps::boxed(&mut self.maps, encode_map_group)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        let group = self.maps.group_mut(kg)?;
        let entries: Entries<K, N, Vec<(UK, UV)>> = decode(bytes)?;
        for (key, ns, map) in entries {
            // No empty map is kept; a snapshot we wrote has none, but a foreign one might.
            if !map.is_empty() {
                group.entry((key, ns)).or_default().extend(map);
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.maps.len()
    }
}
