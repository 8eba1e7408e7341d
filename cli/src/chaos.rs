//! `weir chaos`: seeded fault injection against a reference run.
//!
//! Each run executes a job twice: once without faults on a MiniCluster, once with checkpoints
//! every 100 ms while faults strike at moments drawn from the seed. The committed output of
//! the faulty run must equal the reference exactly (compared as multisets: nothing lost,
//! nothing duplicated). Every run prints its seed, so a failure reproduces with `--seed`.
//!
//! The job is `semantics-check` (after Flink's `SemanticsCheckMapper`): per-user click
//! sequences from the generator, a keyed operator that checks each user's sequence advances by
//! exactly one and keeps a running sum in state, and the two-phase file sink. Its output has a
//! line per click (the running sum), and a `VIOLATION` line wherever a sequence broke, which
//! fails the run even if the reference had the same. It ships with this library (`job.rs`), so
//! a user's own binary has it; `--job NAME` runs another job of the binary's registry instead,
//! with its own arguments after `--`: the `weir` binary's `--job window-agg` runs event-time
//! windows and timers, and `--job late-windows -- --late-every 97 --late-ms 10000` late data:
//! windows with allowed lateness and a late side output, whose output after a failover equals the reference only if
//! event time goes on from the checkpoint (the restored watermark) rather than the minimum.
//!
//! The faulty run goes on one of two clusters:
//! - a MiniCluster of two TaskManagers (the default): subtask actors, TaskExecutor actors and
//!   the control plane's actors (the job's JobMaster and CheckpointCoordinator, the
//!   Dispatcher, the ResourceManager) are killed, each restarted by its supervisor;
//! - with `--cluster`, a cluster of real processes (`processes.rs`): the same actor kills
//!   (through the JobManager's fault-injection requests), and besides them TaskManager
//!   processes SIGKILLed and replaced, the JobManager process SIGKILLed and started again, and
//!   control and data connections cut;
//! - with `--hosts`, the same processes each on a host of its own ([`crate::hosts`]: a network
//!   namespace with its address on a bridge), and the network between them struck instead: a
//!   TaskManager partitioned from the JobManager, two TaskManagers from each other, the
//!   JobManager from everyone (each healed 0.5–4 s later), a TaskManager's host delayed and
//!   lossy for a while, a TaskManager's host vanishing (a new host replaces it).
//!
//! Faults strike at any moment until the job ends, also after the sources' input ended: the
//! job's final checkpoint commits the sinks' last files exactly once. Besides the strikes at
//! moments, each run arms failpoints ([`weir_actors::base::failpoint`]): a crash at the `n`-th run
//! of a step of the checkpoint protocol (after a trigger, during an upload, between a snapshot
//! and its ack, between completion and a sink's commit, between a commit's rename and its
//! directory sync, while aborting, right after a savepoint). In a MiniCluster the actor or
//! loop running the step panics there; on processes the process running it aborts. The whole
//! The `Schedule` is drawn from the seed and printed before the run.

mod job;
mod processes;
mod schedule;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use schedule::{Schedule, Shape, Strike};
use weir_actors::api::job::{JobConfig, RestartStrategy};
use weir_actors::base::failpoint::{self, Failpoint};
use weir_actors::cluster::mini_cluster::ControlActor;
use weir_actors::prelude::*;
use weir_actors::runtime::checkpoint::CheckpointConfig;
use weir_actors::{JobId, JobStatus};

#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Runs (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// The first seed (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Events per run (default: 40,000; 100,000 with --cluster, whose faults take longer).
    #[arg(long)]
    events: Option<u64>,
    /// Faults struck at moments per run (default: 4; 6 with --cluster).
    #[arg(long)]
    faults: Option<u32>,
    /// Failpoints armed per run: crashes at protocol steps, drawn from the seed.
    #[arg(long, default_value_t = 2)]
    failpoints: u32,
    /// Crash at these failpoints instead of drawn ones, e.g. `before-ack@3,after-completion@2`
    /// (steps: after-trigger, during-upload, before-ack, after-completion, after-savepoint,
    /// before-commit, before-dir-sync, while-aborting).
    #[arg(long, value_delimiter = ',')]
    failpoint: Vec<Failpoint>,
    /// Where the faulty run keeps its keyed state: memory or rocksdb.
    #[arg(long, default_value = "memory")]
    state_backend: weir_actors::base::state::StateBackend,
    /// Run the faulty job on a cluster of processes (a JobManager and three TaskManagers of
    /// one slot), killing and cutting processes and connections too.
    #[arg(long)]
    cluster: bool,
    /// Run the faulty job on a cluster of processes each on a host of its own (a network
    /// namespace on a bridge; needs root, `ip` and `iptables`), striking the network between
    /// them: partitions healed later, latency and loss, hosts that vanish.
    #[arg(long, conflicts_with = "cluster")]
    hosts: bool,
    /// The job to run, by its name in the binary's registry: `semantics-check` (the chaos
    /// suite's own job) or any deterministic job that takes the generator's arguments and
    /// `--output DIR` (`window-agg`, `late-windows` of the `weir` binary's examples).
    #[arg(long, default_value = "semantics-check")]
    job: String,
    /// Arguments of the job's own, after `--` (e.g. `-- --late-every 97 --late-ms 10000`),
    /// given besides the generator's.
    #[arg(last = true)]
    job_args: Vec<String>,
}

