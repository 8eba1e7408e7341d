//! A cluster across several hosts on one machine ([`weir_cli::hosts`]): every JobManager,
//! TaskManager and etcd on a network namespace of its own with its own address on a bridge,
//! each node with a certificate and key of its own naming that address (`weir cluster
//! issue`), and faults struck through the kernel's network stack: partitions healed later,
//! latency and loss, a host that vanishes, a JobManager leader cut off from everyone. The job
//! goes on, and its committed output equals a fault-free run's.
//!
//! The hosts share the machine's file system, as machines share a network file system: the
//! checkpoints and the job store are directories every host reads.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use weir_cli::hosts::{Impairment, Network};

use crate::cluster::{Cluster, HEARTBEATS, TIMEOUT, alive, submit_with, task_managers_of, text, weir_env};
use crate::cluster_recovery::{
    JOB_ARGS, JOB_FLAGS, Process, assert_exactly_once, exceptions, job, latest_checkpoint, published_pid,
    reference_run, registered_task_managers, running, wait_until_finished,
};
use crate::support::{Etcd, TempDir};

/// Where a JobManager listens for TaskManagers and clients, on its host's address.
const QUIC_PORT: u16 = 6123;
/// Where its REST API listens.
const REST_PORT: u16 = 8081;

/// Hosts of one cluster: a directory per host issued from one CA, and the processes started
/// on them (killed before the network goes).
struct Hosts {
    processes: Vec<Process>,
    network: Network,
    tmp: TempDir,
}

