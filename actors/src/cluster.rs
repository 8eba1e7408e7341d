//! The runtime's actors and the types their messages carry.
//!
//! ```text
//! JobManagerSupervisor
//! ├─ ResourceManager     registered TaskExecutors and their slots
//! └─ Dispatcher          job submissions; one JobMaster per job
//!    └─ JobMaster(job)   scheduling, deployment, task states, the job's status
//! TaskManagerSupervisor (one per node)
//! └─ TaskExecutor        offers slots, runs deployments
//!    └─ Subtask(job, vertex, index, attempt)   one operator chain's processing loop
//! ```
//!
//! Every actor with children overrides `handle_supervisor_evt` and documents what it does
//! when each child fails under `## Supervision`. Actor mailboxes carry control only: records
//! travel on bounded data-plane channels, batch by batch.

pub mod checkpoint_coordinator;
pub mod checkpoint_ids;
pub mod dispatcher;
pub mod fault_injection;
pub mod job_master;
pub mod job_store;
pub mod messages;
pub mod mini_cluster;
pub mod process_metrics;
pub mod remote;
pub mod resource_manager;
pub mod rest;
pub mod subtask;
pub mod supervisor;
pub mod task_executor;

use std::time::Duration;

use crate::base::ids::JobId;
use crate::base::metrics::TaskMetricsSnapshot;
use crate::runtime::job_graph::JobGraph;

/// The status of a job, as Flink's `JobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JobStatus {
    /// Accepted; slots are being requested.
    Created,
    /// Deployed and processing.
    Running,
    /// A task failed; the others are being cancelled.
    Failing,
    /// Ended with an error.
    Failed,
    /// Cancellation requested; tasks are being cancelled.
    Cancelling,
    /// Cancelled by request.
    Cancelled,
    /// A failure is being recovered: subtasks are cancelled, then redeployed from the latest
    /// checkpoint.
    Restarting,
    /// All input processed and all output written.
    Finished,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Cancelled | JobStatus::Finished)
    }

    /// The status in Flink's upper-case spelling (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Cancelled => "CANCELED",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Finished => "FINISHED",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one subtask's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaskState {
    /// Sent to its TaskExecutor.
    Deploying,
    /// Its processing loop runs.
    Running,
    /// Ended after all its input.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by request.
    Cancelled,
}

impl TaskState {
    /// Whether the execution has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Cancelled)
    }

    /// The state in Flink's upper-case spelling of `ExecutionState` (`RUNNING`, `CANCELED`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Deploying => "DEPLOYING",
            TaskState::Running => "RUNNING",
            TaskState::Finished => "FINISHED",
            TaskState::Failed => "FAILED",
            TaskState::Cancelled => "CANCELED",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an execution failed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The error, as text.
    pub message: String,
    /// Only a consequence of a failure elsewhere (a neighbour's channel closed).
    pub secondary: bool,
    /// Where it comes from: the job's own code (an operator's error or panic), outside, or
    /// Weir; the JobMaster's restart decision reads it.
    pub domain: crate::base::error::ErrorDomain,
    /// Whether a restart could fix it at all.
    pub recoverable: bool,
}

impl Failure {
    /// The failure an execution's error makes.
    pub fn of(error: &crate::base::error::WeirError) -> Self {
        Failure {
            message: error.to_string(),
            secondary: error.is_secondary(),
            domain: error.domain(),
            recoverable: error.is_recoverable(),
        }
    }

    /// A failure of Weir's own (a lost process, a killed actor): a restart may fix it.
    pub fn internal(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            secondary: false,
            domain: crate::base::error::ErrorDomain::Internal,
            recoverable: true,
        }
    }
}

/// Identifies one execution of one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ExecutionId {
    /// The job.
    pub job: JobId,
    /// The vertex index.
    pub vertex: usize,
    /// The subtask index.
    pub index: usize,
    /// The attempt; messages of other attempts are stale and ignored.
    pub attempt: u32,
}

/// One subtask, as job details show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SubtaskDetails {
    /// Subtask index.
    pub index: usize,
    /// Execution state.
    pub state: TaskState,
    /// The TaskManager running it.
    pub task_manager: String,
    /// Its counters.
    pub metrics: TaskMetricsSnapshot,
}

