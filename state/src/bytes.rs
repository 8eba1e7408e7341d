//! Typed tables over a backend's [`RawTable`]: the postcard codecs between a state's types and
//! the bytes a backend such as RocksDB stores.
//!
//! Keys are laid out as DESIGN §6 says: key group (2 bytes, big-endian) ‖ postcard(key) ‖
//! postcard(namespace), then ‖ postcard(user key) for a map state. A value state stores
//! postcard(value); a map state, postcard(value) under each user key; a list state, its elements
//! one after the other, each as postcard(postcard(element)), i.e. its encoding prefixed with its
//! length. The length costs a byte for a small element, but lets a list append by concatenating
//! bytes (RocksDB's merge operator) and still decode elements whose own encoding is empty, such
//! as `()`, which a bare concatenation could not count.
//!
//! Each table keeps scratch buffers for the key and value it encodes, so an access allocates
//! nothing beyond what decoding a value needs. Key-group snapshots decode the stored entries and
//! encode them the way the memory backend does (`snapshot.rs`): since a RocksDB scan returns
//! keys in bytewise order, which is the order of their encodings, the entries come out already in
//! the canonical order.

use std::marker::PhantomData;
use std::ops::Range;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{EntryVisitor, ListTable, MapTable, RawTable, ValueTable};
use crate::snapshot::{Entries, decode, encode};
use crate::{KeyGroup, Result, StateData, StateError, StateKey, Types};

#[cfg(test)]
mod tests;

/// A raw table with the key groups it may hold and the buffers its typed front end encodes into.
struct Codec {
    raw: Box<dyn RawTable>,
    key_groups: Range<KeyGroup>,
    /// The key of the current access.
    key: Vec<u8>,
    /// The value of the current access.
    value: Vec<u8>,
    /// The value as stored before the current access, or a list element being framed.
    scratch: Vec<u8>,
}

impl Codec {
    fn new(key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Self {
        Codec { raw, key_groups, key: Vec::new(), value: Vec::new(), scratch: Vec::new() }
    }

    /// Sets `self.key` to the prefix of key group `kg`.
    #[inline]
    fn key_group(&mut self, kg: KeyGroup) -> Result<()> {
        if !self.key_groups.contains(&kg) {
            return Err(out_of_range(kg, &self.key_groups));
        }
        self.key.clear();
        self.key.extend_from_slice(&kg.to_be_bytes());
        Ok(())
    }

    /// Sets `self.key` to key group ‖ key ‖ namespace.
    #[inline]
    fn key<K: Serialize, N: Serialize>(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()> {
        self.key_group(kg)?;
        append(&mut self.key, key)?;
        append(&mut self.key, ns)
    }

    /// Sets `self.value` to the encoding of `value`.
    #[inline]
    fn value<V: Serialize>(&mut self, value: &V) -> Result<()> {
        self.value.clear();
        append(&mut self.value, value)
    }

    /// Stores `self.value` under `self.key`.
    #[inline]
    fn put(&mut self) -> Result<()> {
        self.raw.put(&self.key, &self.value)
    }

    /// The decoded value under `self.key`.
    #[inline]
    fn get<V: DeserializeOwned>(&self) -> Result<Option<V>> {
        let mut value = None;
        self.raw.get(&self.key, &mut |bytes| {
            value = Some(decode_value(bytes)?);
            Ok(())
        })?;
        Ok(value)
    }

    /// Calls `visit` with the stored entries of key group `kg` (key after the key group, value).
    fn scan_key_group(&self, kg: KeyGroup, visit: &mut EntryVisitor<'_>) -> Result<()> {
        if !self.key_groups.contains(&kg) {
            return Err(out_of_range(kg, &self.key_groups));
        }
        self.raw.scan(&kg.to_be_bytes(), &mut |key, value| visit(&key[2..], value))
    }

    /// The number of stored entries, or of distinct `key_len(key)` prefixes of their keys (after
    /// the key group) if given; a statistic, so a failed scan is logged and counts what it saw.
    fn count(&self, key_len: Option<KeyLen<'_>>) -> usize {
        let mut count = 0;
        let mut last: Vec<u8> = Vec::new();
        let scanned = self.raw.scan(&[], &mut |key, _| {
            let Some(key) = key.get(2..) else { return Err(corrupt_key(key)) };
            match key_len {
                None => count += 1,
                Some(key_len) => {
                    let prefix = &key[..key_len(key)?];
                    if count == 0 || prefix != last.as_slice() {
                        count += 1;
                        last.clear();
                        last.extend_from_slice(prefix);
                    }
                }
            }
            Ok(true)
        });
        if let Err(e) = scanned {
            tracing::warn!("cannot count the entries of a state table: {e}");
        }
        count
    }
}

/// The length of the part of a stored key (after the key group) that names one map.
type KeyLen<'a> = &'a dyn Fn(&[u8]) -> Result<usize>;

/// Appends the postcard encoding of `value` to `buf`.
#[inline]
fn append<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<()> {
    match postcard::to_io(value, buf) {
        Ok(_) => Ok(()),
        Err(e) => Err(StateError::Backend(format!("cannot encode state: {e}"))),
    }
}

/// Decodes one whole stored value.
#[inline]
fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(corrupt(format!("{} bytes left over after a stored value", rest.len()))),
        Err(e) => Err(corrupt(format!("cannot decode a stored value: {e}"))),
    }
}

