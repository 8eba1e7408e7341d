//! `weir bench`: throughput of stateless, keyed and windowed pipelines fed by the generator
//! and ending in a discarding sink; on a MiniCluster, and with `--cluster` also across two
//! TaskManager processes (a hash exchange over QUIC) beside the in-process figure.
//!
//! The pipelines are registered jobs (`bench-stateless`, `bench-keyed`, `bench-window`) that
//! every `weir` binary carries, so remote TaskManagers can run them. Each case is timed from
//! its first record to the end of its input (startup is reported apart). Run it from a
//! release build; the figures are this machine's, not a promise.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use weir_actors::prelude::*;
use weir_actors::{JobDetails, JobRegistry};

mod nexmark;

use nexmark::NexmarkBenchArgs;

/// Adds the benchmark pipelines to a registry.
pub(crate) fn register(registry: JobRegistry) -> JobRegistry {
    registry
        .job("bench-stateless", "benchmark: generator -> filter -> map -> discard (--events, --keys)", bench_stateless)
        .job("bench-keyed", "benchmark: generator -> key_by -> reduce -> discard (--events, --keys)", bench_keyed)
        .job(
            "bench-window",
            "benchmark: generator -> key_by -> 1 s tumbling count -> discard (--events, --keys)",
            bench_window,
        )
}

/// The generator of every case; a latency run gives `--real-time`, `--base-time-ms`,
/// `--event-time-rate` (then the wall-clock rate) and `--out-of-order-ms 0`.
fn generator(args: &JobArgs) -> Result<Generator> {
    let config = GeneratorConfig {
        events: Some(args.parse_or("events", 10_000_000)?),
        keys: args.parse_or("keys", 10_000)?,
        seed: 7,
        rate: None,
        out_of_order_ms: args.parse_or("out-of-order-ms", 100)?,
        // A million events per event-time second: a 1 s window holds ~100 events per key.
        event_time_rate: args.parse_or("event-time-rate", 1_000_000)?,
        base_time: args.parse_or("base-time-ms", 0)?,
        real_time: args.parse_or("real-time", false)?,
        ..GeneratorConfig::default()
    };
    EventSequence::check(&config)?;
    Ok(Generator::new(config))
}

/// Every case's sink: it drops the records, or with `--latency-out DIR` measures their latency.
fn discard<T: Data>(stream: &DataStream<T>, args: &JobArgs) {
    match args.get_opt("latency-out") {
        Some(dir) => stream.sink("discard", LatencySink::new(dir)),
        None => stream.sink("discard", DiscardSink::new().0),
    };
}

fn bench_stateless(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let out = env
        .source("generator", generator(args)?)
        .filter("filter", |c: &Click| !c.user.is_multiple_of(4))
        .map("map", |c: Click| (c.user, c.time));
    discard(&out, args);
    Ok(())
}

fn bench_keyed(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let out = env
        .source("generator", generator(args)?)
        .map("pair", |c: Click| (c.user, 1u64))
        .key_by(|r: &(u32, u64)| r.0)
        .reduce("sum", |a, b| (a.0, a.1 + b.1));
    discard(&out, args);
    Ok(())
}

