//! Weir's example jobs, registered in the `weir` binary.
//!
//! Generator-based jobs share the arguments `--events N` (absent: unbounded), `--keys K`,
//! `--seed S`, `--rate R` (events/s; absent: as fast as possible), `--out-of-order-ms D`,
//! `--event-time-rate E` (events per second of event time) and `--output DIR`. The generator
//! keeps its disorder within the watermark bound, so the same arguments give the same output
//! at any parallelism and any rate.
//!
//! Jobs writing with a [`FileSink`] refuse an `--output` directory that holds an earlier run's
//! part files, unless given `--overwrite` (those files are then replaced when the job runs).

#![warn(missing_docs, unreachable_pub)]

mod alerts;
mod csv;
mod fraud;
mod kafka;
mod orders;
mod throttle;
mod windows;

use std::time::Duration;

use weir_actors::prelude::*;

pub use alerts::BurstAlerts;
pub use fraud::{Rule, Transaction, check_rules, fraud_rules, parse_rule, parse_transaction};
pub use kafka::{KeyedText, kafka_window_agg, kafka_word_count};
pub use orders::{Order, Payment, interval_join, parse_order, parse_payment};
pub use throttle::ThrottledSink;
pub use windows::{Purchase, event_windows, parse_purchase};

/// Every example job, by name.
pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .job(
            "word-count",
            "counts words of a text file or directory (--input PATH --output DIR [--overwrite])",
            word_count,
        )
        .job("window-agg", "clicks per user in tumbling event-time windows (--window-ms, generator args)", window_agg)
        .job("sessions", "clicks per user session, closed after --gap-ms of inactivity (generator args)", sessions)
        .job(
            "alerts",
            "a hand-written keyed operator: alert when a user clicks more than --threshold times within --within-ms",
            alerts,
        )
        .job(
            "late-windows",
            "late data: clicks per user in 1 s windows with 1 s allowed lateness, and the clicks later than that \
             (--late-every N --late-ms L, generator args)",
            late_windows,
        )
        .job(
            "interval-join",
            "orders matched with payments within an event-time interval (--orders PATH --payments PATH --lower-ms L \
             --upper-ms U --out-of-order-ms D --output DIR [--on-bad-line skip|fail] [--bad-lines DIR])",
            interval_join,
        )
        .job(
            "event-windows",
            "per-user count, sum and max of amounts in event-time windows of a CSV file (--input PATH --window \
             tumbling|sliding|session [--size-ms S] [--slide-ms L] [--gap-ms G] --out-of-order-ms D --output DIR \
             [--on-bad-line skip|fail] [--bad-lines DIR])",
            event_windows,
        )
        .job(
            "fraud-rules",
            "transactions keyed by account checked against broadcast amount rules in event time (--transactions PATH \
             --rules PATH --out-of-order-ms D --output DIR [--unmatched DIR] [--on-bad-line skip|fail] [--bad-lines DIR])",
            fraud_rules,
        )
        .job(
            "slow-sink",
            "backpressure: clicks into a sink that takes at most --sink-rate records/s per subtask",
            slow_sink,
        )
        .job(
            "kafka-word-count",
            "running word counts of a Kafka topic's lines into another, exactly once (--brokers B --input-topic T \
             --output-topic U [--bounded true])",
            kafka_word_count,
        )
        .job(
            "kafka-window-agg",
            "clicks per user in tumbling event-time windows from a Kafka topic into another, exactly once (--brokers \
             B --input-topic T --output-topic U [--window-ms W] [--out-of-order-ms D] [--bounded true])",
            kafka_window_agg,
        )
}

/// The job's output: a [`FileSink`] into `--output DIR`, replacing an earlier run's part files
/// there with `--overwrite`.
fn file_sink<T>(args: &JobArgs) -> Result<FileSink<T>> {
    let sink = FileSink::new(args.get("output")?);
    Ok(if args.parse_or("overwrite", false)? { sink.overwrite() } else { sink })
}

fn positive_ms(args: &JobArgs, key: &str, default: u64) -> Result<Duration> {
    let ms: u64 = args.parse_or(key, default)?;
    if ms == 0 {
        return Err(WeirError::Argument(format!("--{key} must be at least 1")));
    }
    Ok(Duration::from_millis(ms))
}

