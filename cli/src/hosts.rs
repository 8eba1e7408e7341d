//! Several hosts on one machine, for tests of what crosses a real network: each host is a
//! network namespace with an address of its own on a private bridge, its processes start
//! inside it (`ip netns exec`), and faults strike through the kernel's own network stack.
//!
//! | fault | how |
//! |---|---|
//! | partition of two hosts, then heal | iptables in both: each drops what arrives from the other (`INPUT`), so senders see no error, as across a real network |
//! | loss | iptables' `statistic` match: a share of what arrives at the host, dropped at random |
//! | latency | iptables `NFQUEUE`: what the host sends waits in a netfilter queue, released in order after the delay by `weir delay-packets` inside the host |
//! | a host that vanishes | its link taken down (its peers' packets go nowhere, nothing answers) and every process in its namespace SIGKILLed |
//!
//! Why not `tc netem` for latency and loss: the kernels this project's machines run are built
//! without it (`CONFIG_NET_SCH_NETEM` unset: `tc qdisc add … netem` answers "Specified qdisc
//! kind is unknown"), while netfilter and its user-space queue are there. The packets still
//! cross veth pairs and a bridge; only the moment they leave is decided in user space.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), `ip` (iproute2) and `iptables` (with the
//! nf_tables backend, Debian's default). Each [`Network`] takes a /24 of 10.200.0.0/13 that no
//! other running network holds (a claim file in `/run/weir-hosts`); a network whose owner died
//! without cleaning up (a test killed at its timeout) is removed, with its processes, by the
//! next one that claims its subnet. Dropping a [`Network`] kills every process in its hosts and
//! removes its namespaces and bridge.

pub(crate) mod delay;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// Where networks claim their subnets.
const CLAIMS: &str = "/run/weir-hosts";
/// Subnets 10.200.0.0/24 … 10.207.255.0/24.
const SUBNETS: u32 = 8 * 256;
/// The interface of a host, inside its namespace.
const HOST_LINK: &str = "eth0";
/// The netfilter queue a host's delayed packets wait in.
const DELAY_QUEUE: u16 = 0;
/// How long a delayer may take to bind its queue.
const DELAYER_START: Duration = Duration::from_secs(10);

/// Networks made by this process so far (names are unique per process and network).
static MADE: AtomicU32 = AtomicU32::new(0);

/// How a host's link is degraded (see [`Network::impair`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Added to every packet the host sends.
    pub delay: Duration,
    /// The share (0 to 1) of packets arriving at the host that are lost.
    pub loss: f64,
}

/// A host of a [`Network`].
#[derive(Debug)]
struct Host {
    name: String,
    address: Ipv4Addr,
    /// Its network namespace.
    netns: String,
    /// Its end of the veth pair in the machine's namespace, a port of the bridge.
    link: String,
    /// The packet delayer running in it (its stdin: closing it releases every held packet and
    /// ends it).
    delayer: Option<(Child, ChildStdin)>,
    /// Its iptables rules now (`-A` arguments), deleted when healed.
    rules: Vec<Vec<String>>,
}

/// Hosts on a private bridge (see the module docs).
#[derive(Debug)]
pub struct Network {
    /// Prefixes every name of the network: `w<pid hex>x<n>`.
    id: String,
    bridge: String,
    /// The subnet's first three octets.
    subnet: [u8; 3],
    claim: PathBuf,
    /// `weir`, whose `delay-packets` delays packets in a host.
    weir: PathBuf,
    hosts: Mutex<Vec<Host>>,
}