/// Decodes the first `T` of `bytes`, returning it and the bytes after it.
#[inline]
fn take<'a, T: DeserializeOwned>(bytes: &'a [u8], what: &str) -> Result<(T, &'a [u8])> {
    postcard::take_from_bytes(bytes).map_err(|e| corrupt(format!("cannot decode the {what} of a stored key: {e}")))
}

/// Decodes a stored key's key and namespace, returning them and the number of bytes they take.
fn take_key_ns<K: DeserializeOwned, N: DeserializeOwned>(bytes: &[u8]) -> Result<(K, N, usize)> {
    let (key, rest) = take(bytes, "key")?;
    let (ns, rest) = take(rest, "namespace")?;
    Ok((key, ns, bytes.len() - rest.len()))
}

/// Fails unless `rest`, what is left of a stored key after decoding it, is empty.
fn whole_key(rest: &[u8]) -> Result<()> {
    match rest {
        [] => Ok(()),
        _ => Err(corrupt(format!("{} bytes left over after a stored key", rest.len()))),
    }
}

/// Appends `element` to a stored list: its encoding, prefixed with the encoding's length.
fn append_element<V: Serialize>(list: &mut Vec<u8>, scratch: &mut Vec<u8>, element: &V) -> Result<()> {
    scratch.clear();
    append(scratch, element)?;
    append(list, scratch.as_slice())
}

/// Decodes a stored list (see the module doc).
fn decode_list<V: DeserializeOwned>(mut bytes: &[u8]) -> Result<Vec<V>> {
    let mut list = Vec::new();
    while !bytes.is_empty() {
        let (element, rest): (&[u8], &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| corrupt(format!("cannot decode the frame of a stored list element: {e}")))?;
        list.push(decode_value(element)?);
        bytes = rest;
    }
    Ok(list)
}

#[cold]
fn corrupt(what: String) -> StateError {
    StateError::Corrupt { what }
}

#[cold]
fn corrupt_key(key: &[u8]) -> StateError {
    corrupt(format!("stored key of {} bytes has no key group", key.len()))
}

#[cold]
fn out_of_range(key_group: KeyGroup, range: &Range<KeyGroup>) -> StateError {
    StateError::KeyGroupOutOfRange { key_group, range: range.clone() }
}

/// The canonical bytes of a key group's entries, or `None` if it has none.
fn encode_entries<K: Serialize, N: Serialize, T: Serialize>(entries: Entries<K, N, T>) -> Result<Option<Vec<u8>>> {
    if entries.is_empty() { Ok(None) } else { encode(&entries).map(Some) }
}

/// A [`ValueTable`] over a [`RawTable`].
pub(crate) struct ByteValueTable<K, N, V> {
    codec: Codec,
    _types: Types<(K, N, V)>,
}

impl<K, N, V> ByteValueTable<K, N, V> {
    pub(crate) fn new(key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Self {
        ByteValueTable { codec: Codec::new(key_groups, raw), _types: PhantomData }
    }
}

impl<K: StateKey, N: StateKey, V: StateData> ValueTable<K, N, V> for ByteValueTable<K, N, V> {
    #[inline]
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        self.codec.key(kg, key, ns)?;
        self.codec.get()
    }

    #[inline]
    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()> {
        self.codec.key(kg, key, ns)?;
        self.codec.value(&value)?;
        self.codec.put()
    }

