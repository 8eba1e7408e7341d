use std::collections::BTreeSet;

use super::*;
use crate::checkpoint::{KeyedStateHandle, SharedStateRegistry, SnapshotTarget};
use crate::storage::Location;
use crate::test_support::{TestDir, XorShift};
use crate::{KeyedSnapshot, KeyedStateStore, ListStateHandle, MapStateHandle, MemoryBackend, ValueStateHandle};

/// No background compactions, so that only flushes and [`Database::compact`] change the files
/// the tests count; small memtables, so a few hundred KB already make files.
fn config() -> RocksDbConfig {
    RocksDbConfig {
        write_buffer_size: 1 << 20,
        auto_compactions: false,
        background_jobs: 2,
        compression: true,
        write_cache_bytes: 4096,
    }
}

/// The states every test registers.
struct States {
    count: ValueStateHandle<u16, u64>,
    buffer: ListStateHandle<(), String>,
    seen: MapStateHandle<u8, u32, String>,
}

fn register(store: &mut KeyedStateStore<String>) -> States {
    States {
        count: store.value_state("count").unwrap(),
        buffer: store.list_state("buffer").unwrap(),
        seen: store.map_state("seen").unwrap(),
    }
}

/// A store on a fresh RocksDB backend, and its database for compactions.
fn rocks_store(dir: &Path, key_groups: Range<KeyGroup>) -> (KeyedStateStore<String>, Arc<Database>) {
    from_backend(RocksDbBackend::open(dir, key_groups, config()).unwrap())
}

/// A test's directory, with a store on a RocksDB backend in `tm/` that holds `keys` keys of every
/// state, and a shared directory for its checkpoints.
struct Setup {
    dir: TestDir,
    shared: PathBuf,
    target: SnapshotTarget,
    store: KeyedStateStore<String>,
    db: Arc<Database>,
    states: States,
}

fn setup(label: &str, keys: u64) -> Setup {
    let dir = TestDir::new(label);
    let shared = dir.join("shared");
    let target = SnapshotTarget::new(&shared);
    let (mut store, db) = rocks_store(&dir.join("tm"), 0..8);
    let states = register(&mut store);
    write(&mut store, &states, 0, keys);
    Setup { dir, shared, target, store, db, states }
}

fn from_backend(backend: RocksDbBackend) -> (KeyedStateStore<String>, Arc<Database>) {
    let db = Arc::clone(&backend.db);
    (KeyedStateStore::new(Box::new(backend)), db)
}

fn restored_store(
    dir: &Path,
    key_groups: Range<KeyGroup>,
    handles: &[IncrementalHandle],
    shared: &Path,
) -> (KeyedStateStore<String>, Arc<Database>) {
    from_backend(RocksDbBackend::restore(dir, key_groups, config(), handles, &Location::from(shared)).unwrap())
}

/// Writes `n` keys' worth of every state, keys `first..first + n`, spread over key groups 0..8.
fn write(store: &mut KeyedStateStore<String>, states: &States, first: u64, n: u64) {
    for i in first..first + n {
        let key = format!("key-{i:06}");
        let kg = (i % 8) as KeyGroup;
        store.value(states.count).put(kg, &key, &((i % 3) as u16), i).unwrap();
        store.list(states.buffer).add(kg, &key, &(), format!("element {i} {}", "x".repeat(40))).unwrap();
        store.map(states.seen).put(kg, &key, &1, i as u32, format!("seen {i}")).unwrap();
    }
}

fn incremental(handle: KeyedStateHandle) -> IncrementalHandle {
    match handle {
        KeyedStateHandle::Incremental(handle) => handle,
        KeyedStateHandle::Full(_) => panic!("a rocksdb checkpoint is incremental"),
    }
}

/// Takes checkpoint `n` and confirms it complete.
fn checkpoint(store: &mut KeyedStateStore<String>, n: u64, target: &SnapshotTarget) -> IncrementalHandle {
    let handle = incremental(store.checkpoint(n).unwrap().materialize(Some(target)).unwrap());
    store.notify_checkpoint_complete(n);
    handle
}

