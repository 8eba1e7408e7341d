//! The TaskExecutor: offers a node's slots to the ResourceManager and runs the subtasks
//! deployed to them.
//!
//! A deployment names a registered job; the TaskExecutor rebuilds the job's dataflow from its
//! own registry entry and arguments (once per job), refuses it if the plan's fingerprint
//! differs from the submitted one, wires the subtask's channels through the process's
//! shuffle, and spawns a Subtask actor for it.
//!
//! ## Supervision
//!
//! Children: one Subtask per running subtask. A Subtask that fails (its operator returned an
//! error or panicked) or is killed is not restarted in place: its state and channels must roll back with
//! its neighbours', so the TaskExecutor reports `TaskState::Failed` with the cause to the
//! job's JobMaster, which decides for the whole job. A Subtask that stops reports its own
//! final state.
//!
//! ## Registration
//!
//! The TaskExecutor registers with the ResourceManager when it starts and again whenever the
//! ResourceManager is restarted (it watches the [`ComponentRef`]), each time with a slot report:
//! the jobs its slots serve, so a restarted ResourceManager does not hand them out twice.
//! `ReleaseJob` frees a job's slots here: subtasks of the job still running (a restarted
//! JobMaster's predecessor's) are stopped before the executor handles its next message.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{info, warn};
use weir_dataplane::LocalShuffle;

use crate::api::job::{JobRegistry, build_job};
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::time::SharedClock;
use crate::cluster::messages::{JobMasterMessage, ResourceManagerMessage, TaskDeployment, TaskExecutorMessage};
use crate::cluster::subtask::{SubtaskActor, SubtaskArgs, SubtaskMessage};
use crate::cluster::{ComponentRef, ExecutionId, Failure, TaskState, ask};
use crate::runtime::checkpoint::{CheckpointIo, PendingRestore};
use crate::runtime::deploy::{RemoteWiring, SubtaskSpec, build_subtask};
use crate::runtime::stream_graph::ExecutableGraph;

/// What a TaskExecutor starts with.
#[derive(Clone)]
pub struct TaskExecutorArgs {
    /// The TaskManager's id.
    pub task_manager: String,
    /// Slots offered.
    pub slots: usize,
    /// The ResourceManager to register with.
    pub resource_manager: ComponentRef<ResourceManagerMessage>,
    /// The process's local shuffle.
    pub shuffle: Arc<LocalShuffle>,
    /// Channels to other processes (cluster mode).
    pub net: Option<Arc<weir_dataplane::NetShuffle>>,
    /// Processing-time clock.
    pub clock: SharedClock,
    /// The jobs this binary carries, for deployments that come without a builder.
    pub registry: Option<JobRegistry>,
    /// Where this TaskManager accepts data streams from other processes.
    pub data_addr: Option<std::net::SocketAddr>,
}

struct Running {
    execution: ExecutionId,
    actor: ActorRef<SubtaskMessage>,
    job_master: ActorRef<JobMasterMessage>,
}

/// A TaskExecutor's state.
pub struct TaskExecutorState {
    args: TaskExecutorArgs,
    graphs: HashMap<JobId, Arc<ExecutableGraph>>,
    running: HashMap<ActorId, Running>,
    /// Slots of this TaskManager each job holds (from its deployments), for slot reports.
    job_slots: HashMap<JobId, usize>,
    /// The latest attempt of each job deployed here.
    job_attempts: HashMap<JobId, u32>,
}

/// Registers `executor` with the current ResourceManager, reporting the slots in use.
async fn register(
    args: &TaskExecutorArgs,
    executor: &ActorRef<TaskExecutorMessage>,
    job_slots: &HashMap<JobId, usize>,
) -> Result<()> {
    let allocated: Vec<(JobId, usize)> = job_slots.iter().map(|(&job, &n)| (job, n)).collect();
    let registered = ask!(args.resource_manager.get(), "the resource manager", |reply| {
        ResourceManagerMessage::Register {
            task_manager: args.task_manager.clone(),
            slots: args.slots,
            data_addr: args.data_addr,
            executor: executor.clone(),
            allocated,
            reply,
        }
    })?;
    registered.map_err(|refused| WeirError::runtime(format!("registration refused: {refused}")))?;
    info!(task_manager = %args.task_manager, slots = args.slots, "task executor registered");
    Ok(())
}

