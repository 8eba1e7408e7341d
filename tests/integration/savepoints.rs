//! Savepoints on a MiniCluster: a keyed, windowed job stopped with a savepoint and resumed
//! at another parallelism, twice (2 → 3 → 1), ends with exactly the output of one
//! fault-free run; savepoints of a running job; stop with drain; refusals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_actors::api::job::JobConfig;
use weir_actors::prelude::*;
use weir_actors::runtime::checkpoint::savepoint::SavepointRestore;
use weir_actors::runtime::checkpoint::{CheckpointConfig, StopMode};
use weir_actors::{JobId, JobStatus};

use weir_actors::base::state::StateBackend;
use weir_state::storage::Location;

use crate::support::{RESCALE_ARGS, S3, TempDir, eventually, read_output};

const DEADLINE: Duration = Duration::from_secs(60);
/// The clicks of [`RESCALE_ARGS`].
const EVENTS: u64 = 60_000;

/// window-agg over `EVENTS` generated clicks (30,000/s), into `output`.
fn window_agg(output: &Path, parallelism: usize, config: JobConfig) -> JobSubmission {
    let mut args = RESCALE_ARGS.to_vec();
    args.extend(["--output", output.to_str().unwrap()]);
    let args = JobArgs::parse(&args).unwrap();
    JobSubmission::from_registry(&weir_examples::registry(), "window-agg", args, parallelism)
        .unwrap()
        .with_config(config)
}

async fn cluster() -> MiniCluster {
    MiniCluster::start(MiniClusterConfig { task_managers: 2, slots_per_task_manager: 2, ..Default::default() })
        .await
        .unwrap()
}

/// Waits until the job's sources read `records` or more.
async fn wait_for_records(cluster: &MiniCluster, id: JobId, records: u64) {
    eventually("the sources to read more records", DEADLINE, || async {
        let d = cluster.details(id).await.unwrap();
        assert!(!d.status.is_terminal(), "the job ended early: {} {:?}", d.status, d.cause);
        d.source_records() >= records
    })
    .await;
}

/// Runs from `from` (if any) at `parallelism`; stops with a savepoint after `stop_after`
/// source records and returns it, or runs to the end.
async fn leg(
    output: &Path,
    savepoints: &Location,
    parallelism: usize,
    config: JobConfig,
    from: Option<&Location>,
    stop_after: Option<u64>,
) -> Option<Location> {
    let config = JobConfig { savepoint: from.cloned().map(SavepointRestore::new), ..config };
    let cluster = cluster().await;
    let id = cluster.submit(&window_agg(output, parallelism, config)).await.unwrap();
    let savepoint = match stop_after {
        Some(records) => {
            wait_for_records(&cluster, id, records).await;
            Some(cluster.savepoint(id, savepoints.clone(), Some(StopMode::NoDrain)).await.unwrap())
        }
        None => None,
    };
    let result = crate::support::job_result(&cluster, id, DEADLINE).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?} {:?}", result.details.cause, result.details.exceptions);
    assert_eq!(result.details.restarts, 0);
    if let Some(from) = from {
        assert!(result.details.restored_from.is_some(), "restored from {from}");
    }
    savepoint
}

/// Stop at 2, resume at 3 and stop, resume at 1 to the end: the same output as one run.
async fn rescale_twice(label: &str, config: JobConfig) {
    let work = TempDir::new(&format!("{label}-savepoints"));
    rescale_twice_into(label, config, Location::from(work.0.clone())).await;
}