impl Network {
    /// A bridge with the machine's own address on it (`.1`, [`Network::gateway`]) and no hosts
    /// yet. `weir` is the binary whose `delay-packets` [`impair`](Network::impair) runs.
    pub fn create(weir: impl Into<PathBuf>) -> anyhow::Result<Network> {
        preflight()?;
        let id = format!("w{:x}x{}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed));
        let (subnet, claim) = claim_subnet(&id)?;
        let network =
            Network { bridge: format!("{id}br"), id, subnet, claim, weir: weir.into(), hosts: Mutex::new(Vec::new()) };
        run("ip", ["link", "add", &network.bridge, "type", "bridge"])?;
        let gateway = format!("{}/24", network.gateway());
        run("ip", ["addr", "add", &gateway, "dev", &network.bridge])?;
        run("ip", ["link", "set", &network.bridge, "up"])?;
        Ok(network)
    }

    /// The machine's own address on the bridge: what a process outside every host (a test, a
    /// client) is seen as.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Adds host `name` (a namespace with loopback and one link on the bridge); returns its
    /// address.
    pub fn add_host(&self, name: &str) -> anyhow::Result<Ipv4Addr> {
        let mut hosts = self.hosts.lock().expect("hosts");
        ensure!(hosts.iter().all(|h| h.name != name), "host {name} exists already");
        ensure!(hosts.len() < 250, "a network holds at most 250 hosts");
        let index = hosts.len();
        let [a, b, c] = self.subnet;
        let address = Ipv4Addr::new(a, b, c, 2 + index as u8);
        let netns = format!("{}-{name}", self.id);
        let link = format!("{}v{index}", self.id);
        run("ip", ["netns", "add", &netns])?;
        // Recorded before it is complete, so that a failure below is cleaned up too.
        hosts.push(Host { name: name.to_owned(), address, netns, link, delayer: None, rules: Vec::new() });
        let host = hosts.last().expect("pushed");
        run("ip", ["link", "add", &host.link, "type", "veth", "peer", "name", HOST_LINK, "netns", &host.netns])?;
        run("ip", ["link", "set", &host.link, "master", &self.bridge, "up"])?;
        let cidr = format!("{address}/24");
        run("ip", ["-n", &host.netns, "addr", "add", &cidr, "dev", HOST_LINK])?;
        run("ip", ["-n", &host.netns, "link", "set", HOST_LINK, "up"])?;
        run("ip", ["-n", &host.netns, "link", "set", "lo", "up"])?;
        Ok(address)
    }

    /// Host `name`'s address.
    pub fn address(&self, name: &str) -> anyhow::Result<Ipv4Addr> {
        self.with_host(name, |h| Ok(h.address))
    }

    /// A command that runs `program` inside host `name` (its process id is the program's own:
    /// `ip netns exec` execs it).
    pub fn command(&self, name: &str, program: impl AsRef<OsStr>) -> anyhow::Result<Command> {
        self.with_host(name, |h| {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", &h.netns]).arg(program);
            Ok(command)
        })
    }

    /// Hosts `a` and `b` stop hearing each other (both directions), until [`heal`](Network::heal).
    pub fn partition(&self, a: &str, b: &str) -> anyhow::Result<()> {
        self.set_partition(a, b, true)
    }

    /// Host `name` stops hearing every other host, and they it (the machine itself still
    /// reaches it).
    pub fn isolate(&self, name: &str) -> anyhow::Result<()> {
        self.others(name).iter().try_for_each(|other| self.set_partition(name, other, true))
    }

    /// Ends a [`partition`](Network::partition) of `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) -> anyhow::Result<()> {
        self.set_partition(a, b, false)
    }

    /// Ends an [`isolate`](Network::isolate) of `name`.
    pub fn rejoin(&self, name: &str) -> anyhow::Result<()> {
        self.others(name).iter().try_for_each(|other| self.set_partition(name, other, false))
    }

    /// Each of `a` and `b` drops what arrives from the other (`cut`), or no longer does.
    fn set_partition(&self, a: &str, b: &str, cut: bool) -> anyhow::Result<()> {
        for (host, from) in [(a, b), (b, a)] {
            let from = self.address(from)?.to_string();
            let rule = ["INPUT", "-s", &from, "-j", "DROP"];
            if cut { self.add_rule(host, &rule)? } else { self.delete_rule(host, &rule)? }
        }
        Ok(())
    }

    /// Degrades host `name`'s link: what it sends is delayed, a share of what arrives is lost;
    /// until [`restore`](Network::restore).
    pub fn impair(&self, name: &str, impairment: Impairment) -> anyhow::Result<()> {
        ensure!((0.0..1.0).contains(&impairment.loss), "loss must be at least 0 and below 1");
        if impairment.loss > 0.0 {
            let probability = format!("{:.6}", impairment.loss);
            let rule = ["INPUT", "-i", HOST_LINK, "-m", "statistic", "--mode", "random", "--probability", &probability];
            self.add_rule(name, &[&rule[..], &["-j", "DROP"]].concat())?;
        }
        if !impairment.delay.is_zero() {
            self.start_delayer(name, impairment.delay)?;
            let queue = DELAY_QUEUE.to_string();
            // Bypass: should the delayer be gone, packets flow on rather than vanish.
            let rule = ["OUTPUT", "-o", HOST_LINK, "-j", "NFQUEUE", "--queue-num", &queue, "--queue-bypass"];
            self.add_rule(name, &rule)?;
        }
        Ok(())
    }

