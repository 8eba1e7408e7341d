//! `weir chaos --cluster`: the faulty run on a cluster of real processes.
//!
//! A JobManager and three TaskManagers of one slot each (the job needs two) start from this
//! binary with `WEIR_FAULT_INJECTION=1` and short heartbeats (200 ms, lost after 2 s), in a
//! temporary cluster directory. At moments drawn from the seed one of these strikes:
//!
//! | fault | how |
//! |---|---|
//! | subtask killed | its actor, on its TaskManager (`ClientRequest::Kill`) |
//! | task-executor killed | a TaskManager's TaskExecutor actor (`ClientRequest::Kill`) |
//! | job-master / coordinator / resource-manager / dispatcher killed | in the JobManager (`ClientRequest::Kill`) |
//! | task-manager process killed | SIGKILL, and a replacement started under a new id |
//! | job-manager process restarted | SIGKILL, and a new JobManager on the same directory |
//! | control connection cut | a TaskManager's connection to the JobManager (`weir cut-connections control`) |
//! | data connections cut | a TaskManager's connections to its peers (`weir cut-connections data`) |
//!
//! | savepoint taken | `ClientRequest::TriggerSavepoint` (the job runs on) |
//! | crash at a failpoint | the JobManager or one TaskManager aborts at a protocol step (`WEIR_FAILPOINTS`), and is started again |
//!
//! With `--hosts` every process runs on a host of its own ([`crate::hosts`]; a TaskManager's
//! host is named as it, a replacement gets a new one), listening on its host's address (the
//! JobManager on the same address after every restart), and the strikes are faults of the
//! network between them instead (see [`super`]).
//!
//! The strikes and failpoints come from the run's [`Schedule`]. A process that exits is
//! noticed whenever the run waits on the cluster: one that aborted at its failpoint (its log
//! says which) is counted by step and started again (without failpoints); any other exit fails
//! the run. A fault that finds nothing to strike (a job between JobMasters, a subtask not
//! placed yet) is counted as "nothing to kill". Every process is started and killed by this run, by its
//! own id, and killed and reaped at the end whatever happened; the cluster directory (with
//! every process's log) is kept when the run fails, and its path printed.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use weir_actors::api::job::JobConfig;
use weir_actors::base::failpoint::Failpoint;
use weir_actors::cluster::fault_injection::{ControlActor, Kill};
use weir_actors::cluster::remote::client::ClusterClient;
use weir_actors::cluster::remote::protocol::{ConnectionKind, CutConnections};
use weir_actors::{JobDetails, JobId, JobStatus};

use super::schedule::{Schedule, Strike};
use super::{ChaosPlan, FaultCounts, Target, lines, submission};
use crate::cluster::{
    StartArgs, job_manager_args, spawn, spawn_command, start, task_manager_args, wait_for_task_managers,
};
use crate::config::ClusterDir;
use crate::hosts::{Impairment, Network};

/// TaskManagers kept running (one more than the job's two slots, so that a killed one's
/// subtasks can move at once while its replacement starts).
pub(super) const TASK_MANAGERS: usize = 3;
/// How long the job may take, faults included.
const JOB_DEADLINE: Duration = Duration::from_secs(240);
/// How long a request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the JobManager may be unreachable (a restart) before the run gives up.
const UNREACHABLE: Duration = Duration::from_secs(60);
/// With `--hosts`: the JobManager's host (each TaskManager's is named as the TaskManager).
const JOB_MANAGER_HOST: &str = "jobmanager";
/// Where the JobManager listens on its host, after every restart alike.
const JOB_MANAGER_PORT: u16 = 6123;