fn names(handle: &IncrementalHandle) -> BTreeSet<String> {
    handle.shared.iter().map(|f| f.name.clone()).collect()
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

/// Every (key, namespace) a sequence of random operations touches, so that gets hit.
fn random_key(rng: &mut XorShift) -> (KeyGroup, String) {
    let i = rng.below(60);
    ((i % 8) as KeyGroup, format!("k{i}"))
}

/// The same seeded random operations on a memory store and a RocksDB store give the same
/// results, and the same canonical snapshots along the way: without the write-back cache, with
/// one that is always full (written back and emptied every few operations), and with one that
/// holds everything (written back only by scans and by a checkpoint, which a new
/// store restores and goes on with).
#[test]
fn typed_operations_match_the_memory_backend() {
    for cache in [0, 4096, 64 << 20] {
        println!("write cache of {cache} bytes");
        same_operations(RocksDbConfig { write_cache_bytes: cache, ..config() });
    }
}

fn same_operations(config: RocksDbConfig) {
    let seed = 0xD1CE_0042_u64;
    println!("seed {seed:#x}");
    let mut rng = XorShift(seed);
    let dir = TestDir::new("same-ops");
    let (mut rocks, _db) = from_backend(RocksDbBackend::open(dir.join("a"), 0..8, config.clone()).unwrap());
    let mut memory = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..8)));
    let mut r = register(&mut rocks);
    let m = register(&mut memory);
    let target = SnapshotTarget::new(dir.join("shared"));
    for op in 0..4_000 {
        if op == 2_500 {
            // Changes the cache holds (no scan wrote them back) go into the checkpoint.
            for (kg, key) in [(3, "late-a"), (5, "late-b")] {
                let key = key.to_owned();
                rocks.value(r.count).put(kg, &key, &1, 7).unwrap();
                memory.value(m.count).put(kg, &key, &1, 7).unwrap();
                rocks.list(r.buffer).add(kg, &key, &(), "x".into()).unwrap();
                memory.list(m.buffer).add(kg, &key, &(), "x".into()).unwrap();
                rocks.map(r.seen).put(kg, &key, &0, 1, "y".into()).unwrap();
                memory.map(m.seen).put(kg, &key, &0, 1, "y".into()).unwrap();
            }
            let handle = checkpoint(&mut rocks, 1, &target);
            drop(rocks);
            let restored = RocksDbBackend::restore(
                dir.join("b"),
                0..8,
                config.clone(),
                &[handle],
                &Location::from(dir.join("shared")),
            );
            rocks = from_backend(restored.unwrap()).0;
            r = register(&mut rocks);
        }
        let (kg, key) = random_key(&mut rng);
        let ns = rng.below(2) as u16;
        let context = format!("op {op}, key group {kg}, key {key}, namespace {ns}");
        match rng.below(14) {
            0 => assert_eq!(
                rocks.value(r.count).get(kg, &key, &ns).unwrap(),
                memory.value(m.count).get(kg, &key, &ns).unwrap(),
                "{context}"
            ),
            1 => {
                let v = rng.next();
                rocks.value(r.count).put(kg, &key, &ns, v).unwrap();
                memory.value(m.count).put(kg, &key, &ns, v).unwrap();
            }
            2 => {
                let by = rng.below(5);
                let mut add = |v: Option<&mut u64>| match v {
                    Some(_) if by == 0 => Some(0),
                    Some(v) => {
                        *v = v.wrapping_add(by);
                        None
                    }
                    None => (by != 1).then_some(by),
                };
                rocks.value(r.count).upsert(kg, &key, &ns, &mut add).unwrap();
                memory.value(m.count).upsert(kg, &key, &ns, &mut add).unwrap();
            }
            3 => assert_eq!(
                rocks.value(r.count).remove(kg, &key, &ns).unwrap(),
                memory.value(m.count).remove(kg, &key, &ns).unwrap(),
                "{context}"
            ),
            4 => assert_eq!(
                rocks.list(r.buffer).get(kg, &key, &()).unwrap(),
                memory.list(m.buffer).get(kg, &key, &()).unwrap(),
                "{context}"
            ),
            5 | 6 => {
                let v = format!("{:x}", rng.next() % 100_000);
                rocks.list(r.buffer).add(kg, &key, &(), v.clone()).unwrap();
                memory.list(m.buffer).add(kg, &key, &(), v).unwrap();
            }
            7 => {
                let values: Vec<String> = (0..rng.below(3)).map(|i| format!("u{i}")).collect();
                rocks.list(r.buffer).update(kg, &key, &(), values.clone()).unwrap();
                memory.list(m.buffer).update(kg, &key, &(), values).unwrap();
            }
            8 => {
                rocks.list(r.buffer).clear(kg, &key, &()).unwrap();
                memory.list(m.buffer).clear(kg, &key, &()).unwrap();
            }
            9 => {
                let (uk, uv) = (rng.below(6) as u32, format!("v{}", rng.below(10)));
                rocks.map(r.seen).put(kg, &key, &(ns as u8), uk, uv.clone()).unwrap();
                memory.map(m.seen).put(kg, &key, &(ns as u8), uk, uv).unwrap();
            }
            10 => {
                let uk = rng.below(6) as u32;
                let ns = ns as u8;
                assert_eq!(
                    rocks.map(r.seen).get(kg, &key, &ns, &uk).unwrap(),
                    memory.map(m.seen).get(kg, &key, &ns, &uk).unwrap(),
                    "{context}"
                );
                assert_eq!(
                    rocks.map(r.seen).contains(kg, &key, &ns, &uk).unwrap(),
                    memory.map(m.seen).contains(kg, &key, &ns, &uk).unwrap(),
                    "{context}"
                );
                assert_eq!(
                    rocks.map(r.seen).remove(kg, &key, &ns, &uk).unwrap(),
                    memory.map(m.seen).remove(kg, &key, &ns, &uk).unwrap(),
                    "{context}"
                );
            }
            11 => {
                let ns = ns as u8;
                let mut a = rocks.map(r.seen).entries(kg, &key, &ns).unwrap();
                let mut b = memory.map(m.seen).entries(kg, &key, &ns).unwrap();
                a.sort();
                b.sort();
                assert_eq!(a, b, "{context}");
                assert_eq!(
                    rocks.map(r.seen).is_empty(kg, &key, &ns).unwrap(),
                    memory.map(m.seen).is_empty(kg, &key, &ns).unwrap(),
                    "{context}"
                );
            }
            12 if rng.below(4) == 0 => {
                rocks.map(r.seen).clear(kg, &key, &(ns as u8)).unwrap();
                memory.map(m.seen).clear(kg, &key, &(ns as u8)).unwrap();
            }
            _ => {
                assert_eq!(rocks.value(r.count).len(), memory.value(m.count).len(), "{context}");
                assert_eq!(rocks.list(r.buffer).len(), memory.list(m.buffer).len(), "{context}");
                assert_eq!(rocks.map(r.seen).len(), memory.map(m.seen).len(), "{context}");
            }
        }
        if op % 1_000 == 999 {
            assert_eq!(rocks.snapshot().unwrap(), memory.snapshot().unwrap(), "snapshots after op {op}");
        }
    }
    let snapshot = memory.snapshot().unwrap();
    assert!(snapshot.states.iter().all(|s| !s.key_groups.is_empty()), "the operations left state in every state");
}

