use std::hash::BuildHasher;

use super::*;

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
