//! The MiniCluster: a JobManager tree and N TaskManager trees in one process, with the same
//! actors as a real cluster and in-process channels between subtasks. `weir run --local`,
//! tests and examples run on it.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use weir_dataplane::LocalShuffle;

use crate::api::connectors::CollectSink;
use crate::api::job::{JobFn, JobRegistry, build_job};
use crate::api::job_args::JobArgs;
use crate::api::stream::{DataStream, StreamEnv};
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::time::TokioClock;
use crate::cluster::job_store::JobStore;
use crate::cluster::messages::{DispatcherMessage, PreparedJob, ResourceManagerMessage, TaskExecutorMessage};
use crate::cluster::resource_manager::ResourceManagerArgs;
use crate::cluster::supervisor::{
    JobManagerArgs, JobManagerSupervisor, JobManagerSupervisorMessage, RestartIntensity, TaskManagerSupervisor,
    TaskManagerSupervisorMessage,
};
use crate::cluster::task_executor::TaskExecutorArgs;
use crate::cluster::{COMPONENT_RESTART_WAIT, ComponentRef, JobDetails, JobOverview, JobResult, TaskManagerInfo, ask};
use crate::runtime::checkpoint::{RestoreFrom, StopMode};

/// How big a MiniCluster is.
#[derive(Debug, Clone)]
pub struct MiniClusterConfig {
    /// TaskManagers (each with its own TaskExecutor).
    pub task_managers: usize,
    /// Slots per TaskManager.
    pub slots_per_task_manager: usize,
    /// How long a job waits for slots other jobs hold.
    pub slot_request_timeout: Duration,
}

impl Default for MiniClusterConfig {
    fn default() -> Self {
        MiniClusterConfig { task_managers: 1, slots_per_task_manager: 4, slot_request_timeout: Duration::from_secs(30) }
    }
}

/// A job to submit: a builder, its name and arguments, and a default parallelism.
#[derive(Clone)]
pub struct JobSubmission {
    /// The registered name (or a label for ad-hoc jobs).
    pub name: String,
    /// The builder.
    pub builder: JobFn,
    /// The arguments.
    pub args: JobArgs,
    /// Default parallelism of the job's operators.
    pub parallelism: usize,
    /// Checkpoints and restarts.
    pub config: crate::api::job::JobConfig,
}

impl JobSubmission {
    /// A registered job.
    pub fn from_registry(registry: &JobRegistry, name: &str, args: JobArgs, parallelism: usize) -> Result<Self> {
        let entry = registry.get(name)?;
        Ok(JobSubmission {
            name: entry.name.clone(),
            builder: entry.builder.clone(),
            args,
            parallelism,
            config: Default::default(),
        })
    }

    /// An ad-hoc job from a closure (tests).
    pub fn new<F>(name: &str, parallelism: usize, builder: F) -> Self
    where
        F: Fn(&mut StreamEnv, &JobArgs) -> Result<()> + Send + Sync + 'static,
    {
        JobSubmission {
            name: name.to_owned(),
            builder: Arc::new(builder),
            args: JobArgs::default(),
            parallelism,
            config: Default::default(),
        }
    }

    /// Sets the arguments.
    pub fn with_args(mut self, args: JobArgs) -> Self {
        self.args = args;
        self
    }

