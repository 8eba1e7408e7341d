//! The JobManager process: its supervision tree, the QUIC endpoint TaskManagers and clients
//! connect to, and one session per connection.
//!
//! A TaskManager's session owns a `TaskManagerProxy`: an actor with the TaskExecutor's
//! message type that the ResourceManager and JobMasters use as if the executor were local.
//! The session reads the TaskManager's messages, answers heartbeats, relays task states to
//! their JobMasters and subtask counters into the JobMasters' metrics, and declares the
//! TaskManager lost when its connection drops or it stays silent past the heartbeat timeout.
//!
//! A TaskManager that lost its JobManager connects again under the same id (see
//! [`super::task_manager`]). Its new session supersedes the old one, which may not have noticed
//! the loss yet: the old connection is closed, and the old session, once it ends, does not
//! declare the TaskManager lost (the new registration already told the jobs that had slots
//! there).
//!
//! ## Fault injection
//!
//! With [`JobManagerConfig::fault_injection`] on (`WEIR_FAULT_INJECTION=1` for `weir
//! jobmanager`), a client may ask to cut connections ([`ClientRequest::CutConnections`], `weir
//! cut-connections`): a TaskManager's control connection is closed here, as a network failure
//! would close it, and a TaskManager is told to cut its data connections to its peers. Off by
//! default, the request is refused; nothing on the record path is involved either way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{info, warn};
use weir_dataplane::{ControlReceiver, ControlSender, NetConfig, NetEndpoint, NodeIdentity, accept_control};

use crate::api::job::{JobRegistry, build_job};
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetrics;
use crate::cluster::fault_injection::{Kill, kill_control_actor};
use crate::cluster::job_store::JobStore;
use crate::cluster::messages::{
    DispatcherMessage, JobMasterMessage, PreparedJob, ResourceManagerMessage, TaskExecutorMessage,
};
use crate::cluster::process_metrics::ProcessProbe;
use crate::cluster::remote::HeartbeatConfig;
use crate::cluster::remote::protocol::{
    ClientRequest, ClientResponse, ClusterOverview, ConnectionKind, CutConnections, FromTaskManager, Hello,
    ToTaskManager, WireDeployment,
};
use crate::cluster::resource_manager::ResourceManagerArgs;
use crate::cluster::supervisor::{JobManagerArgs, JobManagerSupervisor, JobManagerSupervisorMessage, RestartIntensity};
use crate::cluster::{COMPONENT_RESTART_WAIT, ComponentRef, ExecutionId, ask};

/// How a JobManager process runs.
#[derive(Clone)]
pub struct JobManagerConfig {
    /// Where TaskManagers and clients connect (QUIC).
    pub bind: SocketAddr,
    /// The cluster identity (CA and this node's certificate).
    pub identity: NodeIdentity,
    /// Transport settings.
    pub net: NetConfig,
    /// Heartbeats with TaskManagers.
    pub heartbeat: HeartbeatConfig,
    /// The jobs this binary carries.
    pub registry: JobRegistry,
    /// How long a job waits for slots held by other jobs.
    pub slot_request_timeout: Duration,
    /// Where submitted jobs are kept, so that a restarted JobManager runs them again
    /// (`None`: in memory, lost with the process).
    pub job_store: Option<weir_state::storage::Location>,
    /// Whether clients may cut connections (tests and chaos runs; see the module doc).
    pub fault_injection: bool,
}

/// A running JobManager.
pub struct JobManager {
    endpoint: Arc<NetEndpoint>,
    supervisor: ActorRef<JobManagerSupervisorMessage>,
    dispatcher: ComponentRef<DispatcherMessage>,
    resource_manager: ComponentRef<ResourceManagerMessage>,
    accept: tokio::task::JoinHandle<()>,
    probe: ProcessProbe,
}

/// Connections refused at the door (kept for `cluster status`).
type Refusals = Arc<Mutex<Vec<String>>>;

/// The current session of a connected TaskManager.
struct Session {
    /// Tells it from an older or newer session of the same TaskManager.
    serial: u64,
    conn: quinn::Connection,
    link: Arc<Link>,
}

