//! Failures on the MiniCluster: an operator that panics or errors fails its job with the
//! cause; too few slots fail fast; a killed TaskExecutor fails its jobs and is restarted by
//! its supervisor; cancellation stops an unbounded job and frees its slots.

use std::time::Duration;

use weir_actors::prelude::*;
use weir_actors::{JobStatus, TaskState};

use crate::support::eventually;

const DEADLINE: Duration = Duration::from_secs(30);

async fn cluster(task_managers: usize, slots: usize) -> MiniCluster {
    MiniCluster::start(MiniClusterConfig {
        task_managers,
        slots_per_task_manager: slots,
        ..MiniClusterConfig::default()
    })
    .await
    .unwrap()
}

fn unbounded(parallelism: usize) -> JobSubmission {
    JobSubmission::new("unbounded", parallelism, |env, _| {
        let config = GeneratorConfig { events: None, rate: Some(20_000.0), ..GeneratorConfig::default() };
        env.source("clicks", Generator::new(config))
            .key_by(|c: &Click| c.user)
            .reduce("latest", |_, b| *b)
            .sink("discard", DiscardSink::new().0);
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_operator_fails_the_job_with_its_message() {
    let cluster = cluster(1, 2).await;
    let job = JobSubmission::new("panics", 2, |env, _| {
        env.source("clicks", Generator::new(GeneratorConfig { events: Some(100_000), ..GeneratorConfig::default() }))
            .map("explode", |c: Click| {
                if c.index == 5_000 {
                    panic!("boom at record 5000");
                }
                c
            })
            .sink("discard", DiscardSink::new().0);
        Ok(())
    });
    let result = tokio::time::timeout(DEADLINE, cluster.execute(&job)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Failed);
    let cause = result.details.cause.clone().unwrap();
    assert!(cause.contains("boom at record 5000") && cause.contains("panicked"), "{cause}");
    assert!(result.details.vertices.iter().flat_map(|v| &v.subtasks).all(|s| s.state.is_terminal()));
    assert_eq!(cluster.task_managers().await.unwrap()[0].free_slots, 2, "slots released");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_error_names_the_operator() {
    let cluster = cluster(1, 1).await;
    let job = JobSubmission::new("errors", 1, |env, _| {
        env.from_vec("n", (0..10u32).collect())
            .operator("checked", || {
                weir_actors::api::functions::TryMapOp::new(|x: u32| {
                    if x == 7 { Err(WeirError::user("seven is not allowed")) } else { Ok(x) }
                })
            })
            .sink("discard", DiscardSink::new().0);
        Ok(())
    });
    let result = tokio::time::timeout(DEADLINE, cluster.execute(&job)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Failed);
    let cause = result.details.cause.unwrap();
    assert!(cause.contains("operator 'checked' failed: seven is not allowed"), "{cause}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_slots_fail_fast_with_both_numbers() {
    let cluster = cluster(1, 2).await;
    let result = tokio::time::timeout(DEADLINE, cluster.execute(&unbounded(4))).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Failed);
    let cause = result.details.cause.unwrap();
    assert!(cause.contains("needs 4 slots") && cause.contains("2 in total"), "{cause}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_an_unbounded_job_and_frees_its_slots() {
    let cluster = cluster(2, 2).await;
    let id = cluster.submit(&unbounded(4)).await.unwrap();
    eventually("all subtasks running and records flowing", DEADLINE, || async {
        let d = cluster.details(id).await.unwrap();
        d.vertices.iter().flat_map(|v| &v.subtasks).all(|s| s.state == TaskState::Running) && d.source_records() > 1000
    })
    .await;
    let placed: std::collections::BTreeSet<String> = cluster
        .details(id)
        .await
        .unwrap()
        .vertices
        .iter()
        .flat_map(|v| v.subtasks.iter().map(|s| s.task_manager.clone()))
        .collect();
    assert_eq!(placed.len(), 2, "subtasks spread over both task managers: {placed:?}");
    cluster.cancel(id).await.unwrap();
    let result = tokio::time::timeout(DEADLINE, cluster.wait(id)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Cancelled);
    let free: usize = cluster.task_managers().await.unwrap().iter().map(|t| t.free_slots).sum();
    assert_eq!(free, 4);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_task_executor_fails_its_job_and_is_restarted() {
    let cluster = cluster(2, 1).await;
    let id = cluster.submit(&unbounded(2)).await.unwrap();
    eventually("records flowing", DEADLINE, || async { cluster.details(id).await.unwrap().source_records() > 1000 })
        .await;
    let executor = cluster.task_executor(0).await.unwrap();
    executor.kill();
    let result = tokio::time::timeout(DEADLINE, cluster.wait(id)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Failed);
    let cause = result.details.cause.unwrap();
    assert!(cause.contains("task manager 'taskmanager-0' was lost"), "{cause}");
    eventually("the task executor re-registered with its slot free", DEADLINE, || async {
        let tms = cluster.task_managers().await.unwrap();
        tms.len() == 2 && tms.iter().all(|t| t.free_slots == 1)
    })
    .await;
    assert_ne!(cluster.task_executor(0).await.unwrap().get_id(), executor.get_id(), "a new executor");
    // The cluster still runs jobs.
    let ok = JobSubmission::new("after", 2, |env, _| {
        env.from_vec("n", vec![1u32, 2, 3]).map("m", |x: u32| x).sink("d", DiscardSink::new().0);
        Ok(())
    });
    let result = tokio::time::timeout(DEADLINE, cluster.execute(&ok)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    cluster.shutdown().await;
}
