//! Fault injection: actors killed as a crash would kill them, for tests and chaos runs.
//!
//! A MiniCluster kills directly ([`MiniCluster::kill`](super::mini_cluster::MiniCluster::kill));
//! a JobManager process does on a client's request ([`Kill`], `ClientRequest::Kill`), only
//! when it runs with fault injection on (`WEIR_FAULT_INJECTION=1`), and forwards kills of
//! subtasks and TaskExecutors to the TaskManager that runs them. A killed actor's supervisor
//! starts it again, exactly as after a crash: nothing here bypasses the recovery it tests.

use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::cluster::messages::{DispatcherMessage, JobMasterMessage, ResourceManagerMessage};
use crate::cluster::{COMPONENT_RESTART_WAIT, ComponentRef};

/// A control-plane actor that fault injection can kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlActor {
    /// The Dispatcher.
    Dispatcher,
    /// The ResourceManager.
    ResourceManager,
    /// A job's JobMaster.
    JobMaster(JobId),
    /// A job's CheckpointCoordinator.
    Coordinator(JobId),
}

/// An actor of a cluster to kill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kill {
    /// The actor of subtask `index` of vertex `vertex` of a job (its current attempt).
    Subtask {
        /// The job.
        job: JobId,
        /// The vertex.
        vertex: usize,
        /// The subtask.
        index: usize,
    },
    /// A TaskManager's TaskExecutor actor.
    TaskExecutor {
        /// The TaskManager's id.
        task_manager: String,
    },
    /// A control-plane actor of the JobManager.
    Control(ControlActor),
}

/// Kills a control-plane actor, as a crash would; its supervisor starts it again. A job between
/// two JobMasters or coordinators has none to kill: that is an error naming it.
pub(crate) async fn kill_control_actor(
    which: ControlActor,
    dispatcher: &ComponentRef<DispatcherMessage>,
    resource_manager: &ComponentRef<ResourceManagerMessage>,
) -> Result<()> {
    let job_master = |job| async move {
        dispatcher
            .call_surviving("the dispatcher", COMPONENT_RESTART_WAIT, |reply| DispatcherMessage::JobMaster(job, reply))
            .await?
            .ok_or_else(|| WeirError::runtime(format!("job {job} has no job master running")))
    };
    let cell = match which {
        ControlActor::Dispatcher => dispatcher.get().get_cell(),
        ControlActor::ResourceManager => resource_manager.get().get_cell(),
        ControlActor::JobMaster(job) => job_master(job).await?.get_cell(),
        ControlActor::Coordinator(job) => {
            crate::cluster::ask!(job_master(job).await?, "the job master", JobMasterMessage::Coordinator)?
                .ok_or_else(|| WeirError::runtime(format!("job {job} has no checkpoint coordinator")))?
                .get_cell()
        }
    };
    tracing::warn!(actor = ?which, "killing a control-plane actor (fault injection)");
    cell.kill();
    Ok(())
}