/// Adds the chaos suite's own job (`semantics-check`) to a registry.
pub(crate) fn register(registry: JobRegistry) -> JobRegistry {
    job::register(registry)
}

/// What each run of a soak does.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    /// Where the faulty run goes.
    pub target: Target,
    /// The registry the job is taken from.
    pub registry: JobRegistry,
    /// The job's name in it.
    pub job: String,
    /// The job's own arguments, besides the generator's.
    pub job_args: Vec<String>,
    /// Events of its generator.
    pub events: u64,
    /// Faults struck at moments per run.
    pub faults: u32,
    /// Failpoints drawn per run.
    pub failpoints: u32,
    /// Failpoints armed instead of drawn ones.
    pub explicit: Option<Vec<Failpoint>>,
    /// Where the faulty run keeps its keyed state.
    pub state_backend: weir_actors::base::state::StateBackend,
}

/// SplitMix64: the seed decides every fault and moment.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one chaos run did and found.
#[derive(Debug, serde::Serialize)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// The fault schedule the seed drew.
    pub schedule: String,
    /// Faults injected, by kind (crashes at failpoints as `crashed at <step>`).
    pub faults: BTreeMap<String, u32>,
    /// Restarts the job went through (by its restart strategy, or by a new JobMaster).
    pub failovers: u32,
    /// The checkpoints the job restored from, oldest first.
    pub restored: Vec<u64>,
    /// Output records of the reference run.
    pub records: usize,
    /// Output records missing from the faulty run.
    pub lost: usize,
    /// Output records the faulty run has too many of.
    pub duplicated: usize,
    /// `VIOLATION` lines of the semantics check in the faulty run's output.
    pub violations: usize,
}

impl ChaosReport {
    /// Nothing lost, nothing duplicated, no sequence broken.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.violations == 0
    }
}

fn lines(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("no output in {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            lines.extend(std::fs::read_to_string(entry.path())?.lines().map(str::to_owned));
        }
    }
    Ok(lines)
}

/// The chaos job at parallelism 2, its output in `output`.
fn submission(plan: &ChaosPlan, output: &std::path::Path, config: JobConfig) -> anyhow::Result<JobSubmission> {
    let events = plan.events;
    let own = plan.job_args.iter().cloned();
    let args = JobArgs::parse(
        &own.chain([
            "--events".to_owned(),
            events.to_string(),
            "--rate".to_owned(),
            "20000".to_owned(),
            "--keys".to_owned(),
            "40".to_owned(),
            "--seed".to_owned(),
            "5".to_owned(),
            "--out-of-order-ms".to_owned(),
            "150".to_owned(),
            "--output".to_owned(),
            output.display().to_string(),
        ])
        .collect::<Vec<_>>(),
    )?;
    Ok(JobSubmission::from_registry(&plan.registry, &plan.job, args, 2)?.with_config(config))
}

/// The faulty run's configuration: checkpoints every 100 ms (two retained), quick restarts.
fn faulty_config(work: &std::path::Path, state_backend: weir_actors::base::state::StateBackend) -> JobConfig {
    JobConfig {
        checkpoints: Some(CheckpointConfig {
            retained: 2,
            ..CheckpointConfig::every(Duration::from_millis(100), work.join("checkpoints"))
        }),
        restart: RestartStrategy::FixedDelay { attempts: 100, delay: Duration::from_millis(20) },
        savepoint: None,
        state_backend,
    }
}

/// Where faults are counted, by kind.
type FaultCounts = BTreeMap<String, u32>;

