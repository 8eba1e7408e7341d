use std::hash::BuildHasher;

use super::*;
use crate::snapshot::encode;
use crate::test_support::XorShift;

fn value_table() -> MemoryValueTable<String, u64, i64> {
    MemoryValueTable::new(10..20)
}

fn k(s: &str) -> String {
    s.to_owned()
}

#[test]
fn borrowed_pair_hashes_as_the_tuple() {
    let key = k("alice");
    let ns = 42u64;
    let hasher = FxBuildHasher;
    assert_eq!(hasher.hash_one(KeyNs(&key, &ns)), hasher.hash_one((key.clone(), ns)));
    let std_hasher = std::hash::RandomState::new();
    assert_eq!(std_hasher.hash_one(KeyNs(&key, &ns)), std_hasher.hash_one((key, ns)));
}

#[test]
fn value_get_put_remove() {
    let mut t = value_table();
    assert_eq!(t.get(10, &k("a"), &0).unwrap(), None);
    t.put(10, &k("a"), &0, 5).unwrap();
    assert_eq!(t.get(10, &k("a"), &0).unwrap(), Some(5));
    t.put(10, &k("a"), &0, 6).unwrap();
    assert_eq!(t.get(10, &k("a"), &0).unwrap(), Some(6));
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(10, &k("a"), &0).unwrap(), Some(6));
    assert_eq!(t.remove(10, &k("a"), &0).unwrap(), None);
    assert_eq!(t.get(10, &k("a"), &0).unwrap(), None);
    assert_eq!(t.len(), 0);
}

