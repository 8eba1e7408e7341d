//! Nexmark on Weir: the benchmark's queries as built-in jobs `nexmark-qN`, written on the
//! public DataStream API, and `weir nexmark generate`, which writes the generator's events as
//! JSON lines for any other engine to read.
//!
//! Every query job takes the generator's arguments (`--events N`, `--seed S`, `--event-rate
//! E`, `--rate R`, `--base-time-ms T`, `--watermark-delay-ms D`, the proportions; see
//! `NexmarkConfig::from_args`), or `--input DIR` to read the events of `weir nexmark generate`
//! instead, and `--output DIR` for its result rows: one line per row, the reference SELECT's
//! columns in order, tab-separated, timestamps as epoch milliseconds (without `--output` the
//! rows are counted and dropped, as the reference's blackhole sink does).
//!
//! The reference's SQL (`nexmark/nexmark`, `nexmark-flink/src/main/resources/queries`) is the
//! specification of each query.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use weir_actors::api::connectors::nexmark::{Bid, Event, NexmarkConfig};
use weir_actors::prelude::*;

/// The query jobs.
pub(crate) fn register(registry: JobRegistry) -> JobRegistry {
    registry
        .job("nexmark-q0", "Nexmark q0, pass-through: every bid (generator args or --input DIR; --output DIR)", q0)
        .job("nexmark-q1", "Nexmark q1, currency conversion: bids with prices in euros (0.908 x dollars)", q1)
        .job("nexmark-q2", "Nexmark q2, selection: the bids on every 123rd auction", q2)
}

/// Where a query's events come from: the generator (one source, split by kind), or the files
/// of `weir nexmark generate` under `--input DIR`.
struct Sources<'a> {
    env: &'a mut StreamEnv,
    args: &'a JobArgs,
    events: Option<DataStream<Event>>,
}

impl<'a> Sources<'a> {
    fn new(env: &'a mut StreamEnv, args: &'a JobArgs) -> Self {
        Sources { env, args, events: None }
    }

    /// The bids.
    fn bids(&mut self) -> Result<DataStream<Bid>> {
        self.kind("bid", |e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
    }

    /// One kind of event: a filter of the generated events, or the lines of `KIND.jsonl`
    /// with event time from their `dateTime` and the generator's watermark delay.
    fn kind<T: Data + serde::de::DeserializeOwned + HasTime>(
        &mut self,
        kind: &str,
        pick: fn(Event) -> Option<T>,
    ) -> Result<DataStream<T>> {
        if let Some(dir) = self.args.get_opt("input") {
            let delay = std::time::Duration::from_millis(self.args.parse_or("watermark-delay-ms", 4000u64)?);
            let path = Path::new(dir).join(format!("{kind}.jsonl"));
            let lines =
                TextFile::new(path).parse(|line: &str| serde_json::from_str::<T>(line).map_err(|e| e.to_string()));
            let events = self.env.source(&format!("{kind}-file"), lines).process(
                &format!("{kind}-records"),
                |parsed: std::result::Result<T, BadLine>, ctx: &mut Context<'_, T>| {
                    ctx.emit(parsed.map_err(|bad| WeirError::user(format!("bad Nexmark input line: {bad}")))?);
                    Ok(())
                },
            );
            return Ok(events.assign_timestamps_and_watermarks(
                WatermarkStrategy::bounded_out_of_orderness(delay).with_timestamp_assigner(|e: &T, _| e.time()),
            ));
        }
        if self.events.is_none() {
            let config = NexmarkConfig::from_args(self.args)?;
            self.events = Some(self.env.source("nexmark", Generator::new(config)));
        }
        let events = self.events.as_ref().expect("made above");
        Ok(events.flat_map(&format!("{kind}s"), move |e: Event| pick(e)))
    }
}

/// An event's time.
trait HasTime {
    fn time(&self) -> Timestamp;
}

impl HasTime for Bid {
    fn time(&self) -> Timestamp {
        self.date_time
    }
}

