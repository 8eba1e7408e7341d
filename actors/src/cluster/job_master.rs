//! The JobMaster: one per job. It requests slots, deploys every subtask, tracks their states,
//! and moves the job through its statuses (created, running, finished / failing → failed /
//! cancelling → cancelled).
//!
//! Scheduling uses slot sharing as Flink: subtask `i` of every vertex goes to slot `i`, so a
//! job needs as many slots as its highest parallelism, and slots are spread over TaskManagers.
//!
//! A failure (a subtask failed, a TaskManager was lost) is handled by the job's restart
//! strategy. While it allows, the job goes `RESTARTING`: checkpoints are suspended, every
//! subtask is cancelled, and once all have stopped the job is redeployed (new attempt, slots
//! requested again) from the latest completed checkpoint that reads back whole. Attempt
//! numbers fence messages and channels of older executions. When the strategy is exhausted,
//! the job fails with the last cause.
//!
//! A job started from a savepoint restores it at its first deployment, and falls back to it
//! on a failover while it has no checkpoint of its own. Once a stop-with-savepoint completed,
//! a failure does not restart the job (its state is in the savepoint, and a restart from an
//! older checkpoint would replay what the savepoint committed): the job fails, naming the
//! savepoint.
//!
//! A JobMaster that is started again (by its Dispatcher, after it failed or was killed, or in
//! a restarted JobManager) runs a new generation: its attempt numbers start at
//! [`first_attempt`]`(generation)`, above every attempt of its predecessors, and before it
//! schedules it frees the job's slots, which stops whatever subtasks its predecessor left
//! running. It then deploys from the latest completed checkpoint, as a failover does.
//!
//! ## Supervision
//!
//! Child: the job's CheckpointCoordinator (every job has one: savepoints need it). If it
//! fails or is killed, it is started again; it goes on with the job's checkpoint ids, which
//! the JobMaster keeps (so no id in flight is issued again, see [`CheckpointIds`]), and is told
//! the current deployment, so at most the checkpoint in flight is lost.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::base::error::{ErrorDomain, WeirError};
use crate::base::metrics::TaskMetrics;
use crate::cluster::checkpoint_coordinator::{CheckpointCoordinator, CoordinatorArgs};
use crate::cluster::checkpoint_ids::CheckpointIds;
use crate::cluster::job_store::{EXCEPTIONS_KEPT, JobHistory, JobStore, first_attempt};
use crate::cluster::messages::{
    CoordinatedTask, CoordinatorMessage, DispatcherMessage, JobMasterMessage, PreparedJob, ResourceManagerMessage,
    SlotGrant, TaskDeployment, TaskExecutorMessage,
};
use crate::cluster::{
    COMPONENT_RESTART_WAIT, ChildEnd, ComponentRef, ExceptionRecord, ExecutionId, Failure, JobDetails, JobResult,
    JobStatus, SubtaskDetails, TaskState, VertexDetails, ask, child_end,
};
use crate::runtime::checkpoint::RestoreFrom;
use crate::runtime::checkpoint::storage::CheckpointStorage;
use crate::runtime::job_graph::NodeKind;
use crate::runtime::slot::SlotLocation;

/// How often an error of the job's own code may come back from the same checkpoint before
/// the job fails instead of restarting again.
pub const USER_ERROR_RESTARTS: u32 = 3;

/// A failure of the job's own code that came back after restarts.
struct RepeatedFailure {
    /// Its cause, naming the subtask.
    cause: String,
    /// The checkpoint the job restored from before it (none: the start).
    from: Option<u64>,
    count: u32,
}

/// What a JobMaster starts with.
pub struct JobMasterArgs {
    /// The job.
    pub job: PreparedJob,
    /// Where slots come from.
    pub resource_manager: ComponentRef<ResourceManagerMessage>,
    /// Who is told when the job ends.
    pub dispatcher: ActorRef<DispatcherMessage>,
    /// Starts of this job's JobMaster so far, this one included (from the job store).
    pub generation: u32,
    /// Why this is not the job's first JobMaster (`None`: it is).
    pub recovered: Option<String>,
    /// The job store, which keeps the job's failure history across JobMasters.
    pub store: Arc<JobStore>,
}

struct Task {
    state: TaskState,
    slot: usize,
    metrics: Arc<TaskMetrics>,
}

