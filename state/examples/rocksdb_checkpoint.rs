//! Measures RocksDB checkpoints of about 1 GB of keyed state: a first (full) checkpoint right
//! after loading it, then incremental ones, each after updating 1 % of the keys, and a restore
//! from the last. First, the rate of a keyed count (one read-modify-write per record) on the empty
//! database.
//!
//! ```text
//! cargo run --release -p weir-state --example rocksdb_checkpoint -- [MB of values] [checkpoints] [work dir] [storage]
//! ```
//!
//! `storage` is where checkpoints go: the work directory's `shared/` by default, or an object
//! store prefix such as `s3://bucket/prefix` (reached through the `AWS_*` environment
//! variables: `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`…).
//! After the incremental checkpoints it also writes the whole state as one full snapshot (the
//! savepoint format) to `storage`, reads it back and loads it into a new database.
//!
//! Values are random bytes (incompressible, so the files are as big as the state), 256 bytes per
//! key, in one value state over 128 key groups. The synchronous part is what a subtask pauses
//! for; the upload runs beside processing in a job. An incremental checkpoint uploads what was
//! flushed since the last one (~11 MB here) plus whatever RocksDB's compactions rewrote since:
//! updates spread over all keys make every compaction into L1 rewrite most of the state, so some
//! incremental checkpoints are nearly full ones. The work directory (a fresh one under the
//! system's temporary directory by default) is deleted at the end.

use std::path::PathBuf;
use std::time::Instant;

use weir_state::storage::Location;
use weir_state::{
    KeyGroup, KeyedSnapshot, KeyedStateHandle, KeyedStateStore, RocksDbBackend, RocksDbConfig, SnapshotTarget,
    ValueStateHandle,
};

const VALUE_BYTES: usize = 256;
const KEY_GROUPS: KeyGroup = 128;
/// Records of the keyed count, over this many keys.
const COUNT_RECORDS: u64 = 1_000_000;
const COUNT_KEYS: u64 = 100_000;

