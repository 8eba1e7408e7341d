//! The in-memory backend: typed objects in one hash map per key group, no serialization on
//! access, since a keyed reduce updates state once per record.
//!
//! A key group's snapshot is the canonical one of `snapshot.rs`: the postcard encoding of its
//! entries as a list of `(key, namespace, value)` (the value being the list, or the map as a list
//! of `(user key, value)`), sorted by the encoded key and namespace (and user key), so that equal
//! contents give equal bytes whatever the hash maps' iteration order.
//!
//! ## Asynchronous snapshots: copy-on-write per entry
//!
//! Serializing every key group on the processing loop stalls it for as long as the state is
//! large (2 s for 10 M keys), so a checkpoint only freezes the tables there and serializes them
//! on another thread, as Flink's heap backend does with its copy-on-write state maps. Flink
//! copies its bucket array at the snapshot, then single entries as they are written; we share
//! each key group's map whole and lay the writes after the barrier over it:
//!
//! - Each key group is a [`Group`]: `Owned` by the table; `Shared` behind an `Arc` with the
//!   frozen views of checkpoints in progress; or `Layered`, a shared map with a delta of the
//!   entries written since (`None` for an entry removed).
//! - Freezing ([`KeyGroupMaps::freeze`], the synchronous part) moves each owned map into an
//!   `Arc` (its header, not its entries) and clones the `Arc`s into a frozen view: O(key
//!   groups), microseconds.
//! - Reads of a shared group read the shared map; of a layered one, the delta, then the map.
//!   The first write to a shared group takes the map back if every view has let go of it, and
//!   otherwise lays an empty delta over it; writes to a layered group go to the delta, which
//!   copies the entry from the map the first time. So an entry is copied only if it is written
//!   while a view still holds its key group, as in Flink.
//! - A view lets go of each key group as soon as it has serialized it
//!   ([`FrozenTable::take_key_group`]), and the next write to that group applies the delta to
//!   the map, which the group owns again with no copy: the delta holds only what was written in
//!   the moments between the barrier and the serialization of its key group.
//! - A frozen view never changes, so each checkpoint's view holds exactly the state of its
//!   barrier, however many are alive. A barrier that finds a layered group whose map an earlier
//!   checkpoint still holds (checkpoints overlapping on that key group) copies the map with its
//!   delta applied: the one case that copies a whole key group.
//!
//! The per-record path tells an owned group from the others by the enum's variant, a plain
//! load and compare, rather than by `Arc::make_mut` on every write, whose atomic
//! compare-and-swap on the reference count costs half as much again as the rest of an upsert.
//! Measured in release on the 2-core development machine: `upsert_throughput` in
//! `store/tests.rs` (20 M upserts of 100 k keys) at 103 M/s before copy-on-write, 105 M/s with
//! the enum and 69 M/s with `make_mut` on every write (medians of ten runs, +4.8 ns per upsert).
//! The enum needs no `unsafe`. Sharing needs the state types to be `Sync` (a frozen view is
//! read on another thread while the operator reads the same map), hence the bound on
//! [`StateData`](crate::StateData).
//!
//! What it saves, measured with `weir bench --cases keyed --parallelism 1 --keys 10000000
//! --events 30000000 --checkpoint-interval 1s` (keys spread at random, so every key group is
//! written within moments of each barrier): peak RSS 1163 MiB when a write copied its whole
//! key group, and the view held every group until the whole snapshot was serialized, 789 MiB
//! with copies per entry, 604 MiB once the checkpoint file was encoded straight to disk
//! instead of into a second buffer; 489 MiB without checkpoints. What remains above that is
//! the serialized snapshot itself (about 10 bytes an entry) and the deltas.

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

/// What a key group's writes changed while a frozen view held its map: each entry written, as
/// it is now (`None`: removed).
type Delta<K, N, T> = FxHashMap<(K, N), Option<T>>;

/// One hash map from `(key, namespace)` to `T` per key group of a range, copied on write per
/// entry once a checkpoint shares it (see the module doc).
///
/// Per key group so that a key-group range can later be snapshotted and handed to another
/// subtask without scanning the others, and so that a checkpoint lets go of each key group as
/// soon as it is serialized.
struct KeyGroupMaps<K, N, T> {
    key_groups: Range<KeyGroup>,
    groups: Vec<Group<K, N, T>>,
}

