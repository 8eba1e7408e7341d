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
//! fails the run even if the reference had the same. `--job window-agg` runs event-time
//! windows and timers instead, and `--job late-windows` late data: windows with allowed
//! lateness and a late side output, whose output after a failover equals the reference only if
//! event time goes on from the checkpoint (the restored watermark) rather than the minimum.
//!
//! The faulty run goes on one of two clusters:
//! - a MiniCluster of two TaskManagers (the default): subtask actors, TaskExecutor actors and
//!   the control plane's actors (the job's JobMaster and CheckpointCoordinator, the
//!   Dispatcher, the ResourceManager) are killed, each restarted by its supervisor;
//! - with `--cluster`, a cluster of real processes ([`processes`]): the same actor kills
//!   (through the JobManager's fault-injection requests), and besides them TaskManager
//!   processes SIGKILLed and replaced, the JobManager process SIGKILLed and started again, and
//!   control and data connections cut.
//!
//! Faults strike at any moment until the job ends, also after the sources' input ended: the
//! job's final checkpoint commits the sinks' last files exactly once.

mod processes;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use weir_actors::checkpoint::CheckpointConfig;
use weir_actors::cluster::mini_cluster::ControlActor;
use weir_actors::job::{JobConfig, RestartStrategy};
use weir_actors::prelude::*;
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
    /// Faults per run (default: 4; 6 with --cluster).
    #[arg(long)]
    faults: Option<u32>,
    /// Where the faulty run keeps its keyed state: memory or rocksdb.
    #[arg(long, default_value = "memory")]
    state_backend: weir_actors::job::StateBackend,
    /// Run the faulty job on a cluster of processes (a JobManager and three TaskManagers of
    /// one slot), killing and cutting processes and connections too.
    #[arg(long)]
    cluster: bool,
    /// The job to run.
    #[arg(long, value_enum, default_value_t = ChaosJob::SemanticsCheck)]
    job: ChaosJob,
}

/// The jobs a chaos run can run (both examples, at parallelism 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChaosJob {
    /// Per-user sequences checked in keyed state, a line per click.
    SemanticsCheck,
    /// Clicks per user in tumbling event-time windows.
    WindowAgg,
    /// Late data: windows with allowed lateness and a late side output, so event time has to
    /// go on across restores exactly as without faults.
    LateWindows,
}

impl ChaosJob {
    fn name(self) -> &'static str {
        match self {
            ChaosJob::SemanticsCheck => "semantics-check",
            ChaosJob::WindowAgg => "window-agg",
            ChaosJob::LateWindows => "late-windows",
        }
    }

    /// Arguments of its own, beside the generator's.
    fn args(self) -> &'static [&'static str] {
        match self {
            // Every 97th click after the first 20 s of event time is 10 s behind: late beyond
            // the 1 s lateness whenever the two sources are less than ~8.7 s of event time
            // (0.87 s at the chaos rate) apart.
            ChaosJob::LateWindows => &["--late-every", "97", "--late-ms", "10000"],
            ChaosJob::SemanticsCheck | ChaosJob::WindowAgg => &[],
        }
    }
}

/// What each run of a soak does.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    /// Where the faulty run goes.
    pub target: Target,
    /// The job.
    pub job: ChaosJob,
    /// Events of its generator.
    pub events: u64,
    /// Faults per run.
    pub faults: u32,
    /// Where the faulty run keeps its keyed state.
    pub state_backend: weir_actors::job::StateBackend,
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
    /// Faults injected, by kind.
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
fn submission(
    job: ChaosJob,
    events: u64,
    output: &std::path::Path,
    config: JobConfig,
) -> anyhow::Result<JobSubmission> {
    let own = job.args().iter().map(|a| (*a).to_owned());
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
    Ok(JobSubmission::from_registry(&weir_examples::registry(), job.name(), args, 2)?.with_config(config))
}