/// The processes of the chaos cluster: killed (SIGKILL) and reaped when dropped.
struct Processes {
    dir: ClusterDir,
    env: Vec<(String, String)>,
    job_manager: Child,
    /// Running TaskManagers, by id.
    task_managers: Vec<(String, Child)>,
    /// TaskManagers started so far (the next one's id), and JobManager restarts.
    started: usize,
    restarts: usize,
    /// With `--hosts`: the hosts the processes run on (dropped after them).
    network: Option<Network>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.job_manager).chain(self.task_managers.iter_mut().map(|(_, c)| c)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `weir ARGS` as process `name` of the cluster in `dir`: here, or on host `host` of
/// `network` (made if new), listening on its address.
fn spawn_on(
    network: Option<&Network>,
    dir: &ClusterDir,
    host: &str,
    name: &str,
    mut args: Vec<String>,
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let Some(network) = network else { return spawn(dir, name, &args, env) };
    let address = match network.address(host) {
        Ok(address) => address,
        Err(_) => network.add_host(host)?,
    };
    if host == JOB_MANAGER_HOST {
        args.extend(["--bind".into(), format!("{address}:{JOB_MANAGER_PORT}")]);
        args.extend(["--rest-bind".into(), format!("{address}:0")]);
    } else {
        args.extend(["--bind".into(), format!("{address}:0"), "--metrics-bind".into(), format!("{address}:0")]);
    }
    let exe = std::env::current_exe().context("cannot find the weir binary")?;
    spawn_command(dir, name, network.command(host, exe)?, &args, env)
}

impl Processes {
    /// Starts the cluster, with `schedule`'s failpoints armed in their processes.
    fn start(dir: &Path, schedule: &Schedule, target: Target) -> anyhow::Result<Processes> {
        let env: Vec<(String, String)> = [
            ("WEIR_FAULT_INJECTION", "1"),
            ("WEIR_HEARTBEAT_INTERVAL_MS", "200"),
            ("WEIR_HEARTBEAT_TIMEOUT_MS", "2000"),
            // Logs name every fault and recovery; a failed run keeps them.
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let process_env = std::iter::once(("jobmanager".to_owned(), None))
            .chain((0..TASK_MANAGERS).map(|i| (format!("taskmanager-{i}"), Some(i))))
            .filter_map(|(name, tm)| {
                let points: Vec<String> = schedule.failpoints_of(tm).iter().map(ToString::to_string).collect();
                (!points.is_empty()).then(|| (name, "WEIR_FAILPOINTS".to_owned(), points.join(",")))
            })
            .collect();
        let args = StartArgs {
            dir: Some(dir.to_path_buf()),
            taskmanagers: TASK_MANAGERS,
            slots: Some(1),
            env: env.clone(),
            process_env,
        };
        if target == Target::Hosts {
            return Processes::start_on_hosts(dir, &args);
        }
        let started = start(args)?;
        let mut processes = started.processes.into_iter();
        let (_, job_manager) = processes.next().context("no job manager was started")?;
        Ok(Processes {
            dir: started.dir,
            env,
            job_manager,
            task_managers: processes.collect(),
            started: TASK_MANAGERS,
            restarts: 0,
            network: None,
        })
    }

    /// As [`start`](Self::start), each process on a new host of its own; returns once every
    /// TaskManager registered.
    fn start_on_hosts(dir: &Path, start: &StartArgs) -> anyhow::Result<Processes> {
        let cluster = ClusterDir::resolve(Some(dir.to_path_buf()))?;
        cluster.init()?;
        let network = Network::create(std::env::current_exe().context("cannot find the weir binary")?)?;
        let args = job_manager_args(&cluster);
        let job_manager =
            spawn_on(Some(&network), &cluster, JOB_MANAGER_HOST, "jobmanager", args, &start.env_of("jobmanager"))?;
        let mut processes = Processes {
            dir: cluster,
            env: start.env.clone(),
            job_manager,
            task_managers: Vec::new(),
            started: TASK_MANAGERS,
            restarts: 0,
            network: Some(network),
        };
        processes.wait_for_job_manager()?;
        for i in 0..TASK_MANAGERS {
            let name = format!("taskmanager-{i}");
            let args = task_manager_args(&processes.dir, &name, Some(1));
            let child = spawn_on(processes.network.as_ref(), &processes.dir, &name, &name, args, &start.env_of(&name))?;
            processes.task_managers.push((name, child));
        }
        let published = processes.dir.published()?;
        wait_for_task_managers(&processes.dir, &published, TASK_MANAGERS, Instant::now() + UNREACHABLE)?;
        Ok(processes)
    }

    /// The hosts, with `--hosts`.
    fn network(&self) -> anyhow::Result<&Network> {
        self.network.as_ref().context("network faults strike only with --hosts")
    }

    /// Starts a TaskManager under a new id in place of TaskManager `index` (gone already).
    fn replace(&mut self, index: usize) -> anyhow::Result<String> {
        let (id, _) = self.task_managers.remove(index);
        let name = format!("taskmanager-{}", self.started);
        self.started += 1;
        let args = task_manager_args(&self.dir, &name, Some(1));
        let child = spawn_on(self.network.as_ref(), &self.dir, &name, &name, args, &self.env)?;
        self.task_managers.push((name, child));
        Ok(id)
    }

    /// SIGKILLs TaskManager `index` and starts a replacement under a new id.
    fn replace_task_manager(&mut self, index: usize) -> anyhow::Result<String> {
        let (id, child) = &mut self.task_managers[index];
        child.kill().with_context(|| format!("cannot kill {id}"))?;
        child.wait()?;
        self.replace(index)
    }

    /// SIGKILLs the JobManager and starts a new one on the same directory; returns once the
    /// new one published its address.
    fn restart_job_manager(&mut self) -> anyhow::Result<()> {
        self.job_manager.kill().context("cannot kill the job manager")?;
        self.job_manager.wait()?;
        self.start_job_manager()
    }

    /// Starts a new JobManager on the cluster's directory (the last one is gone); returns once
    /// it published its address.
    fn start_job_manager(&mut self) -> anyhow::Result<()> {
        self.restarts += 1;
        let name = self.job_manager_name();
        let args = job_manager_args(&self.dir);
        self.job_manager = spawn_on(self.network.as_ref(), &self.dir, JOB_MANAGER_HOST, &name, args, &self.env)?;
        self.wait_for_job_manager()
    }

    /// Returns once the JobManager running now published its address.
    fn wait_for_job_manager(&mut self) -> anyhow::Result<()> {
        let pid = self.job_manager.id();
        let deadline = Instant::now() + UNREACHABLE;
        while self.dir.published().ok().map(|p| p.pid) != Some(pid) {
            if let Some(status) = self.job_manager.try_wait()? {
                bail!("the job manager exited ({status}); see {}", self.dir.file("logs").display());
            }
            anyhow::ensure!(Instant::now() < deadline, "the job manager did not publish its address");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The name (and log) of the JobManager process running now.
    fn job_manager_name(&self) -> String {
        match self.restarts {
            0 => "jobmanager".to_owned(),
            n => format!("jobmanager-{n}"),
        }
    }

    /// Notices processes that exited: one that crashed at its failpoint is counted and started
    /// again; any other exit is an error naming its log. Returns whether the JobManager was
    /// started again (clients must connect anew).
    fn reap(&mut self, kinds: &mut FaultCounts) -> anyhow::Result<bool> {
        let jm_name = self.job_manager_name();
        let mut restarted = false;
        if let Some(status) = self.job_manager.try_wait()? {
            let point = self.crashed_at(&jm_name, status)?;
            *kinds.entry(format!("crashed at {}", point.step)).or_default() += 1;
            self.start_job_manager()?;
            restarted = true;
        }
        let mut index = 0;
        while index < self.task_managers.len() {
            let (name, child) = &mut self.task_managers[index];
            match child.try_wait()? {
                None => index += 1,
                Some(status) => {
                    let name = name.clone();
                    let point = self.crashed_at(&name, status)?;
                    *kinds.entry(format!("crashed at {}", point.step)).or_default() += 1;
                    self.replace(index)?;
                }
            }
        }
        Ok(restarted)
    }

    /// The failpoint process `name` aborted at, from its log; an exit for any other reason is
    /// an error.
    fn crashed_at(&self, name: &str, status: std::process::ExitStatus) -> anyhow::Result<Failpoint> {
        let log = self.dir.file("logs").join(format!("{name}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find_map(|line| line.split("crashed at failpoint ").nth(1)?.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{name} exited ({status}) without a failpoint's crash; see {}", log.display()))
    }
}

/// A client of the cluster's current JobManager, connected again whenever a request fails (a
/// JobManager that was restarted has a new address).
struct Client {
    dir: ClusterDir,
    runtime: tokio::runtime::Runtime,
    client: Option<ClusterClient>,
}

impl Client {
    /// Runs `request` on a connected client; a failure drops the connection, so the next
    /// request connects again.
    fn request<R>(
        &mut self,
        request: impl AsyncFnOnce(&mut ClusterClient) -> weir_actors::Result<R>,
    ) -> anyhow::Result<R> {
        let Client { dir, runtime, client } = self;
        runtime.block_on(async {
            if client.is_none() {
                *client = Some(crate::cluster::client(dir).await?);
            }
            let result = tokio::time::timeout(REQUEST_TIMEOUT, request(client.as_mut().expect("connected"))).await;
            let failure = match result {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => anyhow::Error::from(e),
                Err(_) => anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"),
            };
            client.take();
            Err(failure)
        })
    }

    /// The job's details, asking again until the JobManager answers (it may be restarting);
    /// processes that exited meanwhile are noticed and started again.
    fn details(&mut self, processes: &mut Processes, kinds: &mut FaultCounts, id: JobId) -> anyhow::Result<JobDetails> {
        let deadline = Instant::now() + UNREACHABLE;
        loop {
            if processes.reap(kinds)? {
                self.client = None;
            }
            match self.request(async |c| c.details(id).await) {
                Ok(details) => return Ok(details),
                Err(e) if Instant::now() > deadline => return Err(e.context("the job manager does not answer")),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The faulty run on processes (see the module doc): its committed output and the job's
/// details.
pub(super) fn faulty_run(
    work: &Path,
    plan: &ChaosPlan,
    config: JobConfig,
    schedule: &Schedule,
    kinds: &mut FaultCounts,
) -> anyhow::Result<(Vec<String>, JobDetails)> {
    let mut processes = Processes::start(&work.join("cluster"), schedule, plan.target)?;
    let mut client = Client { dir: processes.dir.clone(), runtime: crate::runtime()?, client: None };
    let output = work.join("faulty");
    let job = submission(plan, &output, config)?;
    let id = client.request(async |c| c.submit(&job).await)?;

    let deadline = Instant::now() + JOB_DEADLINE;
    for &(delay, planned) in &schedule.strikes {
        std::thread::sleep(Duration::from_millis(delay));
        let details = client.details(&mut processes, kinds, id)?;
        if details.status.is_terminal() {
            break;
        }
        let kind = strike(&mut processes, &mut client, &details, planned, &work.join("savepoints"))?;
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    let details = loop {
        let details = client.details(&mut processes, kinds, id)?;
        if details.status.is_terminal() {
            break details;
        }
        anyhow::ensure!(Instant::now() < deadline, "the job did not end within {JOB_DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(c) = client.client.take() {
        client.runtime.block_on(c.close());
    }
    anyhow::ensure!(
        details.status == JobStatus::Finished,
        "the faulty run ended {}: {:?}",
        details.status,
        details.cause
    );
    Ok((lines(&output)?, details))
}

/// Strikes `planned`; returns the kind of fault it was (or that it found nothing to strike).
fn strike(
    processes: &mut Processes,
    client: &mut Client,
    details: &JobDetails,
    planned: Strike,
    savepoints: &Path,
) -> anyhow::Result<&'static str> {
    let running = details.status == JobStatus::Running;
    let id = details.id;
    let task_manager = |tm: usize, processes: &Processes| {
        let index = tm % processes.task_managers.len();
        (index, processes.task_managers[index].0.clone())
    };
    let kill = match planned {
        Strike::Subtask { .. } if !running => return Ok("nothing to kill"),
        Strike::Subtask { vertex, index } => Kill::Subtask { job: id, vertex, index },
        Strike::TaskExecutor { task_manager: tm } => Kill::TaskExecutor { task_manager: task_manager(tm, processes).1 },
        Strike::TaskManagerProcess { task_manager: tm } => {
            processes.replace_task_manager(task_manager(tm, processes).0)?;
            return Ok(planned.kind());
        }
        Strike::JobManagerProcess => {
            processes.restart_job_manager()?;
            // The old JobManager's connection is dead, though QUIC notices only at its idle
            // timeout: connect to the new one.
            client.client = None;
            return Ok(planned.kind());
        }
        Strike::ControlCut { task_manager: tm } | Strike::DataCut { task_manager: tm } => {
            let kind = if matches!(planned, Strike::ControlCut { .. }) {
                ConnectionKind::Control
            } else {
                ConnectionKind::Data
            };
            let cut = CutConnections { kind, task_manager: Some(task_manager(tm, processes).1) };
            return match client.request(async |c| c.cut_connections(cut).await) {
                Ok(_) => Ok(planned.kind()),
                // A TaskManager that is reconnecting has no connection to cut.
                Err(e) if nothing_to_kill(&e) => Ok("nothing to cut"),
                Err(e) => Err(e),
            };
        }
        Strike::Savepoint if !running => return Ok("nothing to savepoint"),
        Strike::Savepoint => {
            let dir = weir_state::storage::Location::from(savepoints);
            return Ok(match client.request(async |c| c.savepoint(id, dir, None).await) {
                Ok(_) => planned.kind(),
                Err(_) => "savepoint failed",
            });
        }
        Strike::PartitionFromJobManager { task_manager: tm, hold_ms } => {
            let host = task_manager(tm, processes).1;
            let network = processes.network()?;
            network.partition(JOB_MANAGER_HOST, &host)?;
            std::thread::sleep(Duration::from_millis(hold_ms));
            network.heal(JOB_MANAGER_HOST, &host)?;
            return Ok(planned.kind());
        }
        Strike::PartitionPeers { a, b, hold_ms } => {
            let (a, b) = (task_manager(a, processes).1, task_manager(b, processes).1);
            if a == b {
                return Ok("nothing to partition");
            }
            let network = processes.network()?;
            network.partition(&a, &b)?;
            std::thread::sleep(Duration::from_millis(hold_ms));
            network.heal(&a, &b)?;
            return Ok(planned.kind());
        }
        Strike::IsolateJobManager { hold_ms } => {
            let network = processes.network()?;
            network.isolate(JOB_MANAGER_HOST)?;
            std::thread::sleep(Duration::from_millis(hold_ms));
            network.rejoin(JOB_MANAGER_HOST)?;
            return Ok(planned.kind());
        }
        Strike::Impair { task_manager: tm, delay_ms, loss_permille, hold_ms } => {
            let host = task_manager(tm, processes).1;
            let network = processes.network()?;
            let impairment = Impairment { delay: Duration::from_millis(delay_ms), loss: loss_permille as f64 / 1000.0 };
            network.impair(&host, impairment)?;
            std::thread::sleep(Duration::from_millis(hold_ms));
            network.restore(&host)?;
            return Ok(planned.kind());
        }
        Strike::VanishHost { task_manager: tm } => {
            let (index, host) = task_manager(tm, processes);
            processes.network()?.vanish(&host)?;
            processes.task_managers[index].1.wait()?;
            processes.replace(index)?;
            return Ok(planned.kind());
        }
        Strike::JobMaster => Kill::Control(ControlActor::JobMaster(id)),
        Strike::Coordinator => Kill::Control(ControlActor::Coordinator(id)),
        Strike::ResourceManager => Kill::Control(ControlActor::ResourceManager),
        Strike::Dispatcher => Kill::Control(ControlActor::Dispatcher),
    };
    Ok(match client.request(async |c| c.kill(kill).await) {
        Ok(()) => planned.kind(),
        Err(e) if nothing_to_kill(&e) => "nothing to kill",
        Err(e) => Err(e)?,
    })
}

/// A kill or cut that found nothing to strike: a job between JobMasters or coordinators, a
/// subtask not placed yet, a TaskManager that is reconnecting.
fn nothing_to_kill(e: &anyhow::Error) -> bool {
    let text = e.to_string();
    ["has no", "is not connected", "no placed subtask"].iter().any(|s| text.contains(s))
}