type Store = KeyedStateStore<u64>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let megabytes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let checkpoints: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let work = args.next().map_or_else(
        || std::env::temp_dir().join(format!("weir-rocksdb-figure-{}", std::process::id())),
        PathBuf::from,
    );
    let storage = match args.next() {
        Some(text) => Location::parse(&text)?,
        None => Location::from(work.join("shared")),
    };
    let keys = megabytes * (1 << 20) / VALUE_BYTES as u64;
    let target = SnapshotTarget::new(storage.join("shared"));
    println!(
        "{keys} keys x {VALUE_BYTES} B = {megabytes} MB of values in '{}', checkpoints to '{storage}'",
        work.display()
    );

    let backend = RocksDbBackend::open(work.join("tm"), 0..KEY_GROUPS, RocksDbConfig::default())?;
    let mut store = Store::new(Box::new(backend));
    let values = store.value_state::<(), Vec<u8>>("values")?;
    let counts = store.value_state::<(), u64>("counts")?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let started = Instant::now();
    for _ in 0..COUNT_RECORDS {
        let key = rng.next() % COUNT_KEYS;
        store.value(counts).upsert(key_group(key), &key, &(), &mut |count| match count {
            Some(count) => {
                *count += 1;
                None
            }
            None => Some(1),
        })?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "keyed count: {COUNT_RECORDS} records in {secs:.1} s ({:.0} k records/s)",
        COUNT_RECORDS as f64 / secs / 1e3
    );

    let started = Instant::now();
    for key in 0..keys {
        put(&mut store, values, key, 1, &mut rng)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("loaded {keys} keys in {secs:.1} s ({:.0} k puts/s)", keys as f64 / secs / 1e3);

    println!(
        "{:<11} {:>9} {:>10} {:>10} {:>12} {:>9}",
        "checkpoint", "sync ms", "upload ms", "size MB", "uploaded MB", "new/files"
    );
    let mut last = None;
    let mut incremental = (0.0, 0.0, 0.0);
    for checkpoint in 1..=checkpoints {
        if checkpoint > 1 {
            for key in (0..keys).step_by(100) {
                put(&mut store, values, key, checkpoint, &mut rng)?;
            }
        }
        let sync = Instant::now();
        let pending = store.checkpoint(checkpoint)?;
        let sync = sync.elapsed().as_secs_f64() * 1e3;
        let upload = Instant::now();
        let handle = pending.materialize(Some(&target))?;
        let upload = upload.elapsed().as_secs_f64() * 1e3;
        store.notify_checkpoint_complete(checkpoint);
        let KeyedStateHandle::Incremental(handle) = handle else { unreachable!("rocksdb checkpoints are incremental") };
        let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        let new = format!("{}/{}", handle.uploaded().count(), handle.shared.len());
        let (size, uploaded) = (mb(handle.size_bytes()), mb(handle.incremental_bytes()));
        println!("{checkpoint:<11} {sync:>9.1} {upload:>10.1} {size:>10.1} {uploaded:>12.1} {new:>9}");
        if checkpoint > 1 {
            incremental = (incremental.0 + sync, incremental.1 + upload, incremental.2 + uploaded);
        }
        last = Some(handle);
    }
    if checkpoints > 1 {
        let n = (checkpoints - 1) as f64;
        let (sync, upload, uploaded) = (incremental.0 / n, incremental.1 / n, incremental.2 / n);
        println!("{:<11} {sync:>9.1} {upload:>10.1} {:>10} {uploaded:>12.1}", "mean 2..", "");
    }

    // The whole state as one full snapshot, as a savepoint stores it: written, read, loaded.
    let full = storage.join("full-snapshot");
    let started = Instant::now();
    let KeyedStateHandle::Full(snapshot) = store.start_snapshot()?.materialize(None)? else {
        unreachable!("a snapshot without a target is full")
    };
    let serialized = started.elapsed().as_secs_f64() * 1e3;
    let written = full.write_with(&weir_state::fs::LocalFs, |out| {
        postcard::to_io(&snapshot, out).map(drop).map_err(std::io::Error::other)
    });
    let bytes = written.map_err(|(what, at, e)| format!("cannot {what} '{at}': {e}"))?;
    let write = started.elapsed().as_secs_f64() * 1e3;
    drop(snapshot);
    println!(
        "full snapshot: {:.1} MB, taken in {serialized:.0} ms, written in {write:.0} ms",
        bytes as f64 / f64::from(1 << 20)
    );
    drop(store);
    let started = Instant::now();
    let snapshot: KeyedSnapshot = postcard::from_bytes(&full.read()?)?;
    let read = started.elapsed().as_secs_f64() * 1e3;
    let backend = RocksDbBackend::open(work.join("from-full"), 0..KEY_GROUPS, RocksDbConfig::default())?;
    let mut loaded = Store::new(Box::new(backend));
    let values = loaded.value_state::<(), Vec<u8>>("values")?;
    let _ = loaded.value_state::<(), u64>("counts")?;
    loaded.restore(&snapshot)?;
    drop(snapshot);
    let probe = keys / 3;
    assert_eq!(loaded.value(values).get(key_group(probe), &probe, &())?.map(|v| v.len()), Some(VALUE_BYTES));
    println!(
        "full snapshot: read in {read:.0} ms, restored into a new database in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(loaded);
    full.remove_file()?;

    let handle = last.ok_or("no checkpoint was taken")?;
    let started = Instant::now();
    let shared = target.shared_dir();
    let backend =
        RocksDbBackend::restore(work.join("restored"), 0..KEY_GROUPS, RocksDbConfig::default(), &[handle], shared)?;
    let mut restored = Store::new(Box::new(backend));
    let values = restored.value_state::<(), Vec<u8>>("values")?;
    println!("restored from checkpoint {checkpoints} in {} ms", started.elapsed().as_millis());
    let probe = keys / 2;
    let value = restored.value(values).get(key_group(probe), &probe, &())?;
    assert_eq!(value.map(|v| v.len()), Some(VALUE_BYTES), "key {probe} is restored");
    drop(restored);
    std::fs::remove_dir_all(&work)?;
    target.shared_dir().remove_dir_all()?;
    Ok(())
}

fn key_group(key: u64) -> KeyGroup {
    (key % u64::from(KEY_GROUPS)) as KeyGroup
}

/// Puts a fresh random value (starting with `version`) under `key`.
fn put(
    store: &mut Store,
    values: ValueStateHandle<(), Vec<u8>>,
    key: u64,
    version: u64,
    rng: &mut Rng,
) -> weir_state::Result<()> {
    let mut value = Vec::with_capacity(VALUE_BYTES);
    value.extend_from_slice(&version.to_le_bytes());
    while value.len() < VALUE_BYTES {
        value.extend_from_slice(&rng.next().to_le_bytes());
    }
    value.truncate(VALUE_BYTES);
    store.value(values).put(key_group(key), &key, &(), value)
}

/// A xorshift generator: values and keys that do not compress and do not repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
