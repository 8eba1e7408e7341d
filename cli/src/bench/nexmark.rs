//! `weir bench nexmark`: the Nexmark query jobs on their generator, on a MiniCluster in a
//! child process per query and parallelism (so that each case's peak RSS is its own).
//!
//! Per case, a throughput run takes `--events` events as fast as they come and reports
//! events per second (first event to end of input), events per second of CPU time (the
//! process's user and system time over the run: what a core does), and the run's peak RSS.
//! A latency run then feeds the query at `--latency-fraction` of the rate it just reached,
//! with the generator in real time (each event emitted at its event time, which is the wall
//! clock), for `--latency-seconds`, into a [`LatencySink`]: the p50 and p99 of the time from
//! an event's making to its result at the sink. A windowed query's result carries
//! its window's end, so its latency counts from there and includes the 4 s watermark delay
//! the reference declares.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use weir_actors::JobRegistry;
use weir_actors::prelude::*;

use super::Setup;

#[derive(Debug, Args)]
pub(crate) struct NexmarkBenchArgs {
    /// Queries to run (q0,q5,…); all by default.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// Events of each throughput run.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Parallelisms to run each query at.
    #[arg(short = 'p', long, value_delimiter = ',', default_value = "1")]
    parallelism: Vec<usize>,
    /// Where keyed state lives: memory or rocksdb.
    #[arg(long, default_value = "memory")]
    state_backend: weir_actors::base::state::StateBackend,
    /// Take checkpoints this often.
    #[arg(long, value_parser = crate::parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// The latency run's rate, as a fraction of the throughput run's (0: no latency run).
    #[arg(long, default_value_t = 0.5)]
    latency_fraction: f64,
    /// How long each latency run feeds events.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the cases in this process (each case otherwise runs in a child process of its own,
    /// so that its peak RSS is its own).
    #[arg(long, hide = true)]
    in_process: bool,
}

impl NexmarkBenchArgs {
    /// The arguments of a child process that runs `query` at `parallelism` in-process.
    fn child(&self, query: &str, parallelism: usize) -> Vec<String> {
        let mut args: Vec<String> =
            ["bench", "nexmark", "--in-process", "--json", "--queries", query].map(str::to_owned).into();
        args.extend(["-p".to_owned(), parallelism.to_string(), "--events".to_owned(), self.events.to_string()]);
        let backend = match self.state_backend {
            weir_actors::base::state::StateBackend::Memory => "memory",
            weir_actors::base::state::StateBackend::RocksDb { .. } => "rocksdb",
        };
        args.extend(["--state-backend".to_owned(), backend.to_owned()]);
        if let Some(interval) = self.checkpoint_interval {
            args.extend(["--checkpoint-interval".to_owned(), format!("{}ms", interval.as_millis())]);
        }
        args.extend(["--latency-fraction".to_owned(), self.latency_fraction.to_string()]);
        args.extend(["--latency-seconds".to_owned(), self.latency_seconds.to_string()]);
        args
    }
}

/// One query at one parallelism.
#[derive(Debug, Serialize, serde::Deserialize)]
struct QueryResult {
    query: String,
    parallelism: usize,
    events: u64,
    seconds: f64,
    events_per_second: f64,
    /// Events per second of the process's CPU time.
    events_per_cpu_second: f64,
    peak_rss_bytes: Option<u64>,
    /// The latency run's rate (events/s), and its latencies (ms).
    latency_rate: Option<f64>,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    /// Results measured in the latency run, and those released before their time (a bounded
    /// input's end fires every window at once; not measured).
    latency_rows: u64,
    latency_early_rows: u64,
}

/// The process's user and system CPU time so far (`/proc/self/stat`, in the kernel's fixed
/// 100 ticks per second).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis; utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs one case in a child process of this binary (`--in-process`), whose peak RSS is the
/// case's own.
fn in_child(args: &NexmarkBenchArgs, query: &str, parallelism: usize) -> anyhow::Result<QueryResult> {
    let exe = std::env::current_exe().context("cannot find this program to run a case")?;
    let out = std::process::Command::new(&exe)
        .args(args.child(query, parallelism))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    anyhow::ensure!(out.status.success(), "{query} at p{parallelism} failed ({})", out.status);
    let mut results: Vec<QueryResult> = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{query} at p{parallelism}: unreadable results"))?;
    results.pop().with_context(|| format!("{query} at p{parallelism}: no result"))
}

