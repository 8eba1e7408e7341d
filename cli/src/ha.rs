//! JobManager high availability through etcd (Flink's HA services with etcd in ZooKeeper's
//! or Kubernetes' place).
//!
//! Several `weir jobmanager` processes of one cluster campaign in one etcd election,
//! `/weir/<cluster id>/leader`, each under a lease of its own. The winner starts the
//! JobManager (its job store and checkpoints are where every JobManager reads them: a shared
//! directory or an `s3://` prefix), then proclaims where it listens; the others wait in the
//! election. TaskManagers and clients observe the election's value and follow the leader.
//!
//! **Fencing.** The leader keeps its lease alive every `ttl / 4`. etcd expires the lease, and
//! so hands leadership to a standby, no earlier than `ttl` after it last heard from the leader,
//! which is after the leader *sent* its last acknowledged keep-alive. Every write of the leader
//! to the state it shares with the others (job store, checkpoint metadata and ids, deletions)
//! checks that `3/4 ttl` have not passed since then ([`weir_actors::base::fence`]), so a leader
//! frozen or cut off past its lease writes nothing when it runs again; and the leader ends its
//! process once that deadline passed or etcd says the lease is gone: every JobMaster stops
//! with it, so two leaders never drive a job. (Flink revokes leadership and keeps the process as a standby; ending it
//! is simpler, and whatever supervises the process — Kubernetes, systemd — starts it again as a
//! standby.)
//!
//! Why etcd rather than ZooKeeper (both are in Debian): a lease with a TTL is exactly the
//! fencing rule above, its election API (campaign, proclaim, observe) is the recipe ready-made,
//! the server is one Go binary that starts in milliseconds (tests start one per test), and
//! `etcd-client` is a maintained async client on tokio. The cost is `protoc` at build time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, LeaderKey, ProclaimOptions, ResignOptions, TlsOptions,
};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};
use weir_actors::base::fence;

use crate::config::Published;

/// `[ha]` of `weir.toml`: where the coordination service is, and the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HaSection {
    /// etcd's client URLs (e.g. `["http://10.0.0.5:2379"]`); empty: no high availability (one
    /// JobManager, found through the cluster directory).
    pub(crate) etcd: Vec<String>,
    /// Names the cluster in etcd: clusters sharing an etcd have different ids.
    pub(crate) cluster_id: String,
    /// The leader's lease: a leader that dies is replaced this long after its last keep-alive
    /// (at least 2 s, etcd's minimum).
    pub(crate) lease_ttl_ms: u64,
    /// With `https://` URLs: the CA etcd's certificate must chain to (default: the cluster
    /// directory's `ca.pem`, so etcd's certificate can come from `weir cluster issue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<PathBuf>,
    /// With `https://` URLs: the certificate and key this node presents to etcd (default: the
    /// cluster directory's `node.pem` and `node.key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_file: Option<PathBuf>,
}

impl Default for HaSection {
    fn default() -> Self {
        HaSection {
            etcd: Vec::new(),
            cluster_id: "default".to_owned(),
            lease_ttl_ms: 6_000,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl HaSection {
    pub(crate) fn enabled(&self) -> bool {
        !self.etcd.is_empty()
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.enabled() && self.lease_ttl_ms < 2_000 {
            bail!("ha.lease_ttl_ms is {} ms: etcd's shortest lease is 2000 ms", self.lease_ttl_ms);
        }
        if self.cluster_id.is_empty() || self.cluster_id.contains('/') {
            bail!("ha.cluster_id {:?} must be a non-empty name without '/'", self.cluster_id);
        }
        let https = self.etcd.iter().filter(|url| url.starts_with("https://")).count();
        if https > 0 && https < self.etcd.len() {
            bail!("ha.etcd {:?} mixes https:// and other URLs: etcd is reached with TLS or without", self.etcd);
        }
        Ok(())
    }

    /// Whether etcd is reached over TLS (its URLs are `https://`).
    fn tls(&self) -> bool {
        self.etcd.first().is_some_and(|url| url.starts_with("https://"))
    }

    /// With TLS, the CA, certificate and key files not given, from the cluster directory
    /// `dir`; relative ones under it.
    pub(crate) fn resolve_tls_files(&mut self, dir: &Path) {
        if !self.tls() {
            return;
        }
        for (file, default) in
            [(&mut self.ca_file, "ca.pem"), (&mut self.cert_file, "node.pem"), (&mut self.key_file, "node.key")]
        {
            let path = file.take().unwrap_or_else(|| PathBuf::from(default));
            *file = Some(if path.is_relative() { dir.join(path) } else { path });
        }
    }

    /// The TLS settings of a client of etcd: the CA it trusts, the identity it presents.
    fn tls_options(&self) -> anyhow::Result<TlsOptions> {
        let read = |file: &Option<PathBuf>, what: &str| {
            let path = file.as_deref().with_context(|| format!("ha.{what} is not set"))?;
            std::fs::read(path).with_context(|| format!("cannot read ha.{what} {}", path.display()))
        };
        Ok(TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca_file, "ca_file")?))
            .identity(Identity::from_pem(read(&self.cert_file, "cert_file")?, read(&self.key_file, "key_file")?)))
    }

