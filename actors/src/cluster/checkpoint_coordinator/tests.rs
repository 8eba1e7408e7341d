//! The coordinator against a TaskExecutor that records what it is told: ids across a
//! coordinator restart, acknowledgements matched to their checkpoint, completion.

use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::*;
use crate::runtime::checkpoint::{CheckpointAck, CheckpointConfig};

const DEADLINE: Duration = Duration::from_secs(10);
const JOB: JobId = JobId(5);

/// A TaskExecutor that passes on every control message it gets.
struct Executor;

impl Actor for Executor {
    type Msg = TaskExecutorMessage;
    type State = UnboundedSender<(ExecutionId, TaskControl)>;
    type Arguments = UnboundedSender<(ExecutionId, TaskControl)>;

    async fn pre_start(&self, _: ActorRef<Self::Msg>, tx: Self::Arguments) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let TaskExecutorMessage::Control(execution, control) = message {
            let _ = tx.send((execution, control));
        }
        Ok(())
    }
}

type Coordinator = (ActorRef<CoordinatorMessage>, tokio::task::JoinHandle<()>);

struct Fixture {
    root: PathBuf,
    storage: CheckpointStorage,
    executor: ActorRef<TaskExecutorMessage>,
    controls: UnboundedReceiver<(ExecutionId, TaskControl)>,
    /// A source subtask and the subtask downstream of it.
    tasks: Vec<CoordinatedTask>,
}

impl Fixture {
    async fn new(label: &str) -> Fixture {
        let root = std::env::temp_dir().join(format!("weir-coordinator-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (tx, controls) = unbounded_channel();
        let (executor, _) = Actor::spawn(None, Executor, tx).await.expect("executor");
        let task = |vertex, source| CoordinatedTask {
            execution: ExecutionId { job: JOB, vertex, index: 0, attempt: 0 },
            executor: executor.clone(),
            source,
        };
        let tasks = vec![task(0, true), task(1, false)];
        Fixture { storage: CheckpointStorage::new(&root, JOB), root, executor, controls, tasks }
    }

    /// A coordinator checkpointing every few milliseconds, told the tasks are deployed.
    async fn coordinator(&self, ids: &CheckpointIds) -> Coordinator {
        let mut config = CheckpointConfig::every(Duration::from_millis(5), &self.root);
        config.timeout = Duration::from_secs(60);
        let plan = JobGraph {
            job_name: "coordinated".into(),
            max_parallelism: 128,
            vertices: Vec::new(),
            edges: Vec::new(),
            fingerprint: 7,
        };
        let args = CoordinatorArgs {
            job: JOB,
            plan,
            config: Some(config),
            storage: Some(self.storage.clone()),
            restored_from: None,
            ids: ids.clone(),
            on_stopped: None,
            on_failures: None,
        };
        let (coordinator, ended) = Actor::spawn(None, CheckpointCoordinator, args).await.expect("coordinator");
        coordinator.cast(CoordinatorMessage::Deployed(self.tasks.clone())).unwrap();
        (coordinator, ended)
    }

    /// The next checkpoint triggered at the source.
    async fn triggered(&mut self) -> u64 {
        loop {
            let (execution, control) = tokio::time::timeout(DEADLINE, self.controls.recv())
                .await
                .expect("a trigger in time")
                .expect("the executor runs");
            if let TaskControl::TriggerCheckpoint(barrier) = control {
                assert_eq!(execution, self.tasks[0].execution, "triggered at the source only");
                return barrier.checkpoint_id;
            }
        }
    }

    fn ack(&self, coordinator: &ActorRef<CoordinatorMessage>, task: usize, checkpoint: u64) {
        let execution = self.tasks[task].execution;
        let handle = TaskStateHandle {
            vertex: execution.vertex,
            subtask: execution.index,
            file: format!("{}-{}", execution.vertex, execution.index),
            bytes: 1,
            operators: Vec::new(),
            shared: Vec::new(),
            union_state: false,
            finished: false,
            clock: Default::default(),
        };
        let ack =
            CheckpointAck { checkpoint, handle: Ok(handle), alignment_ms: 0, sync_us: 0, async_us: 0, finished: false };
        coordinator.cast(CoordinatorMessage::Event(execution, CheckpointEvent::Ack(ack))).unwrap();
    }
}

async fn stats(coordinator: &ActorRef<CoordinatorMessage>) -> CheckpointStats {
    coordinator.call(CoordinatorMessage::Stats, Some(DEADLINE)).await.expect("stats").success_or("stats").unwrap()
}

async fn kill((coordinator, ended): Coordinator) {
    coordinator.kill();
    tokio::time::timeout(DEADLINE, ended).await.expect("the coordinator stopped in time").unwrap();
}

/// Defect: a restarted coordinator took its next id from the completed checkpoints only, so
/// the id in flight when it crashed was issued again; the old checkpoint's late
/// acknowledgements could then complete the new one with state from before it.
#[tokio::test]
async fn a_restarted_coordinator_never_issues_an_id_again() {
    let mut f = Fixture::new("restart").await;
    let ids = CheckpointIds::new(Some(&f.storage), None);
    let first = f.coordinator(&ids).await;
    let in_flight = f.triggered().await;
    f.ack(&first.0, 0, in_flight); // the source's part; the downstream subtask's is on its way
    kill(first).await;

    // Started again as the JobMaster starts it: with the job's counter.
    let second = f.coordinator(&ids).await;
    let coordinator = &second.0;
    let next = f.triggered().await;
    assert!(next > in_flight, "checkpoint {in_flight} was in flight, and {next} was triggered after the restart");

    // The old checkpoint's late acknowledgement completes nothing.
    f.ack(coordinator, 1, in_flight);
    f.ack(coordinator, 0, next);
    assert_eq!(stats(coordinator).await.completed, 0);
    f.ack(coordinator, 1, next);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let completed = loop {
        let stats = stats(coordinator).await;
        if let Some(latest) = stats.latest_completed {
            break latest;
        }
        assert!(tokio::time::Instant::now() < deadline, "checkpoint {next} did not complete: {stats:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert_eq!(completed.id, next);
    assert_eq!(f.storage.completed(), vec![next]);

    // A new JobMaster (or JobManager process) goes on above it too.
    let third = CheckpointIds::new(Some(&f.storage), None).next().unwrap();
    assert!(third > next);
    kill(second).await;
    f.executor.stop(None);
    let _ = std::fs::remove_dir_all(&f.root);
}
