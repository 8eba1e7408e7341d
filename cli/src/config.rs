//! The cluster directory and its configuration: certificates, the REST token, `weir.toml`,
//! and where the processes publish their addresses, pids and logs.
//!
//! Precedence: a flag beats a `WEIR_*` environment variable, which beats `weir.toml`, which
//! beats the built-in default.
//!
//! One switch is an environment variable only, on purpose: `WEIR_FAULT_INJECTION=1` lets
//! clients cut the cluster's connections (`weir cut-connections`, for tests and chaos runs).
//! It stays out of `weir.toml` so that a configuration file copied around never turns it on.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use weir_actors::cluster::remote::HeartbeatConfig;
use weir_actors::cluster::remote::task_manager::DEFAULT_REGISTRATION_TIMEOUT;
use weir_dataplane::{ClusterCa, NetConfig, NodeIdentity};
use weir_state::storage::{Location, S3Options};

/// `weir.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WeirConfig {
    pub(crate) jobmanager: JobManagerSection,
    pub(crate) taskmanager: TaskManagerSection,
    pub(crate) heartbeat: HeartbeatSection,
    pub(crate) state: StateSection,
    /// How to reach S3-compatible storage (checkpoints, savepoints and RocksDB's shared files
    /// at `s3://` locations), beyond the `AWS_*` environment variables.
    #[serde(skip_serializing_if = "is_default")]
    pub(crate) s3: S3Options,
    /// JobManager high availability (see `crate::ha`).
    #[serde(skip_serializing_if = "is_default")]
    pub(crate) ha: crate::ha::HaSection,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// `location` with a relative local path made absolute (the cluster's processes resolve it
/// from elsewhere); an object store location as it is.
pub(crate) fn absolute(location: &Location) -> std::io::Result<Location> {
    match location {
        Location::Local(path) => std::path::absolute(path).map(Location::Local),
        other => Ok(other.clone()),
    }
}

/// Checkpoints and savepoints (Flink's `state.savepoints.dir`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StateSection {
    /// Where `weir savepoint` and `weir stop` put savepoints when not told (relative paths
    /// are under the cluster directory; default: its `savepoints/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) savepoints_dir: Option<Location>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct JobManagerSection {
    /// Where TaskManagers and clients connect (QUIC, UDP).
    pub(crate) bind: SocketAddr,
    /// The REST API (loopback unless you mean it).
    pub(crate) rest_bind: SocketAddr,
    /// How long a job waits for slots other jobs hold.
    pub(crate) slot_request_timeout_ms: u64,
    /// Where the job store keeps the submitted jobs: a directory (relative paths are under the
    /// cluster directory) or an `s3://` prefix. Default: the cluster directory's `jobs/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) job_store: Option<Location>,
}