#[test]
fn value_upsert_inserts_modifies_in_place_and_replaces() {
    let mut t = value_table();
    let mut seen = Vec::new();
    let mut add_one = |v: Option<&mut i64>| {
        seen.push(v.as_deref().copied());
        match v {
            Some(v) => {
                *v += 1;
                None
            }
            None => Some(1),
        }
    };
    t.upsert(11, &k("a"), &0, &mut add_one).unwrap();
    t.upsert(11, &k("a"), &0, &mut add_one).unwrap();
    t.upsert(11, &k("a"), &0, &mut add_one).unwrap();
    assert_eq!(seen, [None, Some(1), Some(2)]);
    assert_eq!(t.get(11, &k("a"), &0).unwrap(), Some(3));

    t.upsert(11, &k("a"), &0, &mut |v| v.map(|v| *v * 100)).unwrap();
    assert_eq!(t.get(11, &k("a"), &0).unwrap(), Some(300));

    // Absent and f declines: nothing is inserted.
    t.upsert(11, &k("b"), &0, &mut |_| None).unwrap();
    assert_eq!(t.get(11, &k("b"), &0).unwrap(), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn namespaces_isolate() {
    let mut t = value_table();
    t.put(12, &k("a"), &1000, 1).unwrap();
    t.put(12, &k("a"), &2000, 2).unwrap();
    assert_eq!(t.get(12, &k("a"), &1000).unwrap(), Some(1));
    assert_eq!(t.get(12, &k("a"), &2000).unwrap(), Some(2));
    t.remove(12, &k("a"), &1000).unwrap();
    assert_eq!(t.get(12, &k("a"), &1000).unwrap(), None);
    assert_eq!(t.get(12, &k("a"), &2000).unwrap(), Some(2));
}

#[test]
fn key_groups_isolate() {
    let mut t = value_table();
    t.put(10, &k("a"), &0, 1).unwrap();
    t.put(19, &k("a"), &0, 2).unwrap();
    assert_eq!(t.get(10, &k("a"), &0).unwrap(), Some(1));
    assert_eq!(t.get(19, &k("a"), &0).unwrap(), Some(2));
    assert_eq!(t.get(15, &k("a"), &0).unwrap(), None);
    assert_eq!(t.len(), 2);
}

#[test]
fn key_group_out_of_range_is_an_error() {
    let mut t = value_table();
    for kg in [0, 9, 20, u16::MAX] {
        let err = t.put(kg, &k("a"), &0, 1).unwrap_err();
        assert!(
            matches!(err, StateError::KeyGroupOutOfRange { key_group, ref range } if key_group == kg && *range == (10..20)),
            "{err:?}"
        );
        assert!(t.get(kg, &k("a"), &0).is_err());
        assert!(t.remove(kg, &k("a"), &0).is_err());
        assert!(t.upsert(kg, &k("a"), &0, &mut |_| Some(1)).is_err());
    }
    let err = t.get(20, &k("a"), &0).unwrap_err();
    assert_eq!(err.to_string(), "key group 20 is outside this backend's key groups 10..20");

    let mut l = MemoryListTable::<String, (), u8>::new(0..4);
    assert!(l.add(4, &k("a"), &(), 1).is_err());
    let mut m = MemoryMapTable::<String, (), u8, u8>::new(0..4);
    assert!(m.put(4, &k("a"), &(), 1, 1).is_err());
    let mut empty = MemoryValueTable::<String, (), u8>::new(0..0);
    assert!(empty.get(0, &k("a"), &()).is_err());
}

#[test]
fn list_add_get_update_clear() {
    let mut t = MemoryListTable::<String, u64, i32>::new(0..4);
    assert_eq!(t.get(1, &k("a"), &0).unwrap(), Vec::<i32>::new());
    t.add(1, &k("a"), &0, 1).unwrap();
    t.add(1, &k("a"), &0, 2).unwrap();
    t.add(1, &k("a"), &1, 9).unwrap();
    assert_eq!(t.get(1, &k("a"), &0).unwrap(), [1, 2]);
    assert_eq!(t.get(1, &k("a"), &1).unwrap(), [9]);
    assert_eq!(t.len(), 2);

    t.update(1, &k("a"), &0, vec![7, 8, 9]).unwrap();
    assert_eq!(t.get(1, &k("a"), &0).unwrap(), [7, 8, 9]);
    t.update(1, &k("a"), &0, Vec::new()).unwrap();
    assert_eq!(t.get(1, &k("a"), &0).unwrap(), Vec::<i32>::new());
    assert_eq!(t.len(), 1);

    t.clear(1, &k("a"), &1).unwrap();
    assert_eq!(t.get(1, &k("a"), &1).unwrap(), Vec::<i32>::new());
    assert_eq!(t.len(), 0);
    t.clear(1, &k("a"), &1).unwrap();
}

#[test]
fn map_put_get_remove_contains_entries_clear() {
    let mut t = MemoryMapTable::<String, (), String, u32>::new(0..4);
    let (a, ns) = (k("a"), ());
    assert!(t.is_empty(2, &a, &ns).unwrap());
    assert_eq!(t.get(2, &a, &ns, &k("x")).unwrap(), None);
    assert!(!t.contains(2, &a, &ns, &k("x")).unwrap());
    assert!(t.entries(2, &a, &ns).unwrap().is_empty());

    t.put(2, &a, &ns, k("x"), 1).unwrap();
    t.put(2, &a, &ns, k("y"), 2).unwrap();
    t.put(2, &a, &ns, k("y"), 3).unwrap();
    t.put(2, &k("b"), &ns, k("x"), 10).unwrap();
    assert!(!t.is_empty(2, &a, &ns).unwrap());
    assert_eq!(t.get(2, &a, &ns, &k("y")).unwrap(), Some(3));
    assert!(t.contains(2, &a, &ns, &k("x")).unwrap());
    let mut entries = t.entries(2, &a, &ns).unwrap();
    entries.sort();
    assert_eq!(entries, [(k("x"), 1), (k("y"), 3)]);
    assert_eq!(t.len(), 2);

    assert_eq!(t.remove(2, &a, &ns, &k("x")).unwrap(), Some(1));
    assert_eq!(t.remove(2, &a, &ns, &k("x")).unwrap(), None);
    assert!(!t.contains(2, &a, &ns, &k("x")).unwrap());
    assert_eq!(t.remove(2, &a, &ns, &k("y")).unwrap(), Some(3));
    // Removing the last user key drops the (key, namespace) entry.
    assert!(t.is_empty(2, &a, &ns).unwrap());
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(2, &k("nobody"), &ns, &k("x")).unwrap(), None);

    t.clear(2, &k("b"), &ns).unwrap();
    assert!(t.is_empty(2, &k("b"), &ns).unwrap());
    assert_eq!(t.get(2, &k("b"), &ns, &k("x")).unwrap(), None);
    assert_eq!(t.len(), 0);
}

#[test]
fn backend_reports_name_and_key_groups() {
    let backend = MemoryBackend::new(3..7);
    assert_eq!(backend.name(), "memory");
    assert_eq!(backend.key_groups(), 3..7);
}

fn filled_value_table(order: &[(u64, u64)]) -> MemoryValueTable<String, u64, i64> {
    let mut t = value_table();
    for &(key, ns) in order {
        t.put(13, &format!("key-{key}"), &ns, (key * 10 + ns) as i64).unwrap();
    }
    t
}

fn sorted_values(t: &MemoryValueTable<String, u64, i64>, kg: KeyGroup) -> Vec<(String, u64, i64)> {
    let mut all: Vec<_> =
        t.maps.group(kg).unwrap().entries().map(|((key, ns), value)| (key.clone(), *ns, *value)).collect();
    all.sort();
    all
}

#[test]
fn value_snapshot_restores_into_a_fresh_table() {
    let mut t = value_table();
    t.put(10, &k("a"), &1, 1).unwrap();
    t.put(10, &k("a"), &2, 2).unwrap();
    t.put(10, &k("b"), &1, 3).unwrap();
    t.put(17, &k("c"), &0, 4).unwrap();

    let mut fresh = value_table();
    for kg in 10..20 {
        match t.snapshot_key_group(kg).unwrap() {
            Some(bytes) => fresh.restore_key_group(kg, &bytes).unwrap(),
            None => assert!(![10, 17].contains(&kg), "key group {kg} has entries"),
        }
    }
    assert_eq!(fresh.len(), 4);
    for kg in [10, 17] {
        assert_eq!(sorted_values(&fresh, kg), sorted_values(&t, kg));
    }
    assert_eq!(fresh.get(10, &k("a"), &2).unwrap(), Some(2));
    assert_eq!(fresh.get(10, &k("a"), &3).unwrap(), None);

    // Restoring adds: existing entries stay, restored ones replace the same key and namespace.
    let mut other = value_table();
    other.put(10, &k("a"), &1, 100).unwrap();
    other.put(10, &k("z"), &1, 26).unwrap();
    other.restore_key_group(10, &t.snapshot_key_group(10).unwrap().unwrap()).unwrap();
    assert_eq!(other.get(10, &k("a"), &1).unwrap(), Some(1));
    assert_eq!(other.get(10, &k("z"), &1).unwrap(), Some(26));
    assert_eq!(other.len(), 4);
}

#[test]
fn equal_contents_give_equal_bytes_whatever_the_insertion_order() {
    let pairs: Vec<(u64, u64)> = (0..200).map(|i| (i % 37, i / 37)).collect();
    let mut reversed = pairs.clone();
    reversed.reverse();
    let mut shuffled = pairs.clone();
    let mut rng = XorShift(0x5EED);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let bytes = filled_value_table(&pairs).snapshot_key_group(13).unwrap();
    assert!(bytes.is_some());
    assert_eq!(filled_value_table(&reversed).snapshot_key_group(13).unwrap(), bytes);
    assert_eq!(filled_value_table(&shuffled).snapshot_key_group(13).unwrap(), bytes);
    // A table that grew and shrank back has other hash map capacity, but the same bytes.
    let mut grown = filled_value_table(&shuffled);
    for i in 0..1000 {
        grown.put(13, &format!("extra-{i}"), &0, 0).unwrap();
    }
    for i in 0..1000 {
        grown.remove(13, &format!("extra-{i}"), &0).unwrap();
    }
    assert_eq!(grown.snapshot_key_group(13).unwrap(), bytes);

    let mut lists = [MemoryListTable::<String, u8, u8>::new(0..1), MemoryListTable::new(0..1)];
    let mut maps = [MemoryMapTable::<String, u8, String, u8>::new(0..1), MemoryMapTable::new(0..1)];
    for (n, (list, map)) in lists.iter_mut().zip(&mut maps).enumerate() {
        for i in 0..50u8 {
            let i = if n == 0 { i } else { 49 - i };
            list.add(0, &format!("k{}", i % 7), &(i % 3), 1).unwrap();
            map.put(0, &format!("k{}", i % 7), &(i % 3), format!("u{i}"), i).unwrap();
        }
    }
    assert_eq!(lists[0].snapshot_key_group(0).unwrap(), lists[1].snapshot_key_group(0).unwrap());
    assert_eq!(maps[0].snapshot_key_group(0).unwrap(), maps[1].snapshot_key_group(0).unwrap());
}

#[test]
fn list_snapshot_restores_into_a_fresh_table() {
    let mut t = MemoryListTable::<String, u64, i32>::new(0..4);
    t.add(1, &k("a"), &0, 1).unwrap();
    t.add(1, &k("a"), &0, 2).unwrap();
    t.add(1, &k("a"), &7, 9).unwrap();
    t.add(3, &k("b"), &0, 5).unwrap();
    assert_eq!(t.snapshot_key_group(0).unwrap(), None);
    assert_eq!(t.snapshot_key_group(2).unwrap(), None);

    let mut fresh = MemoryListTable::<String, u64, i32>::new(0..4);
    for kg in [1, 3] {
        fresh.restore_key_group(kg, &t.snapshot_key_group(kg).unwrap().unwrap()).unwrap();
    }
    assert_eq!(fresh.len(), 3);
    assert_eq!(fresh.get(1, &k("a"), &0).unwrap(), [1, 2]);
    assert_eq!(fresh.get(1, &k("a"), &7).unwrap(), [9]);
    assert_eq!(fresh.get(3, &k("b"), &0).unwrap(), [5]);

    // Restoring a key group twice (as after merging overlapping snapshots) appends.
    fresh.restore_key_group(3, &t.snapshot_key_group(3).unwrap().unwrap()).unwrap();
    assert_eq!(fresh.get(3, &k("b"), &0).unwrap(), [5, 5]);
}

#[test]
fn map_snapshot_restores_into_a_fresh_table() {
    let mut t = MemoryMapTable::<String, u64, String, u32>::new(0..4);
    t.put(2, &k("a"), &0, k("x"), 1).unwrap();
    t.put(2, &k("a"), &0, k("y"), 2).unwrap();
    t.put(2, &k("a"), &5, k("x"), 3).unwrap();
    t.put(0, &k("b"), &0, k("z"), 4).unwrap();

    let mut fresh = MemoryMapTable::<String, u64, String, u32>::new(0..4);
    for kg in 0..4 {
        if let Some(bytes) = t.snapshot_key_group(kg).unwrap() {
            fresh.restore_key_group(kg, &bytes).unwrap();
        }
    }
    assert_eq!(fresh.len(), 3);
    let mut entries = fresh.entries(2, &k("a"), &0).unwrap();
    entries.sort();
    assert_eq!(entries, [(k("x"), 1), (k("y"), 2)]);
    assert_eq!(fresh.entries(2, &k("a"), &5).unwrap(), [(k("x"), 3)]);
    assert_eq!(fresh.entries(0, &k("b"), &0).unwrap(), [(k("z"), 4)]);
    assert!(fresh.is_empty(2, &k("b"), &0).unwrap());
}

#[test]
fn snapshot_and_restore_outside_the_key_groups_are_errors() {
    let mut t = value_table();
    t.put(10, &k("a"), &0, 1).unwrap();
    let bytes = t.snapshot_key_group(10).unwrap().unwrap();
    for kg in [0, 9, 20, u16::MAX] {
        let err = t.restore_key_group(kg, &bytes).unwrap_err();
        assert!(
            matches!(err, StateError::KeyGroupOutOfRange { key_group, ref range } if key_group == kg && *range == (10..20)),
            "{err:?}"
        );
        assert!(matches!(t.snapshot_key_group(kg), Err(StateError::KeyGroupOutOfRange { .. })));
    }
    let mut l = MemoryListTable::<String, (), u8>::new(0..4);
    assert!(matches!(l.restore_key_group(4, &[0]), Err(StateError::KeyGroupOutOfRange { .. })));
    let mut m = MemoryMapTable::<String, (), u8, u8>::new(0..4);
    assert!(matches!(m.restore_key_group(4, &[0]), Err(StateError::KeyGroupOutOfRange { .. })));
    assert_eq!(t.len(), 1);
}

#[test]
fn truncated_or_padded_snapshots_are_corrupt_and_add_nothing() {
    let mut t = value_table();
    for i in 0..10 {
        t.put(10, &format!("key-{i}"), &i, i as i64).unwrap();
    }
    let bytes = t.snapshot_key_group(10).unwrap().unwrap();
    let mut fresh = value_table();
    for len in 0..bytes.len() {
        let err = fresh.restore_key_group(10, &bytes[..len]).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{len} bytes: {err:?}");
    }
    let mut padded = bytes.clone();
    padded.push(0);
    let err = fresh.restore_key_group(10, &padded).unwrap_err();
    assert_eq!(err.to_string(), "corrupt state snapshot: bytes left over after the entries (1)");
    assert_eq!(fresh.len(), 0);
}

#[test]
fn garbage_bytes_are_corrupt_never_a_panic() {
    let seed = 0x00C0_FFEE_u64;
    println!("seed {seed:#x}");
    let mut rng = XorShift(seed);
    let mut values = MemoryValueTable::<String, u64, String>::new(0..2);
    let mut lists = MemoryListTable::<String, (u32, String), Vec<u8>>::new(0..2);
    let mut maps = MemoryMapTable::<String, (), String, (i64, bool)>::new(0..2);
    let mut corrupt = 0;
    for case in 0..1_000 {
        let bytes = rng.bytes(64);
        let results = [
            values.restore_key_group(0, &bytes),
            lists.restore_key_group(0, &bytes),
            maps.restore_key_group(0, &bytes),
        ];
        for result in results {
            match result {
                // Some byte strings happen to be valid encodings, e.g. `[0]`, the empty list.
                Ok(()) => {}
                Err(StateError::Corrupt { what }) => {
                    assert!(!what.is_empty());
                    corrupt += 1;
                }
                Err(err) => panic!("case {case} ({bytes:?}): {err:?}"),
            }
        }
    }
    assert!(corrupt > 2_000, "only {corrupt} of 3000 garbage snapshots were corrupt");

    // Valid snapshots with one byte changed reach deeper into the decoder.
    for i in 0..20u64 {
        maps.put(1, &format!("key-{i}"), &(), format!("user-{i}"), (i as i64 - 10, i % 2 == 0)).unwrap();
    }
    let valid = maps.snapshot_key_group(1).unwrap().unwrap();
    for case in 0..1_000 {
        let mut bytes = valid.clone();
        let at = (rng.next() % bytes.len() as u64) as usize;
        bytes[at] = rng.next() as u8;
        match maps.restore_key_group(0, &bytes) {
            Ok(()) | Err(StateError::Corrupt { .. }) => {}
            Err(err) => panic!("mutation {case} ({bytes:?}): {err:?}"),
        }
    }
}

/// Every key group of `t` as its live snapshot gives it.
fn live_bytes(t: &dyn Fn(KeyGroup) -> Result<Option<Vec<u8>>>, key_groups: Range<KeyGroup>) -> Vec<Option<Vec<u8>>> {
    key_groups.map(|kg| t(kg).unwrap()).collect()
}

/// Every key group of a frozen table, taken.
fn frozen_bytes(frozen: &mut dyn FrozenTable, key_groups: Range<KeyGroup>) -> Vec<Option<Vec<u8>>> {
    key_groups.map(|kg| frozen.take_key_group(kg).unwrap()).collect()
}

#[test]
fn a_frozen_value_table_keeps_the_entries_of_its_moment() {
    let mut t = value_table();
    for i in 0..40u64 {
        t.put(10 + (i % 5) as KeyGroup, &format!("key-{i}"), &(i % 2), i as i64).unwrap();
    }
    let before = live_bytes(&|kg| t.snapshot_key_group(kg), 10..20);
    let mut frozen = t.freeze().unwrap();

    t.put(10, &k("key-0"), &0, -1).unwrap(); // replaces
    t.put(15, &k("new"), &0, 7).unwrap(); // a key group that was empty
    t.remove(11, &k("key-1"), &1).unwrap();
    t.upsert(12, &k("key-2"), &0, &mut |v| v.map(|v| *v * 100)).unwrap();
    t.upsert(13, &k("key-3"), &1, &mut |v| {
        *v.unwrap() += 1;
        None
    })
    .unwrap();

    assert_eq!(frozen_bytes(&mut *frozen, 10..20), before);
    assert_eq!(t.get(10, &k("key-0"), &0).unwrap(), Some(-1));
    assert_eq!(t.get(15, &k("new"), &0).unwrap(), Some(7));
    assert_eq!(t.get(11, &k("key-1"), &1).unwrap(), None);
    assert_eq!(t.get(12, &k("key-2"), &0).unwrap(), Some(200));
    assert_eq!(t.get(13, &k("key-3"), &1).unwrap(), Some(4));
    assert_ne!(live_bytes(&|kg| t.snapshot_key_group(kg), 10..20), before);
}

#[test]
fn a_frozen_list_table_keeps_the_lists_of_its_moment() {
    let mut t = MemoryListTable::<String, u8, String>::new(0..4);
    for i in 0..30u8 {
        t.add(KeyGroup::from(i % 4), &format!("k{}", i % 6), &(i % 2), format!("v{i}")).unwrap();
    }
    let before = live_bytes(&|kg| t.snapshot_key_group(kg), 0..4);
    let mut frozen = t.freeze().unwrap();

    t.add(0, &k("k0"), &0, k("appended")).unwrap();
    t.update(1, &k("k1"), &1, vec![k("replaced")]).unwrap();
    t.update(2, &k("k2"), &0, Vec::new()).unwrap();
    t.clear(3, &k("k3"), &1).unwrap();

    assert_eq!(frozen_bytes(&mut *frozen, 0..4), before);
    assert_eq!(t.get(0, &k("k0"), &0).unwrap().last(), Some(&k("appended")));
    assert_eq!(t.get(1, &k("k1"), &1).unwrap(), [k("replaced")]);
    assert!(t.get(2, &k("k2"), &0).unwrap().is_empty());
    assert!(t.get(3, &k("k3"), &1).unwrap().is_empty());
}

#[test]
fn a_frozen_map_table_keeps_the_maps_of_its_moment() {
    let mut t = MemoryMapTable::<String, (), String, u32>::new(0..4);
    for i in 0..30u32 {
        t.put((i % 4) as KeyGroup, &format!("k{}", i % 6), &(), format!("u{i}"), i).unwrap();
    }
    let before = live_bytes(&|kg| t.snapshot_key_group(kg), 0..4);
    let mut frozen = t.freeze().unwrap();

    t.put(0, &k("k0"), &(), k("u0"), 1000).unwrap(); // replaces a user key in place
    t.put(1, &k("k1"), &(), k("fresh"), 1).unwrap();
    t.remove(2, &k("k2"), &(), &k("u2")).unwrap();
    t.clear(3, &k("k3"), &()).unwrap();

    assert_eq!(frozen_bytes(&mut *frozen, 0..4), before);
    assert_eq!(t.get(0, &k("k0"), &(), &k("u0")).unwrap(), Some(1000));
    assert!(t.contains(1, &k("k1"), &(), &k("fresh")).unwrap());
    assert!(!t.contains(2, &k("k2"), &(), &k("u2")).unwrap());
    assert!(t.is_empty(3, &k("k3"), &()).unwrap());
}

#[test]
fn a_write_under_a_frozen_view_copies_only_its_entry_and_the_view_letting_go_copies_nothing() {
    let mut t = value_table();
    for kg in 10..20 {
        for i in 0..100 {
            t.put(kg, &format!("k{i}"), &0, i64::from(kg) * 1000 + i).unwrap();
        }
    }
    let address = |t: &MemoryValueTable<String, u64, i64>, kg, key: &str| {
        t.maps.get(kg, &k(key), &0).unwrap().unwrap() as *const i64
    };
    let before: Vec<_> = (10..20).map(|kg| address(&t, kg, "k1")).collect();
    let untouched = address(&t, 11, "k4");
    let mut frozen = t.freeze().unwrap();
    assert!(t.maps.groups.iter().all(|g| matches!(g, Group::Shared(_))));
    // Reads need no copy.
    assert_eq!(t.get(10, &k("k1"), &0).unwrap(), Some(10_001));
    assert!(matches!(t.maps.groups[0], Group::Shared(_)));

    // A write lays a delta over the shared map: just the entry written is new.
    t.put(11, &k("k1"), &0, -11).unwrap();
    t.upsert(11, &k("k2"), &0, &mut |v| v.map(|v| *v + 1)).unwrap();
    t.remove(11, &k("k3"), &0).unwrap();
    t.put(11, &k("new"), &0, 5).unwrap();
    match &t.maps.groups[1] {
        Group::Layered { base, delta } => {
            assert_eq!(base.len(), 100, "the shared map is not written");
            assert_eq!(delta.len(), 4, "only the entries written are in the delta");
        }
        _ => panic!("a write under a frozen view must lay a delta over the shared map"),
    }
    assert_eq!(address(&t, 11, "k4"), untouched, "an entry not written is read where it was");
    assert_eq!(t.get(11, &k("k1"), &0).unwrap(), Some(-11));
    assert_eq!(t.get(11, &k("k2"), &0).unwrap(), Some(11_003));
    assert_eq!(t.get(11, &k("k3"), &0).unwrap(), None);
    assert_eq!(t.get(11, &k("new"), &0).unwrap(), Some(5));
    assert_eq!(t.len(), 1000);
    assert_eq!(t.maps.groups.iter().filter(|g| !matches!(g, Group::Shared(_))).count(), 1);
    let mut expected = value_table();
    for i in 0..100 {
        expected.put(11, &format!("k{i}"), &0, 11_000 + i).unwrap();
    }
    assert_eq!(frozen.take_key_group(11).unwrap(), expected.snapshot_key_group(11).unwrap());

    // The view let go of key group 11: the next write applies the delta to the map it shared,
    // which the group owns again without a copy.
    t.put(11, &k("k5"), &0, -5).unwrap();
    assert!(matches!(t.maps.groups[1], Group::Owned(_)));
    assert_eq!(address(&t, 11, "k1"), before[1], "the shared map itself, not a copy");
    assert_eq!(t.get(11, &k("k1"), &0).unwrap(), Some(-11));
    assert_eq!(t.get(11, &k("k3"), &0).unwrap(), None);
    assert_eq!(t.get(11, &k("new"), &0).unwrap(), Some(5));
    assert_eq!(t.len(), 1000);

    // Once the whole view is gone, a write takes a shared group back without copying it.
    drop(frozen);
    t.put(12, &k("k1"), &0, -12).unwrap();
    assert!(matches!(t.maps.groups[2], Group::Owned(_)));
    assert_eq!(address(&t, 12, "k1"), before[2]);
    assert_eq!(t.get(12, &k("k1"), &0).unwrap(), Some(-12));
}

/// A table whose key group `kg` holds just `("a", 0) -> value`.
fn value_table_with(kg: KeyGroup, value: i64) -> MemoryValueTable<String, u64, i64> {
    let mut t = value_table();
    t.put(kg, &k("a"), &0, value).unwrap();
    t
}

#[test]
fn frozen_views_are_independent_of_each_other() {
    let mut t = value_table();
    t.put(10, &k("a"), &0, 1).unwrap();
    let mut first = t.freeze().unwrap();
    t.put(10, &k("a"), &0, 2).unwrap();
    // The first view still holds key group 10, whose delta the second freeze must include.
    let mut second = t.freeze().unwrap();
    t.put(10, &k("a"), &0, 3).unwrap();
    // A group nobody wrote since the first freeze is shared by both views and the table.
    assert_eq!(first.take_key_group(14).unwrap(), None);
    assert_eq!(second.take_key_group(14).unwrap(), None);

    assert_eq!(second.take_key_group(10).unwrap(), value_table_with(10, 2).snapshot_key_group(10).unwrap());
    drop(second);
    assert_eq!(first.take_key_group(10).unwrap(), value_table_with(10, 1).snapshot_key_group(10).unwrap());
    assert_eq!(t.snapshot_key_group(10).unwrap(), value_table_with(10, 3).snapshot_key_group(10).unwrap());
    assert!(matches!(first.take_key_group(20), Err(StateError::KeyGroupOutOfRange { .. })));
}

/// Random writes to a value table and a map table, with frozen views taken at random moments
/// and serialized at random later moments, key group by key group, while the writes go on:
/// every view gives exactly the snapshot a model of the tables had when it was frozen, and the
/// live tables always read as the model does.
#[test]
fn frozen_views_under_random_writes_match_a_model() {
    use std::collections::BTreeMap;
    type Model = BTreeMap<(KeyGroup, String, u64), i64>;
    type MapModel = BTreeMap<(KeyGroup, String), BTreeMap<u8, i64>>;
    let key_groups = 0..4;
    let model_snapshot = |model: &Model, map_model: &MapModel| {
        let mut values = MemoryValueTable::<String, u64, i64>::new(key_groups.clone());
        let mut maps = MemoryMapTable::<String, (), u8, i64>::new(key_groups.clone());
        for ((kg, key, ns), value) in model {
            values.put(*kg, key, ns, *value).unwrap();
        }
        for ((kg, key), map) in map_model {
            for (user_key, value) in map {
                maps.put(*kg, key, &(), *user_key, *value).unwrap();
            }
        }
        let values = key_groups.clone().map(|kg| values.snapshot_key_group(kg).unwrap()).collect::<Vec<_>>();
        let maps = key_groups.clone().map(|kg| maps.snapshot_key_group(kg).unwrap()).collect::<Vec<_>>();
        (values, maps)
    };
    for seed in 1..=20u64 {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed);
        let mut values = MemoryValueTable::<String, u64, i64>::new(key_groups.clone());
        let mut maps = MemoryMapTable::<String, (), u8, i64>::new(key_groups.clone());
        let mut model = Model::new();
        let mut map_model = MapModel::new();
        // Views being serialized: the frozen tables, the next key group to take, and what
        // the model said at the freeze.
        type Expected = (Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>);
        type View = (Box<dyn FrozenTable>, Box<dyn FrozenTable>, KeyGroup, Expected);
        let mut views: Vec<View> = Vec::new();
        for step in 0..3000 {
            let kg = rng.below(4) as KeyGroup;
            let key = format!("k{}", rng.below(12));
            let ns = rng.below(2);
            let value = rng.below(1000) as i64;
            match rng.below(100) {
                0..=24 => {
                    values.put(kg, &key, &ns, value).unwrap();
                    model.insert((kg, key.clone(), ns), value);
                }
                25..=39 => {
                    let removed = values.remove(kg, &key, &ns).unwrap();
                    assert_eq!(removed, model.remove(&(kg, key.clone(), ns)), "seed {seed} step {step}");
                }
                40..=59 => {
                    values
                        .upsert(kg, &key, &ns, &mut |v| match v {
                            Some(v) if value % 2 == 0 => {
                                *v += value;
                                None
                            }
                            Some(v) => Some(*v - value),
                            None => Some(value),
                        })
                        .unwrap();
                    match model.get_mut(&(kg, key.clone(), ns)) {
                        Some(v) if value % 2 == 0 => *v += value,
                        Some(v) => *v -= value,
                        None => {
                            model.insert((kg, key.clone(), ns), value);
                        }
                    }
                }
                60..=74 => {
                    let user_key = rng.below(4) as u8;
                    maps.put(kg, &key, &(), user_key, value).unwrap();
                    map_model.entry((kg, key.clone())).or_default().insert(user_key, value);
                }
                75..=84 => {
                    let user_key = rng.below(4) as u8;
                    let removed = maps.remove(kg, &key, &(), &user_key).unwrap();
                    let expected = map_model.get_mut(&(kg, key.clone())).and_then(|m| m.remove(&user_key));
                    if map_model.get(&(kg, key.clone())).is_some_and(BTreeMap::is_empty) {
                        map_model.remove(&(kg, key.clone()));
                    }
                    assert_eq!(removed, expected, "seed {seed} step {step}");
                }
                85..=89 if views.len() < 3 => {
                    let expected = model_snapshot(&model, &map_model);
                    views.push((values.freeze().unwrap(), maps.freeze().unwrap(), 0, expected));
                }
                _ => {
                    // Serialize the next key group of a view in progress.
                    if !views.is_empty() {
                        let i = rng.below(views.len() as u64) as usize;
                        let (frozen_values, frozen_maps, next, (expected_values, expected_maps)) = &mut views[i];
                        let at = usize::from(*next);
                        assert_eq!(frozen_values.take_key_group(*next).unwrap(), expected_values[at], "seed {seed}");
                        assert_eq!(frozen_maps.take_key_group(*next).unwrap(), expected_maps[at], "seed {seed}");
                        *next += 1;
                        if *next == key_groups.end {
                            views.swap_remove(i);
                        }
                    }
                }
            }
            let read = values.get(kg, &key, &ns).unwrap();
            assert_eq!(read, model.get(&(kg, key.clone(), ns)).copied(), "seed {seed} step {step}");
            let entries: BTreeMap<u8, i64> = maps.entries(kg, &key, &()).unwrap().into_iter().collect();
            assert_eq!(entries, map_model.get(&(kg, key.clone())).cloned().unwrap_or_default(), "seed {seed}");
            assert_eq!(values.len(), model.len(), "seed {seed} step {step}");
        }
        // The live tables' own snapshots are the model's.
        let (expected_values, expected_maps) = model_snapshot(&model, &map_model);
        for kg in key_groups.clone() {
            assert_eq!(values.snapshot_key_group(kg).unwrap(), expected_values[usize::from(kg)], "seed {seed}");
            assert_eq!(maps.snapshot_key_group(kg).unwrap(), expected_maps[usize::from(kg)], "seed {seed}");
        }
    }
}