fn bench_window(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let out = env
        .source("generator", generator(args)?)
        .key_by(|c: &Click| c.user)
        .window(Tumbling::event_time(Duration::from_secs(1)))
        .aggregate("count", Count);
    discard(&out, args);
    Ok(())
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    suite: Option<Suite>,
    /// Events per case.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u32,
    /// Parallelisms to run each case at (in-process).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    parallelism: Vec<usize>,
    /// Cases to run: stateless, keyed, window.
    #[arg(long, value_delimiter = ',', default_value = "stateless,keyed,window")]
    cases: Vec<String>,
    /// Also run the keyed and window cases across two TaskManager processes (parallelism 2,
    /// one slot each, so half the records cross processes), on a temporary local cluster.
    #[arg(long)]
    cluster: bool,
    /// Take checkpoints this often while benchmarking (in-process cases).
    #[arg(long, value_parser = super::parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Where keyed state lives in the in-process cases: memory or rocksdb.
    #[arg(long, default_value = "memory")]
    state_backend: weir_actors::base::state::StateBackend,
    /// After each in-process case, a latency run at this fraction of its rate (0: none): the
    /// generator in real time into a sink measuring each record's time from its event's.
    #[arg(long, default_value_t = 0.5)]
    latency_fraction: f64,
    /// How long each latency run feeds events.
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// How a benchmark runs its jobs: in-process, with checkpoints or not, on which state backend.
#[derive(Debug, Clone)]
struct Setup {
    checkpoint_interval: Option<Duration>,
    state_backend: weir_actors::base::state::StateBackend,
}

impl Setup {
    /// Runs registered job `name` to its end on a MiniCluster of `parallelism` slots.
    fn run(
        &self,
        runtime: &tokio::runtime::Runtime,
        registry: &JobRegistry,
        name: &str,
        args: JobArgs,
        parallelism: usize,
    ) -> anyhow::Result<JobDetails> {
        let checkpoint_dir = std::env::temp_dir().join(format!("weir-bench-checkpoints-{}", std::process::id()));
        let config = match self.checkpoint_interval {
            Some(interval) => weir_actors::api::job::JobConfig {
                checkpoints: Some(weir_actors::runtime::checkpoint::CheckpointConfig::every(interval, &checkpoint_dir)),
                restart: weir_actors::api::job::RestartStrategy::None,
                savepoint: None,
                state_backend: self.state_backend.clone(),
            },
            None => {
                weir_actors::api::job::JobConfig { state_backend: self.state_backend.clone(), ..Default::default() }
            }
        };
        let job = JobSubmission::from_registry(registry, name, args, parallelism)?.with_config(config);
        let details = runtime.block_on(async {
            let config = MiniClusterConfig { slots_per_task_manager: parallelism, ..MiniClusterConfig::default() };
            let cluster = MiniCluster::start(config).await?;
            let result = cluster.execute(&job).await;
            cluster.shutdown().await;
            result?.into_result()
        });
        let _ = std::fs::remove_dir_all(&checkpoint_dir);
        Ok(details?.details)
    }
}

/// A benchmark suite beside the pipeline cases.
#[derive(Debug, clap::Subcommand)]
enum Suite {
    /// The Nexmark queries on their generator: events/s, events/s per core, peak RSS and
    /// end-to-end latency at a fraction of the peak rate.
    Nexmark(NexmarkBenchArgs),
}

/// What a latency run measured.
#[derive(Debug)]
struct Latency {
    /// The rate it was fed at (events/s).
    rate: f64,
    histogram: LatencyHistogram,
}

impl Latency {
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.histogram.quantile(q).map(|us| us as f64 / 1000.0)
    }
}

