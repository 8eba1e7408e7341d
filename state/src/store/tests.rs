use std::ops::Range;
use std::time::Instant;

use super::*;
use crate::MemoryBackend;
use crate::test_support::XorShift;

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

/// The three states of [`filled`], as an operator's `open` would register them.
struct Handles {
    count: ValueStateHandle<(), u64>,
    buffer: ListStateHandle<u64, String>,
    seen: MapStateHandle<(), String, u32>,
}

fn register(store: &mut KeyedStateStore<String>) -> Handles {
    Handles {
        count: store.value_state("count").unwrap(),
        buffer: store.list_state("buffer").unwrap(),
        seen: store.map_state("seen").unwrap(),
    }
}

fn store_over(key_groups: Range<KeyGroup>) -> (KeyedStateStore<String>, Handles) {
    let mut store = KeyedStateStore::new(Box::new(MemoryBackend::new(key_groups)));
    let handles = register(&mut store);
    (store, handles)
}

const KEYS: u64 = 1_000;

/// Key `i` and its key group, spread over all of 0..128.
fn key(i: u64) -> (KeyGroup, String) {
    ((i * 37 % 128) as KeyGroup, format!("key-{i}"))
}

/// A store over 0..128 with entries of all three states for [`KEYS`] keys.
fn filled() -> (KeyedStateStore<String>, Handles) {
    let (mut store, h) = store_over(0..128);
    for i in 0..KEYS {
        let (kg, key) = key(i);
        store.value(h.count).put(kg, &key, &(), i).unwrap();
        for window in 0..i % 3 {
            store.list(h.buffer).add(kg, &key, &window, format!("{i}/{window}/a")).unwrap();
            store.list(h.buffer).add(kg, &key, &window, format!("{i}/{window}/b")).unwrap();
        }
        store.map(h.seen).put(kg, &key, &(), format!("user-{}", i % 5), i as u32).unwrap();
    }
    (store, h)
}

/// Whether `store` holds exactly the entries [`filled`] wrote for key `i`.
fn holds_key(store: &mut KeyedStateStore<String>, h: &Handles, i: u64) -> bool {
    let (kg, key) = key(i);
    let lists_ok = (0..3).all(|window| {
        let expected: Vec<String> =
            if window < i % 3 { vec![format!("{i}/{window}/a"), format!("{i}/{window}/b")] } else { Vec::new() };
        store.list(h.buffer).get(kg, &key, &window).unwrap() == expected
    });
    store.value(h.count).get(kg, &key, &()).unwrap() == Some(i)
        && lists_ok
        && store.map(h.seen).entries(kg, &key, &()).unwrap() == [(format!("user-{}", i % 5), i as u32)]
}

fn lens(store: &mut KeyedStateStore<String>, h: &Handles) -> [usize; 3] {
    [store.value(h.count).len(), store.list(h.buffer).len(), store.map(h.seen).len()]
}