/// One key group's map: the table's own, shared with the frozen views of checkpoints, or shared
/// with writes since laid over it.
///
/// The variant is the "shared" flag of the module doc: telling them apart is a plain load and
/// compare, no atomic operation on the `Arc`, so the per-record path pays nothing for
/// copy-on-write while a group is owned.
enum Group<K, N, T> {
    /// Only the table holds it: read and written in place.
    Owned(Map<K, N, T>),
    /// Frozen views may hold it too: read in place; the first write takes it back if they let
    /// go, or lays a [`Layered`](Group::Layered) delta over it.
    Shared(Arc<Map<K, N, T>>),
    /// A frozen view holds `base`: reads look in `delta` first, writes go to `delta`, and once
    /// the views let go of `base` the next write applies `delta` to it and owns it again.
    Layered { base: Arc<Map<K, N, T>>, delta: Delta<K, N, T> },
}

/// A key group's map, or its shared map and the delta over it, to write.
enum Write<'a, K, N, T> {
    Owned(&'a mut Map<K, N, T>),
    Layered(&'a Map<K, N, T>, &'a mut Delta<K, N, T>),
}

impl<K, N, T> Default for Group<K, N, T> {
    fn default() -> Self {
        Group::Owned(FxHashMap::default())
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone, T: Clone> Group<K, N, T> {
    #[inline]
    fn get(&self, key: &K, ns: &N) -> Option<&T> {
        match self {
            Group::Owned(map) => map.get(&KeyNs(key, ns)),
            Group::Shared(map) => map.get(&KeyNs(key, ns)),
            Group::Layered { base, delta } => match delta.get(&KeyNs(key, ns)) {
                Some(written) => written.as_ref(),
                None => base.get(&KeyNs(key, ns)),
            },
        }
    }

    /// The group to write: its own map, or, while a frozen view holds the map, the map and the
    /// delta over it.
    #[inline]
    fn write(&mut self) -> Write<'_, K, N, T> {
        match self {
            Group::Owned(_) => {}
            // A plain load: only this thread clones the `Arc`, so a count of one stays one.
            Group::Layered { base, .. } if Arc::strong_count(base) > 1 => {}
            _ => self.settle(),
        }
        match self {
            Group::Owned(map) => Write::Owned(map),
            Group::Layered { base, delta } => Write::Layered(base, delta),
            Group::Shared(_) => unreachable!("a group to write is never left shared"),
        }
    }

    /// Owns the map again if every frozen view let go of it (applying the delta written
    /// meanwhile), or lays a delta over it while one still holds it: no entry is copied here.
    #[cold]
    #[inline(never)]
    fn settle(&mut self) {
        *self = match std::mem::take(self) {
            Group::Shared(shared) => match Arc::try_unwrap(shared) {
                Ok(map) => Group::Owned(map),
                Err(base) => Group::Layered { base, delta: FxHashMap::default() },
            },
            Group::Layered { base, delta } => match Arc::try_unwrap(base) {
                Ok(mut map) => {
                    apply(&mut map, delta);
                    Group::Owned(map)
                }
                Err(base) => Group::Layered { base, delta },
            },
            owned => owned,
        };
    }

    /// The map to change wholesale (a restore): owned, copied if a frozen view still holds it.
    fn owned(&mut self) -> &mut Map<K, N, T> {
        let map = match std::mem::take(self) {
            Group::Owned(map) => map,
            Group::Shared(shared) => Arc::unwrap_or_clone(shared),
            Group::Layered { base, delta } => {
                let mut map = Arc::unwrap_or_clone(base);
                apply(&mut map, delta);
                map
            }
        };
        *self = Group::Owned(map);
        match self {
            Group::Owned(map) => map,
            _ => unreachable!("the group was just made owned"),
        }
    }

    /// The map as it is now, for a frozen view; the group is shared from now on. Moving an
    /// owned map into an `Arc` moves its few header words, not its entries. A group with a
    /// delta whose base an earlier checkpoint's view still holds (checkpoints overlapping on
    /// this key group) is copied with its delta applied: the one case that copies a whole map.
    fn share(&mut self) -> Arc<Map<K, N, T>> {
        let shared = match std::mem::take(self) {
            Group::Shared(shared) => shared,
            group => Arc::new(group.into_owned()),
        };
        *self = Group::Shared(Arc::clone(&shared));
        shared
    }

    fn into_owned(mut self) -> Map<K, N, T> {
        std::mem::take(self.owned())
    }

    /// The group's entries as they are now, in no particular order.
    fn entries(&self) -> GroupIter<'_, K, N, T> {
        match self {
            Group::Owned(map) => GroupIter::Map(map.iter()),
            Group::Shared(map) => GroupIter::Map(map.iter()),
            Group::Layered { base, delta } => {
                GroupIter::Layered { base: base.iter(), delta: delta.iter(), written: delta }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Group::Owned(map) => map.len(),
            Group::Shared(map) => map.len(),
            Group::Layered { base, delta } => {
                let removed = delta.iter().filter(|(k, v)| v.is_none() && base.contains_key(*k)).count();
                let added = delta.iter().filter(|(k, v)| v.is_some() && !base.contains_key(*k)).count();
                base.len() + added - removed
            }
        }
    }
}

/// Applies the writes of `delta` to `map`.
fn apply<K: Hash + Eq, N: Hash + Eq, T>(map: &mut Map<K, N, T>, delta: Delta<K, N, T>) {
    for (entry, written) in delta {
        match written {
            Some(value) => {
                map.insert(entry, value);
            }
            None => {
                map.remove(&entry);
            }
        }
    }
}

/// The entries of a [`Group`] as they are now.
enum GroupIter<'a, K, N, T> {
    Map(hashbrown::hash_map::Iter<'a, (K, N), T>),
    /// The base's entries that were not written since, then the written entries that remain.
    Layered {
        base: hashbrown::hash_map::Iter<'a, (K, N), T>,
        delta: hashbrown::hash_map::Iter<'a, (K, N), Option<T>>,
        written: &'a Delta<K, N, T>,
    },
}

impl<'a, K: Hash + Eq, N: Hash + Eq, T> Iterator for GroupIter<'a, K, N, T> {
    type Item = (&'a (K, N), &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            GroupIter::Map(entries) => entries.next(),
            GroupIter::Layered { base, delta, written } => base
                .find(|(entry, _)| !written.contains_key(*entry))
                .or_else(|| delta.find_map(|(entry, value)| value.as_ref().map(|value| (entry, value)))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            GroupIter::Map(entries) => entries.size_hint(),
            GroupIter::Layered { .. } => (0, None),
        }
    }
}

/// A delta's entry for `(key, ns)`: as written, or, if not written yet, as the base has it.
#[inline]
fn delta_entry<'a, K: Hash + Eq + Clone, N: Hash + Eq + Clone, T: Clone>(
    base: &Map<K, N, T>,
    delta: &'a mut Delta<K, N, T>,
    key: &K,
    ns: &N,
) -> &'a mut Option<T> {
    match delta.entry_ref(&KeyNs(key, ns)) {
        EntryRef::Occupied(entry) => entry.into_mut(),
        EntryRef::Vacant(entry) => {
            let current = base.get(&KeyNs(key, ns)).cloned();
            entry.insert_with_key((key.clone(), ns.clone()), current)
        }
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
    fn group(&self, kg: KeyGroup) -> Result<&Group<K, N, T>> {
        match kg.checked_sub(self.key_groups.start).and_then(|i| self.groups.get(usize::from(i))) {
            Some(group) => Ok(group),
            None => Err(out_of_range(kg, &self.key_groups)),
        }
    }

    #[inline]
    fn group_mut(&mut self, kg: KeyGroup) -> Result<&mut Group<K, N, T>> {
        match kg.checked_sub(self.key_groups.start).and_then(|i| self.groups.get_mut(usize::from(i))) {
            Some(group) => Ok(group),
            None => Err(out_of_range(kg, &self.key_groups)),
        }
    }

    /// Key group `kg` to write (see [`Group::write`]).
    #[inline]
    fn write(&mut self, kg: KeyGroup) -> Result<Write<'_, K, N, T>> {
        Ok(self.group_mut(kg)?.write())
    }

    #[inline]
    fn get(&self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<&T>> {
        Ok(self.group(kg)?.get(key, ns))
    }

    #[inline]
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<T>> {
        Ok(match self.write(kg)? {
            Write::Owned(map) => map.remove(&KeyNs(key, ns)),
            Write::Layered(base, delta) => match delta.get_mut(&KeyNs(key, ns)) {
                Some(written) => written.take(),
                None => {
                    let current = base.get(&KeyNs(key, ns)).cloned();
                    if current.is_some() {
                        delta.insert((key.clone(), ns.clone()), None);
                    }
                    current
                }
            },
        })
    }

    fn len(&self) -> usize {
        self.groups.iter().map(Group::len).sum()
    }

    /// Sets the entry, cloning the key and namespace only if it is new.
    #[inline]
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, value: T) -> Result<()> {
        match self.write(kg)? {
            Write::Owned(map) => match map.entry_ref(&KeyNs(key, ns)) {
                EntryRef::Occupied(mut entry) => {
                    entry.insert(value);
                }
                EntryRef::Vacant(entry) => {
                    entry.insert_with_key((key.clone(), ns.clone()), value);
                }
            },
            Write::Layered(_, delta) => match delta.entry_ref(&KeyNs(key, ns)) {
                EntryRef::Occupied(mut entry) => {
                    entry.insert(Some(value));
                }
                EntryRef::Vacant(entry) => {
                    entry.insert_with_key((key.clone(), ns.clone()), Some(value));
                }
            },
        }
        Ok(())
    }

    /// The entry's value, inserting `default()` first if there is none.
    #[inline]
    fn get_or_insert_with(&mut self, kg: KeyGroup, key: &K, ns: &N, default: impl FnOnce() -> T) -> Result<&mut T> {
        Ok(match self.write(kg)? {
            Write::Owned(map) => match map.entry_ref(&KeyNs(key, ns)) {
                EntryRef::Occupied(entry) => entry.into_mut(),
                EntryRef::Vacant(entry) => entry.insert_with_key((key.clone(), ns.clone()), default()),
            },
            Write::Layered(base, delta) => delta_entry(base, delta, key, ns).get_or_insert_with(default),
        })
    }

    /// These maps as they are now, sharing every key group with this table: O(key groups), no
    /// entry is copied here (but see [`Group::share`]).
    fn freeze(&mut self) -> Self {
        let groups = self.groups.iter_mut().map(|g| Group::Shared(g.share())).collect();
        KeyGroupMaps { key_groups: self.key_groups.clone(), groups }
    }
}