impl Setup {
    /// Feeds registered job `name` at `fraction` of `peak` events/s for `seconds`, its
    /// generator in real time from a second from now (time for the job to start), into a
    /// [`LatencySink`] (the job's `--latency-out`). `args(rate, events, base_time_ms)` are the
    /// job's arguments for that rate, count and start.
    #[allow(clippy::too_many_arguments)]
    fn latency(
        &self,
        runtime: &tokio::runtime::Runtime,
        registry: &JobRegistry,
        name: &str,
        parallelism: usize,
        peak: f64,
        (fraction, seconds): (f64, u64),
        args: impl FnOnce(f64, u64, i64) -> Vec<String>,
    ) -> anyhow::Result<Latency> {
        let rate = (peak * fraction).max(1.0);
        let events = ((rate * seconds as f64) as u64).max(1);
        let dir = std::env::temp_dir().join(format!("weir-bench-latency-{}-{name}-p{parallelism}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = weir_actors::base::time::wall_clock_ms().saturating_add(1000);
        let mut job_args = args(rate, events, base);
        job_args.extend(["--real-time".to_owned(), "--latency-out".to_owned(), dir.display().to_string()]);
        self.run(runtime, registry, name, JobArgs::parse(&job_args)?, parallelism)?;
        let histogram = LatencyHistogram::read_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Latency { rate, histogram: histogram? })
    }
}

#[derive(Debug, Serialize)]
struct CaseResult {
    case: String,
    mode: &'static str,
    parallelism: usize,
    events: u64,
    seconds: f64,
    records_per_second: f64,
    startup_ms: f64,
    /// The latency run's rate (records/s) and latencies (ms).
    latency_rate: Option<f64>,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    cases: Vec<CaseResult>,
    peak_rss_bytes: Option<u64>,
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn result(case: &str, mode: &'static str, parallelism: usize, d: &JobDetails) -> anyhow::Result<CaseResult> {
    let first = d.first_record_after.context("the job handled no record")?;
    let end = d.input_ended_after.context("the job did not report its end of input")?;
    let seconds = (end.saturating_sub(first)).as_secs_f64().max(1e-3);
    let events = d.source_records();
    Ok(CaseResult {
        case: case.to_owned(),
        mode,
        parallelism,
        events,
        seconds,
        records_per_second: events as f64 / seconds,
        startup_ms: first.as_secs_f64() * 1000.0,
        latency_rate: None,
        latency_p50_ms: None,
        latency_p99_ms: None,
    })
}

fn job_args(args: &BenchArgs) -> anyhow::Result<JobArgs> {
    Ok(JobArgs::parse(&["--events".to_owned(), args.events.to_string(), "--keys".to_owned(), args.keys.to_string()])?)
}

fn print_progress(json: bool, r: &CaseResult) {
    if !json {
        eprintln!(
            "{:<10} {:<8} p{}  {:>7.2} M rec/s  ({} events in {:.3} s, startup {:.1} ms){}",
            r.case,
            r.mode,
            r.parallelism,
            r.records_per_second / 1e6,
            r.events,
            r.seconds,
            r.startup_ms,
            match (r.latency_rate, r.latency_p50_ms, r.latency_p99_ms) {
                (Some(rate), Some(p50), Some(p99)) =>
                    format!("; at {:.2} M rec/s latency p50 {p50:.2} ms, p99 {p99:.2} ms", rate / 1e6),
                _ => String::new(),
            }
        );
    }
}

pub(crate) fn run(registry: &JobRegistry, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(Suite::Nexmark(nexmark)) = args.suite {
        return nexmark::run(registry, nexmark);
    }
    let known = ["stateless", "keyed", "window"];
    for case in &args.cases {
        anyhow::ensure!(known.contains(&case.as_str()), "unknown bench case '{case}' (cases: {})", known.join(", "));
    }
    let runtime = super::runtime()?;
    let mut results = Vec::new();
    let setup = Setup { checkpoint_interval: args.checkpoint_interval, state_backend: args.state_backend.clone() };
    for case in &args.cases {
        for &parallelism in &args.parallelism {
            let details = setup.run(&runtime, registry, &format!("bench-{case}"), job_args(&args)?, parallelism)?;
            let mut r = result(case, "local", parallelism, &details)?;
            if args.latency_fraction > 0.0 {
                let name = format!("bench-{case}");
                let peak = r.records_per_second;
                let lat = setup.latency(
                    &runtime,
                    registry,
                    &name,
                    parallelism,
                    peak,
                    (args.latency_fraction, args.latency_seconds),
                    |rate, events, base| {
                        let mut a = vec!["--events".to_owned(), events.to_string(), "--keys".to_owned()];
                        a.extend([args.keys.to_string(), "--event-time-rate".to_owned(), (rate as u64).to_string()]);
                        // In order: disorder would hold each event back behind the one before.
                        a.extend([
                            "--base-time-ms".to_owned(),
                            base.to_string(),
                            "--out-of-order-ms".to_owned(),
                            "0".into(),
                        ]);
                        a
                    },
                )?;
                (r.latency_rate, r.latency_p50_ms, r.latency_p99_ms) =
                    (Some(lat.rate), lat.quantile_ms(0.5), lat.quantile_ms(0.99));
            }
            print_progress(args.json, &r);
            results.push(r);
        }
    }
    if args.cluster {
        results.extend(crate::cluster::bench_across_processes(registry, &args.cases, &job_args(&args)?, |r| {
            let r = result(&r.0, "cluster", 2, &r.1)?;
            print_progress(args.json, &r);
            Ok(r)
        })?);
    }
    let report = Report { cases: results, peak_rss_bytes: peak_rss() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "\n{:<10} {:<8} {:>11} {:>12} {:>10} {:>14} {:>11} {:>12} {:>8} {:>8}",
            "case",
            "mode",
            "parallelism",
            "events",
            "seconds",
            "records/s",
            "startup ms",
            "lat. rate",
            "p50 ms",
            "p99 ms"
        );
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        for r in &report.cases {
            println!(
                "{:<10} {:<8} {:>11} {:>12} {:>10.3} {:>14.0} {:>11.1} {:>12} {:>8} {:>8}",
                r.case,
                r.mode,
                r.parallelism,
                r.events,
                r.seconds,
                r.records_per_second,
                r.startup_ms,
                opt(r.latency_rate, 0),
                opt(r.latency_p50_ms, 2),
                opt(r.latency_p99_ms, 2)
            );
        }
        if let Some(rss) = report.peak_rss_bytes {
            println!("peak RSS of this process (all in-process cases): {:.0} MiB", rss as f64 / (1024.0 * 1024.0));
        }
    }
    Ok(())
}