#[test]
fn snapshot_lists_every_state_and_non_empty_key_group() {
    let (mut store, h) = store_over(0..8);
    store.list_state::<(), u8>("never-written").unwrap();
    store.value(h.count).put(5, &"a".to_owned(), &(), 1).unwrap();
    store.value(h.count).put(2, &"b".to_owned(), &(), 2).unwrap();
    store.map(h.seen).put(7, &"a".to_owned(), &(), "x".to_owned(), 1).unwrap();
    let snapshot = store.snapshot().unwrap();
    let layout: Vec<_> = snapshot
        .states
        .iter()
        .map(|s| (s.name.as_str(), s.kind, s.key_groups.iter().map(|(kg, _)| *kg).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        layout,
        [
            ("count", StateKind::Value, vec![2, 5]),
            ("buffer", StateKind::List, vec![]),
            ("seen", StateKind::Map, vec![7]),
            ("never-written", StateKind::List, vec![]),
        ]
    );
    assert!(snapshot.size_bytes() > 0);
}

#[test]
fn snapshot_restores_three_kinds_of_state() {
    let (mut original, h) = filled();
    let snapshot = original.snapshot().unwrap();
    let (mut restored, r) = store_over(0..128);
    restored.restore(&snapshot).unwrap();
    assert_eq!(lens(&mut restored, &r), lens(&mut original, &h));
    for i in 0..KEYS {
        assert!(holds_key(&mut restored, &r, i), "key {i}");
    }
    // Equal state, equal bytes.
    assert_eq!(restored.snapshot().unwrap(), snapshot);
}

#[test]
fn restore_at_another_parallelism_splits_the_key_groups() {
    let (mut original, h) = filled();
    let snapshot = original.snapshot().unwrap();
    let (mut low, l) = store_over(0..64);
    let (mut high, hi) = store_over(64..128);
    low.restore(&snapshot).unwrap();
    high.restore(&snapshot).unwrap();

    for i in 0..KEYS {
        let (kg, _) = key(i);
        if kg < 64 {
            assert!(holds_key(&mut low, &l, i), "key {i} missing from 0..64");
        } else {
            assert!(holds_key(&mut high, &hi, i), "key {i} missing from 64..128");
        }
    }
    let [low_lens, high_lens, all_lens] = [lens(&mut low, &l), lens(&mut high, &hi), lens(&mut original, &h)];
    assert!(low_lens.iter().all(|&n| n > 0) && high_lens.iter().all(|&n| n > 0));
    for state in 0..3 {
        // Each holds its own keys (above) and nothing else.
        assert_eq!(low_lens[state] + high_lens[state], all_lens[state], "state {state}");
    }

    // Each one's snapshot is exactly its share of the original's.
    let mut low_share = snapshot.clone();
    low_share.retain_key_groups(0..64);
    let mut high_share = snapshot.clone();
    high_share.retain_key_groups(64..128);
    let mut low_snapshot = low.snapshot().unwrap();
    let mut high_snapshot = high.snapshot().unwrap();
    low_snapshot.retain_key_groups(0..128);
    high_snapshot.retain_key_groups(0..128);
    assert_eq!(low_snapshot, low_share);
    assert_eq!(high_snapshot, high_share);

    // And back to one subtask: the merged halves restore the original.
    low_snapshot.merge(high_snapshot);
    let (mut merged, m) = store_over(0..128);
    merged.restore(&low_snapshot).unwrap();
    assert_eq!(lens(&mut merged, &m), all_lens);
    for i in 0..KEYS {
        assert!(holds_key(&mut merged, &m, i), "key {i}");
    }
    assert_eq!(merged.snapshot().unwrap(), snapshot);
}

#[test]
fn restore_of_a_merge_gives_the_union() {
    let (mut a, ha) = store_over(0..128);
    let (mut b, hb) = store_over(0..128);
    let key = |s: &str| s.to_owned();
    a.value(ha.count).put(1, &key("a"), &(), 1).unwrap();
    a.list(ha.buffer).add(9, &key("a"), &0, key("from a")).unwrap();
    b.value(hb.count).put(100, &key("b"), &(), 2).unwrap();
    b.list(hb.buffer).add(9, &key("a"), &0, key("from b")).unwrap();
    b.map(hb.seen).put(1, &key("b"), &(), key("u"), 3).unwrap();

    let mut snapshot = a.snapshot().unwrap();
    snapshot.merge(b.snapshot().unwrap());
    let (mut union, u) = store_over(0..128);
    union.restore(&snapshot).unwrap();
    assert_eq!(union.value(u.count).get(1, &key("a"), &()).unwrap(), Some(1));
    assert_eq!(union.value(u.count).get(100, &key("b"), &()).unwrap(), Some(2));
    assert_eq!(union.map(u.seen).get(1, &key("b"), &(), &key("u")).unwrap(), Some(3));
    // Key group 9 came from both: the restore applied both.
    assert_eq!(union.list(u.buffer).get(9, &key("a"), &0).unwrap(), [key("from a"), key("from b")]);
    assert_eq!(lens(&mut union, &u), [2, 1, 1]);
}

#[test]
fn restore_of_an_unregistered_state_or_another_kind_names_the_state() {
    let (original, _) = filled();
    let snapshot = original.snapshot().unwrap();

    let mut missing = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..128)));
    missing.value_state::<(), u64>("count").unwrap();
    missing.map_state::<(), String, u32>("seen").unwrap();
    let err = missing.restore(&snapshot).unwrap_err();
    assert!(matches!(&err, StateError::UnknownState { name } if name == "buffer"), "{err:?}");
    assert_eq!(err.to_string(), "checkpoint has state \"buffer\" that this operator does not register");
    // Checked before anything is loaded.
    let count = missing.value_state::<(), u64>("count").unwrap();
    assert_eq!(missing.value(count).len(), 0);

    let mut other_kind = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..128)));
    other_kind.value_state::<(), u64>("count").unwrap();
    other_kind.value_state::<u64, String>("buffer").unwrap();
    other_kind.map_state::<(), String, u32>("seen").unwrap();
    let err = other_kind.restore(&snapshot).unwrap_err();
    assert!(matches!(&err, StateError::TypeMismatch { name } if name == "buffer"), "{err:?}");
    assert!(err.to_string().contains("\"buffer\""), "{err}");

    // A store may register more states than the checkpoint has.
    let (mut more, _) = store_over(0..128);
    more.value_state::<(), u64>("new").unwrap();
    more.restore(&snapshot).unwrap();
}