impl Hosts {
    /// A network of hosts `names`, and a cluster CA whose `weir.toml` is `weir_toml`
    /// (`{shared}` in it: a directory every host reads); each host gets its own directory.
    fn new(names: &[&str], weir_toml: &str) -> Hosts {
        let network = Network::create(env!("CARGO_BIN_EXE_weir")).unwrap_or_else(|e| panic!("{e:#}"));
        let tmp = TempDir::new("hosts");
        let ca = tmp.join("ca");
        let out = weir_env(&["cluster", "init", "--dir", ca.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let shared = tmp.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(ca.join("weir.toml"), weir_toml.replace("{shared}", shared.to_str().unwrap())).unwrap();
        let hosts = Hosts { processes: Vec::new(), network, tmp };
        for name in names {
            let address = hosts.network.add_host(name).unwrap().to_string();
            let dir = hosts.dir(name);
            let out = weir_env(&[
                "cluster",
                "issue",
                "--dir",
                ca.to_str().unwrap(),
                "--node",
                name,
                "--address",
                &address,
                "--out",
                dir.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", text(&out));
        }
        hosts
    }

    fn dir(&self, host: &str) -> PathBuf {
        self.tmp.join(host)
    }

    fn address(&self, host: &str) -> Ipv4Addr {
        self.network.address(host).unwrap()
    }

    /// Starts `weir ARGS` on `host` (the tests' heartbeats), logging to its `logs/`; its pid.
    fn start(&mut self, host: &str, args: &[String]) -> u32 {
        let log = std::fs::File::create(self.dir(host).join("logs").join(format!("{}.log", args[0]))).unwrap();
        let child = self
            .network
            .command(host, env!("CARGO_BIN_EXE_weir"))
            .unwrap()
            .args(args)
            .envs(HEARTBEATS)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.processes.push(Process(child));
        pid
    }

    /// A JobManager on `host`, listening on its address; its pid.
    fn start_job_manager(&mut self, host: &str) -> u32 {
        let address = self.address(host);
        let dir = self.dir(host).display().to_string();
        let (quic, rest) = (format!("{address}:{QUIC_PORT}"), format!("{address}:{REST_PORT}"));
        self.start(host, &["jobmanager", "--dir", &dir, "--bind", &quic, "--rest-bind", &rest].map(String::from))
    }

    /// A TaskManager of one slot on `host` with its id, joining the JobManager on host
    /// `job_manager` (`None`: the leader that etcd names).
    fn start_task_manager(&mut self, host: &str, job_manager: Option<&str>) -> u32 {
        let address = self.address(host);
        let mut args: Vec<String> =
            ["taskmanager", "--dir", self.dir(host).to_str().unwrap(), "--id", host, "--slots", "1"]
                .map(String::from)
                .to_vec();
        args.extend(["--bind".into(), format!("{address}:0"), "--metrics-bind".into(), format!("{address}:0")]);
        if let Some(jm) = job_manager {
            args.extend(["--jobmanager".into(), format!("{}:{QUIC_PORT}", self.address(jm))]);
        }
        self.start(host, &args)
    }

    /// The cluster as the JobManager on `host` publishes it (REST, `weir run --dir`).
    fn cluster(&self, host: &str) -> Cluster {
        Cluster::attach(self.dir(host))
    }

    fn log(&self, host: &str, process: &str) -> String {
        std::fs::read_to_string(self.dir(host).join("logs").join(format!("{process}.log"))).unwrap_or_default()
    }

    /// Submits window-agg at parallelism 2 through the JobManager on `host`, checkpointing
    /// into the shared directory; its id.
    fn submit(&self, host: &str, output: &std::path::Path) -> String {
        let checkpoints = self.tmp.join("shared").join("checkpoints");
        let mut flags = JOB_FLAGS.to_vec();
        flags.extend(["--checkpoint-dir", checkpoints.to_str().unwrap()]);
        submit_with(&self.cluster(host), "window-agg", 2, &flags, &JOB_ARGS, output)
    }
}

/// A JobManager and three TaskManagers of one slot (the job takes two), each on its host.
fn standalone() -> Hosts {
    let mut hosts = Hosts::new(&["jm", "tm-0", "tm-1", "tm-2"], "");
    hosts.start_job_manager("jm");
    let cluster = hosts.cluster("jm");
    cluster.wait_for("the job manager's address", TIMEOUT, || published_pid(&cluster).is_some());
    for tm in ["tm-0", "tm-1", "tm-2"] {
        hosts.start_task_manager(tm, Some("jm"));
    }
    cluster.wait_for("three task managers", TIMEOUT, || registered_task_managers(&cluster).len() == 3);
    hosts
}

/// The checkpointed job on [`standalone`] hosts, beside its fault-free reference run.
struct Run {
    hosts: Hosts,
    cluster: Cluster,
    id: String,
    reference: std::thread::JoinHandle<Vec<String>>,
    output: PathBuf,
    _out: TempDir,
}

impl Run {
    /// Submits the job once `prepare` has run on the hosts; returns once it is running.
    fn start(label: &str, prepare: impl FnOnce(&Hosts)) -> Run {
        let hosts = standalone();
        prepare(&hosts);
        let cluster = hosts.cluster("jm");
        let out = TempDir::new(label);
        let reference = reference_run(out.join("reference"));
        let output = out.join("cluster");
        let id = hosts.submit("jm", &output);
        cluster.wait_for("the job to run", TIMEOUT, || job(&cluster, &id).is_some_and(|j| running(&j)));
        Run { hosts, cluster, id, reference, output, _out: out }
    }

    fn placed(&self) -> Vec<String> {
        placed(&self.cluster, &self.id)
    }

    /// Waits until the job restarted and runs again without `task_manager`.
    fn wait_for_failover_from(&self, task_manager: &str) {
        self.cluster.wait_for("the job to run again without the struck task manager", TIMEOUT, || {
            exceptions(&self.cluster, &self.id).0 >= 1
                && job(&self.cluster, &self.id)
                    .is_some_and(|j| running(&j) && !task_managers_of(&j).contains(task_manager))
        });
    }

    /// Waits until the job finished; its output equals the reference run's.
    fn finish_exactly_once(self) {
        wait_until_finished(&self.cluster, &self.id);
        assert_exactly_once(self.reference, &self.output);
    }
}

/// The TaskManagers the job's subtasks run on now.
fn placed(cluster: &Cluster, id: &str) -> Vec<String> {
    job(cluster, id).map(|j| task_managers_of(&j).into_iter().collect()).unwrap_or_default()
}

/// A UDP echo on `host` (python3), answered from the machine once it listens.
fn echo(hosts: &mut Hosts, host: &str) -> (Process, std::net::SocketAddr) {
    let script = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',7000))\n\
                  while True:\n    d,a=s.recvfrom(2048)\n    s.sendto(d,a)\n";
    let child = hosts.network.command(host, "python3").unwrap().args(["-c", script]).spawn().expect("python3");
    (Process(child), (hosts.address(host), 7000).into())
}

/// Sends numbered datagrams to `echo` one at a time, each answered or given up after
/// `patience`: (answered, the slowest answer's round trip).
fn ping(socket: &UdpSocket, echo: std::net::SocketAddr, count: u32, patience: Duration) -> (u32, Duration) {
    socket.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let (mut answered, mut slowest) = (0, Duration::ZERO);
    for n in 0..count {
        let sent = Instant::now();
        socket.send_to(&n.to_be_bytes(), echo).unwrap();
        let mut buf = [0u8; 16];
        while sent.elapsed() < patience {
            // Answers to datagrams given up on earlier arrive late: only this one's counts.
            if let Ok((4, _)) = socket.recv_from(&mut buf)
                && buf[..4] == n.to_be_bytes()
            {
                answered += 1;
                slowest = slowest.max(sent.elapsed());
                break;
            }
        }
    }
    (answered, slowest)
}

/// The faults strike through the kernel: a delayed host answers no sooner than its delay, and
/// at once again when restored; a lossy host loses about the share it is given.
#[test]
fn latency_and_loss_strike_what_crosses_the_network() {
    let mut hosts = Hosts::new(&["a"], "");
    let (_echo, addr) = echo(&mut hosts, "a");
    let socket = UdpSocket::bind((hosts.network.gateway(), 0)).unwrap();
    let start = Instant::now();
    while ping(&socket, addr, 1, Duration::from_millis(50)).0 == 0 {
        assert!(start.elapsed() < TIMEOUT, "the echo on host a does not answer");
    }
    let (answered, clean) = ping(&socket, addr, 20, Duration::from_secs(2));
    assert_eq!(answered, 20);

    let delay = Duration::from_millis(40);
    hosts.network.impair("a", Impairment { delay, loss: 0.0 }).unwrap();
    let (answered, slowest) = ping(&socket, addr, 20, Duration::from_secs(2));
    assert_eq!(answered, 20, "a delay loses nothing");
    let fastest_delayed = (0..5).map(|_| ping(&socket, addr, 1, Duration::from_secs(2)).1).min().unwrap();
    assert!(fastest_delayed >= delay, "answered after {fastest_delayed:?}, under the {delay:?} delay");
    hosts.network.restore("a").unwrap();
    let (answered, restored) = ping(&socket, addr, 20, Duration::from_secs(2));
    assert_eq!(answered, 20);
    println!("round trips: clean {clean:?}, delayed {slowest:?} (at most), restored {restored:?} (at most)");

    hosts.network.impair("a", Impairment { delay: Duration::ZERO, loss: 0.3 }).unwrap();
    let (answered, _) = ping(&socket, addr, 300, Duration::from_millis(30));
    hosts.network.restore("a").unwrap();
    // 300 datagrams, each lost with probability 0.3: 90 lost on average, 8 the deviation.
    assert!((130..=270).contains(&answered), "{answered} of 300 answered with 30% loss");
    let (answered, _) = ping(&socket, addr, 20, Duration::from_secs(2));
    assert_eq!(answered, 20, "restored, nothing is lost");
}

/// A TaskManager running the job is partitioned from the JobManager: the JobManager declares
/// it lost at its heartbeat timeout and runs the job on the spare TaskManager; when the
/// partition heals the TaskManager joins again; the output is exactly once.
#[test]
fn a_task_manager_partitioned_from_the_job_manager_is_replaced_and_rejoins_after_the_heal() {
    let run = Run::start("hosts-partition-jm", |_| {});
    let victim = run.placed()[0].clone();
    run.hosts.network.partition("jm", &victim).unwrap();
    let cut = Instant::now();
    run.wait_for_failover_from(&victim);
    println!(
        "task manager partitioned from the job manager: the job ran again after {:.2} s",
        cut.elapsed().as_secs_f64()
    );
    run.hosts.network.heal("jm", &victim).unwrap();
    run.cluster.wait_for("the partitioned task manager to rejoin", TIMEOUT, || {
        registered_task_managers(&run.cluster).contains(&victim)
    });
    run.finish_exactly_once();
}

/// The two TaskManagers running the job are partitioned from each other (their data
/// connections stall) until the job fails over, then healed: the output is exactly once.
#[test]
fn task_managers_partitioned_from_each_other_fail_the_job_over_and_it_finishes_after_the_heal() {
    let run = Run::start("hosts-partition-tms", |_| {});
    let pair = run.placed();
    assert_eq!(pair.len(), 2, "the job runs on two task managers");
    run.hosts.network.partition(&pair[0], &pair[1]).unwrap();
    let cut = Instant::now();
    run.cluster.wait_for("a failover", TIMEOUT, || exceptions(&run.cluster, &run.id).0 >= 1);
    println!(
        "task managers partitioned from each other: the job failed over after {:.2} s",
        cut.elapsed().as_secs_f64()
    );
    run.hosts.network.heal(&pair[0], &pair[1]).unwrap();
    wait_until_finished(&run.cluster, &run.id);
    assert_eq!(registered_task_managers(&run.cluster).len(), 3);
    run.finish_exactly_once();
}

/// Every host delays what it sends by 20 ms and loses 2% of what it receives, for the whole
/// run: checkpoints complete and the output is exactly once.
#[test]
fn a_job_on_hosts_with_latency_and_loss_is_exactly_once() {
    let started = Instant::now();
    let run = Run::start("hosts-netem", |hosts| {
        for host in ["jm", "tm-0", "tm-1", "tm-2"] {
            hosts.network.impair(host, Impairment { delay: Duration::from_millis(20), loss: 0.02 }).unwrap();
        }
    });
    let (cluster, id) = (&run.cluster, &run.id);
    let mut checkpoints = 0;
    cluster.wait_for("the job to finish", TIMEOUT, || {
        let Some(job) = job(cluster, id) else { return false };
        assert!(job["state"] != "FAILED" && job["state"] != "CANCELED", "the job ended {}", job["state"]);
        checkpoints = checkpoints.max(latest_checkpoint(cluster, id));
        job["state"] == "FINISHED"
    });
    assert!(checkpoints >= 1, "no checkpoint completed");
    println!(
        "20 ms delay and 2% loss on every host: the job took {:.1} s, {checkpoints} checkpoints, {} restarts",
        started.elapsed().as_secs_f64(),
        exceptions(cluster, id).0
    );
    run.finish_exactly_once();
}

/// A host running the job vanishes (its link down, its TaskManager killed): the job runs on
/// the spare TaskManager and its output is exactly once.
#[test]
fn a_vanished_task_manager_host_fails_the_job_over_exactly_once() {
    let run = Run::start("hosts-vanish", |_| {});
    let victim = run.placed()[0].clone();
    run.hosts.network.vanish(&victim).unwrap();
    let vanished = Instant::now();
    run.wait_for_failover_from(&victim);
    println!("a task manager's host vanished: the job ran again after {:.2} s", vanished.elapsed().as_secs_f64());
    assert!(!registered_task_managers(&run.cluster).contains(&victim));
    run.finish_exactly_once();
}

/// JobManager high availability across hosts: etcd (over TLS, with a certificate of the
/// cluster's CA), two JobManagers and two TaskManagers each on its own host. The leader is cut off from every other host: it loses its lease and ends
/// itself (exit code 3), the standby is elected, recovers the job from the shared job store and
/// its latest checkpoint, the TaskManagers follow it, and the output is exactly once.
#[test]
fn a_partitioned_leader_loses_leadership_and_the_standby_runs_the_job_exactly_once() {
    let network_hosts = ["etcd", "jm-a", "jm-b", "tm-0", "tm-1"];
    let mut hosts = Hosts::new(&network_hosts, "");
    // etcd serves over TLS with a certificate of the cluster's CA naming its address, and
    // takes only clients with one.
    let etcd = Etcd::start_in(&hosts.network, "etcd", Some(&hosts.dir("etcd")));
    let weir_toml = format!(
        "[jobmanager]\njob_store = \"{{shared}}/jobs\"\n\n[ha]\netcd = [\"{}\"]\nlease_ttl_ms = 2000\n",
        etcd.endpoint
    );
    for host in &network_hosts[1..] {
        let toml = weir_toml.replace("{shared}", hosts.tmp.join("shared").to_str().unwrap());
        std::fs::write(hosts.dir(host).join("weir.toml"), toml).unwrap();
    }
    let leader = hosts.start_job_manager("jm-a");
    let (a, b) = (hosts.cluster("jm-a"), hosts.cluster("jm-b"));
    a.wait_for("jm-a to lead", TIMEOUT, || published_pid(&a) == Some(leader));
    let standby = hosts.start_job_manager("jm-b");
    b.wait_for("jm-b to wait in the election", TIMEOUT, || {
        hosts.log("jm-b", "jobmanager").contains("waiting to lead the cluster")
    });
    hosts.start_task_manager("tm-0", None);
    hosts.start_task_manager("tm-1", None);
    a.wait_for("two task managers", TIMEOUT, || registered_task_managers(&a).len() == 2);

    // A client whose certificate another CA signed is refused by etcd (though it trusts etcd's).
    let stranger = hosts.tmp.join("stranger");
    assert!(weir_env(&["cluster", "init", "--dir", stranger.to_str().unwrap()]).status.success());
    let trusting = format!("ca_file = \"{}\"\n", hosts.tmp.join("ca").join("ca.pem").display());
    let toml = std::fs::read_to_string(hosts.dir("jm-a").join("weir.toml")).unwrap() + &trusting;
    std::fs::write(stranger.join("weir.toml"), toml).unwrap();
    let refused = weir_env(&["list", "--dir", stranger.to_str().unwrap()]);
    println!("a stranger asks etcd for the leader: {}", text(&refused).trim());
    // (Under TLS 1.3 the server checks the client's certificate after the client's side of the
    // handshake is done: the client sees its alert, or only the closed connection.) The same
    // configuration with a member's certificate finds the leader.
    assert!(!refused.status.success() && text(&refused).contains("etcd"), "{}", text(&refused));
    let member = weir_env(&["list", "--dir", hosts.dir("tm-0").to_str().unwrap()]);
    assert!(member.status.success(), "a member finds the leader through etcd: {}", text(&member));

    let out = TempDir::new("hosts-ha");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let id = hosts.submit("jm-a", &output);
    a.wait_for("a completed checkpoint", TIMEOUT, || latest_checkpoint(&a, &id) >= 1);

    hosts.network.isolate("jm-a").unwrap();
    let cut = Instant::now();
    b.wait_for("the standby to lead", TIMEOUT, || published_pid(&b) == Some(standby));
    b.wait_for("the job to run on the standby", TIMEOUT, || job(&b, &id).is_some_and(|j| running(&j)));
    let took = cut.elapsed();
    println!("leader partitioned away: the job ran again on the standby after {:.2} s (2 s lease)", took.as_secs_f64());
    a.wait_for("the old leader to end itself", TIMEOUT, || !alive(leader));
    let log = hosts.log("jm-a", "jobmanager");
    assert!(log.contains("lost the leadership of the cluster"), "the old leader did not fence itself:\n{log}");
    hosts.network.rejoin("jm-a").unwrap();

    wait_until_finished(&b, &id);
    assert!(hosts.log("jm-b", "jobmanager").contains("restoring from checkpoint"));
    assert_eq!(registered_task_managers(&b), ["tm-0", "tm-1"]);
    assert_exactly_once(reference, &output);
    drop(hosts);
    drop(etcd);
}

/// The chaos suite across hosts, bounded for CI: at seeded moments a TaskManager is
/// partitioned from the JobManager, two TaskManagers from each other, the JobManager from
/// everyone, a host is delayed and lossy, a host vanishes; the committed output equals a
/// fault-free run's (`weir chaos --hosts --runs N` soaks longer).
#[test]
fn chaos_runs_across_hosts_are_exactly_once() {
    let timeout = Duration::from_secs(420);
    let mut chaos = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
    chaos.args(["chaos", "--hosts", "--runs", "1", "--seed", "9301"]).env("RUST_LOG", "error");
    // Its hosts' processes run in their own process groups: on a timeout, stop them by their ids
    // (the next network to claim the subnet removes the namespaces).
    let out =
        crate::support::output_within_or(chaos, "weir chaos", timeout, crate::cluster_recovery::kill_chaos_clusters);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let verdict = stdout.lines().find(|l| l.starts_with("seed 9301: faults [")).expect("a verdict");
    assert!(verdict.ends_with("lost 0, duplicated 0, sequence violations 0: exactly once"), "{verdict}");
    assert!(["partitioned", "vanished", "lossy", "cut off"].iter().any(|k| verdict.contains(k)), "{verdict}");
    println!("{stdout}");
}

/// Found by `weir chaos --hosts` (seed 31001): a TaskManager started while its host was cut
/// off from the JobManager's exited at its first failed connection ("cannot join the
/// cluster"), where one that lost its JobManager tries again until the registration timeout.
/// Now the first join tries again too: this one joins once the partition heals.
#[test]
fn a_task_manager_started_during_a_partition_joins_when_it_heals() {
    let mut hosts = Hosts::new(&["jm", "tm-0"], "");
    hosts.start_job_manager("jm");
    let cluster = hosts.cluster("jm");
    cluster.wait_for("the job manager's address", TIMEOUT, || published_pid(&cluster).is_some());
    hosts.network.partition("jm", "tm-0").unwrap();
    let pid = hosts.start_task_manager("tm-0", Some("jm"));
    cluster.wait_for("a first attempt that failed", TIMEOUT, || {
        assert!(alive(pid), "the task manager exited:\n{}", hosts.log("tm-0", "taskmanager"));
        hosts.log("tm-0", "taskmanager").contains("the job manager is not reachable yet")
    });
    hosts.network.heal("jm", "tm-0").unwrap();
    cluster.wait_for("the task manager to join", TIMEOUT, || registered_task_managers(&cluster) == ["tm-0"]);
}
