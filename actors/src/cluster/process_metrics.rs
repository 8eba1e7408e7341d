//! Figures of one Weir process — a JobManager or a TaskManager — for `/metrics` and
//! `GET /taskmanagers`: resident memory and CPU time (from `/proc/self`, Linux), its QUIC
//! connections and the bytes they carried, and the heartbeats it missed.
//!
//! A TaskManager reads its own with every heartbeat it sends, so the JobManager shows every
//! process of the cluster; each process also serves its own on its `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_dataplane::NetEndpoint;

/// Clock ticks per second of `/proc/self/stat`'s CPU times: Linux's `USER_HZ`, 100 on every
/// architecture it exposes to user space (the Prometheus Go client's procfs assumes it too).
const USER_HZ: f64 = 100.0;

/// A process's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessMetrics {
    /// Resident memory (`VmRSS`); 0 where `/proc` cannot be read.
    pub rss_bytes: u64,
    /// User and system CPU time of all its threads so far.
    pub cpu_seconds: f64,
    /// QUIC connections open on its endpoint (control and data).
    pub quic_connections: u64,
    /// UDP bytes its QUIC connections sent and received (those it keeps per peer).
    pub quic_sent_bytes: u64,
    /// See `quic_sent_bytes`.
    pub quic_received_bytes: u64,
    /// Heartbeat intervals that passed without a word from a peer that should have spoken
    /// (a TaskManager counts the JobManager's silences, the JobManager each TaskManager's).
    pub heartbeat_misses: u64,
}

/// What a process reads its figures from: its QUIC endpoint, and its count of missed
/// heartbeats, which its heartbeat loops add to.
#[derive(Debug, Clone, Default)]
pub struct ProcessProbe {
    net: Option<Arc<NetEndpoint>>,
    heartbeat_misses: Arc<AtomicU64>,
}

impl ProcessProbe {
    /// A probe of the process owning `net` (`None`: a process without a network, e.g. a
    /// MiniCluster).
    pub fn new(net: Option<Arc<NetEndpoint>>) -> Self {
        ProcessProbe { net, heartbeat_misses: Arc::default() }
    }

    /// A heartbeat interval passed without the peer speaking.
    pub(crate) fn missed_heartbeat(&self) {
        self.heartbeat_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The process's figures now.
    pub fn read(&self) -> ProcessMetrics {
        let (rss_bytes, cpu_seconds) = read_proc();
        let net = self.net.as_ref().map(|n| n.stats()).unwrap_or_default();
        ProcessMetrics {
            rss_bytes,
            cpu_seconds,
            quic_connections: net.connections,
            quic_sent_bytes: net.sent_bytes,
            quic_received_bytes: net.received_bytes,
            heartbeat_misses: self.heartbeat_misses.load(Ordering::Relaxed),
        }
    }
}

/// Resident bytes and CPU seconds of this process, zeros where `/proc` is not there.
fn read_proc() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| rss_of_status(&s)).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_of_stat(&s)).unwrap_or(0.0);
    (rss, cpu)
}

/// `VmRSS:   1234 kB` in bytes.
fn rss_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `utime + stime` (fields 14 and 15) of `/proc/self/stat`, in seconds. The command name
/// (field 2) is in parentheses and may hold spaces: fields are counted after its last `)`.
fn cpu_of_stat(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state): utime is the 12th field from there.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed_field_by_field() {
        let status = "Name:\tweir\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(rss_of_status(status), Some(2 * 1024 * 1024));
        assert_eq!(rss_of_status("Name:\tweir\n"), None);
        // A command name with spaces and a parenthesis; utime 250 and stime 50 ticks.
        let stat = "4242 (weir (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_of_stat(stat), Some(3.0));
        assert_eq!(cpu_of_stat("4242 (weir) S 1"), None);
    }

    #[test]
    fn this_process_has_memory_and_counts_its_misses() {
        let probe = ProcessProbe::new(None);
        probe.missed_heartbeat();
        let m = probe.read();
        assert!(m.rss_bytes > 1024 * 1024, "{m:?}");
        assert!(m.cpu_seconds >= 0.0 && m.quic_connections == 0, "{m:?}");
        assert_eq!(m.heartbeat_misses, 1);
    }
}
