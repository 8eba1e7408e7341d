//! The control protocol: versioned postcard messages on one bidirectional stream per
//! connection (`weir_dataplane::encode_message` puts the version in front of each).
//!
//! A connection starts with the opener's [`Hello`]: a TaskManager presents itself (and is
//! accepted or refused with [`ToTaskManager::Welcome`]), a client just says who it is. After
//! that a TaskManager sends [`FromTaskManager`] and receives [`ToTaskManager`]; a client sends
//! [`ClientRequest`]s and gets one [`ClientResponse`] each, in order.

use std::net::SocketAddr;

use crate::api::job::JobConfig;
use crate::api::job_args::JobArgs;
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetricsSnapshot;
use crate::cluster::fault_injection::Kill;
use crate::cluster::process_metrics::ProcessMetrics;
use crate::cluster::{ExecutionId, Failure, JobDetails, JobOverview, TaskManagerInfo, TaskState};
use crate::runtime::checkpoint::storage::CheckpointStorage;
use crate::runtime::checkpoint::{CheckpointEvent, RestoreFrom, StopMode, TaskControl};
use crate::runtime::job_graph::JobGraph;
use crate::runtime::slot::SlotLocation;

/// The first message on a connection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Hello {
    /// A TaskManager joins the cluster.
    TaskManager(TaskManagerHello),
    /// A client (the CLI) connects.
    Client,
}

/// Who a TaskManager is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskManagerHello {
    /// Its id, unique in the cluster.
    pub task_manager: String,
    /// Where it accepts data streams from other TaskManagers.
    pub data_addr: SocketAddr,
    /// The fingerprint of the jobs its binary carries: nodes must run the same build.
    pub registry_fingerprint: u64,
    /// Its Weir version.
    pub version: String,
}

/// A TaskExecutor's offer of slots (repeated when the executor restarts).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SlotOffer {
    /// How many slots.
    pub slots: usize,
    /// Slot report: the jobs holding slots there, with how many (re-registrations).
    pub allocated: Vec<(JobId, usize)>,
}

/// TaskManager → JobManager.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum FromTaskManager {
    /// The TaskExecutor registers its slots.
    Register(SlotOffer),
    /// The TaskExecutor died; its slots and subtasks are gone (a new one will register).
    ExecutorLost,
    /// Alive, with the counters of its subtasks and its process's figures.
    Heartbeat(Vec<(ExecutionId, TaskMetricsSnapshot)>, ProcessMetrics),
    /// The result of a deployment.
    Deployed {
        /// The request it answers.
        request: u64,
        /// Ok, or why it could not run.
        result: Result<(), String>,
    },
    /// A subtask's state changed.
    TaskState {
        /// Which execution.
        execution: ExecutionId,
        /// Its new state.
        state: TaskState,
        /// Why it failed.
        cause: Option<Failure>,
        /// Its counters as it ended (sent with terminal states, so a job's final figures do
        /// not wait for the next heartbeat).
        metrics: Option<TaskMetricsSnapshot>,
    },
    /// The subtasks running there.
    RunningTasks {
        /// The request it answers.
        request: u64,
        /// The executions.
        tasks: Vec<ExecutionId>,
    },
    /// A subtask stored its state for a checkpoint, or its input ended.
    Checkpoint(ExecutionId, CheckpointEvent),
}

/// JobManager → TaskManager.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ToTaskManager {
    /// The answer to [`Hello::TaskManager`]: accepted, or refused with the reason.
    Welcome(Result<(), String>),
    /// The answer to [`FromTaskManager::Register`].
    Registered(Result<(), String>),
    /// Run a subtask.
    Deploy {
        /// Answered by [`FromTaskManager::Deployed`].
        request: u64,
        /// What to run.
        deployment: Box<WireDeployment>,
    },
    /// Cancel a subtask.
    Cancel(ExecutionId),
    /// A job ended.
    ReleaseJob(JobId),
    /// Which subtasks run there.
    RunningTasks {
        /// Answered by [`FromTaskManager::RunningTasks`].
        request: u64,
    },
    /// The JobManager is alive.
    HeartbeatAck,
    /// A checkpoint message for a running subtask.
    Control(ExecutionId, TaskControl),
    /// The ResourceManager was restarted: register again, with a slot report.
    Reregister,
    /// Fault injection: cut every data connection to other TaskManagers (obeyed only by a
    /// TaskManager with fault injection on).
    CutDataConnections,
    /// Fault injection: kill a subtask's actor or the TaskExecutor actor there (obeyed only by
    /// a TaskManager with fault injection on).
    Kill(Kill),
}