/// The current session of each connected TaskManager, by id.
#[derive(Clone, Default)]
struct Sessions {
    by_task_manager: Arc<Mutex<HashMap<String, Session>>>,
    next_serial: Arc<AtomicU64>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_task_manager.lock().expect("sessions lock")
    }

    /// Makes a new session TaskManager `id`'s current one; returns its serial. An older
    /// session of the same TaskManager is over: its connection is closed.
    fn open(&self, id: &str, conn: &quinn::Connection, link: &Arc<Link>) -> u64 {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let session = Session { serial, conn: conn.clone(), link: link.clone() };
        if let Some(old) = self.lock().insert(id.to_owned(), session) {
            warn!(task_manager = %id, "task manager connected again; closing its previous connection");
            old.conn.close(0u32.into(), b"superseded by a new connection");
        }
        serial
    }

    /// Ends session `serial` of TaskManager `id`; false if a newer one superseded it.
    fn close(&self, id: &str, serial: u64) -> bool {
        let mut sessions = self.lock();
        if sessions.get(id).is_some_and(|s| s.serial == serial) {
            sessions.remove(id);
            true
        } else {
            false
        }
    }

    /// The current sessions of TaskManager `id` (`None`: of every TaskManager).
    fn select(&self, id: Option<&str>) -> Vec<(String, quinn::Connection, Arc<Link>)> {
        self.lock()
            .iter()
            .filter(|(tm, _)| id.is_none_or(|id| id == tm.as_str()))
            .map(|(tm, s)| (tm.clone(), s.conn.clone(), s.link.clone()))
            .collect()
    }
}

#[derive(Clone)]
struct Shared {
    dispatcher: ComponentRef<DispatcherMessage>,
    resource_manager: ComponentRef<ResourceManagerMessage>,
    registry: JobRegistry,
    fingerprint: u64,
    heartbeat: HeartbeatConfig,
    max_frame: usize,
    refused: Refusals,
    sessions: Sessions,
    fault_injection: bool,
    probe: ProcessProbe,
}

fn refuse(refused: &Refusals, what: String) {
    warn!("{what}");
    let mut list = refused.lock().expect("refusals lock");
    list.push(what);
    let excess = list.len().saturating_sub(20);
    list.drain(..excess);
}

impl JobManager {
    /// Starts the supervision tree and the endpoint.
    pub async fn start(config: JobManagerConfig) -> Result<JobManager> {
        let store = match &config.job_store {
            Some(dir) => JobStore::open(dir.clone(), config.registry.clone())?,
            None => JobStore::in_memory(),
        };
        let args = JobManagerArgs {
            resource_manager: ResourceManagerArgs {
                slot_request_timeout: config.slot_request_timeout,
                restarted: false,
            },
            store: Arc::new(store),
            intensity: RestartIntensity::default(),
        };
        let (supervisor, _) = Actor::spawn(None, JobManagerSupervisor, args)
            .await
            .map_err(|e| WeirError::runtime(format!("cannot start the job manager: {e}")))?;
        let (dispatcher, resource_manager) =
            ask!(supervisor, "the job manager", JobManagerSupervisorMessage::Components)?;
        let endpoint = NetEndpoint::bind(config.bind, &config.identity, config.net.clone())?;
        info!(addr = %endpoint.local_addr(), "job manager listening");
        let shared = Shared {
            dispatcher: dispatcher.clone(),
            resource_manager: resource_manager.clone(),
            fingerprint: config.registry.fingerprint(),
            registry: config.registry,
            heartbeat: config.heartbeat,
            max_frame: config.net.max_frame_bytes,
            refused: Arc::new(Mutex::new(Vec::new())),
            sessions: Sessions::default(),
            fault_injection: config.fault_injection,
            probe: ProcessProbe::new(Some(endpoint.clone())),
        };
        let probe = shared.probe.clone();
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared));
        Ok(JobManager { endpoint, supervisor, dispatcher, resource_manager, accept, probe })
    }

    /// Where TaskManagers and clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// The Dispatcher and ResourceManager (for the REST server).
    pub fn components(&self) -> (ComponentRef<DispatcherMessage>, ComponentRef<ResourceManagerMessage>) {
        (self.dispatcher.clone(), self.resource_manager.clone())
    }

    /// Waits until the supervision tree stops (it only does when a component fails).
    pub async fn wait(&self) {
        let _ = self.supervisor.wait(None).await;
    }

    /// Reads this process's figures (for `/metrics`).
    pub fn probe(&self) -> ProcessProbe {
        self.probe.clone()
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.accept.abort();
        self.endpoint.close();
        let _ = self.supervisor.stop_and_wait(None, Some(Duration::from_secs(5))).await;
    }
}