/// A JobMaster's state.
pub struct JobMasterState {
    job: PreparedJob,
    resource_manager: ComponentRef<ResourceManagerMessage>,
    dispatcher: ActorRef<DispatcherMessage>,
    /// Set until the first scheduling: free what a predecessor held first.
    recovered: Option<String>,
    store: Arc<JobStore>,
    /// Starts of this job's JobMaster so far, this one included.
    generation: u32,
    status: JobStatus,
    cause: Option<String>,
    /// The recorded cause is only a consequence; a root cause replaces it.
    cause_secondary: bool,
    started: Instant,
    /// Submission time on the processing-time clock (epoch ms), for task timings.
    started_ms: i64,
    ended: Option<Instant>,
    attempt: u32,
    slots: Vec<SlotGrant>,
    tasks: HashMap<(usize, usize), Task>,
    /// The job's checkpoints (when it takes them) and its coordinator.
    storage: Option<CheckpointStorage>,
    coordinator: Option<ActorRef<CoordinatorMessage>>,
    /// The job's checkpoint ids, for every coordinator this JobMaster starts.
    ids: Option<CheckpointIds>,
    restored_from: Option<u64>,
    /// The savepoint the job started from.
    savepoint: Option<Arc<RestoreFrom>>,
    /// A stop-with-savepoint completed: no more restarts.
    stopped_with: Option<weir_state::storage::Location>,
    /// Restarts, failures and restores so far (over all the job's JobMasters), and when each
    /// failure of this JobMaster's happened.
    history: JobHistory,
    failures: Vec<Instant>,
    /// The latest failure of the job's own code, and how often it came back in a row.
    repeated: Option<RepeatedFailure>,
    restart_scheduled: bool,
    /// Slots were requested for the current attempt and have not arrived yet.
    awaiting_slots: bool,
    restart_delay: std::time::Duration,
}

impl JobMasterState {
    fn details(&self) -> JobDetails {
        let vertices = self
            .job
            .graph
            .vertices
            .iter()
            .map(|v| VertexDetails {
                id: v.id,
                name: v.name.clone(),
                parallelism: v.parallelism,
                subtasks: (0..v.parallelism)
                    .map(|i| match self.tasks.get(&(v.id, i)) {
                        Some(t) => SubtaskDetails {
                            index: i,
                            state: t.state,
                            task_manager: self.slots.get(t.slot).map(|s| s.task_manager.clone()).unwrap_or_default(),
                            metrics: t.metrics.snapshot(),
                        },
                        None => SubtaskDetails {
                            index: i,
                            state: TaskState::Deploying,
                            task_manager: String::new(),
                            metrics: Default::default(),
                        },
                    })
                    .collect(),
            })
            .collect();
        let snapshots: Vec<_> = self.tasks.values().map(|t| t.metrics.snapshot()).collect();
        let since = |ms: i64| std::time::Duration::from_millis(ms.saturating_sub(self.started_ms).max(0) as u64);
        let first_record_after = snapshots.iter().filter_map(|s| s.first_record_ms).min().map(since);
        let all_finished =
            self.tasks.len() == self.job.graph.subtask_count() && snapshots.iter().all(|s| s.finished_ms.is_some());
        let input_ended_after =
            if all_finished { snapshots.iter().filter_map(|s| s.finished_ms).max().map(since) } else { None };
        JobDetails {
            restarts: self.history.restarts,
            restart_strategy: format!(
                "{}; an error of the job's own code that comes back {USER_ERROR_RESTARTS} times from the same \
                 checkpoint is not restarted again",
                self.job.config.restart
            ),
            restored_from: self.restored_from,
            restored: self.history.restored.clone(),
            exceptions: self.history.exceptions.clone(),
            first_record_after,
            input_ended_after,
            id: self.job.id,
            name: self.job.name.clone(),
            status: self.status,
            cause: self.cause.clone(),
            duration: self.ended.unwrap_or_else(Instant::now) - self.started,
            graph: self.job.graph.clone(),
            vertices,
        }
    }

    fn execution(&self, vertex: usize, index: usize) -> ExecutionId {
        ExecutionId { job: self.job.id, vertex, index, attempt: self.attempt }
    }

    /// Starts failing (or cancelling): cancel every task that still runs.
    fn stop_tasks(&mut self, status: JobStatus, cause: Option<String>) {
        if self.status.is_terminal() || matches!(self.status, JobStatus::Failing | JobStatus::Cancelling) {
            return;
        }
        self.status = status;
        if self.cause.is_none() {
            self.cause = cause;
        }
        self.cancel_tasks();
    }

