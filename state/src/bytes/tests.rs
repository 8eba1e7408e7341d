use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::memory::{MemoryListTable, MemoryMapTable, MemoryValueTable};
use crate::test_support::XorShift;

/// A [`RawTable`] in a sorted map, shared with the test so that it can look at the bytes; it
/// counts writes.
#[derive(Clone, Default)]
struct SortedTable {
    entries: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
    writes: Arc<Mutex<usize>>,
}

impl SortedTable {
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn writes(&self) -> usize {
        *self.writes.lock().unwrap()
    }

    fn write(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        *self.writes.lock().unwrap() += 1;
        self.entries.lock().unwrap()
    }
}

impl RawTable for SortedTable {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        match self.entries.lock().unwrap().get(key) {
            Some(value) => found(value).map(|()| true),
            None => Ok(false),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn append(&mut self, key: &[u8], bytes: &[u8]) -> Result<()> {
        self.write().entry(key.to_vec()).or_default().extend_from_slice(bytes);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write().remove(key);
        Ok(())
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        self.write().retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }

    fn scan(&self, prefix: &[u8], visit: &mut EntryVisitor<'_>) -> Result<()> {
        let entries = self.entries.lock().unwrap().clone();
        for (key, value) in entries.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }
}

fn k(s: &str) -> String {
    s.to_owned()
}

#[test]
fn keys_are_key_group_then_key_then_namespace_then_user_key() {
    let raw = SortedTable::default();
    let mut values = ByteValueTable::<String, u32, i64>::new(0..1024, Box::new(raw.clone()));
    values.put(258, &k("ab"), &7, -1).unwrap();
    assert_eq!(raw.entries(), [(vec![1, 2, 2, b'a', b'b', 7], vec![1])]);

    let raw = SortedTable::default();
    let mut maps = ByteMapTable::<String, (), u8, String>::new(0..8, Box::new(raw.clone()));
    maps.put(3, &k("k"), &(), 5, k("v")).unwrap();
    assert_eq!(raw.entries(), [(vec![0, 3, 1, b'k', 5], vec![1, b'v'])]);
}

#[test]
fn lists_frame_their_elements_so_empty_encodings_still_count() {
    let raw = SortedTable::default();
    let mut units = ByteListTable::<String, (), ()>::new(0..4, Box::new(raw.clone()));
    for _ in 0..3 {
        units.add(1, &k("k"), &(), ()).unwrap();
    }
    assert_eq!(units.get(1, &k("k"), &()).unwrap(), [(), (), ()]);
    assert_eq!(raw.entries(), [(vec![0, 1, 1, b'k'], vec![0, 0, 0])]);

    let mut strings = ByteListTable::<String, (), String>::new(0..4, Box::new(SortedTable::default()));
    strings.add(1, &k("k"), &(), k("ab")).unwrap();
    strings.add(1, &k("k"), &(), k("")).unwrap();
    assert_eq!(strings.get(1, &k("k"), &()).unwrap(), [k("ab"), k("")]);
    strings.update(1, &k("k"), &(), vec![k("x")]).unwrap();
    assert_eq!(strings.get(1, &k("k"), &()).unwrap(), [k("x")]);
    strings.update(1, &k("k"), &(), Vec::new()).unwrap();
    assert_eq!(strings.get(1, &k("k"), &()).unwrap(), Vec::<String>::new());
    assert_eq!(strings.len(), 0);
}

#[test]
fn upsert_writes_only_what_changed() {
    let raw = SortedTable::default();
    let mut t = ByteValueTable::<String, (), u64>::new(0..4, Box::new(raw.clone()));
    let max = |seen: u64| {
        move |v: Option<&mut u64>| match v {
            Some(v) => {
                *v = (*v).max(seen);
                None
            }
            None => Some(seen),
        }
    };
    t.upsert(0, &k("a"), &(), &mut max(5)).unwrap();
    t.upsert(0, &k("a"), &(), &mut max(3)).unwrap();
    assert_eq!(raw.writes(), 1, "keeping the maximum writes nothing");
    t.upsert(0, &k("a"), &(), &mut max(9)).unwrap();
    t.upsert(0, &k("a"), &(), &mut |_| Some(1)).unwrap();
    assert_eq!(raw.writes(), 3);
    assert_eq!(t.get(0, &k("a"), &()).unwrap(), Some(1));
    t.upsert(0, &k("b"), &(), &mut |_| None).unwrap();
    assert_eq!(t.get(0, &k("b"), &()).unwrap(), None);
    assert_eq!(raw.writes(), 3);
}

#[test]
fn maps_are_ranges_of_keys() {
    let raw = SortedTable::default();
    let mut t = ByteMapTable::<String, u8, String, u32>::new(0..4, Box::new(raw.clone()));
    // "a" ‖ ns 1 must not catch "a" ‖ ns 10, nor "ab".
    t.put(2, &k("a"), &1, k("x"), 1).unwrap();
    t.put(2, &k("a"), &1, k("y"), 2).unwrap();
    t.put(2, &k("a"), &10, k("x"), 3).unwrap();
    t.put(2, &k("ab"), &1, k("x"), 4).unwrap();
    let mut entries = t.entries(2, &k("a"), &1).unwrap();
    entries.sort();
    assert_eq!(entries, [(k("x"), 1), (k("y"), 2)]);
    assert!(t.contains(2, &k("a"), &1, &k("y")).unwrap());
    assert_eq!(t.remove(2, &k("a"), &1, &k("y")).unwrap(), Some(2));
    assert_eq!(t.remove(2, &k("a"), &1, &k("y")).unwrap(), None);
    assert_eq!(t.len(), 3);
    t.clear(2, &k("a"), &1).unwrap();
    assert!(t.is_empty(2, &k("a"), &1).unwrap());
    assert!(!t.is_empty(2, &k("a"), &10).unwrap());
    assert_eq!(t.len(), 2);
    assert_eq!(raw.entries().len(), 2);
}

#[test]
fn key_groups_outside_the_range_are_errors() {
    let mut t = ByteValueTable::<String, (), u8>::new(4..8, Box::new(SortedTable::default()));
    for kg in [3, 8] {
        assert!(
            matches!(t.put(kg, &k("a"), &(), 1), Err(StateError::KeyGroupOutOfRange { key_group, .. }) if key_group == kg)
        );
        assert!(matches!(t.snapshot_key_group(kg), Err(StateError::KeyGroupOutOfRange { .. })));
        assert!(matches!(t.restore_key_group(kg, &[0]), Err(StateError::KeyGroupOutOfRange { .. })));
    }
}

#[test]
fn undecodable_stored_bytes_are_corrupt() {
    let raw = SortedTable::default();
    let mut t = ByteValueTable::<String, (), String>::new(0..4, Box::new(raw.clone()));
    t.put(1, &k("a"), &(), k("v")).unwrap();
    raw.entries.lock().unwrap().insert(vec![0, 1, 1, b'a'], vec![9]);
    assert!(matches!(t.get(1, &k("a"), &()), Err(StateError::Corrupt { .. })));
    raw.entries.lock().unwrap().insert(vec![0, 1, 1, b'a'], vec![1, b'v', 0]);
    let err = t.get(1, &k("a"), &()).unwrap_err();
    assert_eq!(err.to_string(), "corrupt state snapshot: 1 bytes left over after a stored value");
    raw.entries.lock().unwrap().insert(vec![0, 1, 1, b'a', 0], vec![1, b'v']);
    assert!(matches!(t.snapshot_key_group(1), Err(StateError::Corrupt { .. })));
}

/// Random contents written in a random order into a byte table and a memory table give the
/// same snapshot bytes, and each restores the other's.
#[test]
fn snapshots_are_the_memory_backends_bytes() {
    let seed = 0x5EED_0001_u64;
    println!("seed {seed:#x}");
    let mut rng = XorShift(seed);
    let mut byte_values = ByteValueTable::<String, u16, Vec<u8>>::new(0..4, Box::new(SortedTable::default()));
    let mut memory_values = MemoryValueTable::<String, u16, Vec<u8>>::new(0..4);
    let mut byte_lists = ByteListTable::<String, (), i32>::new(0..4, Box::new(SortedTable::default()));
    let mut memory_lists = MemoryListTable::<String, (), i32>::new(0..4);
    let mut byte_maps = ByteMapTable::<u64, u8, String, bool>::new(0..4, Box::new(SortedTable::default()));
    let mut memory_maps = MemoryMapTable::<u64, u8, String, bool>::new(0..4);
    for _ in 0..500 {
        let kg = rng.below(4) as KeyGroup;
        let key = format!("key-{}", rng.below(40));
        let ns = rng.below(3) as u16;
        let value = rng.bytes(6);
        byte_values.put(kg, &key, &ns, value.clone()).unwrap();
        memory_values.put(kg, &key, &ns, value).unwrap();
        let element = rng.next() as i32;
        byte_lists.add(kg, &key, &(), element).unwrap();
        memory_lists.add(kg, &key, &(), element).unwrap();
        let (map_key, user_key, flag) = (rng.below(1000), format!("u{}", rng.below(300)), rng.below(2) == 0);
        byte_maps.put(kg, &map_key, &(ns as u8), user_key.clone(), flag).unwrap();
        memory_maps.put(kg, &map_key, &(ns as u8), user_key, flag).unwrap();
    }
    for kg in 0..4 {
        let bytes = byte_values.snapshot_key_group(kg).unwrap();
        assert_eq!(bytes, memory_values.snapshot_key_group(kg).unwrap(), "values, key group {kg}");
        let bytes = byte_lists.snapshot_key_group(kg).unwrap();
        assert_eq!(bytes, memory_lists.snapshot_key_group(kg).unwrap(), "lists, key group {kg}");
        let bytes = byte_maps.snapshot_key_group(kg).unwrap();
        assert_eq!(bytes, memory_maps.snapshot_key_group(kg).unwrap(), "maps, key group {kg}");

        let mut fresh = ByteMapTable::<u64, u8, String, bool>::new(0..4, Box::new(SortedTable::default()));
        fresh.restore_key_group(kg, bytes.as_deref().unwrap()).unwrap();
        assert_eq!(fresh.snapshot_key_group(kg).unwrap(), bytes);
    }
    assert_eq!(byte_values.len(), memory_values.len());
    assert_eq!(byte_lists.len(), memory_lists.len());
    assert_eq!(byte_maps.len(), memory_maps.len());
}