/// A canonical snapshot (a savepoint) taken on either backend restores on the other, to the
/// same bytes.
#[test]
fn savepoints_restore_across_backends() {
    let dir = TestDir::new("savepoint");
    let (mut rocks, _db) = rocks_store(&dir.join("rocks"), 0..8);
    let states = register(&mut rocks);
    write(&mut rocks, &states, 0, 300);
    let taken_on_rocks = rocks.snapshot().unwrap();

    let mut memory = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..8)));
    register(&mut memory);
    memory.restore(&taken_on_rocks).unwrap();
    let taken_on_memory = memory.snapshot().unwrap();
    assert_eq!(taken_on_memory, taken_on_rocks);

    let (mut again, _db) = rocks_store(&dir.join("again"), 0..8);
    register(&mut again);
    again.restore(&taken_on_memory).unwrap();
    assert_eq!(again.snapshot().unwrap(), taken_on_rocks);
    assert_eq!(taken_on_rocks.states.len(), 3);
    assert!(taken_on_rocks.states.iter().all(|s| s.key_groups.len() == 8));
}

/// The required scenario: several checkpoints with writes and compactions between them, older
/// ones released through the registry and their unreferenced files deleted, then a restore
/// from the latest.
#[test]
fn restores_from_an_incremental_checkpoint_after_shared_files_were_partly_released() {
    let Setup { dir, shared, target, mut store, db, states } = setup("incremental", 2_000);
    let mut registry = SharedStateRegistry::new();
    let mut retained: Vec<IncrementalHandle> = Vec::new();
    let mut complete = |handle: IncrementalHandle, registry: &mut SharedStateRegistry| {
        // Register the new checkpoint before releasing what it subsumes (two retained).
        registry.register(handle.checkpoint, handle.shared.iter().map(|f| f.name.clone()));
        retained.push(handle);
        if retained.len() > 2 {
            let released = retained.remove(0);
            for file in registry.release(released.checkpoint) {
                std::fs::remove_file(shared.join(file)).unwrap();
            }
        }
        retained.last().unwrap().clone()
    };

    // 1: everything is new.
    let first = complete(checkpoint(&mut store, 1, &target), &mut registry);
    assert_eq!(first.shared.len(), 3, "one flushed file per state: {:?}", first.shared);
    assert_eq!(first.uploaded().count(), 3);
    assert_eq!(first.incremental_bytes(), first.size_bytes());
    assert!(first.private.iter().any(|f| f.name == "CURRENT"));

    // 2: new keys in two states only: their two new files are uploaded, the rest referenced.
    for i in 2_000..2_300u64 {
        let key = format!("key-{i:06}");
        store.value(states.count).put((i % 8) as KeyGroup, &key, &0, i).unwrap();
        store.map(states.seen).put((i % 8) as KeyGroup, &key, &1, 0, "late".to_owned()).unwrap();
    }
    let second = complete(checkpoint(&mut store, 2, &target), &mut registry);
    assert_eq!(second.shared.len(), 5);
    assert_eq!(second.uploaded().count(), 2);
    assert!(names(&second).is_superset(&names(&first)), "checkpoint 2 references checkpoint 1's files");
    assert!(second.uploaded().all(|f| f.name.contains(&format!("-{}-", second.checkpoint))));
    let sst_bytes = |h: &IncrementalHandle| h.shared.iter().map(|f| f.bytes).sum::<u64>();
    let referenced: u64 = second.shared.iter().filter(|f| f.uploaded_in == 1).map(|f| f.bytes).sum();
    assert_eq!(referenced, sst_bytes(&first));
    assert_eq!(second.incremental_bytes(), second.size_bytes() - referenced);
    assert!(
        second.incremental_bytes() * 4 < second.size_bytes(),
        "{} of {}",
        second.incremental_bytes(),
        second.size_bytes()
    );
    assert_eq!(files_in(&shared).len(), 5);

    // 3: a compaction rewrites every file: all uploaded again; checkpoint 1 is released, but
    // checkpoint 2 still holds all its files.
    write(&mut store, &states, 2_300, 100);
    db.compact().unwrap();
    let third = complete(checkpoint(&mut store, 3, &target), &mut registry);
    assert_eq!(third.shared.len(), 3, "one compacted file per state");
    assert_eq!(third.uploaded().count(), 3);
    assert!(names(&third).is_disjoint(&names(&second)));
    assert_eq!(files_in(&shared).len(), 8);

    // 4: a few deletions and writes; checkpoint 2 is released, and with it every file of 1 and 2.
    for i in 0..50u64 {
        let key = format!("key-{i:06}");
        store.value(states.count).remove((i % 8) as KeyGroup, &key, &((i % 3) as u16)).unwrap();
        store.list(states.buffer).add((i % 8) as KeyGroup, &key, &(), "after compaction".to_owned()).unwrap();
    }
    let fourth = complete(checkpoint(&mut store, 4, &target), &mut registry);
    assert_eq!(fourth.uploaded().count(), 2);
    assert!(names(&fourth).is_superset(&names(&third)));
    assert_eq!(files_in(&shared), names(&fourth), "only the retained checkpoints' files are left");
    assert_eq!(registry.checkpoints().collect::<Vec<_>>(), [3, 4]);
    assert!(files_in(&dir.join("tm").join(CHECKPOINTS_DIR)).is_empty(), "local checkpoints are deleted");

    let expected = store.snapshot().unwrap();
    drop(store);
    drop(db);
    assert!(!dir.join("tm").exists(), "a dropped backend deletes its directory");

    // Restore from 4: the same contents, and the next checkpoint references 4's files.
    let (mut restored, _db) = restored_store(&dir.join("tm2"), 0..8, std::slice::from_ref(&fourth), &shared);
    let again = register(&mut restored);
    assert_eq!(restored.snapshot().unwrap(), expected);
    assert_eq!(restored.value(again.count).get(1, &"key-000001".to_owned(), &1).unwrap(), None);
    assert_eq!(restored.value(again.count).get(2, &"key-002298".to_owned(), &0).unwrap(), Some(2_298));
    let list = restored.list(again.buffer).get(3, &"key-000003".to_owned(), &()).unwrap();
    assert_eq!(list.last().map(String::as_str), Some("after compaction"));
    restored.map(again.seen).put(0, &"new".to_owned(), &1, 1, "after restore".to_owned()).unwrap();
    let fifth = checkpoint(&mut restored, 5, &target);
    assert_eq!(fifth.uploaded().count(), 1);
    assert!(names(&fifth).is_superset(&names(&fourth)));
}