    fn cancel_tasks(&self) {
        for (&(vertex, index), task) in &self.tasks {
            if !task.state.is_terminal()
                && let Some(slot) = self.slots.get(task.slot)
            {
                let _ = slot.executor.cast(TaskExecutorMessage::Cancel(self.execution(vertex, index)));
            }
        }
    }

    /// Adds a failure to the job's history, durably.
    fn record_exception(&mut self, cause: String) {
        let record = ExceptionRecord { time_ms: crate::base::time::wall_clock_ms(), attempt: self.attempt, cause };
        self.history.exceptions.push(record);
        let excess = self.history.exceptions.len().saturating_sub(EXCEPTIONS_KEPT);
        self.history.exceptions.drain(..excess);
        self.store.record_history(self.job.id, &self.history);
    }

    /// A failure of Weir's own (a lost TaskManager, a refused deployment, checkpoints failing).
    fn fail(&mut self, cause: String, secondary: bool) {
        self.fail_as(cause, &Failure { secondary, ..Failure::internal(String::new()) });
    }

    /// Fails the job over, or fails it: the restart strategy decides, unless no restart can
    /// help (see [`restart_refused`](Self::restart_refused)). `cause` names the subtask;
    /// `failure` says what kind of failure it is.
    fn fail_as(&mut self, cause: String, failure: &Failure) {
        let secondary = failure.secondary;
        if !secondary || self.history.exceptions.is_empty() {
            self.record_exception(cause.clone());
        }
        if self.status == JobStatus::Restarting {
            return; // the restart already under way covers this one (a consequence, mostly)
        }
        if let Some(savepoint) = &self.stopped_with {
            let cause =
                format!("{cause} (after the job stopped with savepoint '{}', which holds its state)", savepoint);
            return self.stop_tasks(JobStatus::Failing, Some(cause));
        }
        let refused = if self.status == JobStatus::Running { self.restart_refused(&cause, failure) } else { None };
        let cause = match refused {
            Some(ref why) => format!("{cause} ({why})"),
            None => cause,
        };
        if self.status == JobStatus::Running && refused.is_none() {
            let now = Instant::now();
            self.failures.push(now);
            let ago: Vec<_> = self.failures.iter().map(|t| now - *t).collect();
            if let Some(delay) = self.job.config.restart.next_delay(self.history.restarts, &ago) {
                warn!(job = %self.job.id, name = %self.job.name, %cause, ?delay, "job restarting");
                self.status = JobStatus::Restarting;
                self.cause = Some(cause);
                self.cause_secondary = secondary;
                self.restart_delay = delay;
                if let Some(coordinator) = &self.coordinator {
                    let _ = coordinator.cast(CoordinatorMessage::Suspend);
                }
                self.cancel_tasks();
                return;
            }
        }
        error!(job = %self.job.id, name = %self.job.name, %cause, "job failing");
        if refused.is_some() || (self.cause_secondary && !secondary) {
            self.cause = Some(cause.clone());
            self.cause_secondary = false;
        } else if self.cause.is_none() {
            self.cause_secondary = secondary;
        }
        self.stop_tasks(JobStatus::Failing, Some(cause));
    }

    /// Why no restart can help, if none can: the failure is not recoverable (its cause is in
    /// what the job restores), or the same error of the job's own code came back more than
    /// [`USER_ERROR_RESTARTS`] times from the same checkpoint, with no checkpoint completed in
    /// between (a record that always fails the same operator: Flink restarts such a job for
    /// ever; Weir fails it and says why).
    fn restart_refused(&mut self, cause: &str, failure: &Failure) -> Option<String> {
        if !failure.recoverable {
            return Some("a restart cannot fix this".into());
        }
        if failure.secondary || failure.domain != ErrorDomain::User {
            return None;
        }
        let from = self.history.restored.last().copied();
        let count = match &mut self.repeated {
            Some(r) if r.cause == cause && r.from == from => {
                r.count += 1;
                r.count
            }
            _ => {
                self.repeated = Some(RepeatedFailure { cause: cause.to_owned(), from, count: 1 });
                1
            }
        };
        let from = from.map_or_else(|| "the start".to_owned(), |n| format!("checkpoint {n}"));
        (count > USER_ERROR_RESTARTS).then(|| {
            format!("the same error of the job's code after {USER_ERROR_RESTARTS} restarts from {from}: restarting does not fix it")
        })
    }

