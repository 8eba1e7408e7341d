//! The `weir` command line: runs jobs, lists them, benchmarks the runtime.
//!
//! A user's own binary registers its jobs and calls [`main`] to get the whole CLI:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let registry = weir_actors::JobRegistry::new()
//!         .job("my-job", "what it does", |env, args| { /* build the dataflow */ Ok(()) });
//!     weir_cli::main(registry)
//! }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod bench;
pub mod chaos;
mod cluster;
mod config;
mod ha;
pub mod hosts;
mod kafka;
mod nexmark;
mod node;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use weir_actors::api::job::{JobConfig, RestartStrategy};
use weir_actors::runtime::checkpoint::CheckpointConfig;
use weir_actors::runtime::checkpoint::savepoint::SavepointRestore;
use weir_actors::{JobArgs, JobRegistry, JobStatus, JobSubmission, MiniCluster, MiniClusterConfig};
use weir_state::storage::Location;

/// Weir: a distributed stream processor.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a registered job; its arguments follow `--` as `--key value` pairs.
    Run(RunArgs),
    /// List the jobs this binary can run.
    Jobs,
    /// List the jobs of a running cluster.
    List(cluster::DirArg),
    /// Show a job of a running cluster: status, subtasks, where they run, records.
    Status(cluster::JobIdArg),
    /// Cancel a job of a running cluster; returns when it has stopped everywhere.
    Cancel(cluster::JobIdArg),
    /// Take a savepoint of a running job; prints its directory.
    Savepoint(cluster::SavepointArgs),
    /// Stop a running job with a savepoint (Flink's stop-with-savepoint); prints its
    /// directory once the job has ended.
    Stop(cluster::StopArgs),
    /// Manage a local standalone cluster (processes on this machine).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Run a JobManager process (as `weir cluster start` does).
    Jobmanager(node::JobManagerArgs),
    /// Run a TaskManager process (as `weir cluster start` does).
    Taskmanager(node::TaskManagerArgs),
    /// Measure throughput of stateless, keyed and windowed pipelines on a MiniCluster.
    Bench(bench::BenchArgs),
    /// Inject faults from a seed and check the output stays exactly once (a soak test).
    Chaos(chaos::ChaosArgs),
    /// The Nexmark benchmark's events (its queries are the jobs `nexmark-qN`).
    #[command(subcommand)]
    Nexmark(nexmark::NexmarkCommand),
    /// Kafka tools (`produce-clicks`).
    #[command(subcommand)]
    Kafka(kafka::KafkaCommand),
    /// Fault injection: cut connections of a running cluster as a network failure would (tests
    /// and chaos runs; the processes must run with WEIR_FAULT_INJECTION=1).
    CutConnections(cluster::CutArgs),
    /// Delay the packets of a netfilter queue (latency for hosts of `weir chaos --hosts` and
    /// the multi-host tests; runs inside a host's network namespace).
    #[command(hide = true)]
    DelayPackets(hosts::delay::DelayArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The registered job (see `weir jobs`).
    job: String,
    /// Run on an embedded MiniCluster in this process instead of a running cluster.
    #[arg(long)]
    local: bool,
    /// Submit and return at once, printing the job id (cluster mode).
    #[arg(long)]
    detached: bool,
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Default parallelism of the job's operators.
    #[arg(long, short = 'p', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=32768))]
    parallelism: u64,
    /// Slots per TaskManager of the MiniCluster (--local; default: the parallelism).
    #[arg(long)]
    slots: Option<usize>,
    /// TaskManagers of the MiniCluster (--local).
    #[arg(long, default_value_t = 1)]
    task_managers: usize,
    /// Serve the REST API, `/metrics` and the web UI of the MiniCluster on this address while
    /// the job runs (--local; e.g. 127.0.0.1:8081, port 0 for any). Actions need the token it
    /// prints.
    #[arg(long, requires = "local", value_name = "ADDR")]
    rest_bind: Option<std::net::SocketAddr>,
    #[command(flatten)]
    fault_tolerance: FaultToleranceArgs,
    /// Start from this savepoint (its directory, the one holding `_metadata`), at any
    /// parallelism.
    #[arg(long, short = 's', value_name = "SAVEPOINT")]
    from_savepoint: Option<Location>,
    /// With --from-savepoint: skip state of operators the job no longer has instead of
    /// refusing to start.
    #[arg(long, short = 'n', requires = "from_savepoint")]
    allow_non_restored_state: bool,
    /// The job's arguments, after `--`.
    #[arg(last = true, value_name = "JOB_ARGS")]
    args: Vec<String>,
}