/// [`rescale_twice`] with its savepoints in `savepoints`.
async fn rescale_twice_into(label: &str, config: JobConfig, savepoints: Location) {
    let reference = TempDir::new(&format!("{label}-reference"));
    leg(&reference.join("out"), &Location::from(reference.0.clone()), 2, JobConfig::default(), None, None).await;
    let expected = read_output(&reference.join("out"));
    assert!(expected.len() > 1000, "{} lines", expected.len());

    let work = TempDir::new(label);
    let output = work.join("out");
    let first = leg(&output, &savepoints, 2, config.clone(), None, Some(EVENTS / 4)).await.unwrap();
    assert!(first.join("_metadata").is_file().unwrap(), "{first}");
    let partial = read_output(&output);
    assert!(!partial.is_empty() && partial.len() < expected.len(), "{} of {} lines", partial.len(), expected.len());
    let second = leg(&output, &savepoints, 3, config.clone(), Some(&first), Some(EVENTS / 4)).await.unwrap();
    assert_ne!(first, second);
    leg(&output, &savepoints, 1, config, Some(&second), None).await;
    let output = read_output(&output);
    assert_eq!(output.len(), expected.len(), "records lost or duplicated");
    assert_eq!(output, expected, "the output differs from the fault-free run's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_2_3_1_through_savepoints_keeps_the_output_exactly_once() {
    rescale_twice("sp-rescale", JobConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_with_periodic_checkpoints_keeps_the_output_exactly_once() {
    let work = TempDir::new("sp-rescale-chk-dir");
    let checkpoints =
        CheckpointConfig { retained: 2, ..CheckpointConfig::every(Duration::from_millis(100), work.join("chk")) };
    rescale_twice("sp-rescale-chk", JobConfig { checkpoints: Some(checkpoints), ..Default::default() }).await;
}

/// The same with everything durable in S3 (s3s-fs, a real S3 server on 127.0.0.1): the
/// savepoints, and periodic checkpoints of RocksDB state with their incremental shared files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescaling_through_savepoints_in_s3_with_rocksdb_checkpoints_in_s3_keeps_the_output_exactly_once() {
    let s3 = S3::start(&["weir-sp"]);
    weir_state::storage::configure_s3_bucket("weir-sp", s3.options());
    let every =
        CheckpointConfig::every(Duration::from_millis(100), Location::parse("s3://weir-sp/checkpoints").unwrap());
    let config = JobConfig {
        checkpoints: Some(CheckpointConfig { retained: 2, ..every }),
        state_backend: StateBackend::RocksDb { dir: None },
        ..Default::default()
    };
    rescale_twice_into("sp-rescale-s3", config, Location::parse("s3://weir-sp/savepoints").unwrap()).await;

    // What it stored is in the bucket, as s3s-fs keeps it on disk.
    let listed =
        |dir: PathBuf| -> Vec<PathBuf> { std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect() };
    let savepoints = listed(s3.file("weir-sp/savepoints"));
    assert_eq!(savepoints.len(), 2, "{savepoints:?}");
    assert!(savepoints.iter().all(|s| s.join("_metadata").is_file()), "{savepoints:?}");
    // Three legs, three jobs; each retained checkpoints whose RocksDB files are in shared/.
    let jobs = listed(s3.file("weir-sp/checkpoints"));
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    for job in jobs {
        let files = listed(job.clone());
        assert!(files.iter().any(|f| f.join("_metadata").is_file()), "no completed checkpoint in {job:?}: {files:?}");
        let shared = listed(job.join("shared"));
        assert!(
            shared.iter().any(|f| f.to_string_lossy().ends_with(".sst")),
            "no shared SST file in {job:?}: {shared:?}"
        );
    }
}

/// The sum of a window-agg output's counts: every click counted once is `EVENTS`.
fn clicks_counted(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.rsplit('\t').next().unwrap().parse::<u64>().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_of_a_running_job_leave_it_running_exactly_once() {
    let work = TempDir::new("sp-running");
    let (output, savepoints) = (work.join("out"), work.join("savepoints"));
    let cluster = cluster().await;
    let id = cluster.submit(&window_agg(&output, 2, JobConfig::default())).await.unwrap();
    wait_for_records(&cluster, id, EVENTS / 4).await;
    let savepoint = cluster.savepoint(id, &savepoints, None).await.unwrap();
    assert!(savepoint.starts_with(&Location::from(&savepoints)) && savepoint.join("_metadata").is_file().unwrap());
    let again = cluster.savepoint(id, &savepoints, None).await.unwrap();
    assert_ne!(savepoint, again, "each savepoint has its own directory");
    let finished = tokio::time::timeout(DEADLINE, cluster.wait(id)).await.unwrap().unwrap();
    assert_eq!(finished.status(), JobStatus::Finished, "the job ran on after its savepoints");
    let err = cluster.savepoint(id, &savepoints, None).await.unwrap_err().to_string();
    assert!(err.contains("has ended"), "{err}");
    cluster.shutdown().await;
    assert_eq!(clicks_counted(&read_output(&output)), EVENTS, "each click counted once");
    // The savepoints are the user's: both are still there, complete.
    assert!(savepoint.join("_metadata").is_file().unwrap() && again.join("_metadata").is_file().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_drain_fires_every_window_before_the_savepoint() {
    let work = TempDir::new("sp-drain");
    let (output, savepoints) = (work.join("out"), work.join("savepoints"));
    let cluster = cluster().await;
    let id = cluster.submit(&window_agg(&output, 2, JobConfig::default())).await.unwrap();
    wait_for_records(&cluster, id, EVENTS / 4).await;
    let savepoint = cluster.savepoint(id, &savepoints, Some(StopMode::Drain)).await.unwrap();
    let result = tokio::time::timeout(DEADLINE, cluster.wait(id)).await.unwrap().unwrap();
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    // Every window of what was read fired: each click read is counted exactly once.
    let counted = clicks_counted(&read_output(&output));
    assert_eq!(counted, result.details.source_records(), "every click read is in a fired window");
    assert!(counted < EVENTS, "stopped early: {counted}");
    assert!(savepoint.join("_metadata").is_file().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_savepoint_is_refused_before_the_job_runs() {
    let work = TempDir::new("sp-bad");
    let missing = work.join("no-such-savepoint");
    let job = window_agg(
        &work.join("out"),
        2,
        JobConfig { savepoint: Some(SavepointRestore::new(&missing)), ..Default::default() },
    );
    let err = job.prepare().err().unwrap().to_string();
    assert!(err.contains(&missing.display().to_string()) && err.contains("does not exist"), "{err}");
    std::fs::create_dir_all(&missing).unwrap();
    let err = job.prepare().err().unwrap().to_string();
    assert!(err.contains("has no _metadata"), "{err}");
}
