//! The TaskManager process: its TaskExecutor tree, a QUIC endpoint for data streams, and the
//! control connection to the JobManager.
//!
//! Toward the TaskExecutor and its subtasks, the JobManager's components are proxies: a
//! [`ResourceManagerProxy`] (registration) and a [`JobMasterProxy`] (task states), each turning
//! messages into the control protocol. Subtask counters leave with every heartbeat. If the
//! JobManager goes silent past the heartbeat timeout or the connection drops, the TaskManager
//! stops its subtasks and ends with that cause (reconnecting to a restarted JobManager comes
//! with fault tolerance).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{error, info, warn};
use weir_dataplane::{
    ControlReceiver, ControlSender, LocalShuffle, NetConfig, NetEndpoint, NetShuffle, NodeIdentity, open_control,
};

use crate::cluster::job_master::JobMasterMessage;
use crate::cluster::resource_manager::ResourceManagerMessage;
use crate::cluster::supervisor::{RestartIntensity, TaskManagerSupervisor, TaskManagerSupervisorMessage};
use crate::cluster::task_executor::{TaskDeployment, TaskExecutorArgs, TaskExecutorMessage};
use crate::cluster::{ExecutionId, ask};
use crate::error::{Result, WeirError};
use crate::job::{JobId, JobRegistry};
use crate::remote::HeartbeatConfig;
use crate::remote::protocol::{FromTaskManager, Hello, SlotOffer, TaskManagerHello, ToTaskManager};
use crate::runtime::io::TaskMetrics;
use crate::time::TokioClock;

/// How a TaskManager process runs.
#[derive(Clone)]
pub struct TaskManagerConfig {
    /// Its id, unique in the cluster.
    pub id: String,
    /// Slots it offers.
    pub slots: usize,
    /// The JobManager's address.
    pub job_manager: SocketAddr,
    /// Where it accepts data streams from other TaskManagers.
    pub bind: SocketAddr,
    /// The cluster identity.
    pub identity: NodeIdentity,
    /// Transport settings.
    pub net: NetConfig,
    /// Heartbeats with the JobManager.
    pub heartbeat: HeartbeatConfig,
    /// The jobs this binary carries.
    pub registry: JobRegistry,
}

struct Link {
    tx: tokio::sync::Mutex<ControlSender>,
    register: Mutex<Option<RpcReplyPort<Result<(), String>>>>,
    metrics: Mutex<HashMap<ExecutionId, Arc<TaskMetrics>>>,
}

impl Link {
    async fn send(&self, message: &FromTaskManager) -> Result<()> {
        Ok(self.tx.lock().await.send(message).await?)
    }
}

/// The JobManager's ResourceManager, as this TaskManager's executor sees it.
struct ResourceManagerProxy;

impl Actor for ResourceManagerProxy {
    type Msg = ResourceManagerMessage;
    type State = Arc<Link>;
    type Arguments = Arc<Link>;

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, link: Arc<Link>) -> Result<Arc<Link>, ActorProcessingErr> {
        Ok(link)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        link: &mut Arc<Link>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ResourceManagerMessage::Register { slots, allocated, reply, .. } => {
                *link.register.lock().expect("link lock") = Some(reply);
                link.send(&FromTaskManager::Register(SlotOffer { slots, allocated })).await?;
            }
            ResourceManagerMessage::TaskManagerLost(_) => link.send(&FromTaskManager::ExecutorLost).await?,
            _ => warn!("a task manager's executor sent a resource manager message it has no use for"),
        }
        Ok(())
    }
}

/// Every JobMaster, as this TaskManager's subtasks see them: task states go to the JobManager.
struct JobMasterProxy;

