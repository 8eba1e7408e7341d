//! Helpers for the network tests: nodes on loopback and deadlines.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{ClusterCa, NetConfig, NetEndpoint};

/// How long any network step in a test may take before the test fails.
pub(super) const DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
pub(super) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future).await.unwrap_or_else(|_| panic!("{what}: no result within {DEADLINE:?}"))
}

/// An endpoint on 127.0.0.1 with an identity from `ca`.
pub(super) fn node(ca: &ClusterCa, name: &str, config: NetConfig) -> Arc<NetEndpoint> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    NetEndpoint::bind(loopback, &ca.issue(name).unwrap(), config).unwrap()
}

/// Two nodes of one cluster and the connection between them, as each side sees it.
pub(super) struct Pair {
    /// The dialing node.
    pub(super) a: Arc<NetEndpoint>,
    /// The accepting node.
    pub(super) b: Arc<NetEndpoint>,
    /// The connection `a` dialed.
    pub(super) a_to_b: quinn::Connection,
    /// The same connection, as `b` accepted it.
    pub(super) b_from_a: quinn::Connection,
}

/// Two connected nodes, both with `config`.
pub(super) async fn pair(config: NetConfig) -> Pair {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, b) = (node(&ca, "a", config.clone()), node(&ca, "b", config));
    let (a_to_b, b_from_a) = within("connect", async { tokio::join!(a.connect(b.local_addr()), b.accept()) }).await;
    Pair { a_to_b: a_to_b.unwrap(), b_from_a: b_from_a.unwrap().unwrap(), a, b }
}

/// Waits until `condition` holds, checking every few milliseconds, failing the test if it
/// does not within [`DEADLINE`].
pub(super) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