/// One vertex, as job details show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VertexDetails {
    /// Vertex index.
    pub id: usize,
    /// The chain's name.
    pub name: String,
    /// Parallelism.
    pub parallelism: usize,
    /// Its subtasks.
    pub subtasks: Vec<SubtaskDetails>,
}

/// A job's state in full.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobDetails {
    /// The job.
    pub id: JobId,
    /// Its registered name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// Why it failed, if it did.
    pub cause: Option<String>,
    /// Time since submission (or until it ended).
    pub duration: Duration,
    /// Its plan.
    pub graph: JobGraph,
    /// Per vertex, per subtask state.
    pub vertices: Vec<VertexDetails>,
    /// From submission to the first record any subtask handled.
    pub first_record_after: Option<Duration>,
    /// From submission to the last subtask's end of input.
    pub input_ended_after: Option<Duration>,
    /// Restarts after failures so far.
    pub restarts: u32,
    /// What a failure does, as `weir status` shows it.
    #[serde(default)]
    pub restart_strategy: String,
    /// The checkpoint the job last restored from.
    pub restored_from: Option<u64>,
    /// Every checkpoint (or savepoint) the job restored from, oldest first, over all its
    /// JobMasters.
    pub restored: Vec<u64>,
    /// Failures, oldest first.
    pub exceptions: Vec<ExceptionRecord>,
}

/// A failure in a job's history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExceptionRecord {
    /// When (epoch ms).
    pub time_ms: i64,
    /// The attempt that failed.
    pub attempt: u32,
    /// What happened.
    pub cause: String,
}

impl JobDetails {
    /// Records read by the job's sources.
    pub fn source_records(&self) -> u64 {
        self.vertices
            .iter()
            .filter(|v| self.graph.vertices[v.id].operators[0].kind == crate::runtime::job_graph::NodeKind::Source)
            .flat_map(|v| &v.subtasks)
            .map(|s| s.metrics.records_in)
            .sum()
    }

    /// Records written by all subtasks to channels.
    pub fn records_out(&self) -> u64 {
        self.vertices.iter().flat_map(|v| &v.subtasks).map(|s| s.metrics.records_out).sum()
    }
}

/// A job in a listing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobOverview {
    /// The job.
    pub id: JobId,
    /// Its registered name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// Why it failed, if it did.
    pub cause: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobResult {
    /// The job's final details.
    pub details: JobDetails,
}

impl JobResult {
    /// The final status.
    pub fn status(&self) -> JobStatus {
        self.details.status
    }

    /// Ok if the job finished; otherwise an error with its cause.
    pub fn into_result(self) -> crate::Result<JobResult> {
        match self.details.status {
            JobStatus::Finished => Ok(self),
            status => Err(crate::WeirError::runtime(format!(
                "job '{}' ({}) {}: {}",
                self.details.name,
                self.details.id,
                status.as_str().to_lowercase(),
                self.details.cause.as_deref().unwrap_or("no cause recorded")
            ))),
        }
    }
}

/// A TaskManager as the ResourceManager sees it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskManagerInfo {
    /// Its id.
    pub id: String,
    /// Slots it offers.
    pub slots: usize,
    /// Slots not allocated to a job.
    pub free_slots: usize,
    /// Its process's figures, as its latest heartbeat reported them (`None`: in this process,
    /// or none yet).
    #[serde(default)]
    pub process: Option<process_metrics::ProcessMetrics>,
}

/// How long a caller of a JobManager component (the Dispatcher, the ResourceManager) waits
/// for its successor when it dies before answering (see [`ComponentRef::call_surviving`]).
pub(crate) const COMPONENT_RESTART_WAIT: Duration = Duration::from_secs(10);

/// The address of a control-plane component (Dispatcher, ResourceManager) that its supervisor
/// restarts: every holder reaches the current incarnation, and can watch for a new one.
///
/// A restarted actor has a new [`ActorRef`](ractor::ActorRef), so components never keep a bare
/// one to each other: they keep this, and read it at each use. Between a component's death
/// and its successor's start, the old reference answers nothing; callers see that as the
/// component not answering, as they would a slow one, and retry or fail over.
pub struct ComponentRef<M>(std::sync::Arc<tokio::sync::watch::Sender<ractor::ActorRef<M>>>);

