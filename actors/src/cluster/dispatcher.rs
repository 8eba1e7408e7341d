//! The Dispatcher: accepts job submissions, starts one JobMaster per job, and answers for
//! jobs (listing, details, waiting for a result, cancelling).
//!
//! Every submission is written to the [`JobStore`] before it is accepted, every job's end when
//! it ends; a Dispatcher that starts (first, or restarted by its supervisor, or in a restarted
//! JobManager process) recovers every job from it: ended jobs with their results, the others
//! by starting their JobMasters again.
//!
//! ## Supervision
//!
//! Children: one JobMaster per running job. A JobMaster that fails (a bug in Weir, not in the
//! job: job failures are job statuses) or is killed is started again, with the next generation
//! from the job store: it frees the job's slots (stopping its predecessor's subtasks) and
//! restores the job from its latest completed checkpoint, as a failover would. Restarts are
//! bounded per job by [`JOB_MASTER_RESTARTS`] within [`JOB_MASTER_RESTART_WINDOW`]; past them
//! the job ends as `FAILED` with the JobMaster's error as the cause, its slots are released and
//! anyone waiting for it is answered.

use std::collections::BTreeMap;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::cluster::job_master::{JobMasterActor, JobMasterArgs};
use crate::cluster::job_store::{JobRecord, JobStore};
use crate::cluster::messages::{DispatcherMessage, JobMasterMessage, PreparedJob, ResourceManagerMessage};
use crate::cluster::{ChildEnd, ComponentRef, JobDetails, JobOverview, JobResult, JobStatus, child_end};
use crate::runtime::job_graph::JobGraph;

/// JobMaster restarts allowed per job within [`JOB_MASTER_RESTART_WINDOW`].
pub const JOB_MASTER_RESTARTS: usize = 5;
/// See [`JOB_MASTER_RESTARTS`].
pub const JOB_MASTER_RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// What the Dispatcher starts with.
pub struct DispatcherArgs {
    /// Given to every JobMaster.
    pub resource_manager: ComponentRef<ResourceManagerMessage>,
    /// Where jobs are kept.
    pub store: std::sync::Arc<JobStore>,
}

struct Job {
    name: String,
    graph: JobGraph,
    /// The job, to start its JobMaster again (`None` once ended).
    prepared: Option<PreparedJob>,
    master: Option<ActorRef<JobMasterMessage>>,
    result: Option<JobResult>,
    waiters: Vec<RpcReplyPort<Result<JobResult>>>,
    submitted: Instant,
    /// When its JobMaster was restarted, recently.
    master_restarts: Vec<Instant>,
}

impl Job {
    fn overview(&self) -> JobOverview {
        let (status, cause) = match &self.result {
            Some(r) => (r.details.status, r.details.cause.clone()),
            None => (JobStatus::Running, None),
        };
        JobOverview { id: self.graph_id(), name: self.name.clone(), status, cause }
    }

    fn graph_id(&self) -> JobId {
        self.result.as_ref().map(|r| r.details.id).or(self.prepared.as_ref().map(|p| p.id)).expect("a job has an id")
    }

    /// A job that is not (or no longer) to be run.
    fn shell(name: String, graph: JobGraph) -> Self {
        Job {
            name,
            graph,
            prepared: None,
            master: None,
            result: None,
            waiters: Vec::new(),
            submitted: Instant::now(),
            master_restarts: Vec::new(),
        }
    }

    fn new(prepared: PreparedJob) -> Self {
        Job { prepared: Some(prepared.clone()), ..Job::shell(prepared.name, prepared.graph) }
    }

    /// An ended job's details, as far as the Dispatcher knows them without its JobMaster.
    fn ended_details(&self, id: JobId, status: JobStatus, cause: Option<String>) -> JobDetails {
        JobDetails {
            id,
            name: self.name.clone(),
            status,
            cause,
            duration: self.submitted.elapsed(),
            graph: self.graph.clone(),
            vertices: Vec::new(),
            first_record_after: None,
            input_ended_after: None,
            restarts: 0,
            restart_strategy: String::new(),
            restored_from: None,
            restored: Vec::new(),
            exceptions: Vec::new(),
        }
    }

    fn end(&mut self, result: JobResult) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Ok(result.clone()));
        }
        self.result = Some(result);
        self.master = None;
        self.prepared = None;
    }
}

/// The Dispatcher's state.
pub struct DispatcherState {
    resource_manager: ComponentRef<ResourceManagerMessage>,
    store: std::sync::Arc<JobStore>,
    jobs: BTreeMap<JobId, Job>,
    masters: BTreeMap<ActorId, JobId>,
}