async fn run_job(
    work: &std::path::Path,
    name: &str,
    plan: &ChaosPlan,
    config: JobConfig,
    faults: Option<(&Schedule, &mut FaultCounts)>,
) -> anyhow::Result<(Vec<String>, weir_actors::JobDetails)> {
    let output = work.join(name);
    let job = submission(plan, &output, config)?.prepare()?;
    let cluster =
        MiniCluster::start(MiniClusterConfig { task_managers: 2, slots_per_task_manager: 1, ..Default::default() })
            .await?;
    // Armed for this job only, before it runs: the hits count from its first step.
    let armed = faults
        .as_ref()
        .map(|(schedule, _)| failpoint::arm(Some(job.id), schedule.failpoints_of(None), failpoint::Action::Panic));
    let id = cluster.submit_prepared(job).await?;
    let mut faults = faults;
    if let Some((schedule, kinds)) = faults.as_mut() {
        inject(&cluster, id, work, schedule, kinds).await?;
    }
    let result = tokio::time::timeout(Duration::from_secs(120), cluster.wait(id)).await;
    if let (Some(armed), Some((_, kinds))) = (&armed, faults) {
        for point in armed.fired() {
            *kinds.entry(format!("crashed at {}", point.step)).or_default() += 1;
        }
    }
    cluster.shutdown().await;
    let result = result.context("the job did not end")??;
    anyhow::ensure!(
        result.status() == JobStatus::Finished,
        "{name} run ended {}: {:?}",
        result.status(),
        result.details.cause
    );
    Ok((lines(&output)?, result.details))
}