impl<M> Clone for ComponentRef<M> {
    fn clone(&self) -> Self {
        ComponentRef(self.0.clone())
    }
}

impl<M: ractor::Message> ComponentRef<M> {
    /// An address whose first incarnation is `actor`.
    pub fn new(actor: ractor::ActorRef<M>) -> Self {
        ComponentRef(std::sync::Arc::new(tokio::sync::watch::Sender::new(actor)))
    }

    /// The current incarnation.
    pub fn get(&self) -> ractor::ActorRef<M> {
        self.0.borrow().clone()
    }

    /// Casts to the current incarnation; a message to a dead one is dropped.
    pub fn cast(&self, message: M) {
        let _ = self.get().cast(message);
    }

    /// Points every holder at a new incarnation.
    pub(crate) fn replace(&self, actor: ractor::ActorRef<M>) {
        self.0.send_replace(actor);
    }

    /// Changes to the incarnation, from now on.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<ractor::ActorRef<M>> {
        self.0.subscribe()
    }

    /// Asks the current incarnation; if it dies before answering, asks its successor, waiting
    /// up to `restart_wait` for it (for questions a successor answers the same, as a restarted
    /// Dispatcher does: it recovers every job). A live incarnation that does not answer gives
    /// an error at once: that is its answer.
    pub async fn call_surviving<R, F>(
        &self,
        what: &str,
        restart_wait: Duration,
        message: F,
    ) -> crate::base::error::Result<R>
    where
        R: Send + 'static,
        F: Fn(ractor::RpcReplyPort<R>) -> M,
    {
        loop {
            let mut incarnations = self.watch();
            let current = self.get();
            let failed = match current.call(&message, None).await {
                Ok(ractor::rpc::CallResult::Success(reply)) => return Ok(reply),
                Ok(_) => "no reply".to_owned(),
                Err(e) => e.to_string(),
            };
            let dead = current.get_status() >= ractor::ActorStatus::Stopping;
            let restarted = dead
                && tokio::time::timeout(restart_wait, async {
                    while incarnations.borrow_and_update().get_id() == current.get_id() {
                        if incarnations.changed().await.is_err() {
                            return false;
                        }
                    }
                    true
                })
                .await
                .unwrap_or(false);
            if !restarted {
                return Err(call_failed(what, failed));
            }
        }
    }
}

impl<M> std::fmt::Debug for ComponentRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentRef({:?})", self.0.borrow().get_id())
    }
}

/// How a supervised child ended, as its supervisor sees it.
pub(crate) enum ChildEnd {
    /// It failed or was killed: it reported nothing, and its supervisor must act (the
    /// text says which, with the error).
    Crashed(ractor::ActorCell, String),
    /// It stopped by itself or by request, with this reason.
    Stopped(ractor::ActorCell, Option<String>),
}

/// Classifies a supervision event. A killed actor (ractor's `kill`) arrives as a termination
/// whose reason is `"killed"`, with no `post_stop` run: it counts as a crash.
pub(crate) fn child_end(event: ractor::SupervisionEvent) -> Option<ChildEnd> {
    match event {
        ractor::SupervisionEvent::ActorFailed(cell, err) => Some(ChildEnd::Crashed(cell, err.to_string())),
        ractor::SupervisionEvent::ActorTerminated(cell, _, Some(reason)) if reason == "killed" => {
            Some(ChildEnd::Crashed(cell, reason))
        }
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => Some(ChildEnd::Stopped(cell, reason)),
        _ => None,
    }
}

/// Turns a reply that did not arrive into an error naming the actor.
pub(crate) fn call_failed(actor: &str, detail: impl std::fmt::Display) -> crate::WeirError {
    crate::WeirError::runtime(format!("{actor} did not answer: {detail}"))
}

/// Calls an actor and unwraps the reply, naming the actor on failure.
macro_rules! ask {
    ($actor:expr, $name:expr, $msg:expr) => {
        match $actor.call($msg, None).await {
            Ok(ractor::rpc::CallResult::Success(reply)) => Ok(reply),
            Ok(other) => Err($crate::cluster::call_failed($name, format!("{other:?}"))),
            Err(e) => Err($crate::cluster::call_failed($name, e)),
        }
    };
}
pub(crate) use ask;
