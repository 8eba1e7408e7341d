//! `weir bench`: throughput of stateless, keyed and windowed pipelines on a MiniCluster, fed
//! by the generator and ending in a discarding sink.
//!
//! Each case is timed from its first record to the end of its input (startup is reported
//! apart). Run it from a release build; the figures are this machine's, not a promise.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use weir_actors::prelude::*;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Events per case.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u32,
    /// Parallelisms to run each case at.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    parallelism: Vec<usize>,
    /// Cases to run: stateless, keyed, window.
    #[arg(long, value_delimiter = ',', default_value = "stateless,keyed,window")]
    cases: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    case: String,
    parallelism: usize,
    events: u64,
    records_out: u64,
    seconds: f64,
    records_per_second: f64,
    startup_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cases: Vec<CaseResult>,
    peak_rss_bytes: Option<u64>,
}

fn generator(args: &BenchArgs) -> Generator {
    Generator::new(GeneratorConfig {
        events: Some(args.events),
        keys: args.keys,
        seed: 7,
        rate: None,
        out_of_order_ms: 100,
        // A million events per event-time second: a 1 s window holds ~100 events per key.
        event_time_rate: 1_000_000,
    })
}

fn job(
    case: &str,
    args: &BenchArgs,
    parallelism: usize,
) -> anyhow::Result<(JobSubmission, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = count.clone();
    let source = generator(args);
    let case = case.to_owned();
    let known = ["stateless", "keyed", "window"];
    anyhow::ensure!(known.contains(&case.as_str()), "unknown bench case '{case}' (cases: {})", known.join(", "));
    let job = JobSubmission::new(&format!("bench-{case}"), parallelism, move |env, _| {
        let clicks = env.source("generator", source.clone());
        match case.as_str() {
            "stateless" => {
                clicks
                    .filter("filter", |c: &Click| !c.user.is_multiple_of(4))
                    .map("map", |c: Click| (c.user, c.time))
                    .sink("discard", DiscardSink::counting_into(counter.clone()));
            }
            "keyed" => {
                clicks
                    .map("pair", |c: Click| (c.user, 1u64))
                    .key_by(|r: &(u32, u64)| r.0)
                    .reduce("sum", |a, b| (a.0, a.1 + b.1))
                    .sink("discard", DiscardSink::counting_into(counter.clone()));
            }
            _ => {
                clicks
                    .key_by(|c: &Click| c.user)
                    .window(Tumbling::event_time(Duration::from_secs(1)))
                    .aggregate("count", Count)
                    .sink("discard", DiscardSink::counting_into(counter.clone()));
            }
        }
        Ok(())
    });
    Ok((job, count))
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    let mut results = Vec::new();
    for case in &args.cases {
        for &parallelism in &args.parallelism {
            let (job, count) = job(case, &args, parallelism)?;
            let details = runtime.block_on(async {
                let config = MiniClusterConfig { slots_per_task_manager: parallelism, ..MiniClusterConfig::default() };
                let cluster = MiniCluster::start(config).await?;
                let result = cluster.execute(&job).await;
                cluster.shutdown().await;
                result?.into_result()
            })?;
            let d = details.details;
            let first = d.first_record_after.context("the job handled no record")?;
            let end = d.input_ended_after.context("the job did not report its end of input")?;
            let seconds = (end - first).as_secs_f64();
            let events = d.source_records();
            let result = CaseResult {
                case: case.clone(),
                parallelism,
                events,
                records_out: count.load(std::sync::atomic::Ordering::Relaxed),
                seconds,
                records_per_second: events as f64 / seconds,
                startup_ms: first.as_secs_f64() * 1000.0,
            };
            if !args.json {
                eprintln!(
                    "{:<10} p{}  {:>6.2} M rec/s  ({} events in {:.3} s, startup {:.1} ms)",
                    result.case,
                    result.parallelism,
                    result.records_per_second / 1e6,
                    result.events,
                    result.seconds,
                    result.startup_ms
                );
            }
            results.push(result);
        }
    }
    let report = Report { cases: results, peak_rss_bytes: peak_rss() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "\n{:<10} {:>11} {:>12} {:>10} {:>14} {:>11}",
            "case", "parallelism", "events", "seconds", "records/s", "startup ms"
        );
        for r in &report.cases {
            println!(
                "{:<10} {:>11} {:>12} {:>10.3} {:>14.0} {:>11.1}",
                r.case, r.parallelism, r.events, r.seconds, r.records_per_second, r.startup_ms
            );
        }
        if let Some(rss) = report.peak_rss_bytes {
            println!("peak RSS (whole process, all cases): {:.0} MiB", rss as f64 / (1024.0 * 1024.0));
        }
    }
    Ok(())
}
