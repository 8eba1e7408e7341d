//! The messages the cluster's actors exchange, and the types they carry: what each actor
//! accepts (its gateway, in Flink's terms). Every actor module imports these rather than each
//! other, so that the actors' modules depend only downwards (a parent on the children it
//! spawns), however the actors talk.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use weir_state::storage::Location;

use crate::api::job::{JobConfig, JobFn};
use crate::api::job_args::JobArgs;
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetrics;
use crate::cluster::{ExecutionId, Failure, JobDetails, JobOverview, JobResult, TaskManagerInfo, TaskState};
use crate::runtime::checkpoint::storage::CheckpointStorage;
use crate::runtime::checkpoint::{CheckpointEvent, RestoreFrom, StopMode, TaskControl};
use crate::runtime::job_graph::JobGraph;
use crate::runtime::slot::SlotLocation;

// The JobMaster.

/// A job accepted by the Dispatcher, with its client-built plan.
#[derive(Clone)]
pub struct PreparedJob {
    /// The job's id.
    pub id: JobId,
    /// The registered name.
    pub name: String,
    /// The builder.
    pub builder: JobFn,
    /// Its arguments.
    pub args: JobArgs,
    /// Default parallelism.
    pub parallelism: usize,
    /// The plan built by the client.
    pub graph: JobGraph,
    /// Checkpoints and restarts.
    pub config: JobConfig,
}

/// Messages of a JobMaster.
pub enum JobMasterMessage {
    /// A subtask's state changed.
    TaskState {
        /// Which execution.
        execution: ExecutionId,
        /// Its new state.
        state: TaskState,
        /// Why it failed.
        cause: Option<Failure>,
    },
    /// A TaskManager holding this job's slots was lost.
    TaskManagerLost(String),
    /// Cancel the job.
    Cancel,
    /// The job's details.
    Details(RpcReplyPort<JobDetails>),
    /// A subtask stored its state for a checkpoint, or its input ended.
    Checkpoint(ExecutionId, crate::runtime::checkpoint::CheckpointEvent),
    /// Take a savepoint into a directory under `dir`, stopping the job after it if `stop`.
    TriggerSavepoint {
        /// Where savepoints go.
        dir: Location,
        /// Stop the job after the savepoint, draining or not.
        stop: Option<crate::runtime::checkpoint::StopMode>,
        /// The savepoint's directory, or why there is none.
        reply: RpcReplyPort<crate::Result<Location>>,
    },
    /// A stop-with-savepoint completed (its directory): the job ends now.
    StoppedWithSavepoint(Location),
    /// Timer: redeploy after a failure (stamped with the failed attempt).
    Restart(u32),
    /// More checkpoints failed in a row than the job tolerates: fail over.
    CheckpointsFailed(String),
    /// The ResourceManager's answer to the slot request of `attempt`.
    Slots {
        /// The attempt that asked.
        attempt: u32,
        /// The slots, or why there are none.
        granted: Result<Vec<SlotGrant>, WeirError>,
    },
    /// The job's checkpoint statistics.
    CheckpointStats(RpcReplyPort<Option<CheckpointStats>>),
    /// The ResourceManager was restarted: tell the new one about this job's slots.
    ReconnectResourceManager,
    /// The job's CheckpointCoordinator, if it has one (fault injection and tests).
    Coordinator(RpcReplyPort<Option<ActorRef<CoordinatorMessage>>>),
}

// The TaskExecutor.

/// One subtask to run.
pub struct TaskDeployment {
    /// Which execution.
    pub execution: ExecutionId,
    /// The registered job name.
    pub job_name: String,
    /// The job builder when the JobMaster shares this process; otherwise the executor looks
    /// the job up by name in its own registry.
    pub builder: Option<JobFn>,
    /// The job's arguments.
    pub args: JobArgs,
    /// The job's default parallelism.
    pub parallelism: usize,
    /// The submitted plan's fingerprint.
    pub fingerprint: u64,
    /// The job's JobMaster.
    pub job_master: ActorRef<JobMasterMessage>,
    /// Counters the JobMaster reads.
    pub metrics: Arc<TaskMetrics>,
    /// Where every slot of the job is, by subtask index (slot sharing: subtask `i` of every
    /// vertex runs in slot `i`).
    pub slots: Arc<Vec<SlotLocation>>,
    /// Where the job's periodic checkpoints go (when it takes them).
    pub checkpoints: Option<CheckpointStorage>,
    /// The checkpoint or savepoint to restore from.
    pub restore: Option<Arc<RestoreFrom>>,
    /// Where the job's keyed state lives.
    pub state_backend: crate::base::state::StateBackend,
}

