//! `weir jobmanager` and `weir taskmanager`: the long-running processes of a cluster.
//!
//! Both run until SIGTERM or SIGINT and leave with a log line saying why; `weir cluster stop`
//! sends SIGTERM. A TaskManager that loses its JobManager connects again, to the address the
//! cluster directory publishes at each attempt unless `--jobmanager` fixes one, and exits
//! only if it is not registered again within `taskmanager.registration_timeout_ms`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};
use weir_actors::cluster::ComponentRef;
use weir_actors::cluster::messages::{DispatcherMessage, ResourceManagerMessage};
use weir_actors::cluster::remote::job_manager::{JobManager, JobManagerConfig};
use weir_actors::cluster::remote::task_manager::{JobManagerAddress, TaskManager, TaskManagerConfig};
use weir_actors::cluster::rest::{RestState, serve, serve_task_manager_metrics};
use weir_actors::{JobRegistry, WeirError};

use crate::config::{ClusterDir, Published};

#[derive(Debug, Args)]
pub(crate) struct JobManagerArgs {
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where TaskManagers and clients connect (QUIC over UDP).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Where the REST API listens (default loopback).
    #[arg(long)]
    rest_bind: Option<SocketAddr>,
    /// A configuration file instead of the cluster directory's weir.toml.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct TaskManagerArgs {
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The JobManager's address (default: the one the cluster directory publishes, read
    /// again whenever the JobManager is lost, so a restarted one is found wherever it listens).
    #[arg(long)]
    jobmanager: Option<SocketAddr>,
    /// Slots offered.
    #[arg(long)]
    slots: Option<usize>,
    /// Where other TaskManagers open data streams.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// This TaskManager's id (default: taskmanager-<pid>).
    #[arg(long)]
    id: Option<String>,
    /// Working directory for state: the RocksDB databases of jobs that give no --state-dir
    /// (default: the system's temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A configuration file instead of the cluster directory's weir.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where its own `GET /metrics` listens (default loopback, any port; published in the
    /// cluster directory's `metrics/<id>`).
    #[arg(long)]
    metrics_bind: Option<SocketAddr>,
}

async fn terminated() -> &'static str {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

pub(crate) fn job_manager(registry: &JobRegistry, args: JobManagerArgs) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(args.dir)?;
    let mut config = dir.config(args.config.as_deref())?;
    weir_state::storage::configure_s3(config.s3.clone());
    if let Some(bind) = args.bind {
        config.jobmanager.bind = bind;
    }
    if let Some(rest) = args.rest_bind {
        config.jobmanager.rest_bind = rest;
    }
    let identity = dir.identity()?;
    let token = dir.token()?;
    let fault_injection = crate::config::fault_injection()?;
    crate::config::arm_failpoints()?;
    let registry = registry.clone();
    crate::runtime()?.block_on(async move {
        // With high availability, only the elected leader goes on; the others wait here.
        let mut leadership = None;
        if config.ha.enabled() {
            let candidate = format!("jobmanager-{}", std::process::id());
            eprintln!("job manager {candidate}: waiting to lead the cluster (etcd {:?})", config.ha.etcd);
            tokio::select! {
                elected = crate::ha::campaign(&config.ha, &candidate) => leadership = Some(elected?),
                signal = terminated() => {
                    info!("job manager stopping while a standby: received {signal}");
                    return Ok(());
                }
            }
        }
        let jm = JobManager::start(JobManagerConfig {
            bind: config.jobmanager.bind,
            identity,
            net: config.heartbeat.net(),
            heartbeat: config.heartbeat.config(),
            registry: registry.clone(),
            slot_request_timeout: Duration::from_millis(config.jobmanager.slot_request_timeout_ms),
            job_store: Some(dir.job_store_in(&config)),
            fault_injection,
        })
        .await?;
        let listener = bind_http(config.jobmanager.rest_bind, "the REST API").await?;
        let rest = listener.local_addr()?;
        let (dispatcher, resource_manager) = jm.components();
        let savepoint_dir = Some(dir.savepoints_dir_in(&config));
        let state = RestState {
            dispatcher,
            resource_manager,
            registry,
            token,
            savepoint_dir,
            rates: Default::default(),
            process: Some(jm.probe()),
        };
        let server = tokio::spawn(serve(listener, state));
        let published = Published { quic: jm.addr(), rest, pid: std::process::id() };
        dir.publish(&published)?;
        if let Some(leadership) = &mut leadership {
            leadership.proclaim(&published).await?;
        }
        info!(quic = %jm.addr(), %rest, dir = %dir.path.display(), "job manager running");
        eprintln!("job manager running: quic {} rest http://{rest}", jm.addr());
        let lost = async {
            match &mut leadership {
                Some(leadership) => leadership.lost().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            signal = terminated() => format!("received {signal}"),
            _ = jm.wait() => "a component failed".to_owned(),
            why = lost => crate::ha::fence(&why),
        };
        info!("job manager stopping: {why}");
        server.abort();
        let _ = std::fs::remove_file(dir.file("jobmanager.addr"));
        jm.shutdown().await;
        if let Some(leadership) = &mut leadership {
            // A standby takes over now rather than when the lease runs out.
            leadership.resign().await;
        }
        anyhow::Ok(())
    })
}