#[test]
fn corrupt_key_group_names_the_state_and_key_group() {
    let (original, _) = filled();
    let mut snapshot = original.snapshot().unwrap();
    let seen = snapshot.states.iter_mut().find(|s| s.name == "seen").unwrap();
    let (kg, bytes) = &mut seen.key_groups[3];
    let kg = *kg;
    bytes.truncate(bytes.len() - 1);
    let (mut restored, _) = store_over(0..128);
    let err = restored.restore(&snapshot).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("corrupt state snapshot: state \"seen\" key group {kg}: ")), "{message}");

    // A store that does not own that key group never reads it.
    let (mut elsewhere, _) = store_over(kg + 1..128);
    elsewhere.restore(&snapshot).unwrap();
}

/// Changes every kind of entry of [`filled`]'s states: puts, removes and upserts of values,
/// appends, replacements and clears of lists, puts, removes and clears in maps, in key groups
/// that had entries and in ones that had none.
fn modify(store: &mut KeyedStateStore<String>, h: &Handles, round: u64) {
    for i in (round % 7..KEYS).step_by(7) {
        let (kg, key) = key(i);
        match i % 3 {
            0 => store.value(h.count).put(kg, &key, &(), i + round * 1000).unwrap(),
            1 => drop(store.value(h.count).remove(kg, &key, &()).unwrap()),
            _ => store
                .value(h.count)
                .upsert(kg, &key, &(), &mut |v| {
                    *v.unwrap() += 1;
                    None
                })
                .unwrap(),
        }
        store.list(h.buffer).add(kg, &key, &9, format!("round {round}")).unwrap();
        store.list(h.buffer).update(kg, &key, &1, vec![format!("replaced in {round}")]).unwrap();
        store.list(h.buffer).clear(kg, &key, &0).unwrap();
        store.map(h.seen).put(kg, &key, &(), format!("round-{round}"), round as u32).unwrap();
        store.map(h.seen).remove(kg, &key, &(), &format!("user-{}", i % 5)).unwrap();
        if i % 2 == 0 {
            store.map(h.seen).clear(kg, &key, &()).unwrap();
        }
        store.value(h.count).put(kg, &format!("new-{round}-{i}"), &(), round).unwrap();
    }
}

fn full(handle: KeyedStateHandle) -> KeyedSnapshot {
    match handle {
        KeyedStateHandle::Full(snapshot) => snapshot,
        other => panic!("not a full snapshot: {other:?}"),
    }
}

#[test]
fn a_started_snapshot_holds_the_state_of_its_moment_while_the_store_changes_on() {
    let (mut store, h) = filled();
    let expected = store.snapshot().unwrap();
    let pending = store.start_snapshot().unwrap();
    modify(&mut store, &h, 1);
    let modified = store.snapshot().unwrap();
    assert_ne!(modified, expected);

    // The very bytes the synchronous snapshot gave, not the modified state.
    assert_eq!(full(pending.materialize(None).unwrap()), expected);
    // And the store has the modifications.
    assert_eq!(store.snapshot().unwrap(), modified);
    // Round 1 modifies keys 1, 8, 15, ...: removes 1's count, adds one to 8's, replaces 15's.
    let (kg, key1) = key(1);
    assert_eq!(store.value(h.count).get(kg, &key1, &()).unwrap(), None);
    assert_eq!(store.map(h.seen).entries(kg, &key1, &()).unwrap(), [("round-1".to_owned(), 1)]);
    let (kg, key8) = key(8);
    assert_eq!(store.value(h.count).get(kg, &key8, &()).unwrap(), Some(9));
    assert_eq!(store.list(h.buffer).get(kg, &key8, &9).unwrap(), ["round 1"]);
    assert_eq!(store.list(h.buffer).get(kg, &key8, &1).unwrap(), ["replaced in 1"]);
    assert_eq!(store.map(h.seen).entries(kg, &key8, &()).unwrap(), []);
    let (kg, key15) = key(15);
    assert_eq!(store.value(h.count).get(kg, &key15, &()).unwrap(), Some(1015));
    assert!(store.list(h.buffer).get(kg, &key15, &0).unwrap().is_empty());
    assert!(holds_key(&mut store, &h, 2), "an untouched key");
}

#[test]
fn a_memory_checkpoint_is_started_and_serialized_later() {
    let (mut store, h) = filled();
    let expected = store.snapshot().unwrap();
    let pending = store.checkpoint(1).unwrap();
    modify(&mut store, &h, 1);
    assert_eq!(full(pending.materialize(None).unwrap()), expected);
}