/// Checkpoints and restarts of a job.
#[derive(Debug, Args)]
struct FaultToleranceArgs {
    /// Take a checkpoint this often (e.g. 300ms, 2s, 1m); without it the job takes none.
    #[arg(long, value_parser = parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Where checkpoints go: a directory every node reaches, or an S3 prefix
    /// (`s3://bucket/prefix`; see `[s3]` in weir.toml). Default: the cluster directory's
    /// checkpoints/.
    #[arg(long)]
    checkpoint_dir: Option<Location>,
    /// Completed checkpoints kept.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoints_retained: u64,
    /// A checkpoint not complete within this is aborted.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    checkpoint_timeout: Duration,
    /// At least this long between the end of one checkpoint and the start of the next (Flink's
    /// `execution.checkpointing.min-pause`), so that slow checkpoints leave the job time to
    /// process.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    checkpoint_min_pause: Duration,
    /// Checkpoints that may fail in a row (time out, or fail to store their state) before the
    /// job fails over (Flink's `execution.checkpointing.tolerable-failed-checkpoints`).
    #[arg(long, default_value_t = 0)]
    tolerable_failed_checkpoints: u32,
    /// What a failure does: none, fixed-delay, exponential-backoff or failure-rate (default:
    /// exponential-backoff when the job checkpoints, as Flink 2's, none otherwise). With any of
    /// them, an error of the job's own code that comes back 3 times from the same checkpoint
    /// fails the job instead of restarting it again.
    #[arg(long, value_parser = ["none", "fixed-delay", "exponential-backoff", "failure-rate"])]
    restart_strategy: Option<String>,
    /// Restarts allowed (fixed-delay, exponential-backoff), or failures tolerated per
    /// --failure-rate-interval (failure-rate). Default: unlimited / 3.
    #[arg(long)]
    restart_attempts: Option<u32>,
    /// Wait before a restart (the first one, for exponential-backoff).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    restart_delay: Duration,
    /// The longest wait (exponential-backoff).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    restart_max_delay: Duration,
    /// The window failures are counted in (failure-rate).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    failure_rate_interval: Duration,
    /// Where keyed state lives: memory, or rocksdb (a database per stateful subtask on the
    /// TaskManager's disk, with incremental checkpoints).
    #[arg(long, default_value = "memory")]
    state_backend: weir_actors::base::state::StateBackend,
    /// The local directory of RocksDB databases (default: the system's temporary directory).
    #[arg(long, requires = "state_backend")]
    state_dir: Option<std::path::PathBuf>,
}