/// `word-count`: final counts of words (split on Unicode whitespace, case kept), one
/// `word<TAB>count` line per word.
pub fn word_count(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let input = args.get("input")?.to_owned();
    let output = file_sink(args)?;
    env.source("lines", TextFile::new(input))
        .flat_map("split", |line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .key_by(|word: &String| word.clone())
        .window(Global::new())
        .aggregate("count", Count)
        .map("format", |w: Windowed<String, u64>| format!("{}\t{}", w.key, w.value))
        .sink("output", output);
    Ok(())
}

/// `window-agg`: clicks per user in tumbling event-time windows of `--window-ms` (default
/// 1000); `user<TAB>window_start_ms<TAB>count` lines.
pub fn window_agg(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig::from_args(args)?;
    let window = positive_ms(args, "window-ms", 1000)?;
    let output = file_sink(args)?;
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .window(Tumbling::event_time(window))
        .aggregate("count", Count)
        .map("format", |w: Windowed<u32, u64>| format!("{}\t{}\t{}", w.key, w.window.start, w.value))
        .sink("output", output);
    Ok(())
}

/// `late-windows`: clicks per user in tumbling 1 s event-time windows with 1 s of allowed
/// lateness (`user<TAB>window_start_ms<TAB>count` lines; a window fires again for each record
/// within the lateness), and every click later than that as a `LATE<TAB>user<TAB>time<TAB>index`
/// line from the late side output. With the generator's `--late-every` and `--late-ms` (more
/// than the lateness), which clicks are late does not depend on timing, so a failover must give
/// the same lines: the chaos suite's job for event time across restores.
pub fn late_windows(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig::from_args(args)?;
    let output = file_sink(args)?;
    let (counts, late) = env
        .source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .window(Tumbling::event_time(Duration::from_secs(1)))
        .allowed_lateness(Duration::from_secs(1))
        .aggregate_with_late("count", Count);
    let late = late.map("late", |c: Click| format!("LATE\t{}\t{}\t{}", c.user, c.time, c.index));
    counts
        .map("format", |w: Windowed<u32, u64>| format!("{}\t{}\t{}", w.key, w.window.start, w.value))
        .union(&[late])
        .sink("output", output);
    Ok(())
}

/// `sessions`: clicks per user session closed by `--gap-ms` (default 500) of inactivity;
/// `user<TAB>session_start_ms<TAB>session_end_ms<TAB>count` lines.
pub fn sessions(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig::from_args(args)?;
    let gap = positive_ms(args, "gap-ms", 500)?;
    let output = file_sink(args)?;
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .window(Session::event_time(gap))
        .aggregate("count", Count)
        .map("format", |w: Windowed<u32, u64>| format!("{}\t{}\t{}\t{}", w.key, w.window.start, w.window.end, w.value))
        .sink("output", output);
    Ok(())
}

/// `alerts`: one `user<TAB>burst_start_ms<TAB>alert_time_ms<TAB>count` line when a user has
/// more than `--threshold` (default 3) clicks within `--within-ms` (default 100) of the
/// burst's first click; see [`BurstAlerts`].
pub fn alerts(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig::from_args(args)?;
    let threshold: u64 = args.parse_or("threshold", 3)?;
    let within = positive_ms(args, "within-ms", 100)?.as_millis() as i64;
    let output = file_sink(args)?;
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .process("bursts", move || BurstAlerts::new(threshold, within))
        .sink("output", output);
    Ok(())
}

/// `slow-sink`: generated clicks, keyed by user, into a sink that takes at most
/// `--sink-rate` (default 1000) clicks per second per subtask and writes each as a
/// `user<TAB>index` line. The source runs only as fast as the sink lets it: backpressure,
/// across processes too.
pub fn slow_sink(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig::from_args(args)?;
    let rate: f64 = args.parse_or("sink-rate", 1000.0)?;
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(WeirError::Argument("--sink-rate must be a positive number of records per second".into()));
    }
    let output = args.get("output")?.to_owned();
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .process("by-user", || PassThrough)
        .sink("throttled", ThrottledSink::new(rate, output));
    Ok(())
}

/// Forwards each click; it only gives the keyed exchange an operator to end in.
struct PassThrough;

impl KeyedProcessFunction for PassThrough {
    type Key = u32;
    type In = Click;
    type Out = Click;
    fn process(&mut self, click: Click, ctx: &mut KeyedContext<'_, u32, Click>) -> Result<()> {
        ctx.emit(click);
        Ok(())
    }
}