/// A deployment as it travels: the job by name (the TaskManager's binary carries the
/// builder), its arguments and the fingerprint of the plan it must rebuild.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireDeployment {
    /// Which execution.
    pub execution: ExecutionId,
    /// The registered job name.
    pub job_name: String,
    /// Its arguments.
    pub args: JobArgs,
    /// Default parallelism.
    pub parallelism: usize,
    /// The submitted plan's fingerprint.
    pub fingerprint: u64,
    /// Where every slot of the job is.
    pub slots: Vec<SlotLocation>,
    /// Where the job's checkpoints go.
    pub checkpoints: Option<CheckpointStorage>,
    /// The checkpoint to restore from.
    pub restore: Option<RestoreFrom>,
    /// Where the job's keyed state lives.
    pub state_backend: crate::base::state::StateBackend,
}

/// Client → JobManager.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ClientRequest {
    /// Run a registered job; the plan was built (and its inputs checked) by the client.
    Submit {
        /// The registered name.
        job: String,
        /// Its arguments.
        args: JobArgs,
        /// Default parallelism.
        parallelism: usize,
        /// The client's plan.
        graph: Box<JobGraph>,
        /// Checkpoints and restarts.
        config: Box<JobConfig>,
    },
    /// All jobs.
    List,
    /// One job.
    Details(JobId),
    /// Cancel a job.
    Cancel(JobId),
    /// The cluster: TaskManagers, jobs, refused connections.
    Overview,
    /// Take a savepoint of a job into a directory under `dir` (a path the JobManager and
    /// every TaskManager reach), stopping the job after it if `stop`.
    TriggerSavepoint {
        /// The job.
        job: JobId,
        /// Where savepoints go.
        dir: weir_state::storage::Location,
        /// Stop the job after the savepoint, draining or not.
        stop: Option<StopMode>,
    },
    /// Fault injection (tests and chaos runs): cut connections, as a network failure would.
    /// Refused unless the JobManager runs with fault injection on.
    CutConnections(CutConnections),
    /// Fault injection (tests and chaos runs): kill an actor, as a crash would. Refused
    /// unless the JobManager runs with fault injection on.
    Kill(Kill),
}

/// Which connections a fault-injection cut closes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CutConnections {
    /// Control or data connections.
    pub kind: ConnectionKind,
    /// Only this TaskManager's (`None`: every TaskManager's).
    pub task_manager: Option<String>,
}

/// The two kinds of connections between the processes of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConnectionKind {
    /// A TaskManager's control connection to the JobManager: cutting it loses the TaskManager
    /// (its jobs fail over) until it reconnects.
    Control,
    /// A TaskManager's data connections to other TaskManagers: cutting them fails the
    /// channels on them (their jobs fail over); new channels dial again.
    Data,
}

/// JobManager → client, one per request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ClientResponse {
    /// The submitted job's id, or why it was refused.
    Submitted(Result<JobId, String>),
    /// All jobs.
    Jobs(Vec<JobOverview>),
    /// One job, or why not.
    Details(Result<Box<JobDetails>, String>),
    /// Cancellation requested, or why not.
    Cancelled(Result<(), String>),
    /// The cluster.
    Overview(ClusterOverview),
    /// The savepoint's directory, or why there is none.
    Savepoint(Result<weir_state::storage::Location, String>),
    /// How many TaskManagers' connections were cut, or why not.
    ConnectionsCut(Result<usize, String>),
    /// The actor was killed, or why not.
    Killed(Result<(), String>),
}

/// What a client sees of the cluster.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ClusterOverview {
    /// Registered TaskManagers.
    pub task_managers: Vec<TaskManagerInfo>,
    /// All jobs.
    pub jobs: Vec<JobOverview>,
    /// Recent connections the JobManager refused, with the reason (newest last).
    pub refused: Vec<String>,
}