#[test]
fn started_snapshots_alive_at_once_stay_independent() {
    let (mut store, h) = filled();
    let mut pending = Vec::new();
    for round in 1..=3 {
        pending.push((store.snapshot().unwrap(), store.start_snapshot().unwrap()));
        modify(&mut store, &h, round);
    }
    let last = store.snapshot().unwrap();
    // Materialized out of order, each still gives its own moment.
    for (expected, pending) in pending.into_iter().rev() {
        assert_eq!(full(pending.materialize(None).unwrap()), expected);
    }
    assert_eq!(store.snapshot().unwrap(), last);
    // An abandoned snapshot frees its share: the store goes on as before.
    drop(store.start_snapshot().unwrap());
    modify(&mut store, &h, 4);
    assert_ne!(store.snapshot().unwrap(), last);
}

#[test]
fn a_started_snapshot_restores() {
    let (mut original, h) = filled();
    let pending = original.start_snapshot().unwrap();
    modify(&mut original, &h, 1);
    let snapshot = full(pending.materialize(None).unwrap());

    let (mut restored, r) = store_over(0..128);
    restored.restore(&snapshot).unwrap();
    for i in 0..KEYS {
        assert!(holds_key(&mut restored, &r, i), "key {i}");
    }
    assert_eq!(restored.snapshot().unwrap(), snapshot);
    // At another parallelism too.
    let (mut half, hh) = store_over(64..128);
    half.restore(&snapshot).unwrap();
    assert!((0..KEYS).filter(|&i| key(i).0 >= 64).all(|i| holds_key(&mut half, &hh, i)));
}

#[test]
fn a_started_snapshot_is_serialized_on_another_thread_while_the_store_is_written() {
    let (mut store, h) = filled();
    let expected = store.snapshot().unwrap();
    let pending = store.start_snapshot().unwrap();
    let materialized = std::thread::spawn(move || pending.materialize(None).unwrap());
    for round in 1..20 {
        modify(&mut store, &h, round);
    }
    assert_eq!(full(materialized.join().unwrap()), expected);
}

/// Random writes with snapshots started at random moments, some kept and some dropped: each
/// kept one materializes to the synchronous snapshot of its moment.
#[test]
fn started_snapshots_match_synchronous_ones_under_random_writes() {
    for seed in 1..=8u64 {
        let mut rng = XorShift(seed * 0x9E37_79B9);
        let (mut store, h) = store_over(0..16);
        let mut kept = Vec::new();
        for step in 0..2_000u64 {
            let kg = rng.below(16) as KeyGroup;
            let key = format!("k{}", rng.below(40));
            match rng.below(8) {
                0 => store.value(h.count).put(kg, &key, &(), step).unwrap(),
                1 => drop(store.value(h.count).remove(kg, &key, &()).unwrap()),
                2 => store.list(h.buffer).add(kg, &key, &rng.below(3), format!("{step}")).unwrap(),
                3 => store.list(h.buffer).clear(kg, &key, &rng.below(3)).unwrap(),
                4 => store.map(h.seen).put(kg, &key, &(), format!("u{}", rng.below(5)), step as u32).unwrap(),
                5 => drop(store.map(h.seen).remove(kg, &key, &(), &format!("u{}", rng.below(5))).unwrap()),
                6 if rng.below(20) == 0 => kept.push((store.snapshot().unwrap(), store.start_snapshot().unwrap())),
                7 if rng.below(40) == 0 => drop(store.start_snapshot().unwrap()),
                _ => {}
            }
            if rng.below(100) == 0 && !kept.is_empty() {
                let (expected, pending) = kept.swap_remove(rng.below(kept.len() as u64) as usize);
                assert_eq!(full(pending.materialize(None).unwrap()), expected, "seed {seed}, step {step}");
            }
        }
        for (expected, pending) in kept {
            assert_eq!(full(pending.materialize(None).unwrap()), expected, "seed {seed}, at the end");
        }
    }
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

/// The serialization of a checkpoint of keyed-reduce-like state (a `(u32, u64)` per `u32` key),
/// which runs off the loop but takes a core meanwhile. Run with
/// `cargo test -p weir-state --release -- --ignored --nocapture snapshot_throughput`.
#[test]
#[ignore = "throughput sanity check, not a correctness test"]
fn snapshot_throughput() {
    const KEYS: u32 = 4_000_000;
    let mut store = KeyedStateStore::<u32>::new(Box::new(MemoryBackend::new(0..128)));
    let sum = store.value_state::<(), (u32, u64)>("sum").unwrap();
    for key in 0..KEYS {
        let key = key.wrapping_mul(0x9E37_79B9);
        store.value(sum).put((key % 128) as KeyGroup, &key, &(), (key, u64::from(key) * 3)).unwrap();
    }
    let started = Instant::now();
    let snapshot = full(store.start_snapshot().unwrap().materialize(None).unwrap());
    let elapsed = started.elapsed();
    println!(
        "snapshot of {KEYS} keys ({:.1} MB) in {elapsed:?}: {:.1} M keys/s",
        snapshot.size_bytes() as f64 / 1e6,
        f64::from(KEYS) / elapsed.as_secs_f64() / 1e6
    );
}