async fn accept_loop(endpoint: Arc<NetEndpoint>, shared: Shared) {
    while let Some(incoming) = endpoint.accept().await {
        match incoming {
            Ok(conn) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let peer = conn.remote_address();
                    if let Err(e) = session(conn, shared).await {
                        warn!(%peer, "session ended: {e}");
                    }
                });
            }
            Err(e) => refuse(&shared.refused, format!("refused a connection: {e}")),
        }
    }
}

async fn session(conn: quinn::Connection, shared: Shared) -> Result<()> {
    let (mut tx, mut rx) = accept_control(&conn, shared.max_frame).await?;
    match rx.recv::<Hello>().await? {
        Some(Hello::TaskManager(hello)) => {
            if hello.registry_fingerprint != shared.fingerprint {
                let reason = format!(
                    "task manager '{}' runs a different build: its job registry fingerprint is {:016x}, the job manager's is {:016x}",
                    hello.task_manager, hello.registry_fingerprint, shared.fingerprint
                );
                refuse(&shared.refused, reason.clone());
                tx.send(&ToTaskManager::Welcome(Err(reason))).await?;
                let _ = tx.finish().await;
                return Ok(());
            }
            tx.send(&ToTaskManager::Welcome(Ok(()))).await?;
            info!(task_manager = %hello.task_manager, peer = %conn.remote_address(), "task manager connected");
            task_manager_session(conn, tx, rx, hello.task_manager, hello.data_addr, shared).await
        }
        Some(Hello::Client) => client_session(tx, rx, shared).await,
        None => Ok(()),
    }
}

/// What a TaskManager's session shares with its proxy actor.
struct Link {
    tx: tokio::sync::Mutex<ControlSender>,
    next_request: AtomicU64,
    deploys: Mutex<HashMap<u64, RpcReplyPort<Result<()>>>>,
    running: Mutex<HashMap<u64, RpcReplyPort<Vec<ExecutionId>>>>,
    metrics: Mutex<HashMap<ExecutionId, Arc<TaskMetrics>>>,
    job_masters: Mutex<HashMap<JobId, ActorRef<JobMasterMessage>>>,
}

impl Link {
    async fn send(&self, message: &ToTaskManager) -> Result<()> {
        Ok(self.tx.lock().await.send(message).await?)
    }

    /// Fails every request still waiting for the TaskManager.
    fn fail_pending(&self, reason: &str) {
        for (_, reply) in self.deploys.lock().expect("link lock").drain() {
            let _ = reply.send(Err(WeirError::runtime(reason)));
        }
        for (_, reply) in self.running.lock().expect("link lock").drain() {
            let _ = reply.send(Vec::new());
        }
    }
}

/// A remote TaskExecutor, as the ResourceManager and JobMasters see it.
struct TaskManagerProxy;

impl Actor for TaskManagerProxy {
    type Msg = TaskExecutorMessage;
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
        let request = link.next_request.fetch_add(1, Ordering::Relaxed);
        let sent = match message {
            TaskExecutorMessage::Deploy(d, reply) => {
                let e = d.execution;
                link.metrics.lock().expect("link lock").insert(e, d.metrics.clone());
                link.job_masters.lock().expect("link lock").insert(e.job, d.job_master.clone());
                link.deploys.lock().expect("link lock").insert(request, reply);
                let deployment = WireDeployment {
                    execution: e,
                    job_name: d.job_name,
                    args: d.args,
                    parallelism: d.parallelism,
                    fingerprint: d.fingerprint,
                    slots: d.slots.as_ref().clone(),
                    checkpoints: d.checkpoints,
                    restore: d.restore.map(|r| r.as_ref().clone()),
                    state_backend: d.state_backend,
                };
                link.send(&ToTaskManager::Deploy { request, deployment: Box::new(deployment) }).await
            }
            TaskExecutorMessage::Cancel(e) => link.send(&ToTaskManager::Cancel(e)).await,
            TaskExecutorMessage::Control(e, control) => link.send(&ToTaskManager::Control(e, control)).await,
            TaskExecutorMessage::KillSubtask { .. } => Ok(()), // fault injection is in-process only
            TaskExecutorMessage::Reregister => link.send(&ToTaskManager::Reregister).await,
            TaskExecutorMessage::ReleaseJob(job) => {
                link.metrics.lock().expect("link lock").retain(|e, _| e.job != job);
                link.job_masters.lock().expect("link lock").remove(&job);
                link.send(&ToTaskManager::ReleaseJob(job)).await
            }
            TaskExecutorMessage::RunningTasks(reply) => {
                link.running.lock().expect("link lock").insert(request, reply);
                link.send(&ToTaskManager::RunningTasks { request }).await
            }
        };
        if let Err(e) = sent {
            // The session notices the broken connection and declares the TaskManager lost.
            warn!("cannot reach the task manager: {e}");
            link.fail_pending("the task manager is unreachable");
        }
        Ok(())
    }
}

