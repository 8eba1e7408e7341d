//! Measures RocksDB checkpoints of about 1 GB of keyed state: a first (full) checkpoint, then
//! incremental ones after updating 1 % of the keys, and a restore from the last.
//!
//! ```text
//! cargo run --release -p weir-state --example rocksdb_checkpoint -- [MB of values] [work dir]
//! ```
//!
//! Values are random bytes (incompressible, so the files are as big as the state), 256 bytes per
//! key, in one value state over 128 key groups. The synchronous part is what a subtask pauses
//! for; the upload runs beside processing in a job.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir_state::{
    KeyGroup, KeyedStateHandle, KeyedStateStore, PendingKeyedSnapshot, RocksDbBackend, RocksDbConfig, SnapshotTarget,
    ValueStateHandle,
};

const VALUE_BYTES: usize = 256;
const KEY_GROUPS: KeyGroup = 128;

type Store = KeyedStateStore<u64>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let megabytes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let work = args.next().map_or_else(
        || std::env::temp_dir().join(format!("weir-rocksdb-figure-{}", std::process::id())),
        PathBuf::from,
    );
    let keys = megabytes * (1 << 20) / VALUE_BYTES as u64;
    let target = SnapshotTarget::new(work.join("shared"));
    println!("{keys} keys x {VALUE_BYTES} B = {megabytes} MB of values in '{}'", work.display());

    let mut store =
        Store::new(Box::new(RocksDbBackend::open(work.join("tm"), 0..KEY_GROUPS, RocksDbConfig::default())?));
    let values = store.value_state::<(), Vec<u8>>("values")?;
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let started = Instant::now();
    put_keys(&mut store, values, 0..keys, 1, &mut rng)?;
    let elapsed = started.elapsed();
    println!(
        "wrote {keys} keys in {:.1} s ({:.0} k puts/s)",
        elapsed.as_secs_f64(),
        keys as f64 / elapsed.as_secs_f64() / 1e3
    );

    println!(
        "{:<12} {:>10} {:>10} {:>12} {:>12} {:>7}",
        "checkpoint", "sync ms", "upload ms", "total MB", "uploaded MB", "files"
    );
    let mut last = None;
    for checkpoint in 1..=3u64 {
        if checkpoint > 1 {
            // Update 1 % of the keys, spread over the key space.
            let step = 100;
            let updated: Vec<u64> = (0..keys).step_by(step).collect();
            for &key in &updated {
                put(&mut store, values, key, checkpoint, &mut rng)?;
            }
        }
        let sync = Instant::now();
        let pending: PendingKeyedSnapshot = store.checkpoint(checkpoint)?;
        let sync = sync.elapsed();
        let upload = Instant::now();
        let handle = pending.materialize(&target)?;
        let upload = upload.elapsed();
        store.notify_checkpoint_complete(checkpoint);
        report(checkpoint, sync, upload, &handle);
        last = Some(handle);
    }

    let Some(KeyedStateHandle::Incremental(handle)) = last else { unreachable!("rocksdb checkpoints are incremental") };
    drop(store);
    let restore = Instant::now();
    let backend = RocksDbBackend::restore(
        work.join("restored"),
        0..KEY_GROUPS,
        RocksDbConfig::default(),
        &[handle],
        target.shared_dir(),
    )?;
    let mut restored = Store::new(Box::new(backend));
    let values = restored.value_state::<(), Vec<u8>>("values")?;
    println!("restored in {} ms", restore.elapsed().as_millis());
    let probe = keys / 2;
    let value = restored.value(values).get(key_group(probe), &probe, &())?;
    assert_eq!(value.map(|v| v.len()), Some(VALUE_BYTES), "key {probe} is restored");
    drop(restored);
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

fn report(checkpoint: u64, sync: Duration, upload: Duration, handle: &KeyedStateHandle) {
    let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let uploaded = match handle {
        KeyedStateHandle::Incremental(h) => h.uploaded().count(),
        KeyedStateHandle::Full(_) => 0,
    };
    println!(
        "{:<12} {:>10.1} {:>10.1} {:>12.1} {:>12.1} {:>3}/{:<3}",
        checkpoint,
        sync.as_secs_f64() * 1e3,
        upload.as_secs_f64() * 1e3,
        mb(handle.size_bytes()),
        mb(handle.incremental_bytes()),
        uploaded,
        handle.shared_files().len()
    );
}

fn key_group(key: u64) -> KeyGroup {
    (key % u64::from(KEY_GROUPS)) as KeyGroup
}

fn put_keys(
    store: &mut Store,
    values: ValueStateHandle<(), Vec<u8>>,
    keys: std::ops::Range<u64>,
    version: u64,
    rng: &mut u64,
) -> weir_state::Result<()> {
    for key in keys {
        put(store, values, key, version, rng)?;
    }
    Ok(())
}

/// Puts a fresh random value (starting with `version`) under `key`.
fn put(
    store: &mut Store,
    values: ValueStateHandle<(), Vec<u8>>,
    key: u64,
    version: u64,
    rng: &mut u64,
) -> weir_state::Result<()> {
    let mut value = Vec::with_capacity(VALUE_BYTES);
    value.extend_from_slice(&version.to_le_bytes());
    while value.len() < VALUE_BYTES {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        value.extend_from_slice(&rng.to_le_bytes());
    }
    value.truncate(VALUE_BYTES);
    store.value(values).put(key_group(key), &key, &(), value)
}