/// Strikes the schedule's faults at their moments.
async fn inject(
    cluster: &MiniCluster,
    id: JobId,
    work: &std::path::Path,
    schedule: &Schedule,
    kinds: &mut FaultCounts,
) -> anyhow::Result<()> {
    for &(delay, planned) in &schedule.strikes {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let d = cluster.details(id).await?;
        if d.status.is_terminal() {
            break;
        }
        if d.status != JobStatus::Running {
            *kinds.entry("nothing to kill".to_owned()).or_default() += 1;
            continue;
        }
        let kind = match planned {
            Strike::Subtask { vertex, index } => {
                cluster.kill_subtask(id, vertex, index).await?;
                planned.kind()
            }
            Strike::TaskExecutor { task_manager } => {
                cluster.task_executor(task_manager % 2).await?.kill();
                planned.kind()
            }
            Strike::JobMaster => kill(cluster, ControlActor::JobMaster(id), planned.kind()).await?,
            Strike::Coordinator => kill(cluster, ControlActor::Coordinator(id), planned.kind()).await?,
            Strike::ResourceManager => kill(cluster, ControlActor::ResourceManager, planned.kind()).await?,
            Strike::Dispatcher => kill(cluster, ControlActor::Dispatcher, planned.kind()).await?,
            Strike::Savepoint => {
                match tokio::time::timeout(Duration::from_secs(5), cluster.savepoint(id, work.join("savepoints"), None))
                    .await
                {
                    Ok(Ok(_)) => planned.kind(),
                    _ => "savepoint failed",
                }
            }
            // A MiniCluster has no processes or connections (never drawn for it).
            Strike::TaskManagerProcess { .. }
            | Strike::JobManagerProcess
            | Strike::ControlCut { .. }
            | Strike::DataCut { .. }
            | Strike::PartitionFromJobManager { .. }
            | Strike::PartitionPeers { .. }
            | Strike::IsolateJobManager { .. }
            | Strike::Impair { .. }
            | Strike::VanishHost { .. } => "nothing to kill",
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    Ok(())
}

/// Kills a control-plane actor; a job that is between JobMasters or coordinators has none to
/// kill, which is not an error.
async fn kill(cluster: &MiniCluster, which: ControlActor, kind: &'static str) -> anyhow::Result<&'static str> {
    match cluster.kill(which).await {
        Ok(()) => Ok(kind),
        Err(e) if e.to_string().contains("has no") => Ok("nothing to kill"),
        Err(e) => Err(e.into()),
    }
}

/// Where a faulty run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A MiniCluster in this process.
    MiniCluster,
    /// A cluster of `weir` processes started from this binary.
    Processes,
    /// Those processes, each on a host of its own ([`crate::hosts`]).
    Hosts,
}

/// One chaos run: the reference, then the faulty run on `target`. A faulty run that fails or
/// differs keeps its directory (a cluster's logs included), and says where.
pub fn run_seed(plan: &ChaosPlan, seed: u64) -> anyhow::Result<ChaosReport> {
    let work = work_dir(seed);
    let runtime = super::runtime()?;
    let (expected, _) = runtime.block_on(run_job(&work, "reference", plan, JobConfig::default(), None))?;
    let config = faulty_config(&work, plan.state_backend.clone());
    let vertices: Vec<usize> = submission(plan, &work.join("faulty"), config.clone())?
        .prepare()?
        .graph
        .vertices
        .iter()
        .map(|v| v.parallelism)
        .collect();
    let shape = Shape {
        target: plan.target,
        vertices: &vertices,
        task_managers: match plan.target {
            Target::MiniCluster => 2,
            Target::Processes | Target::Hosts => processes::TASK_MANAGERS,
        },
        strikes: plan.faults,
        failpoints: plan.failpoints,
        explicit: plan.explicit.as_deref(),
    };
    let schedule = Schedule::draw(&mut Rng(seed), &shape);
    println!("seed {seed}: schedule: {schedule}");
    let mut kinds = FaultCounts::new();
    let outcome = match plan.target {
        Target::MiniCluster => runtime.block_on(run_job(&work, "faulty", plan, config, Some((&schedule, &mut kinds)))),
        Target::Processes | Target::Hosts => processes::faulty_run(&work, plan, config, &schedule, &mut kinds),
    };
    match &outcome {
        Ok((output, _)) if output.len() == expected.len() => {
            let _ = std::fs::remove_dir_all(&work);
        }
        _ => eprintln!("seed {seed}: the faulty run's directory is kept in {}", work.display()),
    }
    let (output, details) = outcome?;
    let armed = schedule.failpoints.len() as u32;
    let crashed: u32 = kinds.iter().filter(|(k, _)| k.starts_with("crashed at ")).map(|(_, n)| n).sum();
    if armed > crashed {
        *kinds.entry("failpoint not reached".to_owned()).or_default() += armed - crashed;
    }
    Ok(report(seed, schedule.to_string(), kinds, &details, expected, output))
}

fn work_dir(seed: u64) -> std::path::PathBuf {
    let work = std::env::temp_dir().join(format!("weir-chaos-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    work
}

/// Compares the faulty run's output with the reference's.
fn report(
    seed: u64,
    schedule: String,
    faults: FaultCounts,
    details: &weir_actors::JobDetails,
    mut expected: Vec<String>,
    mut output: Vec<String>,
) -> ChaosReport {
    expected.sort();
    output.sort();
    let (mut lost, mut duplicated) = (0, 0);
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for line in &expected {
        *counts.entry(line).or_default() += 1;
    }
    for line in &output {
        *counts.entry(line).or_default() -= 1;
    }
    for n in counts.values() {
        if *n > 0 {
            lost += *n as usize;
        } else {
            duplicated += (-n) as usize;
        }
    }
    ChaosReport {
        seed,
        schedule,
        faults,
        // Restarts by the restart strategy, and recoveries by a JobMaster started again.
        failovers: details.restarts
            + details.exceptions.iter().filter(|e| e.cause.starts_with("job master restarted")).count() as u32,
        restored: details.restored.clone(),
        records: expected.len(),
        lost,
        duplicated,
        violations: output.iter().filter(|l| l.starts_with("VIOLATION")).count(),
    }
}

pub(crate) fn run(registry: &JobRegistry, args: ChaosArgs) -> anyhow::Result<()> {
    // A MiniCluster's failpoints crash by panicking: their warning in the log says so, without
    // the panic message and backtrace of a real panic.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if failpoint::InjectedCrash::of(info.payload()).is_none() {
            hook(info);
        }
    }));
    let first = args.seed.unwrap_or_else(|| weir_actors::base::time::wall_clock_ms() as u64);
    let plan = ChaosPlan {
        target: match (args.cluster, args.hosts) {
            (_, true) => Target::Hosts,
            (true, false) => Target::Processes,
            (false, false) => Target::MiniCluster,
        },
        registry: registry.clone(),
        job: args.job,
        job_args: args.job_args,
        events: args.events.unwrap_or(if args.cluster || args.hosts { 100_000 } else { 40_000 }),
        faults: args.faults.unwrap_or(if args.cluster || args.hosts { 6 } else { 4 }),
        failpoints: args.failpoints,
        explicit: (!args.failpoint.is_empty()).then_some(args.failpoint),
        state_backend: args.state_backend,
    };
    let mut failed = Vec::new();
    let mut total = ChaosTotals::default();
    for seed in first..first + args.runs {
        // A run that fails (its job did not finish) is reported, and the soak goes on.
        let report = match run_seed(&plan, seed) {
            Ok(report) => report,
            Err(e) => {
                println!("seed {seed}: FAILED: {e:#}");
                failed.push(seed);
                continue;
            }
        };
        let faults: Vec<String> = report.faults.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let restored: Vec<String> = report.restored.iter().map(u64::to_string).collect();
        println!(
            "seed {seed}: faults [{}], failovers {}, restored checkpoints [{}], records {}, lost {}, duplicated {}, sequence violations {}: {}",
            faults.join(", "),
            report.failovers,
            restored.join(", "),
            report.records,
            report.lost,
            report.duplicated,
            report.violations,
            if report.exactly_once() { "exactly once" } else { "MISMATCH" }
        );
        if !report.exactly_once() {
            failed.push(seed);
        }
        total.add(&report);
    }
    if args.runs > 1 {
        println!("{total}");
    }
    anyhow::ensure!(failed.is_empty(), "chaos runs failed or violated exactly-once for seeds {failed:?}");
    Ok(())
}