impl DispatcherState {
    /// Starts job `id`'s JobMaster, with the next generation; `recovered` says why it is not
    /// the first start.
    async fn start_master(
        &mut self,
        myself: &ActorRef<DispatcherMessage>,
        id: JobId,
        recovered: Option<String>,
    ) -> Result<()> {
        let job = self.jobs.get_mut(&id).ok_or_else(|| unknown(id))?;
        let prepared = job.prepared.clone().ok_or_else(|| WeirError::runtime("the job has ended"))?;
        let generation = self.store.next_generation(id)?;
        let args = JobMasterArgs {
            job: prepared,
            resource_manager: self.resource_manager.clone(),
            dispatcher: myself.clone(),
            generation,
            recovered,
            store: self.store.clone(),
        };
        let (master, _) = Actor::spawn_linked(None, JobMasterActor, args, myself.get_cell())
            .await
            .map_err(|e| WeirError::runtime(format!("cannot start the job master: {e}")))?;
        self.masters.insert(master.get_id(), id);
        job.master = Some(master);
        Ok(())
    }

    /// Ends job `id` without its JobMaster (it failed for good, or cannot start).
    fn end_without_master(&mut self, id: JobId, cause: String) {
        self.resource_manager.cast(ResourceManagerMessage::Release(id));
        if let Some(job) = self.jobs.get_mut(&id)
            && job.result.is_none()
        {
            error!(job = %id, %cause, "job failed");
            let details = job.ended_details(id, JobStatus::Failed, Some(cause.clone()));
            job.end(JobResult { details });
            self.store.end(id, JobStatus::Failed, Some(cause));
        }
    }

    /// Takes the jobs of the store: ended ones as they ended, the others run again.
    async fn recover(&mut self, myself: &ActorRef<DispatcherMessage>) {
        for recovered in self.store.recover() {
            let JobRecord { id, name, graph, ended, .. } = recovered.record;
            match (ended, recovered.job) {
                (Some(ended), _) => {
                    let mut job = Job::shell(name, graph);
                    let details = job.ended_details(id, ended.status, ended.cause);
                    job.result = Some(JobResult { details });
                    self.jobs.insert(id, job);
                }
                (None, Ok(prepared)) => {
                    info!(job = %id, name = %prepared.name, "recovering job from the job store");
                    self.jobs.insert(id, Job::new(prepared));
                    if let Err(e) = self.start_master(myself, id, Some("recovered from the job store".into())).await {
                        self.end_without_master(id, format!("cannot recover the job: {e}"));
                    }
                }
                (None, Err(e)) => {
                    self.jobs.insert(id, Job::shell(name, graph));
                    self.end_without_master(id, format!("cannot recover the job: {e}"));
                }
            }
        }
    }
}

fn unknown(id: JobId) -> WeirError {
    WeirError::UnknownJobId(id.to_string())
}

/// The Dispatcher actor.
pub struct DispatcherActor;

