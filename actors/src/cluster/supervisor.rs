//! The roots of the two supervision trees: the JobManager's and each TaskManager's.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, warn};

use crate::cluster::dispatcher::{DispatcherActor, DispatcherArgs};
use crate::cluster::job_store::JobStore;
use crate::cluster::messages::{DispatcherMessage, ResourceManagerMessage, TaskExecutorMessage};
use crate::cluster::resource_manager::{ResourceManagerActor, ResourceManagerArgs};
use crate::cluster::task_executor::{TaskExecutorActor, TaskExecutorArgs};
use crate::cluster::{ChildEnd, ComponentRef, child_end};

/// Messages of the JobManager supervisor.
pub enum JobManagerSupervisorMessage {
    /// The Dispatcher and ResourceManager.
    Components(RpcReplyPort<(ComponentRef<DispatcherMessage>, ComponentRef<ResourceManagerMessage>)>),
}

/// What a JobManager starts with.
#[derive(Debug, Clone)]
pub struct JobManagerArgs {
    /// The ResourceManager's configuration.
    pub resource_manager: ResourceManagerArgs,
    /// Where submitted jobs are kept.
    pub store: Arc<JobStore>,
    /// How often each component may be restarted.
    pub intensity: RestartIntensity,
}

/// The root of a JobManager: a ResourceManager and a Dispatcher.
///
/// ## Supervision
///
/// Children: the ResourceManager and the Dispatcher. Either one that fails or is killed is
/// started again, and every holder of its [`ComponentRef`] reaches the new one:
/// - a new ResourceManager starts empty; TaskExecutors register again with slot reports
///   (they watch its address), and the Dispatcher has every JobMaster reconnect;
/// - a new Dispatcher recovers every job from the job store: ended jobs with their results,
///   running ones with a new JobMaster (the old ones died with their parent), which stops the
///   old subtasks and restores the job from its latest completed checkpoint.
///
/// Restarts are bounded per component by [`RestartIntensity`]; past it the JobManager stops
/// loudly, with the cause, instead of spinning. A component that stops normally only does so
/// when the JobManager shuts down, and the supervisor stops with it.
pub struct JobManagerSupervisor;

/// The JobManager supervisor's state.
pub struct JobManagerSupervisorState {
    args: JobManagerArgs,
    dispatcher: ComponentRef<DispatcherMessage>,
    resource_manager: ComponentRef<ResourceManagerMessage>,
    restarts: Vec<(ActorKind, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActorKind {
    Dispatcher,
    ResourceManager,
}

impl JobManagerSupervisorState {
    /// Records a restart of `kind`; false if it has been restarted too often.
    fn may_restart(&mut self, kind: ActorKind) -> bool {
        let now = Instant::now();
        let window = self.args.intensity.window;
        self.restarts.retain(|(_, t)| now.duration_since(*t) < window);
        if self.restarts.iter().filter(|(k, _)| *k == kind).count() >= self.args.intensity.max_restarts {
            return false;
        }
        self.restarts.push((kind, now));
        true
    }
}

async fn spawn_dispatcher(
    supervisor: &ActorRef<JobManagerSupervisorMessage>,
    args: &JobManagerArgs,
    resource_manager: &ComponentRef<ResourceManagerMessage>,
) -> Result<ActorRef<DispatcherMessage>, ActorProcessingErr> {
    let args = DispatcherArgs { resource_manager: resource_manager.clone(), store: args.store.clone() };
    Ok(Actor::spawn_linked(None, DispatcherActor, args, supervisor.get_cell()).await?.0)
}

async fn spawn_resource_manager(
    supervisor: &ActorRef<JobManagerSupervisorMessage>,
    args: &JobManagerArgs,
    restarted: bool,
) -> Result<ActorRef<ResourceManagerMessage>, ActorProcessingErr> {
    let args = ResourceManagerArgs { restarted, ..args.resource_manager.clone() };
    Ok(Actor::spawn_linked(None, ResourceManagerActor, args, supervisor.get_cell()).await?.0)
}

impl Actor for JobManagerSupervisor {
    type Msg = JobManagerSupervisorMessage;
    type State = JobManagerSupervisorState;
    type Arguments = JobManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let resource_manager = ComponentRef::new(spawn_resource_manager(&myself, &args, false).await?);
        let dispatcher = ComponentRef::new(spawn_dispatcher(&myself, &args, &resource_manager).await?);
        Ok(JobManagerSupervisorState { args, dispatcher, resource_manager, restarts: Vec::new() })
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
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, cause) = match child_end(event) {
            Some(ChildEnd::Crashed(cell, cause)) => (cell, cause),
            Some(ChildEnd::Stopped(cell, reason)) => {
                warn!(child = ?cell.get_id(), ?reason, "a job manager component stopped; stopping the job manager");
                myself.stop(reason);
                return Ok(());
            }
            None => return Ok(()),
        };
        let kind = if cell.get_id() == state.dispatcher.get().get_id() {
            ActorKind::Dispatcher
        } else if cell.get_id() == state.resource_manager.get().get_id() {
            ActorKind::ResourceManager
        } else {
            return Ok(());
        };
        if !state.may_restart(kind) {
            error!(component = ?kind, %cause, "a job manager component failed too often; stopping the job manager");
            myself.stop(Some(format!("{kind:?} failed too often: {cause}")));
            return Ok(());
        }
        warn!(component = ?kind, %cause, "a job manager component ended; restarting it");
        match kind {
            ActorKind::ResourceManager => {
                let new = spawn_resource_manager(&myself, &state.args, true).await?;
                state.resource_manager.replace(new);
                state.dispatcher.cast(DispatcherMessage::ResourceManagerRestarted);
            }
            ActorKind::Dispatcher => {
                let new = spawn_dispatcher(&myself, &state.args, &state.resource_manager).await?;
                state.dispatcher.replace(new);
            }
        }
        Ok(())
    }
}

/// Messages of a TaskManager supervisor.
pub enum TaskManagerSupervisorMessage {
    /// The TaskExecutor's address, which follows it across restarts.
    Executor(RpcReplyPort<ComponentRef<TaskExecutorMessage>>),
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
/// supervisor starts a new one, which registers again under the same TaskManager id, and
/// points the executor's [`ComponentRef`] at it. The
/// ResourceManager then tells every job that had slots there that the TaskManager was lost,
/// and those jobs fail over under their restart strategy. Restarts are bounded by
/// [`RestartIntensity`]; past it the TaskManager stops loudly instead of spinning.
pub struct TaskManagerSupervisor;

/// A TaskManager supervisor's state.
pub struct TaskManagerSupervisorState {
    args: TaskExecutorArgs,
    intensity: RestartIntensity,
    executor: ComponentRef<TaskExecutorMessage>,
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
        Ok(TaskManagerSupervisorState { args, intensity, executor: ComponentRef::new(executor), restarts: Vec::new() })
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
        if cell.get_id() != state.executor.get().get_id() {
            return Ok(());
        }
        // Tell the ResourceManager now, not when the new executor registers: jobs with
        // subtasks there must learn the root cause before their neighbours' disconnections.
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
        state.executor.replace(executor);
        Ok(())
    }
}
