//! `weir cluster init|start|stop|status` (a local standalone cluster of processes) and the
//! client commands against a running cluster: `run`, `list`, `status`, `cancel`,
//! `savepoint`, `stop`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use weir_actors::cluster::remote::client::ClusterClient;
use weir_actors::cluster::remote::protocol::{ConnectionKind, CutConnections};
use weir_actors::runtime::checkpoint::StopMode;
use weir_actors::{JobArgs, JobId, JobRegistry, JobStatus, JobSubmission};
use weir_dataplane::NetConfig;
use weir_state::storage::Location;

use crate::config::ClusterDir;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Create the cluster's CA, node certificate, REST token and weir.toml.
    Init(DirArg),
    /// Start a JobManager and TaskManagers as background processes.
    Start(StartArgs),
    /// Stop exactly the processes `cluster start` started.
    Stop(DirArg),
    /// Show the JobManager, the TaskManagers and their slots.
    Status(DirArg),
    /// Make the cluster directory of a node on another machine: the CA's certificate (not its
    /// key), a certificate and key of the node's own naming its addresses, the REST token and
    /// weir.toml. Copy it to that machine and start the node with `--dir` on it.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The cluster directory holding the CA's key (default: $WEIR_CLUSTER_DIR, else
    /// ~/.weir/cluster).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// The node's name (its certificate's common name).
    #[arg(long)]
    pub(crate) node: String,
    /// An address the node is reached at (repeatable); its certificate names each.
    #[arg(long = "address", value_name = "IP")]
    pub(crate) addresses: Vec<std::net::IpAddr>,
    /// The node's new cluster directory (must not exist, or be empty).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DirArg {
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// TaskManagers to start.
    #[arg(long, default_value_t = 1)]
    pub(crate) taskmanagers: usize,
    /// Slots per TaskManager (default: weir.toml's).
    #[arg(long)]
    pub(crate) slots: Option<usize>,
    /// Environment of the started processes, on top of this one's (chaos runs).
    #[arg(skip)]
    pub(crate) env: Vec<(String, String)>,
    /// Environment of one process, by name (`jobmanager`, `taskmanager-<i>`), on top of `env`
    /// (chaos runs arm failpoints in one process).
    #[arg(skip)]
    pub(crate) process_env: Vec<(String, String, String)>,
}

impl StartArgs {
    /// The environment of process `name`.
    pub(crate) fn env_of(&self, name: &str) -> Vec<(String, String)> {
        let own = self.process_env.iter().filter(|(p, _, _)| p == name).map(|(_, k, v)| (k.clone(), v.clone()));
        self.env.iter().cloned().chain(own).collect()
    }
}

const STARTUP: Duration = Duration::from_secs(30);

pub(crate) fn command(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Init(a) => {
            let dir = ClusterDir::resolve(a.dir)?;
            dir.init()?;
            println!("initialised cluster directory {}", dir.path.display());
            Ok(())
        }
        ClusterCommand::Start(a) => {
            // The processes outlive this one (their own process group): not waited for here.
            let Started { dir, published, registered, .. } = start(a)?;
            println!("cluster {} started", dir.path.display());
            println!("  job manager  quic {}  rest http://{}  (pid {})", published.quic, published.rest, published.pid);
            for tm in registered {
                println!("  {}  {} slots", tm.id, tm.slots);
            }
            Ok(())
        }
        ClusterCommand::Stop(a) => {
            let dir = ClusterDir::resolve(a.dir)?;
            let stopped = stop(&dir)?;
            println!("stopped {stopped} process{} of {}", if stopped == 1 { "" } else { "es" }, dir.path.display());
            Ok(())
        }
        ClusterCommand::Status(a) => status(&ClusterDir::resolve(a.dir)?),
        ClusterCommand::Issue(a) => {
            let (dir, out) = (ClusterDir::resolve(a.dir)?, ClusterDir::resolve(Some(a.out))?);
            dir.issue(&a.node, &a.addresses, &out)?;
            println!("issued node {} in {}", a.node, out.path.display());
            Ok(())
        }
    }
}

pub(crate) fn pid_file(dir: &ClusterDir, name: &str) -> PathBuf {
    dir.file("pids").join(format!("{name}.pid"))
}