/// A checkpoint that was aborted (or not yet confirmed) is never a base: the next checkpoint
/// uploads its own copies, under names of its own.
#[test]
fn only_completed_checkpoints_are_referenced() {
    let Setup { dir: _dir, target, mut store, states, .. } = setup("aborted", 100);
    let first = checkpoint(&mut store, 1, &target);

    write(&mut store, &states, 100, 100);
    let aborted = incremental(store.checkpoint(2).unwrap().materialize(Some(&target)).unwrap());
    store.notify_checkpoint_aborted(2);
    let mut registry = SharedStateRegistry::new();
    registry.register(1, names(&first));
    let own: BTreeSet<String> = aborted.uploaded().map(|f| f.name.clone()).collect();
    assert_eq!(own.len(), 3);
    let unreferenced = registry.unreferenced(aborted.shared.iter().map(|f| f.name.as_str()));
    assert_eq!(unreferenced.into_iter().collect::<BTreeSet<_>>(), own);

    // Two checkpoints in flight: neither references the other.
    let pending_3 = store.checkpoint(3).unwrap();
    let pending_4 = store.checkpoint(4).unwrap();
    let third = incremental(pending_3.materialize(Some(&target)).unwrap());
    let fourth = incremental(pending_4.materialize(Some(&target)).unwrap());
    for (handle, earlier) in [(&third, &first), (&fourth, &first)] {
        assert!(handle.shared.iter().all(|f| f.uploaded_in == handle.checkpoint || names(earlier).contains(&f.name)));
        assert!(names(handle).is_disjoint(&own));
        assert_eq!(handle.uploaded().count(), 3, "the files flushed for 2 are uploaded again");
    }
    assert!(names(&third).is_disjoint(&fourth.uploaded().map(|f| f.name.clone()).collect()));

    // 4 completes (3 never does): 5 references 4's files.
    store.notify_checkpoint_complete(4);
    store.notify_checkpoint_complete(3);
    let fifth = checkpoint(&mut store, 5, &target);
    assert_eq!(fifth.uploaded().count(), 0, "nothing was written since 4");
    assert_eq!(names(&fifth), names(&fourth));
}