async fn task_manager_session(
    conn: quinn::Connection,
    tx: ControlSender,
    mut rx: ControlReceiver,
    task_manager: String,
    data_addr: SocketAddr,
    shared: Shared,
) -> Result<()> {
    let link = Arc::new(Link {
        tx: tokio::sync::Mutex::new(tx),
        next_request: AtomicU64::new(0),
        deploys: Mutex::new(HashMap::new()),
        running: Mutex::new(HashMap::new()),
        metrics: Mutex::new(HashMap::new()),
        job_masters: Mutex::new(HashMap::new()),
    });
    let (proxy, _) = Actor::spawn(None, TaskManagerProxy, link.clone())
        .await
        .map_err(|e| WeirError::runtime(format!("cannot start the task manager proxy: {e}")))?;
    let serial = shared.sessions.open(&task_manager, &conn, &link);
    let mut last_seen = Instant::now();
    let mut check = tokio::time::interval(shared.heartbeat.interval);
    let mut resource_managers = shared.resource_manager.watch();
    let reason = loop {
        tokio::select! {
            message = rx.recv::<FromTaskManager>() => {
                let message = match message {
                    Ok(Some(m)) => m,
                    Ok(None) => break "it closed its connection".to_owned(),
                    Err(e) => break format!("its connection failed: {e}"),
                };
                last_seen = Instant::now();
                match message {
                    FromTaskManager::Register(offer) => {
                        let registered = ask!(shared.resource_manager.get(), "the resource manager", |reply| ResourceManagerMessage::Register {
                            task_manager: task_manager.clone(),
                            slots: offer.slots,
                            data_addr: Some(data_addr),
                            executor: proxy.clone(),
                            allocated: offer.allocated,
                            reply,
                        })
                        .and_then(|r| r.map_err(WeirError::runtime))
                        .map_err(|e| e.to_string());
                        if let Err(e) = link.send(&ToTaskManager::Registered(registered)).await {
                            break format!("cannot send to it: {e}");
                        }
                    }
                    FromTaskManager::ExecutorLost => {
                        shared.resource_manager.cast(ResourceManagerMessage::TaskManagerLost(task_manager.clone()));
                    }
                    FromTaskManager::Heartbeat(tasks, process) => {
                        shared.resource_manager.cast(ResourceManagerMessage::TaskManagerProcess(task_manager.clone(), process));
                        {
                            let metrics = link.metrics.lock().expect("link lock");
                            for (execution, snapshot) in tasks {
                                if let Some(m) = metrics.get(&execution) {
                                    m.set_remote(snapshot);
                                }
                            }
                        }
                        if let Err(e) = link.send(&ToTaskManager::HeartbeatAck).await {
                            break format!("cannot send to it: {e}");
                        }
                    }
                    FromTaskManager::Deployed { request, result } => {
                        if let Some(reply) = link.deploys.lock().expect("link lock").remove(&request) {
                            let _ = reply.send(result.map_err(WeirError::runtime));
                        }
                    }
                    FromTaskManager::TaskState { execution, state, cause, metrics } => {
                        if let (Some(snapshot), Some(m)) = (metrics, link.metrics.lock().expect("link lock").get(&execution)) {
                            m.set_remote(snapshot);
                        }
                        let master = link.job_masters.lock().expect("link lock").get(&execution.job).cloned();
                        if let Some(master) = master {
                            let _ = master.cast(JobMasterMessage::TaskState { execution, state, cause });
                        }
                    }
                    FromTaskManager::Checkpoint(execution, event) => {
                        let master = link.job_masters.lock().expect("link lock").get(&execution.job).cloned();
                        if let Some(master) = master {
                            let _ = master.cast(JobMasterMessage::Checkpoint(execution, event));
                        }
                    }
                    FromTaskManager::RunningTasks { request, tasks } => {
                        if let Some(reply) = link.running.lock().expect("link lock").remove(&request) {
                            let _ = reply.send(tasks);
                        }
                    }
                }
            }
            Ok(()) = resource_managers.changed() => {
                // A restarted ResourceManager knows nobody: the TaskExecutor registers again.
                if let Err(e) = link.send(&ToTaskManager::Reregister).await {
                    break format!("cannot send to it: {e}");
                }
            }
            _ = check.tick() => {
                let silent = last_seen.elapsed();
                if silent > shared.heartbeat.timeout {
                    break format!("no heartbeat for {:.1} s", silent.as_secs_f64());
                }
                // Its heartbeat of the last interval is overdue.
                if silent > shared.heartbeat.interval * 2 {
                    shared.probe.missed_heartbeat();
                }
            }
        }
    };
    if shared.sessions.close(&task_manager, serial) {
        warn!(task_manager = %task_manager, %reason, "task manager lost");
        shared.resource_manager.cast(ResourceManagerMessage::TaskManagerLost(task_manager.clone()));
    } else {
        info!(task_manager = %task_manager, %reason, "a superseded session of the task manager ended");
    }
    link.fail_pending(&format!("task manager '{task_manager}' was lost: {reason}"));
    proxy.stop(None);
    conn.close(0u32.into(), b"lost");
    Ok(())
}

