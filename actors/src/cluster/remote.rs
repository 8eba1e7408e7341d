//! Cluster mode: the JobManager and TaskManager processes, and the client, talking over QUIC
//! with mutual TLS.
//!
//! The actors are the MiniCluster's; what changes is how they reach each other. On the
//! JobManager, a TaskManager is a proxy actor with the TaskExecutor's message type, so the
//! ResourceManager and JobMasters address a remote executor exactly as a local one; on a
//! TaskManager, the ResourceManager and JobMasters are proxies the other way. Proxies turn
//! messages into the versioned [`protocol`] on the connection's control stream; records take
//! their own QUIC streams between TaskManagers (`weir_dataplane::NetShuffle`).
//!
//! Decision: the CLI client speaks this same control protocol (with the cluster's client
//! certificate) rather than the REST API, so it needs no HTTP client and shares the
//! JobManager's mutual-TLS door; REST serves browsers, scripts and monitoring.

pub mod client;
pub mod job_manager;
pub mod protocol;
pub mod task_manager;

use std::time::Duration;

/// How often peers prove they are alive, and how long silence is tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatConfig {
    /// Between heartbeats.
    pub interval: Duration,
    /// Silence after which a peer is lost.
    pub timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { interval: Duration::from_secs(1), timeout: Duration::from_secs(10) }
    }
}