/// Encodes a key group's map as its canonical snapshot, `None` if it is empty: [`encode_group`]
/// or, for maps of maps, [`encode_map_group`].
type EncodeFn<K, N, T> = fn(&Group<K, N, T>) -> Result<Option<Vec<u8>>>;

/// The canonical snapshot of a key group of a value or list table.
fn encode_group<K, N, T>(group: &Group<K, N, T>) -> Result<Option<Vec<u8>>>
where
    K: Hash + Eq + Clone + Serialize,
    N: Hash + Eq + Clone + Serialize,
    T: Clone + Serialize,
{
    let mut entries = group.entries().peekable();
    if entries.peek().is_none() {
        return Ok(None);
    }
    encode_sorted(entries, |((key, ns), _), buf| append(buf, &(key, ns)), |(_, value), buf| append(buf, value))
        .map(Some)
}

/// The canonical snapshot of a key group of a map table: each map's entries sorted too.
fn encode_map_group<K, N, UK, UV>(group: &Group<K, N, FxHashMap<UK, UV>>) -> Result<Option<Vec<u8>>>
where
    K: Hash + Eq + Clone + Serialize,
    N: Hash + Eq + Clone + Serialize,
    UK: Clone + Serialize,
    UV: Clone + Serialize,
{
    let mut entries = group.entries().peekable();
    if entries.peek().is_none() {
        return Ok(None);
    }
    let encode_map = |map: &FxHashMap<UK, UV>| {
        encode_sorted(map.iter(), |(user_key, _), buf| append(buf, user_key), |(_, value), buf| append(buf, value))
    };
    encode_sorted(
        entries,
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
fn encode_sorted<I: Iterator>(
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
    let mut slots = Vec::with_capacity(items.size_hint().0);
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
    fn take_key_group(&mut self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        let group = self.maps.group_mut(kg)?;
        let bytes = (self.encode)(group);
        // Lets go of the shared map: the table's next write to this key group owns it again
        // and applies what was written meanwhile, with no copy.
        *group = Group::default();
        bytes
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
        match self.maps.write(kg)? {
            Write::Owned(map) => match map.entry_ref(&KeyNs(key, ns)) {
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
            },
            Write::Layered(base, delta) => {
                let entry = delta_entry(base, delta, key, ns);
                if let Some(new) = f(entry.as_mut()) {
                    *entry = Some(new);
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
        let group = self.maps.group_mut(kg)?.owned();
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
        let group = self.maps.group_mut(kg)?.owned();
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
        match self.maps.write(kg)? {
            Write::Owned(map) => {
                let EntryRef::Occupied(mut entry) = map.entry_ref(&KeyNs(key, ns)) else {
                    return Ok(None);
                };
                let removed = entry.get_mut().remove(user_key);
                if entry.get().is_empty() {
                    entry.remove();
                }
                Ok(removed)
            }
            Write::Layered(base, delta) => {
                if !base.get(&KeyNs(key, ns)).is_some_and(|map| map.contains_key(user_key))
                    && !delta.contains_key(&KeyNs(key, ns))
                {
                    return Ok(None);
                }
                let entry = delta_entry(base, delta, key, ns);
                let removed = entry.as_mut().and_then(|map| map.remove(user_key));
                if entry.as_ref().is_some_and(FxHashMap::is_empty) {
                    *entry = None;
                }
                Ok(removed)
            }
        }
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
        let group = self.maps.group_mut(kg)?.owned();
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