impl Actor for DispatcherActor {
    type Msg = DispatcherMessage;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DispatcherState {
            resource_manager: args.resource_manager,
            store: args.store,
            jobs: BTreeMap::new(),
            masters: BTreeMap::new(),
        })
    }

    async fn post_start(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.recover(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DispatcherMessage::Submit(prepared, reply) => {
                let id = prepared.id;
                // Durable before accepted: a job the client was told about survives a restart.
                if let Err(e) = state.store.add(&prepared) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                state.jobs.insert(id, Job::new(*prepared));
                match state.start_master(&myself, id, None).await {
                    Ok(()) => {
                        let _ = reply.send(Ok(id));
                    }
                    Err(e) => {
                        state.end_without_master(id, e.to_string());
                        let _ = reply.send(Err(e));
                    }
                }
            }
            DispatcherMessage::List(reply) => {
                let _ = reply.send(state.jobs.values().map(Job::overview).collect());
            }
            DispatcherMessage::Details(id, reply) => match state.jobs.get(&id) {
                None => {
                    let _ = reply.send(Err(unknown(id)));
                }
                Some(job) => match (&job.result, &job.master) {
                    (Some(result), _) => {
                        let _ = reply.send(Ok(result.details.clone()));
                    }
                    (None, Some(master)) => {
                        // The JobMaster answers the caller directly. If it has just ended, its
                        // `Terminated` report is already in this mailbox (it is sent before the
                        // JobMaster stops), so asking again here finds the final result.
                        let (master, dispatcher) = (master.clone(), myself.clone());
                        tokio::spawn(async move {
                            match master.call(JobMasterMessage::Details, None).await {
                                Ok(ractor::rpc::CallResult::Success(d)) => {
                                    let _ = reply.send(Ok(d));
                                }
                                _ if master.get_status() > ractor::ActorStatus::Upgrading => {
                                    let _ = dispatcher.cast(DispatcherMessage::Details(id, reply));
                                }
                                _ => {
                                    let _ = reply.send(Err(WeirError::runtime("the job master did not answer")));
                                }
                            }
                        });
                    }
                    (None, None) => {
                        // The JobMaster stopped and its `Terminated` report is still queued
                        // behind this message (supervision events overtake messages).
                        let _ = myself.cast(DispatcherMessage::Details(id, reply));
                    }
                },
            },
            DispatcherMessage::Wait(id, reply) => match state.jobs.get_mut(&id) {
                None => {
                    let _ = reply.send(Err(unknown(id)));
                }
                Some(job) => match &job.result {
                    Some(result) => {
                        let _ = reply.send(Ok(result.clone()));
                    }
                    None => job.waiters.push(reply),
                },
            },
            DispatcherMessage::Cancel(id, reply) => match state.jobs.get(&id) {
                None => {
                    let _ = reply.send(Err(unknown(id)));
                }
                Some(job) => {
                    if let Some(master) = &job.master {
                        let _ = master.cast(JobMasterMessage::Cancel);
                    }
                    let _ = reply.send(Ok(()));
                }
            },
            DispatcherMessage::CheckpointStats(id, reply) => match state.jobs.get(&id).and_then(|j| j.master.clone()) {
                Some(master) => {
                    let _ = master.cast(JobMasterMessage::CheckpointStats(reply));
                }
                None => {
                    let _ = reply.send(None);
                }
            },
            DispatcherMessage::TriggerSavepoint { job, dir, stop, reply } => match state.jobs.get(&job) {
                None => {
                    let _ = reply.send(Err(unknown(job)));
                }
                Some(Job { master: Some(master), .. }) => {
                    let _ = master.cast(JobMasterMessage::TriggerSavepoint { dir, stop, reply });
                }
                Some(Job { result, .. }) => {
                    let status = result.as_ref().map_or(JobStatus::Running, |r| r.details.status);
                    let _ = reply.send(Err(WeirError::Savepoint(format!("job {job} has ended ({status})"))));
                }
            },
            DispatcherMessage::Terminated(result) => {
                let id = result.details.id;
                if let Some(job) = state.jobs.get_mut(&id) {
                    state.store.end(id, result.details.status, result.details.cause.clone());
                    job.end(*result);
                }
            }
            DispatcherMessage::ResourceManagerRestarted => {
                for master in state.jobs.values().filter_map(|j| j.master.as_ref()) {
                    let _ = master.cast(JobMasterMessage::ReconnectResourceManager);
                }
            }
            DispatcherMessage::JobMaster(id, reply) => {
                let _ = reply.send(state.jobs.get(&id).and_then(|j| j.master.clone()));
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
        let (cell, cause) = match child_end(event) {
            Some(ChildEnd::Crashed(cell, cause)) if cause == "killed" => (cell, "the job master was killed".to_owned()),
            Some(ChildEnd::Crashed(cell, err)) => (cell, format!("the job master failed: {err}")),
            Some(ChildEnd::Stopped(cell, _)) => {
                // A JobMaster that stopped has reported its job's end (the report may still be
                // queued: supervision events overtake messages): stop forwarding to it.
                if let Some(id) = state.masters.remove(&cell.get_id())
                    && let Some(job) = state.jobs.get_mut(&id)
                {
                    job.master = None;
                }
                return Ok(());
            }
            None => return Ok(()),
        };
        let Some(id) = state.masters.remove(&cell.get_id()) else { return Ok(()) };
        let Some(job) = state.jobs.get_mut(&id) else { return Ok(()) };
        job.master = None;
        if job.result.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        job.master_restarts.retain(|t| now.duration_since(*t) < JOB_MASTER_RESTART_WINDOW);
        if job.master_restarts.len() >= JOB_MASTER_RESTARTS {
            state.end_without_master(
                id,
                format!("{cause} ({JOB_MASTER_RESTARTS} restarts within {JOB_MASTER_RESTART_WINDOW:?})"),
            );
            return Ok(());
        }
        job.master_restarts.push(now);
        warn!(job = %id, %cause, "starting the job master again");
        if let Err(e) = state.start_master(&myself, id, Some(cause.clone())).await {
            state.end_without_master(id, format!("{cause}; it could not be started again: {e}"));
        }
        Ok(())
    }
}