/// `entries` sorted by the encoding of their sort keys, the plain way.
fn plainly_sorted<S: Serialize, E>(entries: impl IntoIterator<Item = (S, E)>) -> Vec<E> {
    let mut entries: Vec<_> =
        entries.into_iter().map(|(sort_key, entry)| (encode(&sort_key).unwrap(), entry)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, entry)| entry).collect()
}

/// The canonical encoding the plain way: `entries` sorted, encoded as one list.
fn plainly_encoded<S: Serialize, E: Serialize>(entries: impl IntoIterator<Item = (S, E)>) -> Vec<u8> {
    encode(&plainly_sorted(entries)).unwrap()
}

/// Keys that share long prefixes, are prefixes of each other, are empty or contain zero
/// bytes, with namespaces of every varint length: the cases the sort's eight-byte prefixes
/// must order as the whole keys.
fn awkward_keys() -> Vec<(String, u64)> {
    let mut rng = XorShift(0xC0FFEE);
    let mut keys = Vec::new();
    for i in 0..300u64 {
        let key = match i % 5 {
            0 => String::new(),
            1 => "common-prefix-".repeat(1 + (i % 3) as usize) + &(i % 7).to_string(),
            2 => "\0".repeat((i % 11) as usize),
            3 => "k".repeat((i % 13) as usize),
            _ => format!("{}", rng.next()),
        };
        keys.push((key, rng.next() >> (rng.below(64) as u32)));
    }
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn value_and_list_snapshots_are_the_plain_encoding_of_the_sorted_entries() {
    let mut values = MemoryValueTable::<String, u64, i64>::new(0..1);
    let mut lists = MemoryListTable::<String, u64, String>::new(0..1);
    let keys = awkward_keys();
    for (i, (key, ns)) in keys.iter().enumerate() {
        values.put(0, key, ns, i as i64 - 100).unwrap();
        lists.update(0, key, ns, vec![key.clone(); i % 3 + 1]).unwrap();
    }
    let expected =
        plainly_encoded(keys.iter().enumerate().map(|(i, (key, ns))| ((key, ns), (key, ns, i as i64 - 100))));
    assert!(values.snapshot_key_group(0).unwrap().unwrap() == expected, "values: not the plain encoding");
    let expected =
        plainly_encoded(keys.iter().enumerate().map(|(i, (key, ns))| ((key, ns), (key, ns, vec![key; i % 3 + 1]))));
    assert!(lists.snapshot_key_group(0).unwrap().unwrap() == expected, "lists: not the plain encoding");
}

#[test]
fn map_snapshots_are_the_plain_encoding_of_the_sorted_entries_and_maps() {
    let mut maps = MemoryMapTable::<String, u64, String, u32>::new(0..1);
    let keys = awkward_keys();
    let user_keys: Vec<String> =
        keys.iter().map(|(key, _)| key.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let map_of = |i: usize| user_keys.iter().enumerate().skip(i % 5).step_by(3);
    for (i, (key, ns)) in keys.iter().enumerate().step_by(3) {
        for (j, user_key) in map_of(i) {
            maps.put(0, key, ns, user_key.clone(), j as u32).unwrap();
        }
    }
    let expected = plainly_encoded(keys.iter().enumerate().step_by(3).map(|(i, (key, ns))| {
        let map = plainly_sorted(map_of(i).map(|(j, user_key)| (user_key, (user_key, j as u32))));
        ((key, ns), (key, ns, map))
    }));
    assert!(maps.snapshot_key_group(0).unwrap().unwrap() == expected, "not the plain encoding");
}
