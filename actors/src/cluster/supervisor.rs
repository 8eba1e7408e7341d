//! The roots of the two supervision trees: the JobManager's and each TaskManager's.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, warn};

use crate::cluster::dispatcher::{DispatcherActor, DispatcherArgs, DispatcherMessage};
use crate::cluster::resource_manager::{ResourceManagerActor, ResourceManagerArgs, ResourceManagerMessage};
use crate::cluster::task_executor::{TaskExecutorActor, TaskExecutorArgs, TaskExecutorMessage};

/// Messages of the JobManager supervisor.
pub enum JobManagerSupervisorMessage {
    /// The Dispatcher and ResourceManager.
    Components(RpcReplyPort<(ActorRef<DispatcherMessage>, ActorRef<ResourceManagerMessage>)>),
}

/// The root of a JobManager: a ResourceManager and a Dispatcher.
///
/// ## Supervision
///
/// Children: the ResourceManager and the Dispatcher. Their state (registrations, running
/// jobs) lives only in memory until the job store and checkpoint store exist, so a restart
/// could not rebuild it; a failure of either therefore stops the JobManager loudly, with the
/// cause logged, rather than carrying on with a component that forgot every job. (Restarting
/// them from durable stores is the fault-tolerance work.)
pub struct JobManagerSupervisor;

/// The JobManager supervisor's state.
pub struct JobManagerSupervisorState {
    dispatcher: ActorRef<DispatcherMessage>,
    resource_manager: ActorRef<ResourceManagerMessage>,
}

impl Actor for JobManagerSupervisor {
    type Msg = JobManagerSupervisorMessage;
    type State = JobManagerSupervisorState;
    type Arguments = ResourceManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (resource_manager, _) = Actor::spawn_linked(None, ResourceManagerActor, args, myself.get_cell()).await?;
        let (dispatcher, _) = Actor::spawn_linked(
            None,
            DispatcherActor,
            DispatcherArgs { resource_manager: resource_manager.clone() },
            myself.get_cell(),
        )
        .await?;
        Ok(JobManagerSupervisorState { dispatcher, resource_manager })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let JobManagerSupervisorMessage::Components(reply) = message;
        let _ = reply.send((state.dispatcher.clone(), state.resource_manager.clone()));
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                error!(child = ?cell.get_id(), %err, "a job manager component failed; stopping the job manager");
                myself.stop(Some(format!("component failed: {err}")));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                warn!(child = ?cell.get_id(), ?reason, "a job manager component stopped; stopping the job manager");
                myself.stop(reason);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Messages of a TaskManager supervisor.
pub enum TaskManagerSupervisorMessage {
    /// The current TaskExecutor.
    Executor(RpcReplyPort<ActorRef<TaskExecutorMessage>>),
}

/// How often a TaskExecutor may be restarted before the TaskManager gives up.
#[derive(Debug, Clone, Copy)]
pub struct RestartIntensity {
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    /// The window.
    pub window: Duration,
}

impl Default for RestartIntensity {
    fn default() -> Self {
        RestartIntensity { max_restarts: 5, window: Duration::from_secs(60) }
    }
}

/// The root of a TaskManager: its TaskExecutor.
///
/// ## Supervision
///
/// Child: the TaskExecutor. When it fails (or is killed), its subtasks die with it; the
/// supervisor starts a new one, which registers again under the same TaskManager id. The
/// ResourceManager then tells every job that had slots there that the TaskManager was lost,
/// and those jobs fail over (today: fail with that cause). Restarts are bounded by
/// [`RestartIntensity`]; past it the TaskManager stops loudly instead of spinning.
pub struct TaskManagerSupervisor;

/// A TaskManager supervisor's state.
pub struct TaskManagerSupervisorState {
    args: TaskExecutorArgs,
    intensity: RestartIntensity,
    executor: ActorRef<TaskExecutorMessage>,
    restarts: Vec<Instant>,
}

impl Actor for TaskManagerSupervisor {
    type Msg = TaskManagerSupervisorMessage;
    type State = TaskManagerSupervisorState;
    type Arguments = (TaskExecutorArgs, RestartIntensity);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (args, intensity): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (executor, _) = Actor::spawn_linked(None, TaskExecutorActor, args.clone(), myself.get_cell()).await?;
        Ok(TaskManagerSupervisorState { args, intensity, executor, restarts: Vec::new() })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let TaskManagerSupervisorMessage::Executor(reply) = message;
        let _ = reply.send(state.executor.clone());
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, cause) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason.unwrap_or_else(|| "stopped".into())),
            _ => return Ok(()),
        };
        if cell.get_id() != state.executor.get_id() {
            return Ok(());
        }
        // Tell the ResourceManager now, not when the new executor registers: jobs with
        // subtasks there must learn the root cause before their neighbours' disconnections.
        let _ =
            state.args.resource_manager.cast(ResourceManagerMessage::TaskManagerLost(state.args.task_manager.clone()));
        let now = Instant::now();
        state.restarts.retain(|t| now.duration_since(*t) < state.intensity.window);
        if state.restarts.len() >= state.intensity.max_restarts {
            error!(task_manager = %state.args.task_manager, %cause, "task executor failed too often; stopping the task manager");
            myself.stop(Some(format!("task executor failed too often: {cause}")));
            return Ok(());
        }
        state.restarts.push(now);
        warn!(task_manager = %state.args.task_manager, %cause, "task executor ended; restarting it");
        let (executor, _) = Actor::spawn_linked(None, TaskExecutorActor, state.args.clone(), myself.get_cell()).await?;
        state.executor = executor;
        Ok(())
    }
}