    /// Ends an [`impair`](Network::impair)ment of host `name`: packets held are released.
    pub fn restore(&self, name: &str) -> anyhow::Result<()> {
        let mut hosts = self.hosts.lock().expect("hosts");
        let host = find(&mut hosts, name)?;
        let impairments: Vec<Vec<String>> =
            host.rules.iter().filter(|r| r.iter().any(|a| a == "statistic" || a == "NFQUEUE")).cloned().collect();
        for rule in impairments {
            iptables(&host.netns, "-D", &rule)?;
            host.rules.retain(|r| *r != rule);
        }
        stop_delayer(host)
    }

    /// Host `name` vanishes, as a machine that loses power: its link goes down and every
    /// process in it is SIGKILLed (and gone when this returns).
    pub fn vanish(&self, name: &str) -> anyhow::Result<()> {
        let mut hosts = self.hosts.lock().expect("hosts");
        let host = find(&mut hosts, name)?;
        run("ip", ["link", "set", &host.link, "down"])?;
        kill_all(&host.netns)?;
        host.delayer = None;
        Ok(())
    }

    fn with_host<R>(&self, name: &str, f: impl FnOnce(&mut Host) -> anyhow::Result<R>) -> anyhow::Result<R> {
        f(find(&mut self.hosts.lock().expect("hosts"), name)?)
    }

    fn others(&self, name: &str) -> Vec<String> {
        self.hosts.lock().expect("hosts").iter().filter(|h| h.name != name).map(|h| h.name.clone()).collect()
    }

    fn add_rule(&self, name: &str, rule: &[&str]) -> anyhow::Result<()> {
        self.with_host(name, |host| {
            let rule: Vec<String> = rule.iter().map(|a| (*a).to_owned()).collect();
            if !host.rules.contains(&rule) {
                iptables(&host.netns, "-A", &rule)?;
                host.rules.push(rule);
            }
            Ok(())
        })
    }

    fn delete_rule(&self, name: &str, rule: &[&str]) -> anyhow::Result<()> {
        self.with_host(name, |host| {
            if let Some(at) = host.rules.iter().position(|r| r.iter().map(String::as_str).eq(rule.iter().copied())) {
                let rule = host.rules.remove(at);
                iptables(&host.netns, "-D", &rule)?;
            }
            Ok(())
        })
    }

    /// Starts `weir delay-packets` in host `name`; returns once it holds the queue.
    fn start_delayer(&self, name: &str, delay: Duration) -> anyhow::Result<()> {
        let mut child = self
            .command(name, &self.weir)?
            .args(["delay-packets", "--queue", &DELAY_QUEUE.to_string(), "--delay-us"])
            .arg(delay.as_micros().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {} delay-packets", self.weir.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let pid = child.id();
        self.with_host(name, |host| {
            ensure!(host.delayer.is_none(), "host {name} is impaired already");
            host.delayer = Some((child, stdin));
            Ok(())
        })?;
        // Bound once the kernel lists the queue in the delayer's own namespace.
        let deadline = Instant::now() + DELAYER_START;
        let queues = format!("/proc/{pid}/net/netfilter/nfnetlink_queue");
        loop {
            let listed = std::fs::read_to_string(&queues).unwrap_or_default();
            if listed.lines().any(|l| l.split_whitespace().next() == Some(&DELAY_QUEUE.to_string())) {
                return Ok(());
            }
            let exited = self.with_host(name, |h| Ok(h.delayer.as_mut().map(|(c, _)| c.try_wait()).transpose()?))?;
            if let Some(Some(status)) = exited {
                bail!("the packet delayer of host {name} exited ({status})");
            }
            ensure!(Instant::now() < deadline, "the packet delayer of host {name} did not bind its queue");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let hosts = std::mem::take(&mut *self.hosts.lock().unwrap_or_else(|e| e.into_inner()));
        for mut host in hosts {
            let _ = stop_delayer(&mut host);
            let _ = kill_all(&host.netns);
            let _ = run("ip", ["netns", "delete", &host.netns]);
            let _ = run("ip", ["link", "delete", &host.link]);
        }
        let _ = run("ip", ["link", "delete", &self.bridge]);
        let _ = std::fs::remove_file(&self.claim);
    }
}

fn find<'a>(hosts: &'a mut [Host], name: &str) -> anyhow::Result<&'a mut Host> {
    hosts.iter_mut().find(|h| h.name == name).with_context(|| format!("no host {name} in this network"))
}