/// Messages of a TaskExecutor.
pub enum TaskExecutorMessage {
    /// Run a subtask.
    Deploy(Box<TaskDeployment>, RpcReplyPort<Result<()>>),
    /// Cancel a running subtask (it reports `Cancelled`).
    Cancel(ExecutionId),
    /// A job's slots here were freed: stop its subtasks and drop what this executor kept for it.
    ReleaseJob(JobId),
    /// The ResourceManager was restarted: register again, with a slot report.
    Reregister,
    /// Running subtasks.
    RunningTasks(RpcReplyPort<Vec<ExecutionId>>),
    /// A checkpoint message for a running subtask.
    Control(ExecutionId, TaskControl),
    /// Fault injection: kill the actor of subtask `index` of `vertex` of `job` (any attempt),
    /// as a crash would.
    KillSubtask {
        /// The job.
        job: JobId,
        /// The vertex.
        vertex: usize,
        /// The subtask.
        index: usize,
    },
}

// The ResourceManager.

/// A slot granted to a job.
#[derive(Debug, Clone)]
pub struct SlotGrant {
    /// The TaskManager holding the slot.
    pub task_manager: String,
    /// Where its data streams are accepted (`None`: in this process).
    pub data_addr: Option<std::net::SocketAddr>,
    /// Its TaskExecutor.
    pub executor: ActorRef<TaskExecutorMessage>,
}

