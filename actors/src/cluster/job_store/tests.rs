use std::path::PathBuf;

use super::*;
use crate::api::connectors::{DiscardSink, VecSource};
use crate::cluster::mini_cluster::JobSubmission;

fn registry() -> JobRegistry {
    JobRegistry::new().job("numbers", "a few numbers, discarded", |env, _| {
        env.source("numbers", VecSource::new(vec![1u64, 2, 3])).sink("discard", DiscardSink::new().0);
        Ok(())
    })
}

fn prepared(registry: &JobRegistry) -> PreparedJob {
    JobSubmission::from_registry(registry, "numbers", JobArgs::default(), 2).unwrap().prepare().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-job-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_reopened_store_gives_back_running_jobs_with_their_generation() {
    let dir = temp_dir("reopen");
    let registry = registry();
    let job = prepared(&registry);
    {
        let store = JobStore::open(&dir, registry.clone()).unwrap();
        store.add(&job).unwrap();
        assert_eq!(store.next_generation(job.id).unwrap(), 1);
        assert_eq!(store.next_generation(job.id).unwrap(), 2);
    }
    let store = JobStore::open(&dir, registry.clone()).unwrap();
    let recovered = store.recover();
    assert_eq!(recovered.len(), 1);
    let again = recovered[0].job.as_ref().unwrap();
    assert_eq!((again.id, again.name.as_str(), again.parallelism), (job.id, "numbers", 2));
    assert_eq!(again.graph.fingerprint, job.graph.fingerprint);
    assert_eq!(recovered[0].record.generation, 2);
    assert!(recovered[0].record.ended.is_none());
    // Generations keep rising across the restart, so attempts never repeat.
    assert_eq!(store.next_generation(job.id).unwrap(), 3);
    assert!(first_attempt(3) > first_attempt(2) + 60_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_ended_job_is_kept_with_its_result() {
    let dir = temp_dir("ended");
    let registry = registry();
    let job = prepared(&registry);
    JobStore::open(&dir, registry.clone()).unwrap().add(&job).unwrap();
    JobStore::open(&dir, registry.clone()).unwrap().end(job.id, JobStatus::Failed, Some("boom".into()));
    let recovered = JobStore::open(&dir, registry).unwrap().recover();
    let ended = recovered[0].record.ended.as_ref().unwrap();
    assert_eq!((ended.status, ended.cause.as_deref()), (JobStatus::Failed, Some("boom")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_record_is_skipped_and_left_in_place() {
    let dir = temp_dir("corrupt");
    let registry = registry();
    let job = prepared(&registry);
    JobStore::open(&dir, registry.clone()).unwrap().add(&job).unwrap();
    let bad = dir.join("0123.json");
    std::fs::write(&bad, b"{ not json").unwrap();
    let store = JobStore::open(&dir, registry).unwrap();
    assert_eq!(store.recover().len(), 1, "the good record is recovered");
    assert!(bad.exists(), "the corrupt record is left for a person to look at");
    let err = JobStore::read(&Location::from(&bad)).unwrap_err().to_string();
    assert!(err.contains("0123.json") && err.contains("corrupt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_job_missing_from_the_registry_is_recovered_as_an_error_naming_it() {
    let dir = temp_dir("unregistered");
    let job = prepared(&registry());
    JobStore::open(&dir, registry()).unwrap().add(&job).unwrap();
    let recovered = JobStore::open(&dir, JobRegistry::new()).unwrap().recover();
    let err = recovered[0].job.as_ref().err().expect("no builder").to_string();
    assert!(err.contains("numbers"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_the_newest_ended_jobs_are_kept() {
    let store = JobStore::in_memory();
    let registry = registry();
    let jobs: Vec<PreparedJob> = (0..ENDED_KEPT + 3).map(|_| prepared(&registry)).collect();
    for job in &jobs {
        store.add(job).unwrap();
        store.end(job.id, JobStatus::Finished, None);
    }
    let running = prepared(&registry);
    store.add(&running).unwrap();
    let recovered = store.recover();
    assert_eq!(recovered.len(), ENDED_KEPT + 1);
    assert!(recovered.iter().any(|r| r.record.id == running.id && r.record.ended.is_none()));
}

#[test]
fn the_failure_history_outlives_the_job_master_and_the_process() {
    let dir = temp_dir("history");
    let registry = registry();
    let job = prepared(&registry);
    let failures: Vec<ExceptionRecord> = (0..EXCEPTIONS_KEPT + 5)
        .map(|i| ExceptionRecord { time_ms: i as i64, attempt: i as u32, cause: format!("failure {i}") })
        .collect();
    {
        let store = JobStore::open(&dir, registry.clone()).unwrap();
        store.add(&job).unwrap();
        let history = JobHistory { restarts: 7, exceptions: failures, restored: vec![3, 5, 9] };
        store.record_history(job.id, &history);
    }
    let history = JobStore::open(&dir, registry).unwrap().history(job.id);
    assert_eq!(history.restarts, 7);
    assert_eq!(history.restored, [3, 5, 9]);
    let kept = history.exceptions;
    assert_eq!(kept.len(), EXCEPTIONS_KEPT, "the newest are kept");
    assert_eq!(kept.last().unwrap().cause, format!("failure {}", EXCEPTIONS_KEPT + 4));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_of_an_earlier_build_without_restores_reads() {
    let dir = temp_dir("no-restores");
    let registry = registry();
    let job = prepared(&registry);
    JobStore::open(&dir, registry.clone()).unwrap().add(&job).unwrap();
    let path = dir.join(format!("{}.json", job.id));
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(record.as_object_mut().unwrap().remove("restored").is_some(), "{record}");
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let history = JobStore::open(&dir, registry).unwrap().history(job.id);
    assert!(history.restored.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