impl TaskExecutorState {
    fn graph(&mut self, d: &TaskDeployment) -> Result<Arc<ExecutableGraph>> {
        if let Some(g) = self.graphs.get(&d.execution.job) {
            return Ok(g.clone());
        }
        let builder = match (&d.builder, &self.args.registry) {
            (Some(builder), _) => builder.clone(),
            (None, Some(registry)) => registry.get(&d.job_name)?.builder.clone(),
            (None, None) => {
                return Err(WeirError::runtime(
                    "a deployment without a builder reached an executor without a registry",
                ));
            }
        };
        let graph = build_job(&d.job_name, &builder, &d.args, d.parallelism, None)?;
        if graph.job.fingerprint != d.fingerprint {
            return Err(WeirError::Graph(format!(
                "job '{}' builds a different plan here (fingerprint {}) than the one submitted ({:016x}): the nodes run different builds",
                d.job_name,
                graph.job.fingerprint_hex(),
                d.fingerprint
            )));
        }
        let graph = Arc::new(graph);
        self.graphs.insert(d.execution.job, graph.clone());
        Ok(graph)
    }

    async fn deploy(&mut self, myself: &ActorRef<TaskExecutorMessage>, d: TaskDeployment) -> Result<()> {
        let graph = self.graph(&d)?;
        let e = d.execution;
        let held = d.slots.iter().filter(|s| s.task_manager == self.args.task_manager).count();
        self.job_slots.insert(e.job, held);
        let last = self.job_attempts.entry(e.job).or_insert(e.attempt);
        *last = (*last).max(e.attempt);
        let vertex =
            graph.job.vertices.get(e.vertex).ok_or_else(|| WeirError::runtime("deployment of an unknown vertex"))?;
        let name = format!("{} ({}/{})", vertex.name, e.index + 1, vertex.parallelism);
        let restore = d.restore.clone().map(|from| PendingRestore { from, vertex: vertex.clone(), index: e.index });
        // Acknowledgements and end-of-input reports leave the processing loop on a channel; a
        // small task takes them to the JobMaster (it ends with the loop, which owns the
        // sending side). Every job can take savepoints, so every subtask has one.
        let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let job_master = d.job_master.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let _ = job_master.cast(JobMasterMessage::Checkpoint(e, event));
            }
        });
        let checkpoints = Some(CheckpointIo { storage: d.checkpoints.clone(), vertex: e.vertex, events });
        let (task, control) = build_subtask(SubtaskSpec {
            graph: &graph,
            job: e.job,
            vertex: e.vertex,
            index: e.index,
            attempt: e.attempt,
            shuffle: &self.args.shuffle,
            clock: self.args.clock.clone(),
            metrics: d.metrics.clone(),
            remote: self.args.net.as_ref().map(|net| RemoteWiring {
                net,
                task_manager: &self.args.task_manager,
                slots: &d.slots,
            }),
            checkpoints,
            restore,
            state_backend: d.state_backend.clone(),
        })?;
        let args = SubtaskArgs { execution: e, name, task, control, job_master: d.job_master.clone() };
        let (actor, _) = Actor::spawn_linked(None, SubtaskActor, args, myself.get_cell())
            .await
            .map_err(|err| WeirError::runtime(format!("cannot start subtask: {err}")))?;
        self.running.insert(actor.get_id(), Running { execution: e, actor, job_master: d.job_master });
        Ok(())
    }
}

/// How long `ReleaseJob` waits for each leftover subtask to stop.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The TaskExecutor actor.
pub struct TaskExecutorActor;