/// Dropping a pending checkpoint deletes its local directory.
#[test]
fn an_abandoned_pending_checkpoint_cleans_up() {
    let Setup { dir, mut store, .. } = setup("abandoned", 10);
    let pending = store.checkpoint(1).unwrap();
    let local = dir.join("tm").join(CHECKPOINTS_DIR);
    assert_eq!(files_in(&local), BTreeSet::from(["chk-1".to_owned()]));
    drop(pending);
    assert!(files_in(&local).is_empty());
}

/// Split one database into two key-group ranges, then merge the two back into one.
#[test]
fn restores_at_another_parallelism() {
    let Setup { dir, shared, target, mut store, .. } = setup("rescale", 800);
    let whole = checkpoint(&mut store, 1, &target);
    let expected = store.snapshot().unwrap();
    let part = |range: Range<KeyGroup>| {
        let mut part = expected.clone();
        part.retain_key_groups(range);
        part
    };

    let (mut low, _low_db) = restored_store(&dir.join("low"), 0..3, std::slice::from_ref(&whole), &shared);
    let (mut high, _high_db) = restored_store(&dir.join("high"), 3..8, std::slice::from_ref(&whole), &shared);
    let low_states = register(&mut low);
    let high_states = register(&mut high);
    assert_eq!(low.snapshot().unwrap(), part(0..3));
    assert_eq!(high.snapshot().unwrap(), part(3..8));
    // The other key groups are deleted, not just out of sight (len scans the whole table).
    assert_eq!(low.value(low_states.count).len(), 300);
    assert_eq!(high.list(high_states.buffer).len(), 500);

    let low_handle = checkpoint(&mut low, 2, &target);
    let high_handle = checkpoint(&mut high, 2, &target);
    assert_eq!(low_handle.uploaded().count(), 3, "the range deletions were flushed");
    let handles = [low_handle, high_handle];
    let (mut merged, _merged_db) = restored_store(&dir.join("merged"), 0..8, &handles, &shared);
    register(&mut merged);
    assert_eq!(merged.snapshot().unwrap(), expected);
    assert!(files_in(&dir.join("merged").join(RESTORE_DIR)).is_empty(), "scratch databases are deleted");

    // A range inside one handle and across both.
    let (mut middle, _middle_db) = restored_store(&dir.join("middle"), 2..5, &handles, &shared);
    register(&mut middle);
    assert_eq!(middle.snapshot().unwrap(), part(2..5));
}