impl Default for JobManagerSection {
    fn default() -> Self {
        JobManagerSection {
            bind: "127.0.0.1:0".parse().expect("address"),
            rest_bind: "127.0.0.1:0".parse().expect("address"),
            slot_request_timeout_ms: 30_000,
            job_store: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TaskManagerSection {
    /// Where other TaskManagers open data streams.
    pub(crate) bind: SocketAddr,
    /// Slots offered.
    pub(crate) slots: usize,
    /// How long a TaskManager that lost its JobManager tries to register again before it
    /// exits (Flink's `taskmanager.registration.timeout`).
    pub(crate) registration_timeout_ms: u64,
    /// Where its own `GET /metrics` listens (loopback unless you mean it: no TLS); the
    /// address is published in the cluster directory's `metrics/<id>`.
    pub(crate) metrics_bind: SocketAddr,
}

impl Default for TaskManagerSection {
    fn default() -> Self {
        TaskManagerSection {
            bind: "127.0.0.1:0".parse().expect("address"),
            slots: 2,
            registration_timeout_ms: DEFAULT_REGISTRATION_TIMEOUT.as_millis() as u64,
            metrics_bind: "127.0.0.1:0".parse().expect("address"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HeartbeatSection {
    pub(crate) interval_ms: u64,
    pub(crate) timeout_ms: u64,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        let d = HeartbeatConfig::default();
        HeartbeatSection { interval_ms: d.interval.as_millis() as u64, timeout_ms: d.timeout.as_millis() as u64 }
    }
}

impl HeartbeatSection {
    pub(crate) fn config(&self) -> HeartbeatConfig {
        HeartbeatConfig {
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }

    /// The QUIC settings of a JobManager's or TaskManager's connections: kept alive at the
    /// heartbeat interval and lost after the heartbeat timeout of silence, so a partition
    /// between two TaskManagers (their data connections) is noticed as soon as one between a
    /// TaskManager and the JobManager (their heartbeats). The defaults agree (1 s, 10 s).
    pub(crate) fn net(&self) -> NetConfig {
        let heartbeat = self.config();
        NetConfig { keep_alive: heartbeat.interval, idle_timeout: heartbeat.timeout, ..NetConfig::default() }
    }
}

fn env_override<T: std::str::FromStr>(name: &str, target: &mut T) -> anyhow::Result<()>
where
    T::Err: std::fmt::Display,
{
    if let Ok(raw) = std::env::var(name) {
        *target = raw.parse().map_err(|e| anyhow::anyhow!("invalid value '{raw}' in ${name}: {e}"))?;
    }
    Ok(())
}

impl WeirConfig {
    /// Reads `path` (absent: defaults), then applies `WEIR_*` variables.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let mut config = if path.exists() {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))?
        } else {
            WeirConfig::default()
        };
        env_override("WEIR_JOBMANAGER_BIND", &mut config.jobmanager.bind)?;
        env_override("WEIR_REST_BIND", &mut config.jobmanager.rest_bind)?;
        env_override("WEIR_SLOT_REQUEST_TIMEOUT_MS", &mut config.jobmanager.slot_request_timeout_ms)?;
        env_override("WEIR_TASKMANAGER_BIND", &mut config.taskmanager.bind)?;
        env_override("WEIR_TASKMANAGER_SLOTS", &mut config.taskmanager.slots)?;
        env_override("WEIR_TASKMANAGER_REGISTRATION_TIMEOUT_MS", &mut config.taskmanager.registration_timeout_ms)?;
        env_override("WEIR_HEARTBEAT_INTERVAL_MS", &mut config.heartbeat.interval_ms)?;
        env_override("WEIR_HEARTBEAT_TIMEOUT_MS", &mut config.heartbeat.timeout_ms)?;
        if let Some(dir) = std::env::var_os("WEIR_SAVEPOINTS_DIR") {
            let dir = dir.to_str().context("WEIR_SAVEPOINTS_DIR is not valid UTF-8")?;
            config.state.savepoints_dir =
                Some(Location::parse(dir).map_err(|e| anyhow::anyhow!("invalid WEIR_SAVEPOINTS_DIR: {e}"))?);
        }
        if config.heartbeat.interval_ms == 0 || config.heartbeat.timeout_ms <= config.heartbeat.interval_ms {
            bail!(
                "heartbeat timeout ({} ms) must be longer than its interval ({} ms), and the interval positive",
                config.heartbeat.timeout_ms,
                config.heartbeat.interval_ms
            );
        }
        if config.taskmanager.slots == 0 {
            bail!("taskmanager slots must be at least 1");
        }
        config.ha.check().with_context(|| format!("invalid configuration in {}", path.display()))?;
        if config.taskmanager.registration_timeout_ms == 0 {
            bail!("taskmanager registration_timeout_ms must be positive");
        }
        Ok(config)
    }
}

/// `WEIR_FAULT_INJECTION`: whether this process obeys fault-injection requests (off unless
/// set to `1` or `true`).
pub(crate) fn fault_injection() -> anyhow::Result<bool> {
    match std::env::var("WEIR_FAULT_INJECTION") {
        Err(_) => Ok(false),
        Ok(raw) => match raw.trim() {
            "1" | "true" => Ok(true),
            "0" | "false" | "" => Ok(false),
            _ => bail!("invalid value '{raw}' in $WEIR_FAULT_INJECTION: use 1 or 0"),
        },
    }
}

/// `WEIR_FAILPOINTS` (e.g. `after-completion@3,before-ack@12`): failpoints armed in this
/// process for every job, each aborting the process at its hit (see
/// [`weir_actors::base::failpoint`]). Only with `WEIR_FAULT_INJECTION=1`.
pub(crate) fn arm_failpoints() -> anyhow::Result<()> {
    let Ok(raw) = std::env::var("WEIR_FAILPOINTS") else { return Ok(()) };
    let points =
        weir_actors::base::failpoint::parse_list(&raw).map_err(|e| anyhow::anyhow!("$WEIR_FAILPOINTS: {e}"))?;
    if points.is_empty() {
        return Ok(());
    }
    if !fault_injection()? {
        bail!("$WEIR_FAILPOINTS is set, but fault injection is off: set WEIR_FAULT_INJECTION=1 too");
    }
    let names: Vec<String> = points.iter().map(ToString::to_string).collect();
    tracing::warn!(failpoints = %names.join(","), "failpoints armed: this process aborts at each (fault injection)");
    weir_actors::base::failpoint::arm(None, points, weir_actors::base::failpoint::Action::Abort).forever();
    Ok(())
}

/// Where a running JobManager can be reached (written by it once bound).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Published {
    pub(crate) quic: SocketAddr,
    pub(crate) rest: SocketAddr,
    pub(crate) pid: u32,
}

/// A cluster's directory.
#[derive(Debug, Clone)]
pub(crate) struct ClusterDir {
    pub(crate) path: PathBuf,
}

impl ClusterDir {
    /// `--dir`, else `$WEIR_CLUSTER_DIR`, else `~/.weir/cluster`.
    pub(crate) fn resolve(flag: Option<PathBuf>) -> anyhow::Result<Self> {
        let path = match flag.or_else(|| std::env::var_os("WEIR_CLUSTER_DIR").map(PathBuf::from)) {
            Some(p) => p,
            None => {
                let home = std::env::var_os("HOME").context("no --dir, no $WEIR_CLUSTER_DIR and no $HOME")?;
                PathBuf::from(home).join(".weir/cluster")
            }
        };
        let path = if path.is_absolute() { path } else { std::env::current_dir()?.join(path) };
        Ok(ClusterDir { path })
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn is_initialised(&self) -> bool {
        ["ca.pem", "node.pem", "node.key", "token"].iter().all(|f| self.file(f).exists())
    }

    /// Creates the CA, the node certificate, the REST token and a default `weir.toml`.
    pub(crate) fn init(&self) -> anyhow::Result<()> {
        if self.is_initialised() {
            bail!("{} is already initialised (remove it to start afresh)", self.path.display());
        }
        std::fs::create_dir_all(&self.path).with_context(|| format!("cannot create {}", self.path.display()))?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "weir".into());
        let ca = ClusterCa::generate(&name)?;
        let node = ca.issue("weir-node")?;
        write_private(&self.file("ca.key"), &ca.key_pem())?;
        std::fs::write(self.file("ca.pem"), ca.cert_pem())?;
        std::fs::write(self.file("node.pem"), &node.cert_pem)?;
        write_private(&self.file("node.key"), &node.key_pem)?;
        write_private(&self.file("token"), &random_token())?;
        if !self.file("weir.toml").exists() {
            std::fs::write(self.file("weir.toml"), toml::to_string_pretty(&WeirConfig::default())?)?;
        }
        std::fs::create_dir_all(self.file("logs"))?;
        std::fs::create_dir_all(self.file("pids"))?;
        Ok(())
    }

    /// Makes `out` the cluster directory of node `node` on another machine: the CA's
    /// certificate (not its key), an identity of the node's own whose certificate names
    /// `addresses`, the REST token and this directory's `weir.toml`.
    pub(crate) fn issue(&self, node: &str, addresses: &[IpAddr], out: &ClusterDir) -> anyhow::Result<()> {
        let ca_key = self.file("ca.key");
        if !self.is_initialised() || !ca_key.exists() {
            bail!(
                "{} is not a cluster directory holding its CA's key (ca.key; `weir cluster init` makes one)",
                self.path.display()
            );
        }
        if out.path.exists() && std::fs::read_dir(&out.path)?.next().is_some() {
            bail!("{} exists and is not empty: choose a new directory for node {node}", out.path.display());
        }
        let read =
            |path: PathBuf| std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()));
        let ca = ClusterCa::from_pem(&read(self.file("ca.pem"))?, &read(ca_key)?)?;
        let identity = ca.issue_for(node, addresses)?;
        std::fs::create_dir_all(&out.path).with_context(|| format!("cannot create {}", out.path.display()))?;
        std::fs::write(out.file("ca.pem"), &identity.ca_pem)?;
        std::fs::write(out.file("node.pem"), &identity.cert_pem)?;
        write_private(&out.file("node.key"), &identity.key_pem)?;
        write_private(&out.file("token"), &self.token()?)?;
        let config = self.file("weir.toml");
        if config.exists() {
            std::fs::copy(&config, out.file("weir.toml"))
                .with_context(|| format!("cannot copy {}", config.display()))?;
        }
        std::fs::create_dir_all(out.file("logs"))?;
        std::fs::create_dir_all(out.file("pids"))?;
        Ok(())
    }

    pub(crate) fn identity(&self) -> anyhow::Result<NodeIdentity> {
        if !self.is_initialised() {
            bail!(
                "{} is not a cluster directory (run `weir cluster init --dir {}`)",
                self.path.display(),
                self.path.display()
            );
        }
        let read = |f: &str| {
            let path = self.file(f);
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        Ok(NodeIdentity { ca_pem: read("ca.pem")?, cert_pem: read("node.pem")?, key_pem: read("node.key")? })
    }

    /// Where savepoints go when a command names no directory: `state.savepoints_dir` of
    /// `weir.toml` (or `$WEIR_SAVEPOINTS_DIR`), relative to the cluster directory, else its
    /// `savepoints/`.
    pub(crate) fn savepoints_dir(&self) -> anyhow::Result<Location> {
        Ok(self.savepoints_dir_in(&self.config(None)?))
    }

    /// Where the job store is: `jobmanager.job_store` of `weir.toml`, relative to the cluster
    /// directory, else its `jobs/`.
    pub(crate) fn job_store_in(&self, config: &WeirConfig) -> Location {
        self.resolve_in(config.jobmanager.job_store.as_ref(), "jobs")
    }

    /// `configured` with a relative local path under the cluster directory, else its `default`.
    fn resolve_in(&self, configured: Option<&Location>, default: &str) -> Location {
        match configured {
            Some(Location::Local(dir)) if dir.is_relative() => Location::Local(self.path.join(dir)),
            Some(dir) => dir.clone(),
            None => self.file(default).into(),
        }
    }

    /// As [`ClusterDir::savepoints_dir`], with `config` loaded already.
    pub(crate) fn savepoints_dir_in(&self, config: &WeirConfig) -> Location {
        self.resolve_in(config.state.savepoints_dir.as_ref(), "savepoints")
    }

    pub(crate) fn token(&self) -> anyhow::Result<String> {
        let path = self.file("token");
        Ok(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?.trim().to_owned())
    }

    pub(crate) fn config(&self, flag: Option<&Path>) -> anyhow::Result<WeirConfig> {
        let mut config = WeirConfig::load(flag.unwrap_or(&self.file("weir.toml")))?;
        config.ha.resolve_tls_files(&self.path);
        Ok(config)
    }

    pub(crate) fn publish(&self, published: &Published) -> anyhow::Result<()> {
        let tmp = self.file(".jobmanager.addr.tmp");
        std::fs::write(&tmp, toml::to_string(published)?)?;
        std::fs::rename(&tmp, self.file("jobmanager.addr"))?;
        Ok(())
    }

    pub(crate) fn published(&self) -> anyhow::Result<Published> {
        let path = self.file("jobmanager.addr");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("no job manager is running for {} ({} is missing)", self.path.display(), path.display())
        })?;
        toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// 256 bits from the kernel's random source, hex.
pub(crate) fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    let mut urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    urandom.read_exact(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