    /// Writes back only if the value's encoding changed, so that an update that keeps a value
    /// (a maximum that is not exceeded) costs a read and no write.
    #[inline]
    fn upsert(&mut self, kg: KeyGroup, key: &K, ns: &N, f: &mut dyn FnMut(Option<&mut V>) -> Option<V>) -> Result<()> {
        let codec = &mut self.codec;
        codec.key(kg, key, ns)?;
        let old = &mut codec.scratch;
        let mut current: Option<V> = None;
        codec.raw.get(&codec.key, &mut |bytes| {
            old.clear();
            old.extend_from_slice(bytes);
            current = Some(decode_value(bytes)?);
            Ok(())
        })?;
        match current {
            Some(mut value) => {
                let value = f(Some(&mut value)).unwrap_or(value);
                codec.value(&value)?;
                if codec.value != codec.scratch {
                    codec.put()?;
                }
            }
            None => {
                if let Some(value) = f(None) {
                    codec.value(&value)?;
                    codec.put()?;
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        self.codec.key(kg, key, ns)?;
        let value = self.codec.get()?;
        if value.is_some() {
            self.codec.raw.delete(&self.codec.key)?;
        }
        Ok(value)
    }

    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        let mut entries: Entries<K, N, V> = Vec::new();
        self.codec.scan_key_group(kg, &mut |stored, value| {
            let (key, ns, len) = take_key_ns(stored)?;
            whole_key(&stored[len..])?;
            entries.push((key, ns, decode_value(value)?));
            Ok(true)
        })?;
        encode_entries(entries)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        self.codec.key_group(kg)?;
        let entries: Entries<K, N, V> = decode(bytes)?;
        for (key, ns, value) in &entries {
            self.codec.key(kg, key, ns)?;
            self.codec.value(value)?;
            self.codec.put()?;
        }
        Ok(())
    }

    /// Scans the whole table.
    fn len(&self) -> usize {
        self.codec.count(None)
    }
}

/// A [`ListTable`] over a [`RawTable`]: adding appends without reading the list.
pub(crate) struct ByteListTable<K, N, V> {
    codec: Codec,
    _types: Types<(K, N, V)>,
}

impl<K, N, V> ByteListTable<K, N, V> {
    pub(crate) fn new(key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Self {
        ByteListTable { codec: Codec::new(key_groups, raw), _types: PhantomData }
    }
}

impl<K: StateKey, N: StateKey, V: StateData> ListTable<K, N, V> for ByteListTable<K, N, V> {
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<V>> {
        self.codec.key(kg, key, ns)?;
        let mut list = Vec::new();
        self.codec.raw.get(&self.codec.key, &mut |bytes| {
            list = decode_list(bytes)?;
            Ok(())
        })?;
        Ok(list)
    }

    fn add(&mut self, kg: KeyGroup, key: &K, ns: &N, value: V) -> Result<()> {
        let codec = &mut self.codec;
        codec.key(kg, key, ns)?;
        codec.value.clear();
        append_element(&mut codec.value, &mut codec.scratch, &value)?;
        codec.raw.append(&codec.key, &codec.value)
    }

    fn update(&mut self, kg: KeyGroup, key: &K, ns: &N, values: Vec<V>) -> Result<()> {
        let codec = &mut self.codec;
        codec.key(kg, key, ns)?;
        if values.is_empty() {
            return codec.raw.delete(&codec.key);
        }
        codec.value.clear();
        for value in &values {
            append_element(&mut codec.value, &mut codec.scratch, value)?;
        }
        codec.put()
    }

    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()> {
        self.codec.key(kg, key, ns)?;
        self.codec.raw.delete(&self.codec.key)
    }

    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        let mut entries: Entries<K, N, Vec<V>> = Vec::new();
        self.codec.scan_key_group(kg, &mut |stored, value| {
            let (key, ns, len) = take_key_ns(stored)?;
            whole_key(&stored[len..])?;
            entries.push((key, ns, decode_list(value)?));
            Ok(true)
        })?;
        encode_entries(entries)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        self.codec.key_group(kg)?;
        let entries: Entries<K, N, Vec<V>> = decode(bytes)?;
        let codec = &mut self.codec;
        // No empty list is kept; a snapshot we wrote has none, but a foreign one might.
        for (key, ns, values) in entries.iter().filter(|(_, _, values)| !values.is_empty()) {
            codec.key(kg, key, ns)?;
            codec.value.clear();
            for value in values {
                append_element(&mut codec.value, &mut codec.scratch, value)?;
            }
            codec.raw.append(&codec.key, &codec.value)?;
        }
        Ok(())
    }

    /// Scans the whole table.
    fn len(&self) -> usize {
        self.codec.count(None)
    }
}

/// A [`MapTable`] over a [`RawTable`]: one stored entry per user key, so a map is a range of
/// keys, and reading or writing one user key does not touch the others.
pub(crate) struct ByteMapTable<K, N, UK, UV> {
    codec: Codec,
    _types: Types<(K, N, UK, UV)>,
}

impl<K, N, UK, UV> ByteMapTable<K, N, UK, UV> {
    pub(crate) fn new(key_groups: Range<KeyGroup>, raw: Box<dyn RawTable>) -> Self {
        ByteMapTable { codec: Codec::new(key_groups, raw), _types: PhantomData }
    }
}

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateData> ByteMapTable<K, N, UK, UV> {
    /// Sets the codec's key to key group ‖ key ‖ namespace ‖ user key.
    #[inline]
    fn user_key(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.codec.key(kg, key, ns)?;
        append(&mut self.codec.key, user_key)
    }
}

impl<K: StateKey, N: StateKey, UK: StateKey, UV: StateData> MapTable<K, N, UK, UV> for ByteMapTable<K, N, UK, UV> {
    fn get(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        self.user_key(kg, key, ns, user_key)?;
        self.codec.get()
    }

    fn put(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: UK, value: UV) -> Result<()> {
        self.user_key(kg, key, ns, &user_key)?;
        self.codec.value(&value)?;
        self.codec.put()
    }

    fn remove(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<Option<UV>> {
        self.user_key(kg, key, ns, user_key)?;
        let value = self.codec.get()?;
        if value.is_some() {
            self.codec.raw.delete(&self.codec.key)?;
        }
        Ok(value)
    }

    fn contains(&mut self, kg: KeyGroup, key: &K, ns: &N, user_key: &UK) -> Result<bool> {
        self.user_key(kg, key, ns, user_key)?;
        self.codec.raw.get(&self.codec.key, &mut |_| Ok(()))
    }

    fn entries(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<Vec<(UK, UV)>> {
        self.codec.key(kg, key, ns)?;
        let prefix = self.codec.key.len();
        let mut entries = Vec::new();
        self.codec.raw.scan(&self.codec.key, &mut |stored, value| {
            let (user_key, rest) = take(&stored[prefix..], "user key")?;
            whole_key(rest)?;
            entries.push((user_key, decode_value(value)?));
            Ok(true)
        })?;
        Ok(entries)
    }

    fn is_empty(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<bool> {
        self.codec.key(kg, key, ns)?;
        let mut empty = true;
        self.codec.raw.scan(&self.codec.key, &mut |_, _| {
            empty = false;
            Ok(false)
        })?;
        Ok(empty)
    }

    fn clear(&mut self, kg: KeyGroup, key: &K, ns: &N) -> Result<()> {
        self.codec.key(kg, key, ns)?;
        self.codec.raw.delete_prefix(&self.codec.key)
    }

    /// Groups the scanned entries by their key and namespace, whose stored bytes are the same.
    fn snapshot_key_group(&self, kg: KeyGroup) -> Result<Option<Vec<u8>>> {
        let mut entries: Entries<K, N, Vec<(UK, UV)>> = Vec::new();
        let mut group: Vec<u8> = Vec::new();
        self.codec.scan_key_group(kg, &mut |stored, value| {
            let same_group = !entries.is_empty() && stored.starts_with(&group);
            let rest = if same_group {
                &stored[group.len()..]
            } else {
                let (key, ns, len) = take_key_ns(stored)?;
                group.clear();
                group.extend_from_slice(&stored[..len]);
                entries.push((key, ns, Vec::new()));
                &stored[len..]
            };
            let (user_key, rest) = take(rest, "user key")?;
            whole_key(rest)?;
            let map = &mut entries.last_mut().expect("a group was pushed").2;
            map.push((user_key, decode_value(value)?));
            Ok(true)
        })?;
        encode_entries(entries)
    }

    fn restore_key_group(&mut self, kg: KeyGroup, bytes: &[u8]) -> Result<()> {
        self.codec.key_group(kg)?;
        let entries: Entries<K, N, Vec<(UK, UV)>> = decode(bytes)?;
        for (key, ns, map) in &entries {
            for (user_key, value) in map {
                self.user_key(kg, key, ns, user_key)?;
                self.codec.value(value)?;
                self.codec.put()?;
            }
        }
        Ok(())
    }

    /// Scans the whole table, decoding each key and namespace to find where the user key starts.
    fn len(&self) -> usize {
        self.codec.count(Some(&|stored| take_key_ns::<K, N>(stored).map(|(_, _, len)| len)))
    }
}