/// Asks the Dispatcher for a client; a Dispatcher that dies meanwhile is asked again once its
/// supervisor restarted it.
async fn ask_dispatcher<R, F>(shared: &Shared, message: F) -> Result<R>
where
    R: Send + 'static,
    F: Fn(RpcReplyPort<R>) -> DispatcherMessage,
{
    shared.dispatcher.call_surviving("the dispatcher", COMPONENT_RESTART_WAIT, message).await
}

async fn client_session(mut tx: ControlSender, mut rx: ControlReceiver, shared: Shared) -> Result<()> {
    while let Some(request) = rx.recv::<ClientRequest>().await? {
        let response = match request {
            ClientRequest::Submit { job, args, parallelism, graph, config } => ClientResponse::Submitted(
                submit(&shared, job, args, parallelism, graph, *config).await.map_err(|e| e.to_string()),
            ),
            ClientRequest::List => ClientResponse::Jobs(ask_dispatcher(&shared, DispatcherMessage::List).await?),
            ClientRequest::Details(id) => ClientResponse::Details(
                ask_dispatcher(&shared, |reply| DispatcherMessage::Details(id, reply))
                    .await
                    .and_then(|r| r)
                    .map(Box::new)
                    .map_err(|e| e.to_string()),
            ),
            ClientRequest::Cancel(id) => ClientResponse::Cancelled(
                ask_dispatcher(&shared, |reply| DispatcherMessage::Cancel(id, reply))
                    .await
                    .and_then(|r| r)
                    .map_err(|e| e.to_string()),
            ),
            ClientRequest::TriggerSavepoint { job, dir, stop } => ClientResponse::Savepoint(
                ask_dispatcher(&shared, |reply| DispatcherMessage::TriggerSavepoint {
                    job,
                    dir: dir.clone(),
                    stop,
                    reply,
                })
                .await
                .and_then(|r| r)
                .map_err(|e| e.to_string()),
            ),
            ClientRequest::Overview => ClientResponse::Overview(ClusterOverview {
                task_managers: ask!(
                    shared.resource_manager.get(),
                    "the resource manager",
                    ResourceManagerMessage::TaskManagers
                )?,
                jobs: ask_dispatcher(&shared, DispatcherMessage::List).await?,
                refused: shared.refused.lock().expect("refusals lock").clone(),
            }),
            ClientRequest::CutConnections(cut) => {
                ClientResponse::ConnectionsCut(cut_connections(&shared, cut).await.map_err(|e| e.to_string()))
            }
            ClientRequest::Kill(kill) => {
                ClientResponse::Killed(inject_kill(&shared, kill).await.map_err(|e| e.to_string()))
            }
        };
        tx.send(&response).await?;
    }
    Ok(())
}

