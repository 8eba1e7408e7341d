//! The TaskManager process: its TaskExecutor tree, a QUIC endpoint for data streams, and the
//! control connection to the JobManager.
//!
//! Toward the TaskExecutor and its subtasks, the JobManager's components are proxies: a
//! `ResourceManagerProxy` (registration) and a `JobMasterProxy` (task states), each turning
//! messages into the control protocol. Subtask counters leave with every heartbeat.
//!
//! ## Losing the JobManager
//!
//! The JobManager is lost when the control connection drops, when it stays silent past the
//! heartbeat timeout, or when another JobManager address is published (a restarted JobManager:
//! see [`JobManagerAddress::Lookup`], read at every heartbeat). As a Flink TaskManager does,
//! this one then stops the subtasks of every job deployed through that connection and frees
//! their slots: their JobMasters are gone, or (if only the connection was lost) have declared
//! this TaskManager lost and fail their jobs over. Then it connects again: at once, then with
//! waits of [`INITIAL_BACKOFF`] doubling up to [`MAX_BACKOFF`]; each attempt looks the address
//! up afresh, and a newly published address is tried at once. Once welcomed it registers again
//! under the same id, with an empty slot report, and a restarted JobManager recovers its jobs
//! onto it. If it is not registered again within the registration timeout
//! ([`DEFAULT_REGISTRATION_TIMEOUT`], as Flink's `taskmanager.registration.timeout`), or a
//! JobManager refuses it, the TaskManager ends with that cause.
//!
//! The endpoint, the data connections to other TaskManagers and the TaskExecutor live on across
//! reconnections; only the control connection is new. Messages its actors send while no
//! JobManager is connected (task states of subtasks being stopped, checkpoint acknowledgements)
//! are dropped: nobody is left to read them. A registration is the exception: it is held until
//! a JobManager answers.
//!
//! Decision: the first connection is not retried. A TaskManager started against an address
//! where no JobManager answers, or whose JobManager refuses it, says so and exits at once, which
//! is what someone starting it by hand needs to see.
//!
//! ## Fault injection
//!
//! A TaskManager with [`TaskManagerConfig::fault_injection`] on (`WEIR_FAULT_INJECTION=1`)
//! obeys the JobManager's request to cut its data connections
//! ([`NetShuffle::cut_connections`]); without it, it logs the request and does nothing.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use weir_dataplane::{
    ControlReceiver, ControlSender, LocalShuffle, NetConfig, NetEndpoint, NetShuffle, NodeIdentity, open_control,
};

use crate::api::job::JobRegistry;
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetrics;
use crate::base::metrics::TaskMetricsSnapshot;
use crate::base::state::StateBackend;
use crate::base::time::TokioClock;
use crate::cluster::fault_injection::Kill;
use crate::cluster::messages::{JobMasterMessage, ResourceManagerMessage, TaskDeployment, TaskExecutorMessage};
use crate::cluster::process_metrics::ProcessProbe;
use crate::cluster::remote::HeartbeatConfig;
use crate::cluster::remote::protocol::{FromTaskManager, Hello, SlotOffer, TaskManagerHello, ToTaskManager};
use crate::cluster::supervisor::{RestartIntensity, TaskManagerSupervisor, TaskManagerSupervisorMessage};
use crate::cluster::task_executor::TaskExecutorArgs;
use crate::cluster::{ComponentRef, ExecutionId, ask};

/// The first wait between two attempts to reach a lost JobManager.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to reach a lost JobManager.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a lost JobManager is tried by default before the TaskManager gives up.
pub const DEFAULT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long one attempt to reach the JobManager (handshake, hello, welcome) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a looked-up address is read again while the JobManager is lost.
const ADDRESS_POLL: Duration = Duration::from_millis(100);

/// Where a TaskManager finds its JobManager.
#[derive(Clone)]
pub enum JobManagerAddress {
    /// Always this address.
    Fixed(SocketAddr),
    /// Looked up at start, at every reconnection attempt and at every heartbeat, since a
    /// restarted JobManager may listen elsewhere (`weir taskmanager` reads the address the
    /// JobManager publishes in the cluster directory). A new address means a new JobManager.
    Lookup(Arc<dyn Fn() -> Result<SocketAddr> + Send + Sync>),
}