impl Actor for TaskExecutorActor {
    type Msg = TaskExecutorMessage;
    type State = TaskExecutorState;
    type Arguments = TaskExecutorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        register(&args, &myself, &HashMap::new()).await?;
        // A restarted ResourceManager knows nobody: register with each new incarnation. The
        // watch ends with this executor (its casts fail) or with the ResourceManager's address.
        let mut incarnations = args.resource_manager.watch();
        let executor = myself.clone();
        tokio::spawn(async move {
            while incarnations.changed().await.is_ok() {
                if executor.cast(TaskExecutorMessage::Reregister).is_err() {
                    break;
                }
            }
        });
        Ok(TaskExecutorState {
            args,
            graphs: HashMap::new(),
            running: HashMap::new(),
            job_slots: HashMap::new(),
            job_attempts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TaskExecutorMessage::Deploy(d, reply) => {
                let result = state.deploy(&myself, *d).await;
                let _ = reply.send(result);
            }
            TaskExecutorMessage::Cancel(execution) => {
                if let Some(r) = state.running.values().find(|r| r.execution == execution) {
                    r.actor.stop(Some("cancelled".into()));
                }
            }
            TaskExecutorMessage::ReleaseJob(job) => {
                let leftovers: Vec<_> =
                    state.running.values().filter(|r| r.execution.job == job).map(|r| r.actor.clone()).collect();
                for actor in leftovers {
                    warn!(job = %job, "stopping a subtask of a released job");
                    let _ = actor.stop_and_wait(Some("its job's slots were released".into()), Some(RELEASE_WAIT)).await;
                }
                state.job_slots.remove(&job);
                state.graphs.remove(&job);
                // Only the attempts this executor ran: a later one may be wiring up already
                // on another executor of this process (after a JobMaster restart).
                if let Some(last_attempt) = state.job_attempts.remove(&job) {
                    state.args.shuffle.release_job(job.0, last_attempt);
                    if let Some(net) = &state.args.net {
                        net.release_job(job.0, last_attempt);
                    }
                }
            }
            TaskExecutorMessage::Reregister => {
                // Failing here restarts this executor, which registers afresh.
                register(&state.args, &myself, &state.job_slots).await?;
            }
            TaskExecutorMessage::RunningTasks(reply) => {
                let _ = reply.send(state.running.values().map(|r| r.execution).collect());
            }
            TaskExecutorMessage::KillSubtask { job, vertex, index } => {
                let victim = state.running.values().find(|r| {
                    let e = r.execution;
                    (e.job, e.vertex, e.index) == (job, vertex, index)
                });
                if let Some(r) = victim {
                    warn!(task = ?r.execution, "killing a subtask actor (fault injection)");
                    r.actor.kill();
                }
            }
            TaskExecutorMessage::Control(execution, control) => {
                if let Some(r) = state.running.values().find(|r| r.execution == execution) {
                    let _ = r.actor.cast(SubtaskMessage::Control(control));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(r) = take(state, &cell) {
                    warn!(task = ?r.execution, %error, "subtask failed");
                    let failure = match error.downcast_ref::<WeirError>() {
                        Some(e) => Failure { message: error.to_string(), ..Failure::of(e) },
                        None => Failure::internal(error.to_string()),
                    };
                    let _ = r.job_master.cast(JobMasterMessage::TaskState {
                        execution: r.execution,
                        state: TaskState::Failed,
                        cause: Some(failure),
                    });
                }
            }
            // Killed (no post_stop ran): it reported nothing, so this is its failure.
            SupervisionEvent::ActorTerminated(cell, _, Some(reason)) if reason == "killed" => {
                if let Some(r) = take(state, &cell) {
                    warn!(task = ?r.execution, "subtask actor was killed");
                    let _ = r.job_master.cast(JobMasterMessage::TaskState {
                        execution: r.execution,
                        state: TaskState::Failed,
                        cause: Some(Failure::internal("its subtask actor was killed")),
                    });
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                take(state, &cell);
            }
            _ => {}
        }
        Ok(())
    }
}

fn take(state: &mut TaskExecutorState, cell: &ActorCell) -> Option<Running> {
    state.running.remove(&cell.get_id())
}
