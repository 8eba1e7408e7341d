//! The Dispatcher: accepts job submissions, starts one JobMaster per job, and answers for
//! jobs (listing, details, waiting for a result, cancelling).
//!
//! ## Supervision
//!
//! Children: one JobMaster per running job. A JobMaster that fails (a bug in Weir, not in the
//! job: job failures are job statuses) ends its job as `FAILED` with the JobMaster's error as
//! the cause, its slots are released and anyone waiting for the job is answered. Restarting a
//! JobMaster from the job store and the latest checkpoint comes with fault tolerance.

use std::collections::BTreeMap;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::error;

use crate::checkpoint::coordinator::CheckpointStats;
use crate::cluster::job_master::{JobMasterActor, JobMasterArgs, JobMasterMessage, PreparedJob};
use crate::cluster::resource_manager::ResourceManagerMessage;
use crate::cluster::{JobDetails, JobOverview, JobResult, JobStatus};
use crate::error::{Result, WeirError};
use crate::job::JobId;

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
    /// Take a savepoint of a running job into a directory under `dir` (stopping it after,
    /// if `stop`); the reply is the savepoint's directory.
    TriggerSavepoint {
        /// The job.
        job: JobId,
        /// Where savepoints go.
        dir: std::path::PathBuf,
        /// Stop the job after the savepoint, draining or not.
        stop: Option<crate::checkpoint::StopMode>,
        /// The savepoint's directory, or why there is none.
        reply: RpcReplyPort<Result<std::path::PathBuf>>,
    },
}

/// What the Dispatcher starts with.
pub struct DispatcherArgs {
    /// Given to every JobMaster.
    pub resource_manager: ActorRef<ResourceManagerMessage>,
}

struct Job {
    prepared: PreparedJob,
    master: Option<ActorRef<JobMasterMessage>>,
    result: Option<JobResult>,
    waiters: Vec<RpcReplyPort<Result<JobResult>>>,
    submitted: Instant,
}

impl Job {
    fn overview(&self) -> JobOverview {
        let (status, cause) = match &self.result {
            Some(r) => (r.details.status, r.details.cause.clone()),
            None => (JobStatus::Running, None),
        };
        JobOverview { id: self.prepared.id, name: self.prepared.name.clone(), status, cause }
    }

    fn end(&mut self, result: JobResult) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Ok(result.clone()));
        }
        self.result = Some(result);
        self.master = None;
    }
}

/// The Dispatcher's state.
pub struct DispatcherState {
    resource_manager: ActorRef<ResourceManagerMessage>,
    jobs: BTreeMap<JobId, Job>,
    masters: BTreeMap<ActorId, JobId>,
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
        Ok(DispatcherState { resource_manager: args.resource_manager, jobs: BTreeMap::new(), masters: BTreeMap::new() })
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
                let args = JobMasterArgs {
                    job: (*prepared).clone(),
                    resource_manager: state.resource_manager.clone(),
                    dispatcher: myself.clone(),
                };
                match Actor::spawn_linked(None, JobMasterActor, args, myself.get_cell()).await {
                    Ok((master, _)) => {
                        state.masters.insert(master.get_id(), id);
                        state.jobs.insert(
                            id,
                            Job {
                                prepared: *prepared,
                                master: Some(master),
                                result: None,
                                waiters: Vec::new(),
                                submitted: Instant::now(),
                            },
                        );
                        let _ = reply.send(Ok(id));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(WeirError::runtime(format!("cannot start the job master: {e}"))));
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
                if let Some(job) = state.jobs.get_mut(&result.details.id) {
                    job.end(*result);
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
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.masters.remove(&cell.get_id()) else { return Ok(()) };
                error!(job = %id, %err, "job master failed");
                let _ = state.resource_manager.cast(ResourceManagerMessage::Release(id));
                if let Some(job) = state.jobs.get_mut(&id)
                    && job.result.is_none()
                {
                    let details = JobDetails {
                        id,
                        name: job.prepared.name.clone(),
                        status: JobStatus::Failed,
                        cause: Some(format!("the job master failed: {err}")),
                        duration: job.submitted.elapsed(),
                        graph: job.prepared.graph.clone(),
                        vertices: Vec::new(),
                        first_record_after: None,
                        input_ended_after: None,
                        restarts: 0,
                        restored_from: None,
                        exceptions: Vec::new(),
                    };
                    job.end(JobResult { details });
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                // A JobMaster that stopped has reported its job's end (or never will): stop
                // forwarding questions to it.
                if let Some(id) = state.masters.remove(&cell.get_id())
                    && let Some(job) = state.jobs.get_mut(&id)
                {
                    job.master = None;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