impl JobManagerAddress {
    fn resolve(&self) -> Result<SocketAddr> {
        match self {
            JobManagerAddress::Fixed(addr) => Ok(*addr),
            JobManagerAddress::Lookup(lookup) => lookup(),
        }
    }

    /// The address, if it is now another than `current`.
    fn moved_from(&self, current: Option<SocketAddr>) -> Option<SocketAddr> {
        match self {
            JobManagerAddress::Fixed(_) => None,
            JobManagerAddress::Lookup(lookup) => lookup().ok().filter(|addr| Some(*addr) != current),
        }
    }

    /// Completes once the address is another than `current` (never, for a fixed address).
    async fn moves_from(&self, current: Option<SocketAddr>) -> SocketAddr {
        if let JobManagerAddress::Fixed(_) = self {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(ADDRESS_POLL).await;
            if let Some(addr) = self.moved_from(current) {
                return addr;
            }
        }
    }
}

impl std::fmt::Debug for JobManagerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobManagerAddress::Fixed(addr) => write!(f, "Fixed({addr})"),
            JobManagerAddress::Lookup(_) => f.write_str("Lookup"),
        }
    }
}

/// How a TaskManager process runs.
#[derive(Clone)]
pub struct TaskManagerConfig {
    /// Its id, unique in the cluster; kept across reconnections.
    pub id: String,
    /// Slots it offers.
    pub slots: usize,
    /// Where the JobManager is.
    pub job_manager: JobManagerAddress,
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
    /// How long it tries to register again after losing its JobManager before it gives up.
    pub registration_timeout: Duration,
    /// Whether it obeys the JobManager's fault-injection requests (tests and chaos runs).
    pub fault_injection: bool,
    /// Its working directory for state: RocksDB databases of jobs that name no directory of
    /// their own go here (`None`: the system's temporary directory).
    pub data_dir: Option<std::path::PathBuf>,
}

/// What the control connection shares with the proxies; it outlives each connection.
struct Link {
    /// The control stream to the JobManager (`None` while it is lost).
    tx: tokio::sync::Mutex<Option<ControlSender>>,
    /// The TaskExecutor's registration, until a JobManager answers it.
    register: Mutex<Option<RpcReplyPort<Result<(), String>>>>,
    metrics: Mutex<HashMap<ExecutionId, Arc<TaskMetrics>>>,
}

impl Link {
    /// Every subtask's counters now.
    fn snapshots(&self) -> Vec<(ExecutionId, TaskMetricsSnapshot)> {
        self.metrics.lock().expect("link lock").iter().map(|(e, m)| (*e, m.snapshot())).collect()
    }

    async fn send(&self, message: &FromTaskManager) -> Result<()> {
        match self.tx.lock().await.as_mut() {
            Some(tx) => Ok(tx.send(message).await?),
            None => Err(WeirError::runtime("no job manager is connected")),
        }
    }