/// A missing or damaged shared file fails the restore with an error naming it.
#[test]
fn a_missing_or_corrupt_shared_file_is_named() {
    let Setup { dir, shared, target, mut store, .. } = setup("corrupt", 100);
    let handle = checkpoint(&mut store, 1, &target);
    let restore = || {
        RocksDbBackend::restore(
            dir.join("restored"),
            0..8,
            config(),
            std::slice::from_ref(&handle),
            &Location::from(&shared),
        )
    };
    assert!(restore().is_ok());

    let damaged = shared.join(&handle.shared[1].name);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let err = restore().unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&damaged.display().to_string()), "{err}");

    std::fs::remove_file(&damaged).unwrap();
    let err = restore().unwrap_err();
    assert!(matches!(&err, StateError::Io { path, .. } if *path == damaged), "{err:?}");
    assert!(err.to_string().contains(&damaged.display().to_string()), "{err}");
    assert!(!dir.join("restored").join(DB_DIR).exists(), "a failed restore leaves nothing behind");

    let mut escaping = handle.clone();
    escaping.shared[0].local = "../000001.sst".to_owned();
    let err = RocksDbBackend::restore(dir.join("restored"), 0..8, config(), &[escaping], &Location::from(&shared))
        .unwrap_err();
    assert!(err.to_string().contains("\"../000001.sst\""), "{err}");
}