/// Writes each row to `--output DIR` as a line, or drops it (counted) without one.
fn output(rows: &DataStream<String>, args: &JobArgs) -> Result<()> {
    match args.get_opt("output") {
        Some(dir) => {
            let sink = FileSink::new(dir);
            let sink = if args.parse_or("overwrite", false)? { sink.overwrite() } else { sink };
            rows.sink("output", sink);
        }
        None => {
            rows.sink("output", DiscardSink::new().0);
        }
    }
    Ok(())
}

/// `SELECT auction, bidder, price, dateTime, extra FROM bid`.
fn q0(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows =
        bids.map("q0", |b: Bid| format!("{}\t{}\t{}\t{}\t{}", b.auction, b.bidder, b.price, b.date_time, b.extra));
    output(&rows, args)
}

/// `SELECT auction, bidder, 0.908 * price as price, dateTime, extra FROM bid`: the price a
/// `DECIMAL(23, 3)`, computed exactly (thousandths).
fn q1(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.map("q1", |b: Bid| {
        let euros = i128::from(b.price) * 908;
        let (units, thousandths) = (euros / 1000, (euros % 1000).abs());
        format!("{}\t{}\t{units}.{thousandths:03}\t{}\t{}", b.auction, b.bidder, b.date_time, b.extra)
    });
    output(&rows, args)
}

/// `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
fn q2(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows =
        bids.filter("q2", |b: &Bid| b.auction % 123 == 0).map("q2-row", |b: Bid| format!("{}\t{}", b.auction, b.price));
    output(&rows, args)
}

/// `weir nexmark …`.
#[derive(Debug, Subcommand)]
pub(crate) enum NexmarkCommand {
    /// Write the generator's events as JSON lines: DIR/person.jsonl, auction.jsonl, bid.jsonl
    /// (the reference schema's field names; dateTime and expires in epoch milliseconds).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// How many events (people, auctions and bids together).
    #[arg(long)]
    events: u64,
    /// Seed of every drawn value.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 10_000.0)]
    event_rate: f64,
    /// Event time of the first event (ms since the epoch; default 2024-01-01T00:00:00Z).
    #[arg(long, default_value_t = 1_704_067_200_000)]
    base_time_ms: i64,
    /// The directory to write into.
    #[arg(long)]
    output: PathBuf,
    /// Replace files of an earlier run.
    #[arg(long)]
    overwrite: bool,
}

pub(crate) fn command(command: NexmarkCommand) -> anyhow::Result<()> {
    match command {
        NexmarkCommand::Generate(args) => generate(&args),
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut config = NexmarkConfig::default();
    config.events = Some(args.events);
    config.seed = args.seed;
    config.event_rate = args.event_rate;
    config.base_time = args.base_time_ms;
    config.check()?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create the output directory {}", args.output.display()))?;
    let open = |name: &str| -> anyhow::Result<BufWriter<std::fs::File>> {
        let path = args.output.join(name);
        if path.exists() && !args.overwrite {
            anyhow::bail!("{} exists (from an earlier run?); give --overwrite to replace it", path.display());
        }
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    let mut files = [open("person.jsonl")?, open("auction.jsonl")?, open("bid.jsonl")?];
    let mut counts = [0u64; 3];
    for index in 0..args.events {
        let (event, _) = config.generate(index);
        let (kind, written) = match &event {
            Event::Person(p) => (0, serde_json::to_writer(&mut files[0], p)),
            Event::Auction(a) => (1, serde_json::to_writer(&mut files[1], a)),
            Event::Bid(b) => (2, serde_json::to_writer(&mut files[2], b)),
        };
        written?;
        files[kind].write_all(b"\n")?;
        counts[kind] += 1;
    }
    for (file, name) in files.iter_mut().zip(["person", "auction", "bid"]) {
        file.flush().with_context(|| format!("cannot write {name}.jsonl"))?;
    }
    println!("{} people, {} auctions, {} bids in {}", counts[0], counts[1], counts[2], args.output.display());
    Ok(())
}