    /// Sets checkpoints and restarts.
    pub fn with_config(mut self, config: crate::api::job::JobConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the plan as the client does, with the client-side checks (inputs exist,
    /// outputs are usable, the savepoint to start from fits the plan). Errors here are the
    /// job's arguments', builder's or savepoint's fault.
    pub fn prepare(&self) -> Result<PreparedJob> {
        let restoring = self.config.savepoint.is_some();
        let ctx = crate::runtime::nodes::ValidateContext::new(restoring);
        let graph = build_job(&self.name, &self.builder, &self.args, self.parallelism, Some(&ctx))?;
        if let Some(savepoint) = &self.config.savepoint {
            RestoreFrom::savepoint(savepoint, &graph.job)?;
        }
        Ok(PreparedJob {
            id: JobId::generate(),
            name: self.name.clone(),
            builder: self.builder.clone(),
            args: self.args.clone(),
            parallelism: self.parallelism,
            graph: graph.job,
            config: self.config.clone(),
        })
    }
}

/// A JobManager and TaskManagers in one process.
pub struct MiniCluster {
    supervisor: ActorRef<JobManagerSupervisorMessage>,
    dispatcher: ComponentRef<DispatcherMessage>,
    resource_manager: ComponentRef<ResourceManagerMessage>,
    task_managers: Vec<ActorRef<TaskManagerSupervisorMessage>>,
}

pub use crate::cluster::fault_injection::ControlActor;
use crate::cluster::fault_injection::kill_control_actor;

impl MiniCluster {
    /// Starts the actors; returns once every TaskExecutor has registered.
    pub async fn start(config: MiniClusterConfig) -> Result<Self> {
        let spawn_err = |e: ractor::SpawnErr| WeirError::runtime(format!("cannot start the mini cluster: {e}"));
        let args = JobManagerArgs {
            resource_manager: ResourceManagerArgs {
                slot_request_timeout: config.slot_request_timeout,
                restarted: false,
            },
            store: Arc::new(JobStore::in_memory()),
            intensity: RestartIntensity::default(),
        };
        let (supervisor, _) = Actor::spawn(None, JobManagerSupervisor, args).await.map_err(spawn_err)?;
        let (dispatcher, resource_manager) =
            ask!(supervisor, "the job manager", JobManagerSupervisorMessage::Components)?;
        let shuffle = Arc::new(LocalShuffle::new());
        let clock = Arc::new(TokioClock::new());
        let mut task_managers = Vec::new();
        for i in 0..config.task_managers {
            let args = TaskExecutorArgs {
                task_manager: format!("taskmanager-{i}"),
                slots: config.slots_per_task_manager,
                resource_manager: resource_manager.clone(),
                shuffle: shuffle.clone(),
                net: None,
                clock: clock.clone(),
                registry: None,
                data_addr: None,
            };
            let (tm, _) = Actor::spawn(None, TaskManagerSupervisor, (args, RestartIntensity::default()))
                .await
                .map_err(spawn_err)?;
            task_managers.push(tm);
        }
        Ok(MiniCluster { supervisor, dispatcher, resource_manager, task_managers })
    }

    /// The Dispatcher and the ResourceManager, for serving the REST API
    /// ([`RestState`](crate::cluster::rest::RestState)) on this cluster.
    pub fn components(&self) -> (ComponentRef<DispatcherMessage>, ComponentRef<ResourceManagerMessage>) {
        (self.dispatcher.clone(), self.resource_manager.clone())
    }

    /// Asks the Dispatcher; if it dies before answering, asks its successor (a restarted
    /// Dispatcher recovers every job, so the question still has its answer).
    async fn ask_dispatcher<R, F>(&self, message: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(ractor::RpcReplyPort<R>) -> DispatcherMessage,
    {
        self.dispatcher.call_surviving("the dispatcher", COMPONENT_RESTART_WAIT, message).await
    }

    /// Builds the job's plan (client side) and submits it.
    pub async fn submit(&self, job: &JobSubmission) -> Result<JobId> {
        let prepared = job.prepare()?;
        self.submit_prepared(prepared).await
    }

    /// Submits a job whose plan was built already.
    pub async fn submit_prepared(&self, prepared: PreparedJob) -> Result<JobId> {
        // Not retried: a Dispatcher that died after storing the job runs it when it restarts.
        ask!(self.dispatcher.get(), "the dispatcher", |reply| DispatcherMessage::Submit(Box::new(prepared), reply))?
    }

    /// Waits until the job ends.
    pub async fn wait(&self, id: JobId) -> Result<JobResult> {
        self.ask_dispatcher(|reply| DispatcherMessage::Wait(id, reply)).await?
    }

    /// Submits a job and waits until it ends.
    pub async fn execute(&self, job: &JobSubmission) -> Result<JobResult> {
        let id = self.submit(job).await?;
        self.wait(id).await
    }

    /// Cancels a job.
    pub async fn cancel(&self, id: JobId) -> Result<()> {
        self.ask_dispatcher(|reply| DispatcherMessage::Cancel(id, reply)).await?
    }

    /// A job's details.
    pub async fn details(&self, id: JobId) -> Result<JobDetails> {
        self.ask_dispatcher(|reply| DispatcherMessage::Details(id, reply)).await?
    }

    /// All jobs.
    pub async fn jobs(&self) -> Result<Vec<JobOverview>> {
        self.ask_dispatcher(DispatcherMessage::List).await
    }

    /// The registered TaskManagers and their slots.
    pub async fn task_managers(&self) -> Result<Vec<TaskManagerInfo>> {
        ask!(self.resource_manager.get(), "the resource manager", ResourceManagerMessage::TaskManagers)
    }

    /// The current TaskExecutor of TaskManager `index` (tests kill it to exercise supervision).
    pub async fn task_executor(&self, index: usize) -> Result<ActorRef<TaskExecutorMessage>> {
        let tm = self.task_managers.get(index).ok_or_else(|| WeirError::runtime("no such task manager"))?;
        Ok(ask!(tm, "a task manager", TaskManagerSupervisorMessage::Executor)?.get())
    }

    /// A running job's checkpoint statistics.
    pub async fn checkpoint_stats(&self, id: JobId) -> Result<Option<crate::cluster::messages::CheckpointStats>> {
        self.ask_dispatcher(|reply| DispatcherMessage::CheckpointStats(id, reply)).await
    }

    /// Takes a savepoint of a running job into a directory under `dir`; returns the
    /// savepoint's directory once it completed. With `stop`, the job ends after it
    /// (stop-with-savepoint, draining or not) and ends `FINISHED`.
    pub async fn savepoint(
        &self,
        id: JobId,
        dir: impl Into<weir_state::storage::Location>,
        stop: Option<StopMode>,
    ) -> Result<weir_state::storage::Location> {
        let dir = dir.into();
        ask!(self.dispatcher.get(), "the dispatcher", |reply| DispatcherMessage::TriggerSavepoint {
            job: id,
            dir,
            stop,
            reply
        })?
    }

    /// Fault injection: kills the actor of subtask `index` of vertex `vertex` of a job, as a
    /// crash would (tests and chaos runs).
    pub async fn kill_subtask(&self, job: JobId, vertex: usize, index: usize) -> Result<()> {
        let details = self.details(job).await?;
        let task_manager = details
            .vertices
            .get(vertex)
            .and_then(|v| v.subtasks.get(index))
            .map(|s| s.task_manager.clone())
            .ok_or_else(|| WeirError::runtime(format!("job {job} has no subtask {index} of vertex {vertex}")))?;
        let tm: usize = task_manager
            .strip_prefix("taskmanager-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| WeirError::runtime(format!("subtask {index} of vertex {vertex} is not placed yet")))?;
        let executor = self.task_executor(tm).await?;
        let _ = executor.cast(TaskExecutorMessage::KillSubtask { job, vertex, index });
        Ok(())
    }

    /// Fault injection: kills a control-plane actor, as a crash would; its supervisor starts it
    /// again (chaos runs and tests).
    pub async fn kill(&self, which: ControlActor) -> Result<()> {
        kill_control_actor(which, &self.dispatcher, &self.resource_manager).await
    }

    /// Stops every actor and waits for them.
    pub async fn shutdown(self) {
        for tm in &self.task_managers {
            let _ = tm.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
        let _ = self.supervisor.stop_and_wait(None, Some(Duration::from_secs(5))).await;
    }

    /// Runs a dataflow on a fresh MiniCluster (one TaskManager, 4 slots, parallelism 1) and
    /// returns what reached its end, in order per subtask. For examples and tests; it makes
    /// its own tokio runtime, so call it outside one.
    pub fn collect<T, F>(dataflow: F) -> Result<Vec<T>>
    where
        T: Data,
        F: Fn(&mut StreamEnv) -> DataStream<T> + Send + Sync + 'static,
    {
        let (sink, handle) = CollectSink::new();
        let job = JobSubmission::new("collect", 1, move |env, _| {
            dataflow(env).sink("collect", sink.clone());
            Ok(())
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| WeirError::io("cannot start a tokio runtime", e))?;
        runtime.block_on(async {
            let cluster = MiniCluster::start(MiniClusterConfig::default()).await?;
            let result = cluster.execute(&job).await;
            cluster.shutdown().await;
            result?.into_result()
        })?;
        Ok(handle.take())
    }
}
