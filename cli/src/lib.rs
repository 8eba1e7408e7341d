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
mod cluster;
mod config;
mod node;

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use weir_actors::{JobArgs, JobRegistry, JobStatus, JobSubmission, MiniCluster, MiniClusterConfig};

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
    /// Manage a local standalone cluster (processes on this machine).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Run a JobManager process (as `weir cluster start` does).
    Jobmanager(node::JobManagerArgs),
    /// Run a TaskManager process (as `weir cluster start` does).
    Taskmanager(node::TaskManagerArgs),
    /// Measure throughput of stateless, keyed and windowed pipelines on a MiniCluster.
    Bench(bench::BenchArgs),
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
    /// The job's arguments, after `--`.
    #[arg(last = true, value_name = "JOB_ARGS")]
    args: Vec<String>,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")
}

/// Runs the CLI with the given job registry; returns the process exit code.
pub fn main(registry: JobRegistry) -> ExitCode {
    // Every binary carries the benchmark pipelines, so `weir bench --cluster` finds them on
    // its TaskManagers.
    let registry = bench::register(registry);
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run(&registry, args),
        Command::Jobs => {
            let width = registry.iter().map(|j| j.name.len()).max().unwrap_or(0);
            for job in registry.iter() {
                println!("{:width$}  {}", job.name, job.description);
            }
            Ok(())
        }
        Command::List(a) => cluster::list(a.dir),
        Command::Status(a) => cluster::job_status(a),
        Command::Cancel(a) => cluster::cancel(a),
        Command::Cluster(c) => cluster::command(c),
        Command::Jobmanager(a) => node::job_manager(&registry, a),
        Command::Taskmanager(a) => node::task_manager(&registry, a),
        Command::Bench(args) => bench::run(args),
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
    if !args.local {
        return cluster::run(registry, &args.job, &args.args, parallelism, args.detached, args.dir);
    }
    let job_args = JobArgs::parse(&args.args)?;
    let job = JobSubmission::from_registry(registry, &args.job, job_args, parallelism)?;
    // Client-side planning first: bad arguments fail here, before any actor starts.
    let prepared = job.prepare().with_context(|| format!("cannot run job '{}'", args.job))?;
    let slots = args.slots.unwrap_or_else(|| prepared.graph.slots_needed().div_ceil(args.task_managers.max(1)));
    let config = MiniClusterConfig {
        task_managers: args.task_managers.max(1),
        slots_per_task_manager: slots,
        ..MiniClusterConfig::default()
    };
    let result = runtime()?.block_on(async move {
        let cluster = MiniCluster::start(config).await?;
        let result = match cluster.submit_prepared(prepared).await {
            Ok(id) => cluster.wait(id).await,
            Err(e) => Err(e),
        };
        cluster.shutdown().await;
        result
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