/// Binds a plain-HTTP listener for `what`, warning when it is not on loopback.
async fn bind_http(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        // DESIGN §8: no TLS, and reading needs no token.
        tracing::warn!(%addr, "{what} (no TLS; reads need no token) listens beyond loopback");
    }
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {what} to {addr}"))
}

/// Stops a TaskManager's metrics server and removes its published address when dropped.
struct Unpublish(PathBuf, tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for Unpublish {
    fn drop(&mut self) {
        self.1.abort();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves the REST API of `weir run --local`'s MiniCluster on `addr` with a fresh token,
/// printed with the address; the server stops when the handle is aborted.
pub(crate) async fn serve_rest(
    addr: SocketAddr,
    (dispatcher, resource_manager): (ComponentRef<DispatcherMessage>, ComponentRef<ResourceManagerMessage>),
    registry: JobRegistry,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = bind_http(addr, "the REST API").await?;
    let rest = listener.local_addr()?;
    let token = crate::config::random_token();
    eprintln!("REST API and web UI: http://{rest}/ (token for actions: {token})");
    info!(%rest, "REST API running");
    let state = RestState {
        dispatcher,
        resource_manager,
        registry,
        token,
        savepoint_dir: None,
        rates: Default::default(),
        process: None,
    };
    Ok(tokio::spawn(serve(listener, state)))
}

pub(crate) fn task_manager(registry: &JobRegistry, args: TaskManagerArgs) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(args.dir)?;
    let mut config = dir.config(args.config.as_deref())?;
    weir_state::storage::configure_s3(config.s3.clone());
    if let Some(bind) = args.bind {
        config.taskmanager.bind = bind;
    }
    if let Some(metrics) = args.metrics_bind {
        config.taskmanager.metrics_bind = metrics;
    }
    if let Some(slots) = args.slots {
        anyhow::ensure!(slots > 0, "--slots must be at least 1");
        config.taskmanager.slots = slots;
    }
    let fault_injection = crate::config::fault_injection()?;
    crate::config::arm_failpoints()?;
    if let Some(data_dir) = &args.data_dir {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create --data-dir {}", data_dir.display()))?;
    }
    let identity = dir.identity()?;
    let id = args.id.unwrap_or_else(|| format!("taskmanager-{}", std::process::id()));
    let registry = registry.clone();
    crate::runtime()?.block_on(async move {
        let registration_timeout = Duration::from_millis(config.taskmanager.registration_timeout_ms);
        let job_manager = match args.jobmanager {
            Some(addr) => JobManagerAddress::Fixed(addr),
            None if config.ha.enabled() => {
                // The leader's address as etcd says, kept up to date: read at every attempt.
                let watch = crate::ha::LeaderWatch::start(config.ha.clone());
                let deadline = tokio::time::Instant::now() + registration_timeout;
                while watch.leader().is_none() {
                    if tokio::time::Instant::now() >= deadline {
                        anyhow::bail!(
                            "no job manager leads the cluster (etcd {:?}, cluster id {:?}) after {} ms",
                            config.ha.etcd,
                            config.ha.cluster_id,
                            registration_timeout.as_millis()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                JobManagerAddress::Lookup(Arc::new(move || {
                    watch.leader().map(|p| p.quic).ok_or_else(|| WeirError::runtime("no job manager leads the cluster"))
                }))
            }
            None => {
                // Read at every attempt: a restarted JobManager publishes where it listens now.
                let dir = dir.clone();
                JobManagerAddress::Lookup(Arc::new(move || {
                    dir.published().map(|p| p.quic).map_err(|e| WeirError::runtime(format!("{e:#}")))
                }))
            }
        };
        let tm = TaskManager::start(TaskManagerConfig {
            id: id.clone(),
            slots: config.taskmanager.slots,
            job_manager,
            bind: config.taskmanager.bind,
            identity,
            net: config.heartbeat.net(),
            heartbeat: config.heartbeat.config(),
            registry,
            registration_timeout,
            fault_injection,
            data_dir: args.data_dir.clone(),
        })
        .await
        .inspect_err(|e| error!(task_manager = %id, "cannot join the cluster: {e}"))?;
        let listener = bind_http(config.taskmanager.metrics_bind, "its /metrics").await?;
        let metrics_addr = listener.local_addr()?;
        let metrics_server = tokio::spawn(serve_task_manager_metrics(listener, tm.metrics()));
        let published = dir.file("metrics").join(&id);
        std::fs::create_dir_all(dir.file("metrics"))?;
        std::fs::write(&published, format!("http://{metrics_addr}/metrics\n"))
            .with_context(|| format!("cannot publish the metrics address in {}", published.display()))?;
        info!(task_manager = %id, data = %tm.data_addr(), metrics = %metrics_addr, slots = config.taskmanager.slots, "task manager running");
        eprintln!("task manager {id} running: data {} metrics http://{metrics_addr}/metrics", tm.data_addr());
        let mut run = std::pin::pin!(tm.run());
        let _unpublish = Unpublish(published, metrics_server);
        tokio::select! {
            signal = terminated() => {
                info!(task_manager = %id, "task manager stopping: received {signal}");
                Ok(())
            }
            ended = &mut run => {
                let e = ended.err().map(|e| e.to_string()).unwrap_or_else(|| "the session ended".into());
                error!(task_manager = %id, "task manager stopping: {e}");
                Err(anyhow::anyhow!(e))
            }
        }
    })
}