/// The pid in `file` if that process still runs *and* belongs to this cluster directory
/// (its command line names it), so a reused pid is never signalled.
pub(crate) fn live_pid(dir: &ClusterDir, file: &std::path::Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains(dir.path.to_string_lossy().as_ref()).then_some(pid)
}

/// Starts `weir ARGS` in the background as process `name` of the cluster: its log in `logs/`,
/// its pid in `pids/` (which `weir cluster stop` stops), `env` on top of this environment.
pub(crate) fn spawn(
    dir: &ClusterDir,
    name: &str,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the weir binary")?;
    spawn_command(dir, name, Command::new(exe), args, env)
}

/// As [`spawn`], with `command` running the binary (e.g. `ip netns exec HOST weir`: a host of
/// `weir chaos --hosts`).
pub(crate) fn spawn_command(
    dir: &ClusterDir,
    name: &str,
    mut command: Command,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(dir.file("logs"))?;
    std::fs::create_dir_all(dir.file("pids"))?;
    let log_path = dir.file("logs").join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        // Its own process group: a Ctrl-C in this terminal must not reach the cluster.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    std::fs::write(pid_file(dir, name), child.id().to_string())?;
    Ok(child)
}

fn log_tail(dir: &ClusterDir, name: &str) -> String {
    let text = std::fs::read_to_string(dir.file("logs").join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// A started cluster: its directory, where its JobManager is, the TaskManagers that
/// registered, and the processes (JobManager first).
pub(crate) struct Started {
    pub(crate) dir: ClusterDir,
    pub(crate) published: crate::config::Published,
    pub(crate) registered: Vec<weir_actors::cluster::TaskManagerInfo>,
    pub(crate) processes: Vec<(String, std::process::Child)>,
}

pub(crate) fn start(args: StartArgs) -> anyhow::Result<Started> {
    let dir = ClusterDir::resolve(args.dir.clone())?;
    if !dir.is_initialised() {
        dir.init()?;
        eprintln!("initialised cluster directory {}", dir.path.display());
    }
    if let Some(pid) = live_pid(&dir, &pid_file(&dir, "jobmanager")) {
        bail!("a job manager of {} already runs (pid {pid}); `weir cluster stop` it first", dir.path.display());
    }
    let _ = std::fs::remove_file(dir.file("jobmanager.addr"));
    let job_manager = spawn(&dir, "jobmanager", &job_manager_args(&dir), &args.env_of("jobmanager"))?;
    let pid = job_manager.id();
    let mut processes = vec![("jobmanager".to_owned(), job_manager)];
    let deadline = Instant::now() + STARTUP;
    let published = loop {
        if let Ok(p) = dir.published() {
            break p;
        }
        if std::fs::metadata(format!("/proc/{pid}")).is_err() || Instant::now() > deadline {
            bail!("the job manager did not start:\n{}", log_tail(&dir, "jobmanager"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for i in 0..args.taskmanagers {
        let name = format!("taskmanager-{i}");
        let child = spawn(&dir, &name, &task_manager_args(&dir, &name, args.slots), &args.env_of(&name))?;
        processes.push((name, child));
    }
    // Ready when every TaskManager has registered its slots.
    let registered = wait_for_task_managers(&dir, &published, args.taskmanagers, deadline)?;
    Ok(Started { dir, published, registered, processes })
}

/// Waits until `count` TaskManagers registered their slots with the JobManager `published`
/// (by `deadline`); the TaskManagers.
pub(crate) fn wait_for_task_managers(
    dir: &ClusterDir,
    published: &crate::config::Published,
    count: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<weir_actors::cluster::TaskManagerInfo>> {
    let identity = dir.identity()?;
    crate::runtime()?.block_on(async {
        let mut client = ClusterClient::connect(published.quic, &identity, NetConfig::default()).await?;
        loop {
            let overview = client.overview().await?;
            if overview.task_managers.len() >= count {
                client.close().await;
                return anyhow::Ok(overview.task_managers);
            }
            if Instant::now() > deadline {
                let tails: Vec<String> = (0..count).map(|i| log_tail(dir, &format!("taskmanager-{i}"))).collect();
                bail!(
                    "only {} of {count} task managers registered:\n{}",
                    overview.task_managers.len(),
                    tails.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// The arguments of `weir jobmanager` for the cluster in `dir`.
pub(crate) fn job_manager_args(dir: &ClusterDir) -> Vec<String> {
    vec!["jobmanager".into(), "--dir".into(), dir.path.display().to_string()]
}

/// The arguments of `weir taskmanager` with id `id` for the cluster in `dir`.
pub(crate) fn task_manager_args(dir: &ClusterDir, id: &str, slots: Option<usize>) -> Vec<String> {
    let mut args = vec!["taskmanager".into(), "--dir".into(), dir.path.display().to_string(), "--id".into(), id.into()];
    if let Some(slots) = slots {
        args.extend(["--slots".into(), slots.to_string()]);
    }
    args
}

pub(crate) fn stop(dir: &ClusterDir) -> anyhow::Result<usize> {
    let pids_dir = dir.file("pids");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&pids_dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    // TaskManagers first, so they do not report their JobManager lost.
    files.sort_by_key(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("jobmanager")));
    let mut stopped = 0;
    for file in &files {
        if let Some(pid) = live_pid(dir, file) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while live_pid(dir, file).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if live_pid(dir, file).is_some() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            stopped += 1;
        }
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(dir.file("jobmanager.addr"));
    Ok(stopped)
}

fn status(dir: &ClusterDir) -> anyhow::Result<()> {
    let published = dir.published()?;
    let identity = dir.identity()?;
    let overview = crate::runtime()?.block_on(async {
        let mut client = ClusterClient::connect(published.quic, &identity, NetConfig::default()).await?;
        let overview = client.overview().await?;
        client.close().await;
        anyhow::Ok(overview)
    })?;
    println!("job manager  quic {}  rest http://{}  pid {}", published.quic, published.rest, published.pid);
    let (total, free): (usize, usize) =
        overview.task_managers.iter().fold((0, 0), |(t, f), tm| (t + tm.slots, f + tm.free_slots));
    println!("task managers: {} registered, slots {free} free of {total}", overview.task_managers.len());
    for tm in &overview.task_managers {
        println!("  {:<20} slots {} free {}", tm.id, tm.slots, tm.free_slots);
    }
    // Processes started here that did not register (refused, or still starting).
    if let Ok(entries) = std::fs::read_dir(dir.file("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().trim_end_matches(".pid").to_owned();
            if name == "jobmanager" || overview.task_managers.iter().any(|tm| tm.id == name) {
                continue;
            }
            let state = if live_pid(dir, &entry.path()).is_some() { "running, not registered" } else { "not running" };
            println!("  {name:<20} {state} (see {})", dir.file("logs").join(format!("{name}.log")).display());
        }
    }
    let running = overview.jobs.iter().filter(|j| !j.status.is_terminal()).count();
    println!("jobs: {} running, {} in total", running, overview.jobs.len());
    if !overview.refused.is_empty() {
        println!("refused connections:");
        for r in &overview.refused {
            println!("  {r}");
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct JobIdArg {
    /// The job's id (see `weir list`).
    pub(crate) job_id: String,
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

pub(crate) async fn client(dir: &ClusterDir) -> anyhow::Result<ClusterClient> {
    let ha = dir.config(None)?.ha;
    let published = if ha.enabled() { crate::ha::leader(&ha).await? } else { dir.published()? };
    Ok(ClusterClient::connect(published.quic, &dir.identity()?, NetConfig::default()).await?)
}

/// `weir run JOB` against a cluster: attached, a live progress line until the job ends.
pub(crate) fn run(
    registry: &JobRegistry,
    job: &str,
    args: &[String],
    parallelism: usize,
    config: weir_actors::api::job::JobConfig,
    detached: bool,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(dir)?;
    let submission =
        JobSubmission::from_registry(registry, job, JobArgs::parse(args)?, parallelism)?.with_config(config);
    crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let id = client.submit(&submission).await.with_context(|| format!("cannot run job '{job}'"))?;
        if detached {
            println!("{id}");
            client.close().await;
            return Ok(());
        }
        eprintln!("submitted job '{job}' as {id}");
        let tty = std::io::stderr().is_terminal();
        let mut last_status = None;
        let details = loop {
            let d = client.details(id).await?;
            let line = format!(
                "[{}] {:.1} s  records in {}  out {}",
                d.status,
                d.duration.as_secs_f64(),
                d.source_records(),
                d.records_out()
            );
            if tty {
                eprint!("\r{line}   ");
            } else if last_status != Some(d.status) {
                eprintln!("{line}");
            }
            last_status = Some(d.status);
            if d.status.is_terminal() {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        if tty {
            eprintln!();
        }
        client.close().await;
        if details.status == JobStatus::Finished {
            eprintln!("job '{}' ({id}) FINISHED after {:.2} s", details.name, details.duration.as_secs_f64());
            Ok(())
        } else {
            bail!(
                "job '{}' ({id}) {}: {}",
                details.name,
                details.status,
                details.cause.as_deref().unwrap_or("no cause recorded")
            )
        }
    })
}

pub(crate) fn list(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(dir)?;
    let jobs = crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let jobs = client.jobs().await?;
        client.close().await;
        anyhow::Ok(jobs)
    })?;
    for j in jobs {
        println!("{}  {:<10}  {}", j.id, j.status.as_str(), j.name);
    }
    Ok(())
}

pub(crate) fn job_status(arg: JobIdArg) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(arg.dir)?;
    let id: JobId = arg.job_id.parse()?;
    let d = crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let d = client.details(id).await?;
        client.close().await;
        anyhow::Ok(d)
    })?;
    println!("job {} '{}': {} after {:.2} s", d.id, d.name, d.status, d.duration.as_secs_f64());
    if let Some(cause) = &d.cause {
        println!("cause: {cause}");
    }
    if !d.restart_strategy.is_empty() {
        println!("restarts: {} (on failure: {})", d.restarts, d.restart_strategy);
    }
    for v in &d.vertices {
        println!("  {} [parallelism {}]", v.name, v.parallelism);
        for s in &v.subtasks {
            println!(
                "    {:>3}  {:<10} {:<16} in {:>12}  out {:>12}",
                s.index + 1,
                format!("{:?}", s.state).to_uppercase(),
                s.task_manager,
                s.metrics.records_in,
                s.metrics.records_out
            );
        }
    }
    Ok(())
}

pub(crate) fn cancel(arg: JobIdArg) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(arg.dir)?;
    let id: JobId = arg.job_id.parse()?;
    crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        client.cancel(id).await?;
        // Wait until it has stopped everywhere, so the slots are free when this returns.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = client.details(id).await?;
            if d.status.is_terminal() {
                println!("job {id} {}", d.status);
                break;
            }
            if Instant::now() > deadline {
                bail!("job {id} is still {} after 60 s", d.status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.close().await;
        Ok(())
    })
}

#[derive(Debug, Args)]
pub(crate) struct SavepointArgs {
    /// The job's id (see `weir list`).
    job_id: String,
    /// Where the savepoint goes: a directory the JobManager and every TaskManager reach
    /// (default: weir.toml's `[state] savepoints_dir`, else the cluster directory's
    /// savepoints/), or an S3 prefix (`s3://bucket/prefix`). The savepoint is a new directory
    /// in it.
    target_directory: Option<Location>,
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CutArgs {
    /// Which connections: a TaskManager's control connection to the JobManager, or its data
    /// connections to other TaskManagers.
    #[arg(value_enum)]
    kind: CutKind,
    /// Only this TaskManager's connections (default: every TaskManager's).
    #[arg(long)]
    taskmanager: Option<String>,
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The job's id (see `weir list`).
    job_id: String,
    /// Where the savepoint goes (default as for `weir savepoint`).
    #[arg(long, short = 'p', value_name = "DIR")]
    savepoint: Option<Location>,
    /// End the job for good: sources end their input first, so the final watermark fires
    /// every event-time timer and operators flush before the savepoint (Flink's --drain).
    #[arg(long, short = 'd')]
    drain: bool,
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The directory savepoints go to: the one given (made absolute: the cluster's processes
/// resolve it), else the configured one.
fn savepoint_target(dir: &ClusterDir, given: Option<Location>) -> anyhow::Result<Location> {
    let target = match given {
        Some(target) => target,
        None => dir.savepoints_dir()?,
    };
    crate::config::absolute(&target).with_context(|| format!("invalid savepoint directory {target}"))
}

pub(crate) fn savepoint(args: SavepointArgs) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(args.dir)?;
    let id: JobId = args.job_id.parse()?;
    let target = savepoint_target(&dir, args.target_directory)?;
    let path = crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let path = client.savepoint(id, target, None).await;
        client.close().await;
        anyhow::Ok(path.with_context(|| format!("no savepoint of job {id}"))?)
    })?;
    println!("{path}");
    Ok(())
}

pub(crate) fn stop_job(args: StopArgs) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(args.dir)?;
    let id: JobId = args.job_id.parse()?;
    let target = savepoint_target(&dir, args.savepoint)?;
    let mode = if args.drain { StopMode::Drain } else { StopMode::NoDrain };
    crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let path =
            client.savepoint(id, target, Some(mode)).await.with_context(|| format!("job {id} was not stopped"))?;
        // The job ends once every subtask committed the savepoint's transactions.
        let deadline = Instant::now() + Duration::from_secs(60);
        let details = loop {
            let d = client.details(id).await?;
            if d.status.is_terminal() {
                break d;
            }
            if Instant::now() > deadline {
                bail!("job {id} is still {} 60 s after its savepoint {path} completed", d.status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        client.close().await;
        if details.status != JobStatus::Finished {
            bail!(
                "job {id} {} after its savepoint {path} completed: {}",
                details.status,
                details.cause.as_deref().unwrap_or("no cause recorded")
            );
        }
        eprintln!("job {id} stopped with a savepoint");
        println!("{path}");
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CutKind {
    /// TaskManager to JobManager: the TaskManager is lost until it reconnects.
    Control,
    /// TaskManager to TaskManager: the channels on them fail.
    Data,
}

/// `weir cut-connections`: fault injection through the JobManager.
pub(crate) fn cut_connections(args: CutArgs) -> anyhow::Result<()> {
    let dir = ClusterDir::resolve(args.dir)?;
    let kind = match args.kind {
        CutKind::Control => ConnectionKind::Control,
        CutKind::Data => ConnectionKind::Data,
    };
    let cut = CutConnections { kind, task_manager: args.taskmanager };
    let count = crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let count = client.cut_connections(cut).await;
        client.close().await;
        anyhow::Ok(count?)
    })?;
    let noun = if count == 1 { "task manager" } else { "task managers" };
    println!(
        "cut the {} connections of {count} {noun}",
        if kind == ConnectionKind::Control { "control" } else { "data" }
    );
    Ok(())
}

/// Runs benchmark cases on a temporary cluster of one JobManager and two TaskManagers with
/// one slot each, at parallelism 2: keyed edges cross processes for half their records.
pub(crate) fn bench_across_processes<R>(
    registry: &JobRegistry,
    cases: &[String],
    args: &JobArgs,
    mut report: impl FnMut(&(String, weir_actors::JobDetails)) -> anyhow::Result<R>,
) -> anyhow::Result<Vec<R>> {
    let tmp = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir_path = tmp.join("cluster");
    start(StartArgs {
        dir: Some(dir_path.clone()),
        taskmanagers: 2,
        slots: Some(1),
        env: Vec::new(),
        process_env: Vec::new(),
    })?;
    let dir = ClusterDir::resolve(Some(dir_path))?;
    let outcome = crate::runtime()?.block_on(async {
        let mut client = client(&dir).await?;
        let mut results = Vec::new();
        for case in cases.iter().filter(|c| c.as_str() != "stateless") {
            let job = JobSubmission::from_registry(registry, &format!("bench-{case}"), args.clone(), 2)?;
            let id = client.submit(&job).await?;
            let details = loop {
                let d = client.details(id).await?;
                if d.status.is_terminal() && (d.input_ended_after.is_some() || d.status != JobStatus::Finished) {
                    break d;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            anyhow::ensure!(
                details.status == JobStatus::Finished,
                "bench-{case} {}: {:?}",
                details.status,
                details.cause
            );
            results.push(report(&(case.clone(), details))?);
        }
        client.close().await;
        anyhow::Ok(results)
    });
    let _ = stop(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
    outcome
}