    /// Sends `message` if a JobManager is connected; otherwise nobody is left to read it.
    async fn send_or_drop(&self, message: &FromTaskManager) {
        if let Err(e) = self.send(message).await {
            debug!("a message to the job manager was dropped: {e}");
        }
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
                // Held until answered: without a JobManager now, the registration after
                // reconnecting answers it.
                *link.register.lock().expect("link lock") = Some(reply);
                link.send_or_drop(&FromTaskManager::Register(SlotOffer { slots, allocated })).await;
            }
            ResourceManagerMessage::TaskManagerLost(_) => link.send_or_drop(&FromTaskManager::ExecutorLost).await,
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
                link.send_or_drop(&FromTaskManager::TaskState { execution, state, cause, metrics }).await;
            }
            JobMasterMessage::Checkpoint(execution, event) => {
                link.send_or_drop(&FromTaskManager::Checkpoint(execution, event)).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What lives across control connections.
struct Node {
    config: TaskManagerConfig,
    endpoint: Arc<NetEndpoint>,
    probe: ProcessProbe,
    shuffle: Arc<NetShuffle>,
    link: Arc<Link>,
    job_master: ActorRef<JobMasterMessage>,
}

/// A control connection to a JobManager that welcomed this TaskManager.
struct Connected {
    addr: SocketAddr,
    conn: quinn::Connection,
    rx: ControlReceiver,
}

/// Why an attempt to reach the JobManager failed.
enum AttemptError {
    /// It refused this TaskManager: trying again cannot help.
    Refused(String),
    /// It could not be reached (yet).
    Failed(String),
}

/// Dials the JobManager at `addr`, says hello and waits to be welcomed.
async fn connect(
    config: &TaskManagerConfig,
    endpoint: &NetEndpoint,
    addr: SocketAddr,
) -> std::result::Result<(Connected, ControlSender), AttemptError> {
    use AttemptError::{Failed, Refused};
    let conn = endpoint.connect(addr).await.map_err(|e| match e {
        // A certificate of another cluster: no attempt will be welcomed.
        weir_dataplane::DataplaneError::Connect { handshake: true, .. } => Refused(format!(
            "the job manager at {addr} refused this task manager's certificate, or it refused the job manager's: {e}"
        )),
        e => Failed(format!("cannot reach the job manager at {addr}: {e}")),
    })?;
    let opened = async {
        // Only control travels to the JobManager: it opens no data streams, so this connection
        // needs no serve_connection.
        let (mut tx, rx) = open_control(&conn, config.net.max_frame_bytes).await?;
        tx.send(&Hello::TaskManager(TaskManagerHello {
            task_manager: config.id.clone(),
            data_addr: endpoint.local_addr(),
            registry_fingerprint: config.registry.fingerprint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
        .await?;
        Ok::<_, weir_dataplane::DataplaneError>((tx, rx))
    };
    let (tx, mut rx) = opened.await.map_err(|e| Failed(format!("cannot talk to the job manager at {addr}: {e}")))?;
    match rx.recv::<ToTaskManager>().await {
        Ok(Some(ToTaskManager::Welcome(Ok(())))) => Ok((Connected { addr, conn, rx }, tx)),
        Ok(Some(ToTaskManager::Welcome(Err(reason)))) => {
            Err(Refused(format!("the job manager at {addr} refused this task manager: {reason}")))
        }
        Ok(_) => Err(Failed(format!("the job manager at {addr} closed the connection"))),
        Err(e) => Err(Failed(format!("the job manager at {addr} refused the connection: {e}"))),
    }
}

/// A running TaskManager.
pub struct TaskManager {
    endpoint: Arc<NetEndpoint>,
    probe: ProcessProbe,
    id: String,
    link: Arc<Link>,
    supervisor: ActorRef<TaskManagerSupervisorMessage>,
    proxies: (ActorRef<ResourceManagerMessage>, ActorRef<JobMasterMessage>),
    control: tokio::task::JoinHandle<Result<()>>,
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
        let stop_endpoint = |e: WeirError| {
            accept.abort();
            endpoint.close();
            e
        };
        // The first join tries as long as a TaskManager that lost its JobManager would: started
        // before the JobManager, or cut off from it, it joins once it can.
        let (connected, tx) =
            reconnect(&config, &endpoint, Instant::now(), "not connected yet").await.map_err(stop_endpoint)?;
        let jm = connected.addr;
        let data_addr = endpoint.local_addr();
        info!(task_manager = %config.id, %jm, %data_addr, "connected to the job manager");
        let link = Arc::new(Link {
            tx: tokio::sync::Mutex::new(Some(tx)),
            register: Mutex::new(None),
            metrics: Mutex::new(HashMap::new()),
        });
        let spawn_err = |e: ractor::SpawnErr| WeirError::runtime(format!("cannot start the task manager: {e}"));
        let (rm, _) = Actor::spawn(None, ResourceManagerProxy, link.clone()).await.map_err(spawn_err)?;
        let (jm_proxy, _) = Actor::spawn(None, JobMasterProxy, link.clone()).await.map_err(spawn_err)?;
        let args = TaskExecutorArgs {
            task_manager: config.id.clone(),
            slots: config.slots,
            resource_manager: ComponentRef::new(rm.clone()),
            shuffle: Arc::new(LocalShuffle::new()),
            net: Some(shuffle.clone()),
            clock: Arc::new(TokioClock::new()),
            registry: Some(config.registry.clone()),
            data_addr: Some(data_addr),
        };
        let probe = ProcessProbe::new(Some(endpoint.clone()));
        let id = config.id.clone();
        let node = Arc::new(Node {
            config,
            endpoint: endpoint.clone(),
            probe: probe.clone(),
            shuffle,
            link: link.clone(),
            job_master: jm_proxy.clone(),
        });
        // The control connection must be read before the executor registers: it answers the
        // registration.
        let (executor_tx, executor_rx) = tokio::sync::oneshot::channel();
        let control = tokio::spawn(keep_connected(node, connected, executor_rx));
        let supervisor = match Actor::spawn(None, TaskManagerSupervisor, (args, RestartIntensity::default())).await {
            Ok((supervisor, _)) => supervisor,
            Err(e) => {
                control.abort();
                rm.stop(None);
                jm_proxy.stop(None);
                return Err(stop_endpoint(spawn_err(e)));
            }
        };
        let executor = ask!(supervisor, "the task manager supervisor", TaskManagerSupervisorMessage::Executor)?;
        let _ = executor_tx.send(executor);
        Ok(TaskManager { endpoint, probe, id, link, supervisor, proxies: (rm, jm_proxy), control, accept })
    }

    /// Where it accepts data streams.
    pub fn data_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// What its own `/metrics` shows: its process and its subtasks.
    pub fn metrics(&self) -> crate::cluster::rest::TaskManagerMetrics {
        let link = self.link.clone();
        crate::cluster::rest::TaskManagerMetrics {
            id: self.id.clone(),
            probe: self.probe.clone(),
            subtasks: Arc::new(move || link.snapshots()),
        }
    }

    /// Runs until the TaskManager gives up on its JobManager (or is refused by it) and
    /// returns why.
    pub async fn run(self) -> Result<()> {
        let TaskManager { endpoint, supervisor, proxies, mut control, accept, .. } = self;
        let result = (&mut control).await.unwrap_or_else(|e| Err(WeirError::runtime(format!("control task: {e}"))));
        stop(endpoint, supervisor, proxies, accept).await;
        result
    }

    /// Stops the TaskManager.
    pub async fn shutdown(self) {
        self.control.abort();
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

/// The TaskExecutor, once its supervisor has started (it starts after the first connection).
struct Executor {
    starting: Option<tokio::sync::oneshot::Receiver<ComponentRef<TaskExecutorMessage>>>,
    started: Option<ComponentRef<TaskExecutorMessage>>,
}

impl Executor {
    /// The current TaskExecutor, without waiting: `None` while the first one starts (nothing
    /// but its registration can be under way then).
    fn get(&mut self) -> Option<ActorRef<TaskExecutorMessage>> {
        if self.started.is_none()
            && let Some(starting) = &mut self.starting
            && let Ok(executor) = starting.try_recv()
        {
            self.started = Some(executor);
            self.starting = None;
        }
        self.started.as_ref().map(ComponentRef::get)
    }
}

/// Keeps a control connection to the JobManager: serves one until it is lost, stops the lost
/// JobManager's jobs, connects and registers again; ends only when it gives up or is refused.
async fn keep_connected(
    node: Arc<Node>,
    mut connected: Connected,
    executor: tokio::sync::oneshot::Receiver<ComponentRef<TaskExecutorMessage>>,
) -> Result<()> {
    let mut executor = Executor { starting: Some(executor), started: None };
    // Since when this TaskManager has not been registered (`None`: it is).
    let mut unregistered_since: Option<Instant> = None;
    let mut reconnected = false;
    loop {
        let lost = serve(&node, &mut connected, &mut executor, reconnected).await?;
        if lost.registered {
            unregistered_since = None;
        }
        let since = *unregistered_since.get_or_insert_with(Instant::now);
        warn!(
            task_manager = %node.config.id, reason = %lost.reason,
            "lost the job manager; stopping the subtasks of its jobs and connecting again"
        );
        // Closed first: a send blocked on the stalled connection then fails and frees the link.
        connected.conn.close(0u32.into(), b"job manager lost");
        node.link.tx.lock().await.take();
        let jobs: BTreeSet<JobId> = node.link.metrics.lock().expect("link lock").keys().map(|e| e.job).collect();
        let current = executor.get();
        for job in jobs {
            release_job(&node.link, current.as_ref(), job);
        }
        let (next, tx) = reconnect(&node.config, &node.endpoint, since, &lost.reason).await?;
        info!(task_manager = %node.config.id, job_manager = %next.addr, "connected to the job manager again");
        *node.link.tx.lock().await = Some(tx);
        connected = next;
        reconnected = true;
    }
}

/// Tries to reach a JobManager until one welcomes this TaskManager, backing off between
/// attempts, until the registration timeout (counted from `since`) has passed.
async fn reconnect(
    config: &TaskManagerConfig,
    endpoint: &NetEndpoint,
    since: Instant,
    lost: &str,
) -> Result<(Connected, ControlSender)> {
    let deadline = since + config.registration_timeout;
    let mut backoff = INITIAL_BACKOFF;
    let mut attempts = 0u32;
    let mut last_error = lost.to_owned();
    loop {
        let tried = match config.job_manager.resolve() {
            Ok(addr) => {
                attempts += 1;
                let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, connect(config, endpoint, addr));
                tokio::select! {
                    outcome = attempt => match outcome {
                        Ok(Ok(connected)) => return Ok(connected),
                        Ok(Err(AttemptError::Refused(reason))) => return Err(WeirError::runtime(reason)),
                        Ok(Err(AttemptError::Failed(reason))) => last_error = reason,
                        Err(_) => {
                            last_error = format!("the job manager at {addr} did not answer within {ATTEMPT_TIMEOUT:?}");
                        }
                    },
                    moved = config.job_manager.moves_from(Some(addr)) => {
                        info!(task_manager = %config.id, job_manager = %moved, "a new job manager was published");
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline) => {}
                }
                Some(addr)
            }
            Err(e) => {
                last_error = e.to_string();
                None
            }
        };
        if Instant::now() + backoff >= deadline {
            return Err(WeirError::runtime(format!(
                "gave up on the job manager: not registered again within {:?} \
                 ({attempts} attempts; the last: {last_error})",
                config.registration_timeout
            )));
        }
        if attempts == 1 {
            info!(
                task_manager = %config.id, error = %last_error, timeout = ?config.registration_timeout,
                "the job manager is not reachable yet; trying again until the registration timeout"
            );
        }
        debug!(task_manager = %config.id, ?backoff, error = %last_error, "the job manager is not reachable yet");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = config.job_manager.moves_from(tried) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How a control connection ended.
struct Lost {
    reason: String,
    /// Whether the TaskManager was registered during it.
    registered: bool,
}

/// Serves one control connection until it is lost; `Err` only for a refused registration.
async fn serve(node: &Node, connected: &mut Connected, executor: &mut Executor, reconnected: bool) -> Result<Lost> {
    let (link, heartbeat) = (&node.link, node.config.heartbeat);
    let mut registered = false;
    let lost = |reason: String, registered: bool| Ok(Lost { reason, registered });
    if reconnected {
        // The lost JobManager's jobs were released here: every slot is free.
        let offer = SlotOffer { slots: node.config.slots, allocated: Vec::new() };
        if let Err(e) = link.send(&FromTaskManager::Register(offer)).await {
            return lost(format!("cannot register: {e}"), false);
        }
    }
    let mut last_ack = Instant::now();
    let mut beat = tokio::time::interval(heartbeat.interval);
    loop {
        tokio::select! {
            message = connected.rx.recv::<ToTaskManager>() => {
                let message = match message {
                    Ok(Some(m)) => m,
                    Ok(None) => return lost("the job manager closed the connection".into(), registered),
                    Err(e) => return lost(format!("the connection failed: {e}"), registered),
                };
                last_ack = Instant::now();
                if let ToTaskManager::Registered(result) = message {
                    registered |= result.is_ok();
                    let waiting = link.register.lock().expect("link lock").take();
                    match (waiting, result) {
                        (Some(reply), result) => {
                            let _ = reply.send(result);
                        }
                        (None, Ok(())) => info!(task_manager = %node.config.id, "registered again"),
                        (None, Err(reason)) => {
                            let refused = format!("the job manager refused the registration: {reason}");
                            return Err(WeirError::runtime(refused));
                        }
                    }
                    continue;
                }
                if let Err(e) = handle(message, node, executor.get()).await {
                    return lost(format!("cannot answer the job manager: {e}"), registered);
                }
            }
            _ = beat.tick() => {
                let silent = last_ack.elapsed();
                if silent > heartbeat.timeout {
                    return lost(format!("no answer for {:.1} s", silent.as_secs_f64()), registered);
                }
                // The last heartbeat's answer is overdue.
                if silent > heartbeat.interval * 2 {
                    node.probe.missed_heartbeat();
                }
                if let Some(moved) = node.config.job_manager.moved_from(Some(connected.addr)) {
                    return lost(format!("a new job manager was published at {moved}"), registered);
                }
                if let Err(e) = link.send(&FromTaskManager::Heartbeat(link.snapshots(), node.probe.read())).await {
                    return lost(format!("cannot send a heartbeat: {e}"), registered);
                }
            }
        }
    }
}

async fn handle(message: ToTaskManager, node: &Node, executor: Option<ActorRef<TaskExecutorMessage>>) -> Result<()> {
    let link = &node.link;
    match message {
        ToTaskManager::Welcome(_) | ToTaskManager::HeartbeatAck | ToTaskManager::Registered(_) => {}
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
                job_master: node.job_master.clone(),
                metrics,
                slots: Arc::new(deployment.slots),
                checkpoints: deployment.checkpoints,
                restore: deployment.restore.map(Arc::new),
                state_backend: local_state_backend(deployment.state_backend, node.config.data_dir.as_deref()),
            };
            // Deploying builds the job's plan: let the connection keep reading meanwhile.
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
        ToTaskManager::ReleaseJob(job) => release_job(link, executor.as_ref(), job),
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
        ToTaskManager::Kill(kill) => match (node.config.fault_injection, executor) {
            (false, _) => {
                warn!(task_manager = %node.config.id, ?kill, "asked to kill an actor, but fault injection is off here")
            }
            (true, None) => warn!(task_manager = %node.config.id, ?kill, "no task executor to kill or ask"),
            (true, Some(executor)) => match kill {
                Kill::Subtask { job, vertex, index } => {
                    let _ = executor.cast(TaskExecutorMessage::KillSubtask { job, vertex, index });
                }
                Kill::TaskExecutor { .. } => {
                    warn!(task_manager = %node.config.id, "killing the task executor (fault injection)");
                    executor.kill();
                }
                Kill::Control(_) => warn!(task_manager = %node.config.id, ?kill, "not an actor of a task manager"),
            },
        },
        ToTaskManager::CutDataConnections => {
            if node.config.fault_injection {
                let cut = node.shuffle.cut_connections();
                warn!(task_manager = %node.config.id, cut, "cut the data connections (fault injection)");
            } else {
                warn!(task_manager = %node.config.id, "asked to cut data connections, but fault injection is off here");
            }
        }
    }
    Ok(())
}

/// The job's state backend on this TaskManager: RocksDB databases go to the job's own
/// directory if it names one (`--state-dir`), else to this TaskManager's data directory.
fn local_state_backend(backend: StateBackend, data_dir: Option<&std::path::Path>) -> StateBackend {
    match backend {
        StateBackend::RocksDb { dir: None } => StateBackend::RocksDb { dir: data_dir.map(|d| d.join("rocksdb")) },
        other => other,
    }
}

/// Stops job `job`'s subtasks here and frees its slots.
fn release_job(link: &Link, executor: Option<&ActorRef<TaskExecutorMessage>>, job: JobId) {
    link.metrics.lock().expect("link lock").retain(|e, _| e.job != job);
    if let Some(executor) = executor {
        let _ = executor.cast(TaskExecutorMessage::ReleaseJob(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_databases_go_to_the_jobs_dir_else_the_task_managers_data_dir() {
        let data = std::path::Path::new("/data/tm-1");
        let own = StateBackend::RocksDb { dir: Some("/job/state".into()) };
        assert_eq!(local_state_backend(own.clone(), Some(data)), own);
        assert_eq!(
            local_state_backend(StateBackend::RocksDb { dir: None }, Some(data)),
            StateBackend::RocksDb { dir: Some("/data/tm-1/rocksdb".into()) }
        );
        assert_eq!(local_state_backend(StateBackend::RocksDb { dir: None }, None), StateBackend::RocksDb { dir: None });
        assert_eq!(local_state_backend(StateBackend::Memory, Some(data)), StateBackend::Memory);
    }
}
