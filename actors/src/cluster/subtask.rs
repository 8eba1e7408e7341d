//! The Subtask actor: one per running subtask, owner of its processing loop.
//!
//! The loop runs as its own tokio task (so control messages are never stuck behind records);
//! the actor watches it. When the loop returns an error or panics, the actor fails with that
//! cause, which reaches its TaskExecutor as a supervision event. When the actor stops or is
//! killed, dropping its state aborts the loop: no orphaned processing survives its actor.
//!
//! A loop that failed just as its actor was stopped (a failover cancelling every subtask)
//! still reports its failure, not a cancellation: its cause is often the root of the
//! failover, and the neighbours' "channel closed" errors only its consequence.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::AbortHandle;
use tracing::{Instrument, debug};

use crate::base::error::WeirError;
use crate::cluster::messages::JobMasterMessage;
use crate::cluster::{ExecutionId, Failure, TaskState};
use crate::runtime::checkpoint::TaskControl;
use crate::runtime::nodes::TaskFuture;

/// Messages of a Subtask.
pub enum SubtaskMessage {
    /// The processing loop ended: its result, or the panic message.
    Exited(Result<crate::Result<()>, String>),
    /// A checkpoint message for the processing loop.
    Control(TaskControl),
}

/// What a Subtask starts with.
pub struct SubtaskArgs {
    /// Which execution this is.
    pub execution: ExecutionId,
    /// Display name, e.g. `map -> sink (2/4)`.
    pub name: String,
    /// The processing loop.
    pub(crate) task: TaskFuture,
    /// Its control channel.
    pub(crate) control: tokio::sync::mpsc::UnboundedSender<TaskControl>,
    /// Where task states go.
    pub job_master: ActorRef<JobMasterMessage>,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Subtask's state.
pub struct SubtaskState {
    execution: ExecutionId,
    name: String,
    job_master: ActorRef<JobMasterMessage>,
    control: tokio::sync::mpsc::UnboundedSender<TaskControl>,
    /// A terminal state was reported (by us or, on failure, by the TaskExecutor).
    reported: bool,
    /// How the loop ended (`Some(None)`: normally), sent before `Exited` (which a stop may
    /// overtake).
    ended: tokio::sync::watch::Receiver<Option<Option<Failure>>>,
    abort: AbortHandle,
    _task: AbortOnDrop,
}

/// The Subtask actor.
pub struct SubtaskActor;

impl Actor for SubtaskActor {
    type Msg = SubtaskMessage;
    type State = SubtaskState;
    type Arguments = SubtaskArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let e = args.execution;
        let span =
            tracing::info_span!("subtask", job = %e.job, vertex = e.vertex, subtask = e.index, attempt = e.attempt);
        let handle = tokio::spawn(args.task.instrument(span));
        let abort = handle.abort_handle();
        let (ended_tx, ended) = tokio::sync::watch::channel(None);
        let name = args.name.clone();
        tokio::spawn(async move {
            let exited = match handle.await {
                Ok(result) => Ok(result),
                // A failpoint's crash is Weir's own fault injection, not a panic of the job's code.
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    match crate::base::failpoint::InjectedCrash::of(&*payload) {
                        Some(crash) => Ok(Err(WeirError::runtime(crash.to_string()))),
                        None => Err(crate::base::failpoint::panic_text(&*payload)),
                    }
                }
                Err(_) => return, // aborted: the actor is already gone
            };
            let failure = match &exited {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Failure::of(e)),
                Err(message) => Some(Failure::of(&WeirError::Panic { task: name, message: message.clone() })),
            };
            let _ = ended_tx.send(Some(failure));
            let _ = myself.cast(SubtaskMessage::Exited(exited));
        });
        Ok(SubtaskState {
            execution: args.execution,
            name: args.name,
            job_master: args.job_master,
            control: args.control,
            reported: false,
            ended,
            abort: abort.clone(),
            _task: AbortOnDrop(abort),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.job_master.cast(JobMasterMessage::TaskState {
            execution: state.execution,
            state: TaskState::Running,
            cause: None,
        });
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let exited = match message {
            SubtaskMessage::Control(control) => {
                let _ = state.control.send(control);
                return Ok(());
            }
            SubtaskMessage::Exited(exited) => exited,
        };
        state.reported = true;
        match exited {
            Ok(Ok(())) => {
                debug!(task = %state.name, "subtask finished");
                let _ = state.job_master.cast(JobMasterMessage::TaskState {
                    execution: state.execution,
                    state: TaskState::Finished,
                    cause: None,
                });
                myself.stop(None);
                Ok(())
            }
            // Failing the actor makes the failure a supervision event for the TaskExecutor.
            Ok(Err(e)) => Err(Box::new(e)),
            Err(message) => Err(Box::new(WeirError::Panic { task: state.name.clone(), message })),
        }
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        if !state.reported {
            // A loop that has just returned: its result is a wake-up away.
            let mut outcome = None;
            if state.abort.is_finished() {
                let ended = tokio::time::timeout(Duration::from_secs(1), state.ended.wait_for(Option::is_some)).await;
                outcome = ended.ok().and_then(|r| r.ok().and_then(|ended| (*ended).clone()));
            }
            let (task_state, cause) = match outcome {
                Some(Some(failure)) => (TaskState::Failed, Some(failure)),
                Some(None) => (TaskState::Finished, None),
                None => (TaskState::Cancelled, None),
            };
            let _ = state.job_master.cast(JobMasterMessage::TaskState {
                execution: state.execution,
                state: task_state,
                cause,
            });
        }
        Ok(())
    }
}
