//! `weir bench nexmark`: the Nexmark query jobs on their generator, in-process.
//!
//! Per query and parallelism, a throughput run takes `--events` events as fast as they come
//! and reports events per second (first event to end of input), events per second of CPU
//! time (the process's user and system time over the run: what a core does), and the run's
//! peak RSS. A latency run then feeds the query at `--latency-fraction` of the rate it just
//! reached, with the generator in real time (each event emitted at its event time, which is
//! the wall clock), for `--latency-seconds`, into a [`LatencySink`]: the p50 and p99 of the
//! time from an event's making to its result at the sink. A windowed query's result carries
//! its window's end, so its latency counts from there and includes the 4 s watermark delay
//! the reference declares.

use std::path::PathBuf;
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
}

/// One query at one parallelism.
#[derive(Debug, Serialize)]
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

/// Starts measuring the peak RSS over again (`/proc/self/clear_refs`: 5 resets it); false
/// if the kernel refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
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
    let runtime = super::super::runtime()?;
    let setup = Setup { checkpoint_interval: args.checkpoint_interval, state_backend: args.state_backend.clone() };
    let resets = reset_peak_rss();
    if !resets && !args.json {
        eprintln!("the kernel does not reset the peak RSS: each figure is the peak since the first run");
    }
    let mut results = Vec::new();
    for q in &queries {
        for &parallelism in &args.parallelism {
            let r = measure(&runtime, registry, &setup, &args, q, parallelism)?;
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
    reset_peak_rss();
    let cpu_before = cpu_time();
    let job_args = JobArgs::parse(&["--events".to_owned(), args.events.to_string()])?;
    let details = setup.run(runtime, registry, &job, job_args, parallelism)?;
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
    if args.latency_fraction > 0.0 {
        let rate = (events_per_second * args.latency_fraction).max(1.0);
        let events = ((rate * args.latency_seconds as f64) as u64).max(1);
        let dir = latency_dir(query, parallelism);
        let _ = std::fs::remove_dir_all(&dir);
        // The first event is due a second from now, time for the job to start.
        let base = now_ms() + 1000;
        let job_args = JobArgs::parse(&[
            "--events".to_owned(),
            events.to_string(),
            "--event-rate".to_owned(),
            format!("{rate}"),
            "--base-time-ms".to_owned(),
            base.to_string(),
            "--real-time".to_owned(),
            "--latency-out".to_owned(),
            dir.display().to_string(),
        ])?;
        setup.run(runtime, registry, &job, job_args, parallelism)?;
        let histogram = LatencyHistogram::read_dir(&dir)?;
        let _ = std::fs::remove_dir_all(&dir);
        let quantile = |q| histogram.quantile(q).map(|us| us as f64 / 1000.0);
        r.latency_rate = Some(rate);
        r.latency_p50_ms = quantile(0.5);
        r.latency_p99_ms = quantile(0.99);
        r.latency_rows = histogram.count();
        r.latency_early_rows = histogram.early;
    }
    Ok(r)
}

fn latency_dir(query: &str, parallelism: usize) -> PathBuf {
    std::env::temp_dir().join(format!("weir-bench-latency-{}-{query}-p{parallelism}", std::process::id()))
}