    /// Ends the job when every task has ended.
    fn maybe_end(&mut self, myself: &ActorRef<JobMasterMessage>) {
        let all = self.job.graph.subtask_count();
        let deployed_all = self.tasks.len() == all;
        let ended = self.tasks.values().filter(|t| t.state.is_terminal()).count();
        let final_status = match self.status {
            JobStatus::Running if deployed_all && self.tasks.values().all(|t| t.state == TaskState::Finished) => {
                JobStatus::Finished
            }
            JobStatus::Failing if ended == self.tasks.len() => JobStatus::Failed,
            JobStatus::Cancelling if ended == self.tasks.len() => JobStatus::Cancelled,
            JobStatus::Created if self.tasks.is_empty() && self.cause.is_some() => JobStatus::Failed,
            JobStatus::Restarting if ended == self.tasks.len() && !self.restart_scheduled && !self.awaiting_slots => {
                self.restart_scheduled = true;
                let attempt = self.attempt;
                myself.send_after(self.restart_delay, move || JobMasterMessage::Restart(attempt));
                return;
            }
            _ => return,
        };
        self.status = final_status;
        self.ended = Some(Instant::now());
        info!(job = %self.job.id, name = %self.job.name, status = %final_status, "job ended");
        self.resource_manager.cast(ResourceManagerMessage::Release(self.job.id));
        let mut executors: Vec<_> = self.slots.iter().map(|s| s.executor.clone()).collect();
        executors.dedup_by_key(|e| e.get_id());
        for executor in executors {
            let _ = executor.cast(TaskExecutorMessage::ReleaseJob(self.job.id));
        }
        if let Some(coordinator) = &self.coordinator {
            coordinator.stop(None);
        }
        let _ = self.dispatcher.cast(DispatcherMessage::Terminated(Box::new(JobResult { details: self.details() })));
        myself.stop(None);
    }

    /// Asks the ResourceManager for the job's slots. The answer comes as
    /// [`JobMasterMessage::Slots`], so that the JobMaster answers meanwhile: a job waiting for
    /// slots (a lost TaskManager's, to come back) shows its status, and can be cancelled.
    fn request_slots(&mut self, myself: &ActorRef<JobMasterMessage>) {
        let needed = self.job.graph.slots_needed();
        let job = self.job.id;
        // A job that ran before waits for the TaskManagers it lost to come back.
        let recovering = self.history.restarts > 0 || self.generation > 1;
        let (resource_manager, job_master, attempt) = (self.resource_manager.clone(), myself.clone(), self.attempt);
        self.awaiting_slots = true;
        tokio::spawn(async move {
            // A request waits in the ResourceManager until slots are free; one that dies
            // meanwhile (a crash, a kill) dropped it: ask its successor, which waits for the
            // TaskManagers to register with it again instead of refusing a cluster it does not
            // know yet.
            let asked = std::sync::atomic::AtomicBool::new(false);
            let granted = resource_manager
                .call_surviving("the resource manager", COMPONENT_RESTART_WAIT, |reply| {
                    ResourceManagerMessage::RequestSlots {
                        job,
                        slots: needed,
                        job_master: job_master.clone(),
                        recovering: recovering || asked.swap(true, std::sync::atomic::Ordering::Relaxed),
                        reply,
                    }
                })
                .await
                .and_then(|r| r);
            let _ = job_master.cast(JobMasterMessage::Slots { attempt, granted });
        });
    }

    /// The slots of [`request_slots`](Self::request_slots) arrived (or did not): deploys the
    /// attempt on them, or fails it.
    async fn slots_arrived(
        &mut self,
        myself: &ActorRef<JobMasterMessage>,
        attempt: u32,
        granted: Result<Vec<SlotGrant>, WeirError>,
    ) {
        if attempt != self.attempt || !self.awaiting_slots {
            return;
        }
        self.awaiting_slots = false;
        if !matches!(self.status, JobStatus::Created | JobStatus::Restarting) {
            // Cancelled or failed meanwhile: the job ends, releasing every slot it holds.
            return self.maybe_end(myself);
        }
        let outcome = match granted {
            Ok(slots) => self.deploy(slots, myself).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            match self.status {
                // The job never ran: it fails with the cause.
                JobStatus::Created => self.cause = Some(e.to_string()),
                // A recovery that got no slots goes through the restart strategy again.
                JobStatus::Restarting | JobStatus::Running => {
                    self.status = JobStatus::Running;
                    self.fail_as(e.to_string(), &Failure::of(&e));
                }
                _ => {}
            }
        }
        self.maybe_end(myself);
    }