/// Root, `ip` and `iptables`: what creating hosts and striking faults needs.
fn preflight() -> anyhow::Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().nth(1)?.parse::<u32>().ok()));
    ensure!(uid == Some(0), "hosts in network namespaces need root (the effective user is {uid:?})");
    for (tool, version) in [("ip", "-V"), ("iptables", "--version")] {
        let found = Command::new(tool).arg(version).stdout(Stdio::null()).stderr(Stdio::null()).status();
        ensure!(
            found.is_ok_and(|s| s.success()),
            "hosts in network namespaces need `{tool}` (Debian: apt-get install iproute2 iptables; scripts/setup.sh --tests installs it)"
        );
    }
    Ok(())
}

/// Claims a subnet no running network holds: a file in [`CLAIMS`] created exclusively,
/// holding the claimant's id; a claim whose process is gone is cleaned up and taken.
fn claim_subnet(id: &str) -> anyhow::Result<([u8; 3], PathBuf)> {
    std::fs::create_dir_all(CLAIMS).with_context(|| format!("cannot create {CLAIMS}"))?;
    // Start where this network's id points, so that concurrent test processes rarely collide.
    let start = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for i in 0..SUBNETS {
        let n = (start + i) % SUBNETS;
        let subnet = [10, 200 + (n / 256) as u8, (n % 256) as u8];
        let path = Path::new(CLAIMS).join(format!("10.{}.{}", subnet[1], subnet[2]));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                use std::io::Write;
                writeln!(&file, "{id}")?;
                return Ok((subnet, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
                if !owner.is_empty() && !owner_alive(&owner) {
                    remove_stale(&owner);
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot claim {}", path.display())),
        }
    }
    bail!("every subnet of 10.200.0.0/13 is claimed (see {CLAIMS})")
}

/// Whether the process that made network `id` (`w<pid hex>x<n>`) still runs.
fn owner_alive(id: &str) -> bool {
    let pid = id.strip_prefix('w').and_then(|s| s.split('x').next()).and_then(|h| u32::from_str_radix(h, 16).ok());
    pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes what a dead process's network `id` left: its hosts' processes, namespaces, links
/// and bridge.
fn remove_stale(id: &str) {
    let listed = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    let prefix = format!("{id}-");
    for netns in String::from_utf8_lossy(&listed).lines().filter_map(|l| l.split_whitespace().next()) {
        if netns.starts_with(&prefix) {
            let _ = kill_all(netns);
            let _ = run("ip", ["netns", "delete", netns]);
        }
    }
    // Deleting a veth end deletes its peer; a namespace's deletion took the host ends.
    let links = Command::new("ip").args(["-o", "link", "show"]).output().map(|o| o.stdout).unwrap_or_default();
    for link in String::from_utf8_lossy(&links).lines().filter_map(|l| l.split(": ").nth(1)) {
        let link = link.split('@').next().unwrap_or(link);
        if link.starts_with(id) {
            let _ = run("ip", ["link", "delete", link]);
        }
    }
}

/// The processes in namespace `netns`.
fn netns_pids(netns: &str) -> anyhow::Result<Vec<u32>> {
    let out = Command::new("ip").args(["netns", "pids", netns]).output().context("cannot run ip netns pids")?;
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// SIGKILLs every process in namespace `netns`; returns once they are gone.
fn kill_all(netns: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = netns_pids(netns)?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
        // A killed child of ours stays (a zombie) until its parent reaps it: only live ones count.
        if pids.iter().all(|pid| zombie_or_gone(*pid)) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "processes {pids:?} in {netns} outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn zombie_or_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"))
}

/// Ends host `host`'s delayer: its stdin closed, it releases what it holds and exits.
fn stop_delayer(host: &mut Host) -> anyhow::Result<()> {
    if let Some((mut child, stdin)) = host.delayer.take() {
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                child.wait()?;
                bail!("the packet delayer of host {} did not end when asked", host.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

fn iptables(netns: &str, op: &str, rule: &[String]) -> anyhow::Result<()> {
    let mut args = vec!["netns", "exec", netns, "iptables", "-w", op];
    args.extend(rule.iter().map(String::as_str));
    run("ip", args)
}

/// Runs `program args`; an exit other than success is an error with what it printed.
fn run<I, S>(program: &str, args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    let out = command.output().with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