pub(crate) fn run(registry: &JobRegistry, args: NexmarkBenchArgs) -> anyhow::Result<()> {
    let all: Vec<String> = registry.iter().filter_map(|j| j.name.strip_prefix("nexmark-").map(str::to_owned)).collect();
    let queries = if args.queries.is_empty() { all.clone() } else { args.queries.clone() };
    for q in &queries {
        anyhow::ensure!(all.contains(q), "unknown Nexmark query '{q}' (queries: {})", all.join(", "));
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.latency_fraction),
        "--latency-fraction must be 0 to 1, not {}",
        args.latency_fraction
    );
    anyhow::ensure!(args.parallelism.iter().all(|&p| p > 0), "--parallelism must be at least 1");
    let mut results = Vec::new();
    for q in &queries {
        for &parallelism in &args.parallelism {
            let r = if args.in_process {
                let runtime = super::super::runtime()?;
                let setup =
                    Setup { checkpoint_interval: args.checkpoint_interval, state_backend: args.state_backend.clone() };
                measure(&runtime, registry, &setup, &args, q, parallelism)?
            } else {
                in_child(&args, q, parallelism)?
            };
            if !args.json {
                eprintln!(
                    "{q:<4} p{parallelism}  {:>6.2} M ev/s  {:>6.2} M ev/s per core  peak {:>5.0} MiB  latency p50/p99 {} / {} ms",
                    r.events_per_second / 1e6,
                    r.events_per_cpu_second / 1e6,
                    mib(r.peak_rss_bytes),
                    ms(r.latency_p50_ms),
                    ms(r.latency_p99_ms),
                );
            }
            results.push(r);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "\n{:<6} {:>2} {:>11} {:>8} {:>12} {:>14} {:>9} {:>11} {:>9} {:>9}",
        "query", "p", "events", "seconds", "events/s", "events/s/core", "peak MiB", "lat. rate", "p50 ms", "p99 ms"
    );
    for r in &results {
        println!(
            "{:<6} {:>2} {:>11} {:>8.3} {:>12.0} {:>14.0} {:>9.0} {:>11} {:>9} {:>9}",
            r.query,
            r.parallelism,
            r.events,
            r.seconds,
            r.events_per_second,
            r.events_per_cpu_second,
            mib(r.peak_rss_bytes),
            r.latency_rate.map_or("-".to_owned(), |x| format!("{x:.0}")),
            ms(r.latency_p50_ms),
            ms(r.latency_p99_ms),
        );
    }
    Ok(())
}

fn mib(bytes: Option<u64>) -> f64 {
    bytes.map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.2}"))
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    registry: &JobRegistry,
    setup: &Setup,
    args: &NexmarkBenchArgs,
    query: &str,
    parallelism: usize,
) -> anyhow::Result<QueryResult> {
    let job = format!("nexmark-{query}");
    let cpu_before = cpu_time();
    let mut job_args = vec!["--events".to_owned(), args.events.to_string()];
    // q10's result is its partitioned file table, which it must write somewhere: a directory
    // of the benchmark's own, removed after. Its latency is not measured (its rows are not
    // records reaching a sink, and a partition is committed a minute after it closes).
    let files = (query == "q10")
        .then(|| std::env::temp_dir().join(format!("weir-bench-q10-{}-p{parallelism}", std::process::id())));
    if let Some(dir) = &files {
        let _ = std::fs::remove_dir_all(dir);
        job_args.extend(["--output".to_owned(), dir.display().to_string()]);
    }
    let details = setup.run(runtime, registry, &job, JobArgs::parse(&job_args)?, parallelism);
    if let Some(dir) = &files {
        let _ = std::fs::remove_dir_all(dir);
    }
    let details = details?;
    let cpu = cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let peak_rss_bytes = super::peak_rss();
    let first = details.first_record_after.context("the job handled no record")?;
    let end = details.input_ended_after.context("the job did not report its end of input")?;
    let seconds = end.saturating_sub(first).as_secs_f64().max(1e-3);
    let events = details.source_records();
    let events_per_second = events as f64 / seconds;
    let events_per_cpu_second = cpu.map_or(f64::NAN, |cpu| events as f64 / cpu.as_secs_f64().max(1e-3));
    let mut r = QueryResult {
        query: query.to_owned(),
        parallelism,
        events,
        seconds,
        events_per_second,
        events_per_cpu_second,
        peak_rss_bytes,
        latency_rate: None,
        latency_p50_ms: None,
        latency_p99_ms: None,
        latency_rows: 0,
        latency_early_rows: 0,
    };
    if args.latency_fraction > 0.0 && files.is_none() {
        let latency = setup.latency(
            runtime,
            registry,
            &job,
            parallelism,
            events_per_second,
            (args.latency_fraction, args.latency_seconds),
            |rate, events, base| {
                let mut a = vec!["--events".to_owned(), events.to_string(), "--event-rate".to_owned()];
                a.extend([format!("{rate}"), "--base-time-ms".to_owned(), base.to_string()]);
                a
            },
        )?;
        r.latency_rate = Some(latency.rate);
        r.latency_p50_ms = latency.quantile_ms(0.5);
        r.latency_p99_ms = latency.quantile_ms(0.99);
        r.latency_rows = latency.histogram.count();
        r.latency_early_rows = latency.histogram.early;
    }
    Ok(r)
}