    async fn deploy(&mut self, slots: Vec<SlotGrant>, myself: &ActorRef<JobMasterMessage>) -> Result<(), WeirError> {
        self.slots = slots;
        self.status = JobStatus::Running;
        // The latest checkpoint that reads back whole, else the savepoint the job started from.
        // A checkpoint the job restored from last, and is failing over again without a newer
        // one, is checked whole: a file that decodes nowhere must not be chosen for ever.
        let suspect = self.history.restored.last().copied();
        let latest = self
            .storage
            .as_ref()
            .and_then(|s| s.latest_valid(self.job.graph.fingerprint, |n| Some(n) == suspect))
            .map(Arc::new);
        let restore = latest.or_else(|| self.savepoint.clone());
        self.restored_from = restore.as_ref().map(|r| r.metadata.checkpoint).or(self.restored_from);
        if let Some(r) = &restore {
            info!(job = %self.job.id, checkpoint = r.metadata.checkpoint, attempt = self.attempt, "restoring from checkpoint");
            self.history.restored.push(r.metadata.checkpoint);
            self.store.record_history(self.job.id, &self.history);
        }
        let slots: Arc<Vec<SlotLocation>> = Arc::new(
            self.slots
                .iter()
                .map(|s| SlotLocation { task_manager: s.task_manager.clone(), data_addr: s.data_addr })
                .collect(),
        );
        let vertices: Vec<(usize, usize)> = self.job.graph.vertices.iter().map(|v| (v.id, v.parallelism)).collect();
        for (vertex, parallelism) in vertices {
            for index in 0..parallelism {
                if self.status != JobStatus::Running {
                    return Ok(());
                }
                let metrics = Arc::new(TaskMetrics::default());
                let deployment = TaskDeployment {
                    slots: slots.clone(),
                    execution: self.execution(vertex, index),
                    job_name: self.job.name.clone(),
                    builder: Some(self.job.builder.clone()),
                    args: self.job.args.clone(),
                    parallelism: self.job.parallelism,
                    fingerprint: self.job.graph.fingerprint,
                    job_master: myself.clone(),
                    metrics: metrics.clone(),
                    checkpoints: self.storage.clone(),
                    restore: restore.clone(),
                    state_backend: self.job.config.state_backend.clone(),
                };
                self.tasks.insert((vertex, index), Task { state: TaskState::Deploying, slot: index, metrics });
                let executor = self.slots[index].executor.clone();
                let deployed =
                    ask!(executor, "a task executor", |reply| TaskExecutorMessage::Deploy(Box::new(deployment), reply));
                if let Err(e) = deployed.and_then(|r| r) {
                    self.tasks.get_mut(&(vertex, index)).expect("inserted").state = TaskState::Failed;
                    return Err(e);
                }
            }
        }
        self.coordinate();
        Ok(())
    }

    /// Tells the coordinator what runs now.
    fn coordinate(&self) {
        let Some(coordinator) = &self.coordinator else { return };
        let tasks = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.state.is_terminal())
            .filter_map(|(&(vertex, index), t)| {
                Some(CoordinatedTask {
                    execution: self.execution(vertex, index),
                    executor: self.slots.get(t.slot)?.executor.clone(),
                    source: self.job.graph.vertices[vertex].operators[0].kind == NodeKind::Source,
                })
            })
            .collect();
        let _ = coordinator.cast(CoordinatorMessage::Deployed(tasks));
    }

    async fn start_coordinator(&mut self, myself: &ActorRef<JobMasterMessage>) -> Result<(), WeirError> {
        let (job_master, failing) = (myself.clone(), myself.clone());
        let ids = self.ids.get_or_insert_with(|| CheckpointIds::new(self.storage.as_ref(), self.restored_from)).clone();
        let args = CoordinatorArgs {
            job: self.job.id,
            plan: self.job.graph.clone(),
            config: self.job.config.checkpoints.clone(),
            storage: self.storage.clone(),
            restored_from: self.restored_from,
            ids,
            on_stopped: Some(Box::new(move |dir| {
                let _ = job_master.cast(JobMasterMessage::StoppedWithSavepoint(dir));
            })),
            on_failures: Some(Box::new(move |cause| {
                let _ = failing.cast(JobMasterMessage::CheckpointsFailed(cause));
            })),
        };
        let (coordinator, _) = Actor::spawn_linked(None, CheckpointCoordinator, args, myself.get_cell())
            .await
            .map_err(|e| WeirError::runtime(format!("cannot start the checkpoint coordinator: {e}")))?;
        self.coordinator = Some(coordinator);
        Ok(())
    }
}