/// A restored state keeps its kind: registering it as another is refused.
#[test]
fn a_restored_state_keeps_its_kind() {
    let Setup { dir, shared, target, mut store, .. } = setup("kind", 10);
    let handle = checkpoint(&mut store, 1, &target);
    let (mut restored, _db) = restored_store(&dir.join("restored"), 0..8, &[handle], &shared);
    let err = restored.list_state::<u16, u64>("count").unwrap_err();
    assert!(matches!(&err, StateError::TypeMismatch { name } if name == "count"), "{err:?}");
    // A state the operator no longer registers is kept in the next checkpoint.
    restored.value_state::<u16, u64>("count").unwrap();
    let next = checkpoint(&mut restored, 2, &target);
    let names: Vec<_> = next.states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["count", "buffer", "seen"]);
}

/// The memory backend's checkpoint is its canonical snapshot, serialized on materializing.
#[test]
fn a_memory_checkpoint_is_a_full_snapshot() {
    let mut store = KeyedStateStore::<String>::new(Box::new(MemoryBackend::new(0..8)));
    let states = register(&mut store);
    write(&mut store, &states, 0, 10);
    let expected = store.snapshot().unwrap();
    let handle = store.checkpoint(1).unwrap().materialize(None).unwrap();
    assert_eq!(handle, KeyedStateHandle::Full(expected.clone()));
    assert_eq!(handle.size_bytes(), expected.size_bytes() as u64);
    assert_ne!(expected, KeyedSnapshot::default());
}

#[test]
fn prefix_ends_are_the_next_prefix() {
    assert_eq!(prefix_end(&[0, 3, 1]), Some(vec![0, 3, 2]));
    assert_eq!(prefix_end(&[0, 3, 0xff]), Some(vec![0, 4]));
    assert_eq!(prefix_end(&[0xff, 0xff]), None);
    assert_eq!(prefix_end(&[]), None);
}

/// A restore from another job's checkpoint (another shared directory) references none of its
/// files in the new job's checkpoints: they live in a directory the new job does not manage.
#[test]
fn files_of_another_shared_directory_are_uploaded_again() {
    let Setup { dir, shared, target, mut store, .. } = setup("other-job", 50);
    let handle = checkpoint(&mut store, 1, &target);
    let (mut restored, _db) = restored_store(&dir.join("restored"), 0..8, &[handle], &shared);
    register(&mut restored);
    let same_job = checkpoint(&mut restored, 2, &target);
    assert_eq!(same_job.uploaded().count(), 0);
    let other_job = checkpoint(&mut restored, 3, &SnapshotTarget::new(dir.join("other-shared")));
    assert_eq!(other_job.uploaded().count(), 3);
}

/// Downloads from an object store run several at a time; every file is fetched once, and the
/// first failure is returned (the downloads not yet started are not).
#[test]
fn parallel_downloads_fetch_every_file_once_and_stop_at_the_first_failure() {
    use std::sync::Mutex;
    let file = |i: u64| crate::SharedFile {
        name: format!("up-{i}.sst"),
        local: format!("{i}.sst"),
        bytes: i,
        checksum: i,
        uploaded_in: 1,
    };
    let files: Vec<_> = (0..20).map(file).collect();
    let fetched = Mutex::new(Vec::new());
    restore::download_in_parallel(&files, &|f| {
        fetched.lock().unwrap().push(f.bytes);
        Ok(())
    })
    .unwrap();
    let mut fetched = fetched.into_inner().unwrap();
    fetched.sort_unstable();
    assert_eq!(fetched, (0..20).collect::<Vec<_>>());

    let started = Mutex::new(0);
    let e = restore::download_in_parallel(&files, &|f| {
        *started.lock().unwrap() += 1;
        if f.bytes == 2 {
            return Err(StateError::Corrupt { what: format!("file {} is damaged", f.name) });
        }
        // The others take a download's time, so that the failure is recorded while they run.
        std::thread::sleep(std::time::Duration::from_millis(5));
        Ok(())
    })
    .unwrap_err();
    assert!(e.to_string().contains("up-2.sst is damaged"), "{e}");
    assert!(*started.lock().unwrap() < 20, "downloads went on after the failure");
}