/// What a soak's runs add up to.
#[derive(Debug, Default)]
struct ChaosTotals {
    runs: u32,
    faults: FaultCounts,
    failovers: u32,
    records: usize,
    lost: usize,
    duplicated: usize,
    violations: usize,
}

impl ChaosTotals {
    fn add(&mut self, report: &ChaosReport) {
        self.runs += 1;
        for (kind, n) in &report.faults {
            *self.faults.entry(kind.clone()).or_default() += n;
        }
        self.failovers += report.failovers;
        self.records += report.records;
        self.lost += report.lost;
        self.duplicated += report.duplicated;
        self.violations += report.violations;
    }
}

impl std::fmt::Display for ChaosTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{n} {k}")).collect();
        write!(
            f,
            "soak: {} runs, faults [{}], failovers {}, records {}, lost {}, duplicated {}, sequence violations {}",
            self.runs,
            faults.join(", "),
            self.failovers,
            self.records,
            self.lost,
            self.duplicated,
            self.violations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(registry: JobRegistry, job: &str) -> ChaosPlan {
        ChaosPlan {
            target: Target::MiniCluster,
            registry,
            job: job.to_owned(),
            job_args: Vec::new(),
            events: 4_000,
            faults: 2,
            failpoints: 1,
            explicit: None,
            state_backend: weir_actors::base::state::StateBackend::Memory,
        }
    }

    /// A binary with none of the example jobs (a user's own) has a working `weir chaos`: the
    /// suite's job ships with this library and runs from the registry it is given.
    #[test]
    fn chaos_runs_on_a_registry_without_the_examples() {
        let report = run_seed(&plan(crate::with_builtin_jobs(JobRegistry::new()), "semantics-check"), 7).unwrap();
        assert!(report.records > 0, "{report:?}");
        assert!(report.exactly_once(), "{report:?}");
    }

    /// Event time from a watermark strategy mid-dataflow survives failovers: clicks, their
    /// timestamps assigned after the source, counted in tumbling event-time windows, under
    /// seeded faults and failpoints, give the fault-free run's counts exactly once. (The
    /// strategy's bound is the generator's disorder, so no click is late whenever its
    /// periodic watermarks come.)
    #[test]
    fn a_mid_stream_watermark_strategy_is_exactly_once_under_faults() {
        fn assigned_windows(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
            let config = GeneratorConfig::from_args(args)?;
            let bound = std::time::Duration::from_millis(config.out_of_order_ms as u64);
            let output = FileSink::new(args.get("output")?);
            env.set_auto_watermark_interval(std::time::Duration::from_millis(20));
            env.source("clicks", Generator::new(config))
                .assign_timestamps_and_watermarks(
                    WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamp_assigner(|c: &Click, _| c.time),
                )
                .key_by(|c: &Click| c.user)
                .window(Tumbling::event_time(std::time::Duration::from_millis(200)))
                .aggregate("count", Count)
                .map("format", |w: Windowed<u32, u64>| format!("{}\t{}\t{}", w.key, w.window.start, w.value))
                .sink("output", output);
            Ok(())
        }
        let registry = JobRegistry::new().job("assigned-windows", "test", assigned_windows);
        let plan = ChaosPlan { events: 8_000, faults: 3, failpoints: 2, ..plan(registry, "assigned-windows") };
        for seed in [31, 32] {
            let report = run_seed(&plan, seed).unwrap();
            println!("{report:?}");
            assert!(report.records > 0, "{report:?}");
            assert!(report.failovers > 0, "the faults struck: {report:?}");
            assert!(report.exactly_once(), "{report:?}");
        }
    }

    /// A job the binary does not carry is named, with the registry's jobs.
    #[test]
    fn a_job_missing_from_the_registry_is_named() {
        let err = run_seed(&plan(crate::with_builtin_jobs(JobRegistry::new()), "window-agg"), 7).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("window-agg") && text.contains("semantics-check"), "{text}");
    }
}