/// The JobMaster actor.
pub struct JobMasterActor;

impl Actor for JobMasterActor {
    type Msg = JobMasterMessage;
    type State = JobMasterState;
    type Arguments = JobMasterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A successor carries on with the job's history, and so do its restart strategy's counts.
        let history = args.store.history(args.job.id);
        Ok(JobMasterState {
            job: args.job,
            resource_manager: args.resource_manager,
            dispatcher: args.dispatcher,
            recovered: args.recovered,
            store: args.store.clone(),
            generation: args.generation,
            status: JobStatus::Created,
            cause: None,
            cause_secondary: false,
            started: Instant::now(),
            started_ms: crate::base::time::wall_clock_ms(),
            ended: None,
            attempt: first_attempt(args.generation),
            slots: Vec::new(),
            tasks: HashMap::new(),
            storage: None,
            coordinator: None,
            ids: None,
            restored_from: None,
            savepoint: None,
            stopped_with: None,
            history,
            failures: Vec::new(),
            repeated: None,
            restart_scheduled: false,
            awaiting_slots: false,
            restart_delay: std::time::Duration::ZERO,
        })
    }

    async fn post_start(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        info!(job = %state.job.id, name = %state.job.name, slots = state.job.graph.slots_needed(), "scheduling job");
        state.storage = state
            .job
            .config
            .checkpoints
            .as_ref()
            .map(|c| CheckpointStorage::new(c.dir.clone(), state.job.id).with_file_system(c.file_system.clone()));
        if let Some(why) = state.recovered.take() {
            // A predecessor's subtasks may still run: freeing the job's slots stops them
            // before any of this generation's are deployed.
            info!(job = %state.job.id, attempt = state.attempt, %why, "job master started again");
            state.record_exception(format!("job master restarted: {why}"));
            state.resource_manager.cast(ResourceManagerMessage::Release(state.job.id));
        }
        if let Some(settings) = &state.job.config.savepoint {
            match RestoreFrom::savepoint(settings, &state.job.graph) {
                Ok(from) => {
                    info!(job = %state.job.id, savepoint = %settings.path, "restoring from savepoint");
                    state.restored_from = Some(from.checkpoint());
                    state.savepoint = Some(Arc::new(from));
                }
                Err(e) => {
                    state.cause = Some(e.to_string());
                    state.maybe_end(&myself);
                    return Ok(());
                }
            }
        }
        if let Err(e) = state.start_coordinator(&myself).await {
            state.cause = Some(e.to_string());
            state.maybe_end(&myself);
            return Ok(());
        }
        state.request_slots(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JobMasterMessage::TaskState { execution, state: task_state, cause } => {
                if execution.attempt != state.attempt || execution.job != state.job.id {
                    warn!(?execution, "stale task state ignored");
                    return Ok(());
                }
                let Some(task) = state.tasks.get_mut(&(execution.vertex, execution.index)) else { return Ok(()) };
                if task.state.is_terminal() {
                    return Ok(());
                }
                // A subtask that fails while the job is being cancelled (its producers were
                // cancelled first, closing its input) completes its cancellation, as in Flink.
                let task_state = match (task_state, state.status) {
                    (TaskState::Failed, JobStatus::Cancelling) => TaskState::Cancelled,
                    (task_state, _) => task_state,
                };
                task.state = task_state;
                if task_state == TaskState::Finished
                    && let Some(coordinator) = &state.coordinator
                {
                    let _ = coordinator.cast(CoordinatorMessage::Finished(execution));
                }
                if task_state == TaskState::Failed {
                    let vertex = &state.job.graph.vertices[execution.vertex];
                    let failure = cause.unwrap_or_else(|| Failure::internal("no cause given"));
                    let cause = format!(
                        "{} ({}/{}) failed: {}",
                        vertex.name,
                        execution.index + 1,
                        vertex.parallelism,
                        failure.message
                    );
                    state.fail_as(cause, &failure);
                } else if task_state == TaskState::Cancelled && state.status == JobStatus::Running {
                    let cause = format!(
                        "subtask {} of vertex {} was cancelled unexpectedly",
                        execution.index, execution.vertex
                    );
                    state.fail(cause, false);
                }
                state.maybe_end(&myself);
            }
            JobMasterMessage::TaskManagerLost(tm) => {
                if !state.slots.iter().any(|s| s.task_manager == tm) {
                    return Ok(()); // none of this job's slots were there
                }
                let lost: Vec<(usize, usize)> = state
                    .tasks
                    .iter()
                    .filter(|(_, t)| {
                        state.slots.get(t.slot).is_some_and(|s| s.task_manager == tm) && !t.state.is_terminal()
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for key in lost {
                    state.tasks.get_mut(&key).expect("listed").state = TaskState::Failed;
                }
                state.fail(format!("task manager '{tm}' was lost"), false);
                state.maybe_end(&myself);
            }
            JobMasterMessage::Cancel => {
                info!(job = %state.job.id, "cancelling job");
                state.stop_tasks(JobStatus::Cancelling, Some("cancelled by request".into()));
                state.maybe_end(&myself);
            }
            JobMasterMessage::Details(reply) => {
                let _ = reply.send(state.details());
            }
            JobMasterMessage::Checkpoint(execution, event) => {
                if execution.attempt == state.attempt
                    && let Some(coordinator) = &state.coordinator
                {
                    let _ = coordinator.cast(CoordinatorMessage::Event(execution, event));
                }
            }
            JobMasterMessage::TriggerSavepoint { dir, stop, reply } => match &state.coordinator {
                Some(coordinator) if state.status == JobStatus::Running => {
                    let _ = coordinator.cast(CoordinatorMessage::TriggerSavepoint { dir, stop, reply });
                }
                _ => {
                    let why = format!("job {} is {}", state.job.id, state.status);
                    let _ = reply.send(Err(WeirError::Savepoint(why)));
                }
            },
            JobMasterMessage::StoppedWithSavepoint(dir) => {
                info!(job = %state.job.id, savepoint = %dir, "stopped with a savepoint");
                state.stopped_with = Some(dir);
            }
            JobMasterMessage::CheckpointStats(reply) => match &state.coordinator {
                Some(coordinator) => {
                    let coordinator = coordinator.clone();
                    tokio::spawn(async move {
                        let stats =
                            coordinator.call(CoordinatorMessage::Stats, None).await.ok().and_then(|r| match r {
                                ractor::rpc::CallResult::Success(s) => Some(s),
                                _ => None,
                            });
                        let _ = reply.send(stats);
                    });
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            JobMasterMessage::ReconnectResourceManager => {
                if !state.slots.is_empty() && !state.status.is_terminal() {
                    state.resource_manager.cast(ResourceManagerMessage::Reconnect(state.job.id, myself.clone()));
                }
            }
            JobMasterMessage::Coordinator(reply) => {
                let _ = reply.send(state.coordinator.clone());
            }
            JobMasterMessage::Restart(attempt) => {
                if state.status != JobStatus::Restarting || attempt != state.attempt {
                    return Ok(());
                }
                state.attempt += 1;
                state.history.restarts += 1;
                state.store.record_history(state.job.id, &state.history);
                state.restart_scheduled = false;
                state.tasks.clear();
                // Slots are requested again: a lost TaskManager's are gone.
                state.resource_manager.cast(ResourceManagerMessage::Release(state.job.id));
                info!(job = %state.job.id, attempt = state.attempt, "redeploying");
                state.request_slots(&myself);
            }
            JobMasterMessage::Slots { attempt, granted } => state.slots_arrived(&myself, attempt, granted).await,
            JobMasterMessage::CheckpointsFailed(cause) => {
                if state.status == JobStatus::Running {
                    state.fail(cause, false);
                    state.maybe_end(&myself);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(ChildEnd::Crashed(cell, cause)) = child_end(event) else { return Ok(()) };
        if state.coordinator.as_ref().is_some_and(|c| c.get_id() == cell.get_id()) {
            warn!(job = %state.job.id, %cause, "checkpoint coordinator ended; starting it again");
            state.coordinator = None;
            if !state.status.is_terminal() {
                state.start_coordinator(&myself).await?;
                if state.status == JobStatus::Running {
                    state.coordinate();
                }
            }
        }
        Ok(())
    }
}