/// Messages of the ResourceManager.
pub enum ResourceManagerMessage {
    /// A TaskExecutor offers its slots.
    Register {
        /// TaskManager id.
        task_manager: String,
        /// Slots offered.
        slots: usize,
        /// Where its data streams are accepted (`None`: in this process).
        data_addr: Option<std::net::SocketAddr>,
        /// The executor.
        executor: ActorRef<TaskExecutorMessage>,
        /// Slot report: the jobs that hold slots there, with how many (empty on a first
        /// registration).
        allocated: Vec<(JobId, usize)>,
        /// Ok, or why it was refused.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// A job asks for slots.
    RequestSlots {
        /// The job.
        job: JobId,
        /// How many.
        slots: usize,
        /// Its JobMaster, told if a TaskManager with its slots is lost.
        job_master: ActorRef<JobMasterMessage>,
        /// The job ran before (a failover, or its JobMaster was started again): wait for
        /// slots even when the cluster has too few in total right now.
        recovering: bool,
        /// The grants, or why not.
        reply: RpcReplyPort<Result<Vec<SlotGrant>, WeirError>>,
    },
    /// A job's slots are free again; executors still running its subtasks stop them.
    Release(JobId),
    /// A JobMaster holding slots reconnects (after this ResourceManager was restarted).
    Reconnect(JobId, ActorRef<JobMasterMessage>),
    /// The registered TaskManagers.
    TaskManagers(RpcReplyPort<Vec<TaskManagerInfo>>),
    /// A TaskManager's executor died: its slots are gone.
    TaskManagerLost(String),
    /// A TaskManager's process figures, with its heartbeat.
    TaskManagerProcess(String, crate::cluster::process_metrics::ProcessMetrics),
    /// A waiting request timed out.
    RequestTimedOut(u64),
    /// The settling period of a restarted ResourceManager is over.
    Settled,
}

// The Dispatcher.

/// Messages of the Dispatcher.
pub enum DispatcherMessage {
    /// Start a job.
    Submit(Box<PreparedJob>, RpcReplyPort<Result<JobId>>),
    /// All jobs.
    List(RpcReplyPort<Vec<JobOverview>>),
    /// One job's details.
    Details(JobId, RpcReplyPort<Result<JobDetails>>),
    /// Answer when the job has ended.
    Wait(JobId, RpcReplyPort<Result<JobResult>>),
    /// Cancel a job.
    Cancel(JobId, RpcReplyPort<Result<()>>),
    /// A JobMaster reports its job's end.
    Terminated(Box<JobResult>),
    /// A running job's checkpoint and savepoint statistics (`None`: it ended).
    CheckpointStats(JobId, RpcReplyPort<Option<CheckpointStats>>),
    /// The ResourceManager was restarted: every JobMaster reconnects.
    ResourceManagerRestarted,
    /// A running job's JobMaster (fault injection and tests).
    JobMaster(JobId, RpcReplyPort<Option<ActorRef<JobMasterMessage>>>),
    /// Take a savepoint of a running job into a directory under `dir` (stopping it after,
    /// if `stop`); the reply is the savepoint's directory.
    TriggerSavepoint {
        /// The job.
        job: JobId,
        /// Where savepoints go.
        dir: Location,
        /// Stop the job after the savepoint, draining or not.
        stop: Option<crate::runtime::checkpoint::StopMode>,
        /// The savepoint's directory, or why there is none.
        reply: RpcReplyPort<Result<Location>>,
    },
}

// The CheckpointCoordinator.

/// A deployed subtask, as the coordinator addresses it.
#[derive(Clone)]
pub struct CoordinatedTask {
    /// The execution.
    pub execution: ExecutionId,
    /// Its TaskExecutor.
    pub executor: ActorRef<TaskExecutorMessage>,
    /// Whether its chain starts at a source (barriers are injected there).
    pub source: bool,
}

/// Messages of the coordinator.
pub enum CoordinatorMessage {
    /// The job (re)deployed: these are its subtasks now.
    Deployed(Vec<CoordinatedTask>),
    /// Failover: abort what is in flight and trigger nothing until redeployed.
    Suspend,
    /// A subtask ended (it takes part in no further checkpoint).
    Finished(ExecutionId),
    /// A subtask's acknowledgement or end-of-input report.
    Event(ExecutionId, CheckpointEvent),
    /// Timer: trigger the next checkpoint (generation-stamped).
    Trigger(u64),
    /// Timer: checkpoint `n` took too long.
    Timeout(u64),
    /// Take a savepoint into a directory under `dir`; with `stop`, end the job after it.
    /// The reply is the savepoint's directory, or why there is none.
    TriggerSavepoint {
        /// Where savepoints go.
        dir: Location,
        /// Stop the job after the savepoint, draining or not.
        stop: Option<StopMode>,
        /// The savepoint's directory once it completed.
        reply: RpcReplyPort<Result<Location>>,
    },
    /// Statistics for the REST API and tests.
    Stats(RpcReplyPort<CheckpointStats>),
}

/// One checkpoint as the statistics show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// `COMPLETED` or `FAILED`.
    pub status: String,
    /// From trigger to completion (or abort).
    pub duration_ms: u64,
    /// Bytes of state.
    pub bytes: u64,
    /// The longest barrier alignment of any subtask.
    pub alignment_ms: u64,
    /// The longest synchronous part of any subtask's snapshot, on its processing loop (µs).
    pub sync_us: u64,
    /// The longest asynchronous part of any subtask's snapshot, off its loop (µs).
    pub async_us: u64,
    /// Why it failed.
    pub failure: Option<String>,
    /// A savepoint's directory (`None` for a checkpoint).
    pub savepoint: Option<Location>,
}

/// Checkpoint statistics of a job.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CheckpointStats {
    /// Completed checkpoints.
    pub completed: u64,
    /// Aborted checkpoints.
    pub failed: u64,
    /// The one in flight.
    pub in_progress: Option<u64>,
    /// The latest completed.
    pub latest_completed: Option<CheckpointRecord>,
    /// Recent checkpoints, newest last.
    pub history: Vec<CheckpointRecord>,
    /// The checkpoint the job last restored from.
    pub restored_from: Option<u64>,
}