    fn election(&self) -> String {
        format!("/weir/{}/leader", self.cluster_id)
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// A client of etcd. (No timeout for every request: a campaign waits as long as another
    /// leads. The calls that must not wait long are given one each.)
    async fn connect(&self) -> anyhow::Result<Client> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1));
        if self.tls() {
            options = options.with_tls(self.tls_options()?);
        }
        Client::connect(&self.etcd, Some(options))
            .await
            .with_context(|| format!("cannot reach etcd at {:?}", self.etcd))
    }
}

/// This process's leadership: held until [`lost`](Leadership::lost) resolves.
pub(crate) struct Leadership {
    client: Client,
    key: LeaderKey,
    lost: tokio::sync::watch::Receiver<Option<String>>,
}

/// Waits until this process leads `ha`'s cluster (campaigning under a lease of its own, kept
/// alive from now on); `candidate` names it in the logs of the others.
pub(crate) async fn campaign(ha: &HaSection, candidate: &str) -> anyhow::Result<Leadership> {
    // etcd may not be up yet (or a member is restarting): try again until it answers.
    let (mut client, lease) = loop {
        match take_lease(ha).await {
            Ok(taken) => break taken,
            Err(e) => {
                warn!("{e:#}; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (lost_tx, lost) = tokio::sync::watch::channel(None);
    tokio::spawn(keep_alive(client.clone(), lease, ha.ttl(), lost_tx));
    info!(election = %ha.election(), lease, "waiting to lead the cluster");
    let started = Instant::now();
    let campaign = client.campaign(ha.election(), candidate, lease);
    let mut watching = lost.clone();
    let elected = tokio::select! {
        elected = campaign => elected.context("the election in etcd failed")?,
        _ = watching.wait_for(Option::is_some) => {
            let why = lost.borrow().clone().unwrap_or_default();
            bail!("lost the lease while waiting to lead: {why}");
        }
    };
    let key = elected.leader().cloned().context("etcd elected this process without a leader key")?;
    info!(election = %ha.election(), waited_ms = started.elapsed().as_millis() as u64, "leading the cluster");
    Ok(Leadership { client, key, lost })
}

/// A client and a new lease of `ha`'s TTL, from which this process's leadership is fenced.
async fn take_lease(ha: &HaSection) -> anyhow::Result<(Client, i64)> {
    let mut client = ha.connect().await?;
    let ttl_secs = ha.ttl().as_secs().max(2) as i64;
    let asked = Instant::now();
    let granted = tokio::time::timeout(ha.ttl() / 4, client.lease_grant(ttl_secs, None))
        .await
        .map_err(|_| anyhow::anyhow!("etcd did not grant a lease within {} ms", (ha.ttl() / 4).as_millis()))?
        .context("cannot take a lease in etcd")?;
    fence::hold_until(asked + ha.ttl() * 3 / 4);
    Ok((client, granted.id()))
}

/// Keeps `lease` alive every `ttl / 4`; reports the leadership lost when etcd says the lease is
/// gone or `3/4 ttl` passed since the last keep-alive etcd acknowledged was sent.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: tokio::sync::watch::Sender<Option<String>>) {
    let deadline_after = ttl * 3 / 4;
    let mut acknowledged_sent = Instant::now();
    let mut keeper = None;
    loop {
        let sent = Instant::now();
        let attempt = async {
            if keeper.is_none() {
                keeper = Some(client.lease_keep_alive(lease).await?);
            }
            let (keeper, stream) = keeper.as_mut().expect("made above");
            keeper.keep_alive().await?;
            stream.message().await
        };
        let answered = tokio::time::timeout(ttl / 4, attempt).await;
        match answered {
            Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                acknowledged_sent = sent;
                fence::hold_until(sent + deadline_after);
            }
            Ok(Ok(Some(_))) => {
                fence::revoke();
                let _ = lost.send(Some(format!("etcd says lease {lease:x} expired")));
                return;
            }
            Ok(Ok(None)) => keeper = None,
            Ok(Err(e)) => {
                warn!("cannot keep the leader's lease alive: {e}");
                keeper = None;
            }
            Err(_) => {
                warn!("etcd did not answer a keep-alive of the leader's lease within {} ms", (ttl / 4).as_millis());
                keeper = None;
            }
        }
        if acknowledged_sent.elapsed() >= deadline_after {
            fence::revoke();
            let _ = lost.send(Some(format!(
                "no keep-alive of lease {lease:x} acknowledged for {} ms (the lease lasts {} ms)",
                acknowledged_sent.elapsed().as_millis(),
                ttl.as_millis()
            )));
            return;
        }
        let next = (sent + ttl / 4).min(acknowledged_sent + deadline_after);
        tokio::time::sleep_until(next.into()).await;
    }
}

impl Leadership {
    /// Tells every follower where the leader listens now.
    pub(crate) async fn proclaim(&mut self, published: &Published) -> anyhow::Result<()> {
        let value = toml::to_string(published)?;
        let options = ProclaimOptions::new().with_leader(self.key.clone());
        self.client.proclaim(value, Some(options)).await.context("cannot proclaim the leader's address in etcd")?;
        Ok(())
    }

    /// Gives the leadership up (a JobManager stopping on purpose), so that a standby takes over
    /// at once rather than when the lease runs out.
    pub(crate) async fn resign(&mut self) {
        let options = ResignOptions::new().with_leader(self.key.clone());
        if let Err(e) = self.client.resign(Some(options)).await {
            warn!("cannot resign the leadership in etcd (a standby takes over when the lease runs out): {e}");
        }
    }

    /// Resolves, with the reason, once this process may no longer lead.
    pub(crate) async fn lost(&mut self) -> String {
        let _ = self.lost.wait_for(Option::is_some).await;
        self.lost.borrow().clone().unwrap_or_else(|| "the lease keeper stopped".to_owned())
    }
}

/// The leader's address as this process last saw it in etcd, kept up to date in the
/// background (TaskManagers look it up at every heartbeat; clients once).
#[derive(Clone)]
pub(crate) struct LeaderWatch {
    current: Arc<Mutex<Option<Published>>>,
}

impl LeaderWatch {
    /// Starts observing `ha`'s election on the current runtime.
    pub(crate) fn start(ha: HaSection) -> LeaderWatch {
        let watch = LeaderWatch { current: Arc::default() };
        let current = watch.current.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = observe(&ha, &current).await {
                    warn!("cannot observe the leader in etcd: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        watch
    }

    /// The leader's addresses, if one is known.
    pub(crate) fn leader(&self) -> Option<Published> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn observe(ha: &HaSection, current: &Mutex<Option<Published>>) -> anyhow::Result<()> {
    let mut client = ha.connect().await?;
    let mut stream = client.observe(ha.election()).await?;
    while let Some(answer) = stream.message().await? {
        let Some(kv) = answer.kv() else { continue };
        // A leader proclaims its addresses once it listens; before that, its value is its name.
        match toml::from_str::<Published>(&String::from_utf8_lossy(kv.value())) {
            Ok(published) => *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(published),
            Err(_) => *current.lock().unwrap_or_else(|e| e.into_inner()) = None,
        }
    }
    Ok(())
}

/// How long a client asks etcd for the leader before it gives up: through a connection that
/// fails (an etcd member restarting; seen under load: a new TLS connection closed at its first
/// request) and through a failover (no leader for up to a lease).
const LEADER_PATIENCE: Duration = Duration::from_secs(5);

/// The current leader's addresses, asked of etcd (clients); asked again on a new connection
/// until [`LEADER_PATIENCE`] has passed.
pub(crate) async fn leader(ha: &HaSection) -> anyhow::Result<Published> {
    let deadline = tokio::time::Instant::now() + LEADER_PATIENCE;
    loop {
        let asked = tokio::time::timeout_at(deadline, ask_leader(ha)).await;
        match asked {
            Ok(Ok(published)) => return Ok(published),
            Ok(Err(e)) if tokio::time::Instant::now() + Duration::from_millis(200) < deadline => {
                tracing::debug!("asking etcd for the leader: {e:#}; asking again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("etcd at {:?} did not say who leads within {} s", ha.etcd, LEADER_PATIENCE.as_secs()),
        }
    }
}

async fn ask_leader(ha: &HaSection) -> anyhow::Result<Published> {
    let mut client = ha.connect().await?;
    let answer = client.leader(ha.election()).await.context("cannot ask etcd which JobManager leads the cluster")?;
    let kv = answer.kv().context("no JobManager leads the cluster")?;
    toml::from_str(&String::from_utf8_lossy(kv.value()))
        .context("the leading JobManager has not said where it listens yet; try again")
}

/// Ends the process: this JobManager may no longer lead (see the module docs).
pub(crate) fn fence(why: &str) -> ! {
    error!(
        "lost the leadership of the cluster ({why}): stopping this JobManager, so that it never drives a job beside the new leader"
    );
    eprintln!("weir jobmanager: lost the leadership of the cluster ({why}); exiting");
    std::process::exit(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> HaSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn tls_files_default_to_the_cluster_directory_and_relative_ones_are_under_it() {
        let mut ha = section(
            "etcd = [\"https://10.0.0.5:2379\", \"https://10.0.0.6:2379\"]\n\
             cert_file = \"certs/me.pem\"\nkey_file = \"/etc/weir/me.key\"",
        );
        ha.check().unwrap();
        ha.resolve_tls_files(Path::new("/srv/weir"));
        assert_eq!(ha.ca_file.as_deref(), Some(Path::new("/srv/weir/ca.pem")));
        assert_eq!(ha.cert_file.as_deref(), Some(Path::new("/srv/weir/certs/me.pem")));
        assert_eq!(ha.key_file.as_deref(), Some(Path::new("/etc/weir/me.key")));
        let mut plain = section("etcd = [\"http://10.0.0.5:2379\"]");
        plain.resolve_tls_files(Path::new("/srv/weir"));
        assert_eq!((plain.ca_file, plain.cert_file, plain.key_file), (None, None, None), "no TLS, no files");
    }

    #[test]
    fn mixed_schemes_short_leases_and_bad_ids_are_refused() {
        let mixed = section("etcd = [\"https://10.0.0.5:2379\", \"http://10.0.0.6:2379\"]");
        assert!(mixed.check().unwrap_err().to_string().contains("mixes https://"));
        let short = section("etcd = [\"http://10.0.0.5:2379\"]\nlease_ttl_ms = 500");
        assert!(short.check().unwrap_err().to_string().contains("2000 ms"));
        let id = section("etcd = [\"http://10.0.0.5:2379\"]\ncluster_id = \"a/b\"");
        assert!(id.check().unwrap_err().to_string().contains("without '/'"));
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let mut ha = section("etcd = [\"https://10.0.0.5:2379\"]\nca_file = \"/nonexistent/weir-ca.pem\"");
        ha.resolve_tls_files(Path::new("/srv/weir"));
        let error = format!("{:#}", ha.tls_options().unwrap_err());
        assert!(error.contains("ha.ca_file /nonexistent/weir-ca.pem"), "{error}");
    }
}