/// The faulty run's configuration: checkpoints every 100 ms (two retained), quick restarts.
fn faulty_config(work: &std::path::Path, state_backend: weir_actors::job::StateBackend) -> JobConfig {
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
    faults: Option<(&mut Rng, &mut FaultCounts)>,
) -> anyhow::Result<(Vec<String>, weir_actors::JobDetails)> {
    let output = work.join(name);
    let job = submission(plan.job, plan.events, &output, config)?;
    let cluster =
        MiniCluster::start(MiniClusterConfig { task_managers: 2, slots_per_task_manager: 1, ..Default::default() })
            .await?;
    let id = cluster.submit(&job).await?;
    if let Some((rng, kinds)) = faults {
        inject(&cluster, id, rng, plan.faults, kinds).await?;
    }
    let result =
        tokio::time::timeout(Duration::from_secs(120), cluster.wait(id)).await.context("the job did not end")??;
    cluster.shutdown().await;
    anyhow::ensure!(
        result.status() == JobStatus::Finished,
        "{name} run ended {}: {:?}",
        result.status(),
        result.details.cause
    );
    Ok((lines(&output)?, result.details))
}

async fn inject(
    cluster: &MiniCluster,
    id: JobId,
    rng: &mut Rng,
    count: u32,
    kinds: &mut FaultCounts,
) -> anyhow::Result<()> {
    for _ in 0..count {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(300))).await;
        let d = cluster.details(id).await?;
        if d.status.is_terminal() {
            break;
        }
        if d.status != JobStatus::Running {
            continue;
        }
        // Half the faults hit subtasks; the rest TaskExecutors and each control-plane actor.
        let kind = match rng.below(20) {
            0..=9 => {
                let vertex = rng.below(d.vertices.len() as u64) as usize;
                let index = rng.below(d.vertices[vertex].parallelism as u64) as usize;
                cluster.kill_subtask(id, vertex, index).await?;
                "subtask killed"
            }
            10..=12 => {
                let tm = rng.below(2) as usize;
                cluster.task_executor(tm).await?.kill();
                "task-executor killed"
            }
            13..=14 => kill(cluster, ControlActor::JobMaster(id), "job-master killed").await?,
            15..=16 => kill(cluster, ControlActor::Coordinator(id), "coordinator killed").await?,
            17..=18 => kill(cluster, ControlActor::ResourceManager, "resource-manager killed").await?,
            _ => kill(cluster, ControlActor::Dispatcher, "dispatcher killed").await?,
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
}

/// One chaos run: the reference, then the faulty run on `target`. A faulty run that fails or
/// differs keeps its directory (a cluster's logs included), and says where.
pub fn run_seed(plan: &ChaosPlan, seed: u64) -> anyhow::Result<ChaosReport> {
    let work = work_dir(seed);
    let runtime = super::runtime()?;
    let (expected, _) = runtime.block_on(run_job(&work, "reference", plan, JobConfig::default(), None))?;
    let mut rng = Rng(seed);
    let mut kinds = FaultCounts::new();
    let config = faulty_config(&work, plan.state_backend.clone());
    let outcome = match plan.target {
        Target::MiniCluster => runtime.block_on(run_job(&work, "faulty", plan, config, Some((&mut rng, &mut kinds)))),
        Target::Processes => processes::faulty_run(&work, plan, config, &mut rng, &mut kinds),
    };
    match &outcome {
        Ok((output, _)) if output.len() == expected.len() => {
            let _ = std::fs::remove_dir_all(&work);
        }
        _ => eprintln!("seed {seed}: the faulty run's directory is kept in {}", work.display()),
    }
    let (output, details) = outcome?;
    Ok(report(seed, kinds, &details, expected, output))
}

fn work_dir(seed: u64) -> std::path::PathBuf {
    let work = std::env::temp_dir().join(format!("weir-chaos-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    work
}

/// Compares the faulty run's output with the reference's.
fn report(
    seed: u64,
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

pub(crate) fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let first = args.seed.unwrap_or_else(|| weir_actors::time::wall_clock_ms() as u64);
    let plan = ChaosPlan {
        target: if args.cluster { Target::Processes } else { Target::MiniCluster },
        job: args.job,
        events: args.events.unwrap_or(if args.cluster { 100_000 } else { 40_000 }),
        faults: args.faults.unwrap_or(if args.cluster { 6 } else { 4 }),
        state_backend: args.state_backend,
    };
    let mut failed = Vec::new();
    for seed in first..first + args.runs {
        let report = run_seed(&plan, seed)?;
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
    }
    anyhow::ensure!(failed.is_empty(), "exactly-once violated for seeds {failed:?}");
    Ok(())
}