impl FaultToleranceArgs {
    fn config(&self, dir: Option<std::path::PathBuf>) -> anyhow::Result<JobConfig> {
        let checkpoints = match self.checkpoint_interval {
            None => None,
            Some(interval) => {
                anyhow::ensure!(!interval.is_zero(), "--checkpoint-interval must be positive");
                let dir = match &self.checkpoint_dir {
                    Some(d) => d.clone(),
                    None => config::ClusterDir::resolve(dir)?.file("checkpoints").into(),
                };
                Some(CheckpointConfig {
                    timeout: self.checkpoint_timeout,
                    min_pause: self.checkpoint_min_pause,
                    tolerable_failures: self.tolerable_failed_checkpoints,
                    retained: self.checkpoints_retained as usize,
                    ..CheckpointConfig::every(interval, dir)
                })
            }
        };
        let strategy = self.restart_strategy.as_deref().unwrap_or(if checkpoints.is_some() {
            "exponential-backoff"
        } else {
            "none"
        });
        let restart = match strategy {
            "none" => RestartStrategy::None,
            "fixed-delay" => RestartStrategy::FixedDelay {
                attempts: self.restart_attempts.unwrap_or(u32::MAX),
                delay: self.restart_delay,
            },
            "exponential-backoff" => RestartStrategy::ExponentialBackoff {
                attempts: self.restart_attempts.unwrap_or(u32::MAX),
                initial: self.restart_delay,
                max: self.restart_max_delay,
            },
            _ => RestartStrategy::FailureRate {
                failures: self.restart_attempts.unwrap_or(3),
                interval: self.failure_rate_interval,
                delay: self.restart_delay,
            },
        };
        let state_backend = match (&self.state_backend, &self.state_dir) {
            (weir_actors::base::state::StateBackend::RocksDb { .. }, dir) => {
                weir_actors::base::state::StateBackend::RocksDb { dir: dir.clone() }
            }
            (memory, None) => memory.clone(),
            (_, Some(_)) => anyhow::bail!("--state-dir is for --state-backend rocksdb"),
        };
        Ok(JobConfig { checkpoints, restart, savepoint: None, state_backend })
    }
}

/// A duration as `300ms`, `2s`, `1m` or `1h` (a bare number is seconds).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("'{raw}' is not a duration (e.g. 300ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit '{other}' in '{raw}' (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("'{raw}' is not a duration"));
    }
    // A century is more than any timeout or interval means, and far from overflowing a clock.
    const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if duration <= LONGEST => Ok(duration),
        _ => Err(format!("'{raw}' is too long (at most 100 years)")),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")
}

/// Adds the jobs every binary carries to `registry`: the benchmark pipelines (`bench-*`) and
/// the chaos suite's `semantics-check`. Every node of a cluster runs the same binary, so
/// `weir bench --cluster` and `weir chaos --cluster` find them on its TaskManagers; [`main`]
/// adds them itself.
pub fn with_builtin_jobs(registry: JobRegistry) -> JobRegistry {
    nexmark::register(chaos::register(bench::register(registry)))
}