/// Fault injection must be on for a client to inject faults.
fn fault_injection_allowed(shared: &Shared) -> Result<()> {
    if shared.fault_injection {
        Ok(())
    } else {
        Err(WeirError::runtime("fault injection is off on this job manager (start it with WEIR_FAULT_INJECTION=1)"))
    }
}

/// Fault injection: kills the actor `kill` names, here or on the TaskManager that runs it.
async fn inject_kill(shared: &Shared, kill: Kill) -> Result<()> {
    fault_injection_allowed(shared)?;
    let task_manager = match &kill {
        Kill::Control(which) => {
            return kill_control_actor(*which, &shared.dispatcher, &shared.resource_manager).await;
        }
        Kill::TaskExecutor { task_manager } => task_manager.clone(),
        Kill::Subtask { job, vertex, index } => {
            let details = ask_dispatcher(shared, |reply| DispatcherMessage::Details(*job, reply))
                .await?
                .map_err(WeirError::runtime)?;
            details
                .vertices
                .get(*vertex)
                .and_then(|v| v.subtasks.get(*index))
                .map(|s| s.task_manager.clone())
                .filter(|tm| !tm.is_empty())
                .ok_or_else(|| {
                    WeirError::runtime(format!("job {job} has no placed subtask {index} of vertex {vertex}"))
                })?
        }
    };
    let Some((_, _, link)) = shared.sessions.select(Some(&task_manager)).pop() else {
        return Err(WeirError::runtime(format!("task manager '{task_manager}' is not connected")));
    };
    warn!(task_manager = %task_manager, ?kill, "killing an actor (fault injection)");
    link.send(&ToTaskManager::Kill(kill)).await
}

/// Fault injection: cuts the connections `cut` names; returns how many TaskManagers' were cut.
async fn cut_connections(shared: &Shared, cut: CutConnections) -> Result<usize> {
    fault_injection_allowed(shared)?;
    let targets = shared.sessions.select(cut.task_manager.as_deref());
    if targets.is_empty() {
        let which =
            cut.task_manager.map_or("no task manager is".to_owned(), |id| format!("task manager '{id}' is not"));
        return Err(WeirError::runtime(format!("{which} connected")));
    }
    let mut cut_count = 0;
    for (task_manager, conn, link) in targets {
        match cut.kind {
            ConnectionKind::Control => {
                warn!(task_manager = %task_manager, "cutting the control connection (fault injection)");
                weir_dataplane::cut_connection(&conn);
                cut_count += 1;
            }
            ConnectionKind::Data => match link.send(&ToTaskManager::CutDataConnections).await {
                Ok(()) => cut_count += 1,
                Err(e) => warn!(task_manager = %task_manager, "cannot ask it to cut its data connections: {e}"),
            },
        }
    }
    Ok(cut_count)
}

/// Accepts a client's job: the JobManager rebuilds the plan from its own registry and refuses
/// it if the client's plan differs (another build of the job).
async fn submit(
    shared: &Shared,
    job: String,
    args: crate::api::job_args::JobArgs,
    parallelism: usize,
    graph: Box<crate::runtime::job_graph::JobGraph>,
    config: crate::api::job::JobConfig,
) -> Result<JobId> {
    let graph = *graph;
    let entry = shared.registry.get(&job)?.clone();
    let own = build_job(&job, &entry.builder, &args, parallelism, None)?;
    if own.job.fingerprint != graph.fingerprint {
        return Err(WeirError::Graph(format!(
            "the client's plan of '{job}' (fingerprint {}) differs from the job manager's ({}): they run different builds",
            graph.fingerprint_hex(),
            own.job.fingerprint_hex()
        )));
    }
    let prepared =
        PreparedJob { id: JobId::generate(), name: job, builder: entry.builder, args, parallelism, graph, config };
    ask!(shared.dispatcher.get(), "the dispatcher", |reply| DispatcherMessage::Submit(Box::new(prepared), reply))?
}
