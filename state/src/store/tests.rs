use std::time::Instant;

use super::*;
use crate::MemoryBackend;

fn store() -> KeyedStateStore<String> {
    KeyedStateStore::new(Box::new(MemoryBackend::new(0..8)))
}

#[test]
fn reports_backend() {
    let store = store();
    assert_eq!(store.backend_name(), "memory");
    assert_eq!(store.key_groups(), 0..8);
}

#[test]
fn same_name_returns_same_handle() {
    let mut store = store();
    let a = store.value_state::<(), u64>("count").unwrap();
    let l = store.list_state::<u64, String>("buffer").unwrap();
    let m = store.map_state::<(), String, u32>("seen").unwrap();
    assert_eq!(store.value_state::<(), u64>("count").unwrap(), a);
    assert_eq!(store.list_state::<u64, String>("buffer").unwrap(), l);
    assert_eq!(store.map_state::<(), String, u32>("seen").unwrap(), m);
    store.value(a).put(1, &"k".to_owned(), &(), 5).unwrap();
    let again = store.value_state::<(), u64>("count").unwrap();
    assert_eq!(store.value(again).get(1, &"k".to_owned(), &()).unwrap(), Some(5));
    assert_eq!(
        store.state_names(),
        [
            ("count".to_owned(), StateKind::Value),
            ("buffer".to_owned(), StateKind::List),
            ("seen".to_owned(), StateKind::Map)
        ]
    );
}

#[test]
fn type_mismatch_names_the_state() {
    let mut store = store();
    store.value_state::<(), u64>("count").unwrap();
    let mismatches = [
        store.value_state::<(), i64>("count").unwrap_err(),
        store.value_state::<u64, u64>("count").unwrap_err(),
        store.list_state::<(), u64>("count").unwrap_err(),
        store.map_state::<(), u64, u64>("count").unwrap_err(),
    ];
    for err in mismatches {
        assert!(matches!(&err, StateError::TypeMismatch { name } if name == "count"), "{err:?}");
        assert!(err.to_string().contains("\"count\""), "{err}");
    }
    store.map_state::<(), String, u32>("seen").unwrap();
    assert!(store.map_state::<(), String, u64>("seen").is_err());
    assert_eq!(store.state_names().len(), 2);
}

#[test]
fn states_are_independent() {
    let mut store = store();
    let a = store.value_state::<(), u64>("a").unwrap();
    let b = store.value_state::<(), u64>("b").unwrap();
    assert_ne!(a, b);
    let key = "k".to_owned();
    store.value(a).put(3, &key, &(), 1).unwrap();
    store.value(b).put(3, &key, &(), 2).unwrap();
    assert_eq!(store.value(a).get(3, &key, &()).unwrap(), Some(1));
    assert_eq!(store.value(b).get(3, &key, &()).unwrap(), Some(2));
    store.value(a).remove(3, &key, &()).unwrap();
    assert_eq!(store.value(b).len(), 1);
    assert_eq!(store.value(a).len(), 0);

    let l = store.list_state::<(), u64>("l").unwrap();
    store.list(l).add(3, &key, &(), 7).unwrap();
    assert_eq!(store.list(l).get(3, &key, &()).unwrap(), [7]);
    let m = store.map_state::<(), u8, u8>("m").unwrap();
    store.map(m).put(3, &key, &(), 1, 2).unwrap();
    assert_eq!(store.map(m).get(3, &key, &(), &1).unwrap(), Some(2));
}

#[test]
#[should_panic(expected = "does not belong to this keyed state store")]
fn foreign_handle_panics() {
    let mut other = store();
    other.value_state::<(), u64>("x").unwrap();
    let foreign = other.value_state::<(), u64>("y").unwrap();
    let mut store = store();
    store.value_state::<(), u64>("x").unwrap();
    store.value(foreign);
}

#[test]
#[should_panic(expected = "does not belong to this keyed state store")]
fn foreign_handle_of_other_types_panics() {
    let mut other = store();
    let foreign = other.value_state::<(), String>("x").unwrap();
    let mut store = store();
    store.value_state::<(), u64>("x").unwrap();
    store.value(foreign);
}

/// A keyed reduce's hot path: one upsert per record. Run with
/// `cargo test -p weir-state --release -- --ignored --nocapture throughput`.
#[test]
#[ignore = "throughput sanity check, not a correctness test"]
fn upsert_throughput() {
    const KEYS: u64 = 100_000;
    const UPDATES: u64 = 20_000_000;
    let mut store = KeyedStateStore::<u64>::new(Box::new(MemoryBackend::new(0..128)));
    let sum = store.value_state::<(), u64>("sum").unwrap();
    let started = Instant::now();
    for i in 0..UPDATES {
        let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % KEYS;
        let kg = (key % 128) as KeyGroup;
        store
            .value(sum)
            .upsert(kg, &key, &(), &mut |v| match v {
                Some(v) => {
                    *v += i;
                    None
                }
                None => Some(i),
            })
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(store.value(sum).len(), KEYS as usize);
    println!(
        "{UPDATES} upserts over {KEYS} keys in {elapsed:?}: {:.1} M/s",
        UPDATES as f64 / elapsed.as_secs_f64() / 1e6
    );
}