/// Runs the CLI with the given job registry (and [the built-in jobs](with_builtin_jobs));
/// returns the process exit code.
pub fn main(registry: JobRegistry) -> ExitCode {
    let registry = with_builtin_jobs(registry);
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run(&registry, args),
        Command::Jobs => {
            let width = registry.iter().map(|j| j.name.len()).max().unwrap_or(0);
            for job in registry.iter() {
                println!("{:width$}  {}", job.name, job.description);
            }
            for (name, why) in nexmark::NOT_PROVIDED {
                println!("{name:width$}  {why}");
            }
            Ok(())
        }
        Command::List(a) => cluster::list(a.dir),
        Command::Status(a) => cluster::job_status(a),
        Command::Cancel(a) => cluster::cancel(a),
        Command::Savepoint(a) => cluster::savepoint(a),
        Command::Stop(a) => cluster::stop_job(a),
        Command::Cluster(c) => cluster::command(c),
        Command::Jobmanager(a) => node::job_manager(&registry, a),
        Command::Taskmanager(a) => node::task_manager(&registry, a),
        Command::Bench(args) => bench::run(&registry, args),
        Command::Chaos(args) => chaos::run(&registry, args),
        Command::DelayPackets(args) => hosts::delay::run(args),
        Command::Nexmark(command) => nexmark::command(command),
        Command::Kafka(command) => kafka::command(command),
        Command::CutConnections(args) => cluster::cut_connections(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(registry: &JobRegistry, args: RunArgs) -> anyhow::Result<()> {
    let parallelism = args.parallelism as usize;
    let mut config = args.fault_tolerance.config(args.dir.clone())?;
    if let Some(path) = &args.from_savepoint {
        // The JobManager and TaskManagers resolve it from elsewhere: make it absolute.
        let path = config::absolute(path).with_context(|| format!("invalid savepoint path {path}"))?;
        config.savepoint = Some(SavepointRestore { path, allow_non_restored_state: args.allow_non_restored_state });
    }
    if !args.local {
        return cluster::run(registry, &args.job, &args.args, parallelism, config, args.detached, args.dir);
    }
    let job_args = JobArgs::parse(&args.args)?;
    let job = JobSubmission::from_registry(registry, &args.job, job_args, parallelism)?.with_config(config);
    // Client-side planning first: bad arguments fail here, before any actor starts.
    let prepared = job.prepare().with_context(|| format!("cannot run job '{}'", args.job))?;
    let slots = args.slots.unwrap_or_else(|| prepared.graph.slots_needed().div_ceil(args.task_managers.max(1)));
    let config = MiniClusterConfig {
        task_managers: args.task_managers.max(1),
        slots_per_task_manager: slots,
        ..MiniClusterConfig::default()
    };
    let registry = registry.clone();
    let result = runtime()?.block_on(async move {
        let cluster = MiniCluster::start(config).await?;
        let rest = match args.rest_bind {
            Some(addr) => Some(node::serve_rest(addr, cluster.components(), registry).await?),
            None => None,
        };
        let result = match cluster.submit_prepared(prepared).await {
            Ok(id) => cluster.wait(id).await,
            Err(e) => Err(e),
        };
        if let Some(rest) = rest {
            rest.abort();
        }
        cluster.shutdown().await;
        anyhow::Ok(result?)
    })?;
    let d = &result.details;
    let summary = format!(
        "job '{}' ({}) {} after {:.2} s; {} records read by sources",
        d.name,
        d.id,
        d.status,
        d.duration.as_secs_f64(),
        d.source_records()
    );
    if d.status == JobStatus::Finished {
        eprintln!("{summary}");
        Ok(())
    } else {
        bail!("{summary}: {}", d.cause.as_deref().unwrap_or("no cause recorded"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command, parse_duration};
    use clap::Parser as _;
    use std::time::Duration;

    #[test]
    fn checkpoint_flags_make_the_jobs_checkpoint_config() {
        let cli = Cli::try_parse_from([
            "weir",
            "run",
            "window-agg",
            "--checkpoint-interval",
            "2s",
            "--checkpoint-dir",
            "/tmp/c",
            "--checkpoints-retained",
            "3",
            "--checkpoint-timeout",
            "30s",
            "--checkpoint-min-pause",
            "500ms",
            "--tolerable-failed-checkpoints",
            "2",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        let config = run.fault_tolerance.config(None).unwrap();
        // With checkpoints, restarts back off exponentially by default, as in Flink 2.
        assert!(
            matches!(
                config.restart,
                weir_actors::api::job::RestartStrategy::ExponentialBackoff { attempts: u32::MAX, .. }
            ),
            "{:?}",
            config.restart
        );
        let checkpoints = config.checkpoints.unwrap();
        assert_eq!(checkpoints.interval, Duration::from_secs(2));
        assert_eq!(checkpoints.timeout, Duration::from_secs(30));
        assert_eq!(checkpoints.min_pause, Duration::from_millis(500));
        assert_eq!(checkpoints.retained, 3);
        assert_eq!(checkpoints.tolerable_failures, 2);
        assert_eq!(checkpoints.dir, weir_state::storage::Location::Local(std::path::PathBuf::from("/tmp/c")));
    }

    #[test]
    fn durations_in_humantime_forms() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("2 weeks").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        // Once a panic in Duration::from_secs_f64.
        assert!(
            parse_duration("99999999999999999999").unwrap_err().contains("too long"),
            "{:?}",
            parse_duration("99999999999999999999")
        );
        assert!(parse_duration("1e400").is_err());
    }
}