impl Actor for JobMasterProxy {
    type Msg = JobMasterMessage;
    type State = Arc<Link>;
    type Arguments = Arc<Link>;

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, link: Arc<Link>) -> Result<Arc<Link>, ActorProcessingErr> {
        Ok(link)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        link: &mut Arc<Link>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JobMasterMessage::TaskState { execution, state, cause } => {
                let metrics = if state.is_terminal() {
                    link.metrics.lock().expect("link lock").get(&execution).map(|m| m.snapshot())
                } else {
                    None
                };
                link.send(&FromTaskManager::TaskState { execution, state, cause, metrics }).await?;
            }
            JobMasterMessage::Checkpoint(execution, event) => {
                link.send(&FromTaskManager::Checkpoint(execution, event)).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A running TaskManager.
pub struct TaskManager {
    endpoint: Arc<NetEndpoint>,
    supervisor: ActorRef<TaskManagerSupervisorMessage>,
    proxies: (ActorRef<ResourceManagerMessage>, ActorRef<JobMasterMessage>),
    session: tokio::task::JoinHandle<Result<()>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TaskManager {
    /// Connects to the JobManager, is welcomed (or refused, with the reason), and starts the
    /// TaskExecutor, which registers its slots.
    pub async fn start(config: TaskManagerConfig) -> Result<TaskManager> {
        let endpoint = NetEndpoint::bind(config.bind, &config.identity, config.net.clone())?;
        let shuffle = NetShuffle::new(endpoint.clone());
        let accept = tokio::spawn({
            let (endpoint, shuffle) = (endpoint.clone(), shuffle.clone());
            async move {
                while let Some(incoming) = endpoint.accept().await {
                    match incoming {
                        Ok(conn) => shuffle.serve_connection(conn),
                        Err(e) => warn!("refused a data connection: {e}"),
                    }
                }
            }
        });
        let jm = config.job_manager;
        let conn = endpoint
            .connect(jm)
            .await
            .map_err(|e| WeirError::runtime(format!("cannot reach the job manager at {jm}: {e}")))?;
        // Only control travels to the JobManager: it opens no data streams, so this connection
        // needs no serve_connection.
        let (mut tx, mut rx) = open_control(&conn, config.net.max_frame_bytes).await?;
        let data_addr = endpoint.local_addr();
        tx.send(&Hello::TaskManager(TaskManagerHello {
            task_manager: config.id.clone(),
            data_addr,
            registry_fingerprint: config.registry.fingerprint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
        .await?;
        match rx.recv::<ToTaskManager>().await {
            Ok(Some(ToTaskManager::Welcome(Ok(())))) => {}
            Ok(Some(ToTaskManager::Welcome(Err(reason)))) => {
                return Err(WeirError::runtime(format!("the job manager at {jm} refused this task manager: {reason}")));
            }
            Ok(_) => return Err(WeirError::runtime(format!("the job manager at {jm} closed the connection"))),
            Err(e) => return Err(WeirError::runtime(format!("the job manager at {jm} refused the connection: {e}"))),
        }
        info!(task_manager = %config.id, %jm, %data_addr, "connected to the job manager");
        let link = Arc::new(Link {
            tx: tokio::sync::Mutex::new(tx),
            register: Mutex::new(None),
            metrics: Mutex::new(HashMap::new()),
        });
        let spawn_err = |e: ractor::SpawnErr| WeirError::runtime(format!("cannot start the task manager: {e}"));
        let (rm, _) = Actor::spawn(None, ResourceManagerProxy, link.clone()).await.map_err(spawn_err)?;
        let (jm_proxy, _) = Actor::spawn(None, JobMasterProxy, link.clone()).await.map_err(spawn_err)?;
        // The session must read before the executor registers: it answers the registration.
        let (supervisor_tx, supervisor_rx) = tokio::sync::oneshot::channel();
        let session = tokio::spawn(session(rx, link.clone(), jm_proxy.clone(), supervisor_rx, config.heartbeat));
        let args = TaskExecutorArgs {
            task_manager: config.id.clone(),
            slots: config.slots,
            resource_manager: crate::cluster::ComponentRef::new(rm.clone()),
            shuffle: Arc::new(LocalShuffle::new()),
            net: Some(shuffle),
            clock: Arc::new(TokioClock::new()),
            registry: Some(config.registry.clone()),
            data_addr: Some(data_addr),
        };
        let (supervisor, _) =
            Actor::spawn(None, TaskManagerSupervisor, (args, RestartIntensity::default())).await.map_err(spawn_err)?;
        let _ = supervisor_tx.send(supervisor.clone());
        Ok(TaskManager { endpoint, supervisor, proxies: (rm, jm_proxy), session, accept })
    }

    /// Where it accepts data streams.
    pub fn data_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// Runs until the control session ends (the JobManager was lost) and returns why.
    pub async fn run(self) -> Result<()> {
        let TaskManager { endpoint, supervisor, proxies, mut session, accept } = self;
        let result = (&mut session).await.unwrap_or_else(|e| Err(WeirError::runtime(format!("session task: {e}"))));
        stop(endpoint, supervisor, proxies, accept).await;
        result
    }

    /// Stops the TaskManager.
    pub async fn shutdown(self) {
        self.session.abort();
        stop(self.endpoint, self.supervisor, self.proxies, self.accept).await;
    }
}

async fn stop(
    endpoint: Arc<NetEndpoint>,
    supervisor: ActorRef<TaskManagerSupervisorMessage>,
    proxies: (ActorRef<ResourceManagerMessage>, ActorRef<JobMasterMessage>),
    accept: tokio::task::JoinHandle<()>,
) {
    let _ = supervisor.stop_and_wait(None, Some(Duration::from_secs(5))).await;
    proxies.0.stop(None);
    proxies.1.stop(None);
    accept.abort();
    endpoint.close();
}

async fn session(
    mut rx: ControlReceiver,
    link: Arc<Link>,
    job_master: ActorRef<JobMasterMessage>,
    supervisor: tokio::sync::oneshot::Receiver<ActorRef<TaskManagerSupervisorMessage>>,
    heartbeat: HeartbeatConfig,
) -> Result<()> {
    let mut supervisor = Some(supervisor);
    let mut executor_of: Option<ActorRef<TaskManagerSupervisorMessage>> = None;
    let mut last_ack = Instant::now();
    let mut beat = tokio::time::interval(heartbeat.interval);
    loop {
        tokio::select! {
            message = rx.recv::<ToTaskManager>() => {
                let message = match message {
                    Ok(Some(m)) => m,
                    Ok(None) => return Err(WeirError::runtime("the job manager closed the connection")),
                    Err(e) => return Err(WeirError::runtime(format!("lost the job manager: {e}"))),
                };
                last_ack = Instant::now();
                // Registration is answered before the supervisor exists (its executor waits for
                // that answer while starting), so only the messages for the executor wait for it.
                let for_executor = !matches!(
                    message,
                    ToTaskManager::Welcome(_) | ToTaskManager::Registered(_) | ToTaskManager::HeartbeatAck
                );
                if for_executor && executor_of.is_none() && let Some(rx) = supervisor.take() {
                    executor_of = rx.await.ok();
                }
                let executor = match (&executor_of, for_executor) {
                    (Some(sup), true) => ask!(sup, "the task manager supervisor", TaskManagerSupervisorMessage::Executor).ok(),
                    _ => None,
                };
                handle(message, &link, &job_master, executor).await?;
            }
            _ = beat.tick() => {
                let silent = last_ack.elapsed();
                if silent > heartbeat.timeout {
                    return Err(WeirError::runtime(format!("lost the job manager: no answer for {:.1} s", silent.as_secs_f64())));
                }
                let tasks = link.metrics.lock().expect("link lock").iter().map(|(e, m)| (*e, m.snapshot())).collect();
                link.send(&FromTaskManager::Heartbeat(tasks)).await?;
            }
        }
    }
}

async fn handle(
    message: ToTaskManager,
    link: &Arc<Link>,
    job_master: &ActorRef<JobMasterMessage>,
    executor: Option<ActorRef<TaskExecutorMessage>>,
) -> Result<()> {
    match message {
        ToTaskManager::Welcome(_) | ToTaskManager::HeartbeatAck => {}
        ToTaskManager::Registered(result) => {
            if let Some(reply) = link.register.lock().expect("link lock").take() {
                let _ = reply.send(result);
            }
        }
        ToTaskManager::Deploy { request, deployment } => {
            let metrics = Arc::new(TaskMetrics::default());
            link.metrics.lock().expect("link lock").insert(deployment.execution, metrics.clone());
            let d = TaskDeployment {
                execution: deployment.execution,
                job_name: deployment.job_name,
                builder: None,
                args: deployment.args,
                parallelism: deployment.parallelism,
                fingerprint: deployment.fingerprint,
                job_master: job_master.clone(),
                metrics,
                slots: Arc::new(deployment.slots),
                checkpoints: deployment.checkpoints,
                restore: deployment.restore.map(Arc::new),
            };
            // Deploying builds the job's plan: let the session keep reading meanwhile.
            let link = link.clone();
            tokio::spawn(async move {
                let result = match executor {
                    Some(executor) => {
                        ask!(executor, "the task executor", |reply| TaskExecutorMessage::Deploy(Box::new(d), reply))
                            .and_then(|r| r)
                            .map_err(|e| e.to_string())
                    }
                    None => Err("the task executor is not running".to_owned()),
                };
                if let Err(e) = link.send(&FromTaskManager::Deployed { request, result }).await {
                    error!("cannot answer a deployment: {e}");
                }
            });
        }
        ToTaskManager::Control(execution, control) => {
            if let Some(executor) = executor {
                let _ = executor.cast(TaskExecutorMessage::Control(execution, control));
            }
        }
        ToTaskManager::Cancel(execution) => {
            if let Some(executor) = executor {
                let _ = executor.cast(TaskExecutorMessage::Cancel(execution));
            }
        }
        ToTaskManager::ReleaseJob(job) => {
            release(link, job);
            if let Some(executor) = executor {
                let _ = executor.cast(TaskExecutorMessage::ReleaseJob(job));
            }
        }
        ToTaskManager::Reregister => {
            if let Some(executor) = executor {
                let _ = executor.cast(TaskExecutorMessage::Reregister);
            }
        }
        ToTaskManager::RunningTasks { request } => {
            let tasks = match executor {
                Some(executor) => {
                    ask!(executor, "the task executor", TaskExecutorMessage::RunningTasks).unwrap_or_default()
                }
                None => Vec::new(),
            };
            link.send(&FromTaskManager::RunningTasks { request, tasks }).await?;
        }
    }
    Ok(())
}

fn release(link: &Link, job: JobId) {
    link.metrics.lock().expect("link lock").retain(|e, _| e.job != job);
}
