//! Nexmark on Weir: the benchmark's queries as built-in jobs `nexmark-qN`, written on the
//! public DataStream API, and `weir nexmark generate`, which writes the generator's events as
//! JSON lines for any other engine to read.
//!
//! Every query job takes the generator's arguments (`--events N`, `--seed S`, `--event-rate
//! E`, `--rate R`, `--base-time-ms T`, `--watermark-delay-ms D`, the proportions; see
//! `NexmarkConfig::from_args`), or `--input DIR` to read the events of `weir nexmark generate`
//! instead, and `--output DIR` for its result rows: one line per row, the reference SELECT's
//! columns in order, tab-separated, timestamps as epoch milliseconds (without `--output` the
//! rows are counted and dropped, as the reference's blackhole sink does). q10 is the exception:
//! its reference writes a filesystem table partitioned by day and minute, so it requires
//! `--output DIR` and writes `dt=…/hm=…/` partition directories with a `_SUCCESS` file each
//! once committed (see [`q10`]).
//!
//! The reference's SQL (`nexmark/nexmark`, `nexmark-flink/src/main/resources/queries`) is the
//! specification of each query.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use weir_actors::api::connectors::nexmark::{Auction, Bid, Event, NexmarkConfig, Person};
use weir_actors::api::connectors::{PartitionCommitter, PartitionTime, partition_path};
use weir_actors::prelude::*;

mod updating;

/// The queries of q0–q22 with no job, and why (`weir jobs` lists them).
pub(crate) const NOT_PROVIDED: &[(&str, &str)] = &[(
    "nexmark-q6",
    "not provided: the reference's q6 is not valid SQL (it filters on ROW_NUMBER in the SELECT \
         that defines it) and Flink cannot run it either (its OVER window cannot take the winning \
         bids' retractions), so there is no semantics to be faithful to",
)];

/// The query jobs.
pub(crate) fn register(registry: JobRegistry) -> JobRegistry {
    registry
        .job("nexmark-q0", "Nexmark q0, pass-through: every bid (generator args or --input DIR; --output DIR)", q0)
        .job("nexmark-q1", "Nexmark q1, currency conversion: bids with prices in euros (0.908 x dollars)", q1)
        .job("nexmark-q2", "Nexmark q2, selection: the bids on every 123rd auction", q2)
        .job(
            "nexmark-q3",
            "Nexmark q3, local item suggestion: sellers in OR, ID, CA of category-10 auctions (join)",
            q3,
        )
        .job(
            "nexmark-q4",
            "Nexmark q4, average price per category: of each auction's winning bid (updating)",
            updating::q4,
        )
        .job("nexmark-q5", "Nexmark q5, hot items: the auctions with the most bids in 10 s windows every 2 s", q5)
        .job("nexmark-q7", "Nexmark q7, highest bid: the bids at each 10 s window's highest price", q7)
        .job("nexmark-q8", "Nexmark q8, new users: people who entered and opened an auction in a 10 s window", q8)
        .job(
            "nexmark-q9",
            "Nexmark q9, winning bids: each auction with its highest bid in its time (updating)",
            updating::q9,
        )
        .job(
            "nexmark-q10",
            "Nexmark q10, log to file system: bids into files partitioned by day and minute, each committed with a \
             _SUCCESS file (--output DIR)",
            q10,
        )
        .job("nexmark-q11", "Nexmark q11, user sessions: bids per bidder session (10 s gap)", q11)
        .job("nexmark-q12", "Nexmark q12, processing-time windows: bids per bidder in 10 s of the wall clock", q12)
        .job(
            "nexmark-q13",
            "Nexmark q13, bounded side input: bids enriched from a key-value table (--side-input PATH)",
            q13,
        )
        .job("nexmark-q14", "Nexmark q14, calculation: bids in a price range with euros, time of day and a UDF", q14)
        .job(
            "nexmark-q15",
            "Nexmark q15, bidding statistics per day: bids, bidders, auctions per price rank (updating)",
            updating::q15,
        )
        .job(
            "nexmark-q16",
            "Nexmark q16, channel statistics: q15's per channel and day, with its latest minute (updating)",
            updating::q16,
        )
        .job(
            "nexmark-q17",
            "Nexmark q17, auction statistics per day: bids per rank, min, max, avg, sum of price (updating)",
            updating::q17,
        )
        .job("nexmark-q18", "Nexmark q18, last bid: each bidder's latest bid on each auction (updating)", updating::q18)
        .job(
            "nexmark-q19",
            "Nexmark q19, auction top-10 price: each auction's ten highest bids, ranked (updating)",
            updating::q19,
        )
        .job("nexmark-q20", "Nexmark q20, expand bid with auction: bids joined with their category-10 auctions", q20)
        .job("nexmark-q21", "Nexmark q21, add channel id: the channel's id, or the URL's channel_id", q21)
        .job("nexmark-q22", "Nexmark q22, URL directories: the first three directories of each bid's URL", q22)
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

    /// The people.
    fn people(&mut self) -> Result<DataStream<Person>> {
        self.kind("person", |e| match e {
            Event::Person(p) => Some(p),
            _ => None,
        })
    }

    /// The auctions.
    fn auctions(&mut self) -> Result<DataStream<Auction>> {
        self.kind("auction", |e| match e {
            Event::Auction(a) => Some(a),
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

impl HasTime for Auction {
    fn time(&self) -> Timestamp {
        self.date_time
    }
}

impl HasTime for Person {
    fn time(&self) -> Timestamp {
        self.date_time
    }
}

/// Writes each row to `--output DIR` as a line, or drops it (counted) without one; with
/// `--latency-out DIR` it measures each row's latency from its event's time instead (see
/// [`LatencySink`]; `weir bench nexmark` runs the generator `--real-time` for it).
fn output(rows: &DataStream<String>, args: &JobArgs) -> Result<()> {
    match (args.get_opt("output"), args.get_opt("latency-out")) {
        (Some(_), Some(_)) => {
            return Err(WeirError::Argument("--output and --latency-out exclude each other".into()));
        }
        (None, Some(dir)) => {
            rows.sink("output", LatencySink::new(dir));
            return Ok(());
        }
        _ => {}
    }
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

/// A row: its fields tab-separated, in one allocation sized for a bid's (`format!` grows its
/// string as it goes, and the reallocations cost more than the formatting).
fn tsv(fields: &[&dyn std::fmt::Display]) -> String {
    tsv_in(192, fields)
}

/// As [`tsv`], for a row of about `capacity` bytes.
fn tsv_in(capacity: usize, fields: &[&dyn std::fmt::Display]) -> String {
    use std::fmt::Write as _;
    let mut row = String::with_capacity(capacity);
    if let Some((first, rest)) = fields.split_first() {
        let _ = write!(row, "{first}");
        tsv_push(&mut row, rest);
    }
    row
}

/// Appends `fields` to a row, each after a tab.
fn tsv_push(row: &mut String, fields: &[&dyn std::fmt::Display]) {
    use std::fmt::Write as _;
    for field in fields {
        let _ = write!(row, "\t{field}");
    }
}

/// `SELECT auction, bidder, price, dateTime, extra FROM bid`.
fn q0(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.map("q0", |b: Bid| tsv(&[&b.auction, &b.bidder, &b.price, &b.date_time, &b.extra]));
    output(&rows, args)
}

/// `SELECT auction, bidder, 0.908 * price as price, dateTime, extra FROM bid`: the price a
/// `DECIMAL(23, 3)`, computed exactly (thousandths).
fn q1(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.map("q1", |b: Bid| tsv(&[&b.auction, &b.bidder, &Euros(b.price), &b.date_time, &b.extra]));
    output(&rows, args)
}

/// `INSERT INTO nexmark_q10 SELECT auction, bidder, price, dateTime, extra,
/// DATE_FORMAT(dateTime, 'yyyy-MM-dd'), DATE_FORMAT(dateTime, 'HH:mm') FROM bid` into a
/// filesystem table `PARTITIONED BY (dt, hm)`: each bid's five columns (the partition columns
/// are in the path, not the files) go into part files under `--output DIR` in
/// `dt=yyyy-MM-dd/hm=HH%3Amm/` (Flink escapes the `:`), rolled over after a minute and at each
/// checkpoint, committed exactly once. A committer of parallelism 1 writes `_SUCCESS` into a
/// partition once the watermark passed its time (`$dt $hm:00`, UTC) plus one minute (the
/// reference's `partition-time` trigger, `sink.partition-commit.delay` 1 min, `success-file`
/// policy), and into every partition at the end of the input.
fn q10(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let Some(dir) = args.get_opt("output") else {
        return Err(WeirError::Argument("nexmark-q10 writes files: give --output DIR".into()));
    };
    let dir = PathBuf::from(dir);
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.map("q10", |b: Bid| Q10Row {
        partition: q10_partition(b.date_time),
        line: tsv(&[&b.auction, &b.bidder, &b.price, &b.date_time, &b.extra]),
    });
    let sink = FileSink::new(&dir)
        .partitioned(|row: &Q10Row| row.partition.clone())
        .rollover_interval(Duration::from_secs(60));
    let sink = if args.parse_or("overwrite", false)? { sink.overwrite() } else { sink };
    let committer = PartitionCommitter::new(&dir, PartitionTime::pattern("$dt $hm:00"), Duration::from_secs(60));
    rows.write_partitions("q10-writer", sink).sink("q10-committer", committer).set_parallelism(1);
    Ok(())
}

/// The partition of a bid at `date_time`: `dt=<DATE_FORMAT(dateTime, 'yyyy-MM-dd')>/hm=<DATE_FORMAT(dateTime,
/// 'HH:mm')>`, escaped as Flink's partition paths (`12:01` is `12%3A01`).
fn q10_partition(date_time: Timestamp) -> String {
    const DAY: i64 = 86_400_000;
    let day = updating::Day(date_time.div_euclid(DAY)).to_string();
    let minute = updating::Minute(date_time.rem_euclid(DAY) / 60_000).to_string();
    partition_path(&[("dt", &day), ("hm", &minute)]).expect("neither is empty")
}

/// A row of q10: the line written (the five bid columns) and the partition it goes into.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Q10Row {
    partition: String,
    line: String,
}

impl std::fmt::Display for Q10Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
fn q2(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.filter("q2", |b: &Bid| b.auction % 123 == 0).map("q2-row", |b: Bid| tsv(&[&b.auction, &b.price]));
    output(&rows, args)
}

/// `SELECT P.name, P.city, P.state, A.id FROM auction A INNER JOIN person P ON A.seller = P.id
/// WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')`: a regular join, so a seller's
/// auctions wait in keyed state for the person (kept once seen; the reference sets no TTL).
fn q3(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let mut sources = Sources::new(env, args);
    let auctions = sources.auctions()?.filter("q3-category", |a: &Auction| a.category == 10);
    let people = sources.people()?.filter("q3-state", |p: &Person| matches!(p.state.as_str(), "OR" | "ID" | "CA"));
    let rows = auctions
        .key_by(|a: &Auction| a.seller)
        .connect(&people.key_by(|p: &Person| p.id))
        .process("q3", || SellerJoin { person: None, auctions: None });
    output(&rows, args)
}

/// q3's join, per seller.
struct SellerJoin {
    /// The seller's name, city and state, once seen.
    person: Option<ValueState<(String, String, String)>>,
    /// The seller's auctions seen before the person.
    auctions: Option<ListState<i64>>,
}

impl KeyedCoProcessFunction for SellerJoin {
    type Key = i64;
    type In1 = Auction;
    type In2 = Person;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.person = Some(ctx.value_state("person")?);
        self.auctions = Some(ctx.list_state("auctions")?);
        Ok(())
    }

    fn process1(&mut self, a: Auction, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        match ctx.value(self.person.expect("opened")).get()? {
            Some((name, city, state)) => ctx.emit(tsv(&[&name, &city, &state, &a.id])),
            None => ctx.list(self.auctions.expect("opened")).add(a.id)?,
        }
        Ok(())
    }

    fn process2(&mut self, p: Person, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        let waiting = ctx.list(self.auctions.expect("opened")).get()?;
        for id in waiting {
            ctx.emit(tsv(&[&p.name, &p.city, &p.state, &id]));
        }
        ctx.list(self.auctions.expect("opened")).clear()?;
        ctx.value(self.person.expect("opened")).update((p.name, p.city, p.state))
    }
}

/// Hot items: bids per auction in 10 s windows every 2 s, and for each window the auctions
/// with the most (`num >= max(num)` of the window): `auction, num`.
fn q5(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let counts = bids
        .key_by(|b: &Bid| b.auction)
        .window(Sliding::event_time(Duration::from_secs(10), Duration::from_secs(2)))
        .aggregate("q5-counts", Count);
    // A window's counts carry its last millisecond: each falls in the 2 s window ending with
    // it, which fires once every count of the window is in.
    let rows = counts
        .key_by(|w: &Windowed<i64, u64>| w.window.start)
        .window(Tumbling::event_time(Duration::from_secs(2)))
        .process("q5", || Hottest);
    output(&rows, args)
}

/// q5's second stage: the auctions with the window's highest count.
struct Hottest;

impl ProcessWindowFunction for Hottest {
    type Key = i64;
    type In = Windowed<i64, u64>;
    type Out = String;
    fn process(
        &mut self,
        _: &i64,
        counts: Vec<Windowed<i64, u64>>,
        ctx: &mut WindowContext<'_, i64, String>,
    ) -> Result<()> {
        let max = counts.iter().map(|w| w.value).max().unwrap_or(0);
        for w in counts.iter().filter(|w| w.value >= max) {
            ctx.emit(tsv(&[&w.key, &w.value]));
        }
        Ok(())
    }
}

/// Highest bid: `SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra FROM bid B JOIN
/// (SELECT MAX(price) AS maxprice, window_end AS dateTime FROM TUMBLE(bid, 10 s) …) B1 ON
/// B.price = B1.maxprice WHERE B.dateTime BETWEEN B1.dateTime - 10 s AND B1.dateTime`.
///
/// The join's condition asks for the bids at a window's highest price within the window or at
/// its end (both ends of `BETWEEN` included): a bid at a window's end belongs to the next
/// window but also meets this one's maximum. So rather than join every bid, one keyed function
/// keeps per window its highest price and the bids at it, and the bids at exactly its end, and
/// emits them when the watermark passes the end (constant work per bid).
fn q7(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|_: &Bid| 0u8).process("q7", HighestBids::default);
    output(&rows, args)
}

/// q7's window length (ms).
const Q7_WINDOW: i64 = 10_000;

/// q7's function, keyed by nothing (one key): by window end, the highest price and the bids at
/// it, and the bids at exactly that end.
#[derive(Default)]
struct HighestBids {
    max: Option<MapState<i64, i64>>,
    at_max: Option<MapState<i64, Vec<Bid>>>,
    at_end: Option<MapState<i64, Vec<Bid>>>,
}

impl HighestBids {
    fn row(b: &Bid) -> String {
        tsv(&[&b.auction, &b.price, &b.bidder, &b.date_time, &b.extra])
    }
}

impl KeyedProcessFunction for HighestBids {
    type Key = u8;
    type In = Bid;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u8>) -> Result<()> {
        self.max = Some(ctx.map_state("max")?);
        self.at_max = Some(ctx.map_state("at-max")?);
        self.at_end = Some(ctx.map_state("at-end")?);
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut KeyedContext<'_, u8, String>) -> Result<()> {
        let (max, at_max, at_end) =
            (self.max.expect("opened"), self.at_max.expect("opened"), self.at_end.expect("opened"));
        let end = b.date_time.div_euclid(Q7_WINDOW) * Q7_WINDOW + Q7_WINDOW;
        if b.date_time == end - Q7_WINDOW {
            // At the previous window's end: it may meet that window's highest price.
            let mut bids = ctx.map(at_end).get(&b.date_time)?.unwrap_or_default();
            bids.push(b.clone());
            ctx.map(at_end).put(b.date_time, bids)?;
        }
        let highest = ctx.map(max).get(&end)?;
        if highest.is_none() {
            ctx.register_event_time_timer(end);
        }
        match highest {
            Some(m) if b.price < m => {}
            Some(m) if b.price == m => {
                let mut bids = ctx.map(at_max).get(&end)?.unwrap_or_default();
                bids.push(b);
                ctx.map(at_max).put(end, bids)?;
            }
            _ => {
                ctx.map(max).put(end, b.price)?;
                ctx.map(at_max).put(end, vec![b])?;
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, end: Timestamp, _: TimeDomain, ctx: &mut KeyedContext<'_, u8, String>) -> Result<()> {
        let (max, at_max, at_end) =
            (self.max.expect("opened"), self.at_max.expect("opened"), self.at_end.expect("opened"));
        let edge = ctx.map(at_end).remove(&end)?.unwrap_or_default();
        let Some(highest) = ctx.map(max).remove(&end)? else { return Ok(()) };
        let mut rows: Vec<String> = ctx.map(at_max).remove(&end)?.unwrap_or_default().iter().map(Self::row).collect();
        rows.extend(edge.iter().filter(|b| b.price == highest).map(Self::row));
        for row in rows {
            ctx.emit(row);
        }
        Ok(())
    }
}

/// New users: the people who entered in a 10 s window and created an auction in it (people
/// grouped by id, name and window, joined with sellers grouped by window): `id, name,
/// starttime`.
fn q8(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let mut sources = Sources::new(env, args);
    let people = sources.people()?.map("q8-people", |p: Person| (p.id, Some(p.name)));
    let sellers = sources.auctions()?.map("q8-sellers", |a: Auction| (a.seller, None::<String>));
    let rows = people
        .union(&[sellers])
        .key_by(|r: &(i64, Option<String>)| r.0)
        .window(Tumbling::event_time(Duration::from_secs(10)))
        .process("q8", || NewSellers);
    output(&rows, args)
}

/// q8's window function: a person's row if they also sold in the window.
struct NewSellers;

impl ProcessWindowFunction for NewSellers {
    type Key = i64;
    type In = (i64, Option<String>);
    type Out = String;
    fn process(
        &mut self,
        id: &i64,
        rows: Vec<(i64, Option<String>)>,
        ctx: &mut WindowContext<'_, i64, String>,
    ) -> Result<()> {
        if rows.iter().any(|r| r.1.is_none()) {
            let mut names: Vec<&String> = rows.iter().filter_map(|r| r.1.as_ref()).collect();
            names.sort();
            names.dedup();
            let start = ctx.window().start;
            for name in names {
                ctx.emit(tsv(&[id, name, &start]));
            }
        }
        Ok(())
    }
}

/// User sessions: bids per bidder in event-time sessions closed by 10 s without a bid:
/// `bidder, bid_count, starttime, endtime` (the end is the last bid + 10 s).
fn q11(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids
        .key_by(|b: &Bid| b.bidder)
        .window(Session::event_time(Duration::from_secs(10)))
        .aggregate("q11", Count)
        .map("q11-row", |w: Windowed<i64, u64>| tsv(&[&w.key, &w.value, &w.window.start, &w.window.end]));
    output(&rows, args)
}

/// Bids per bidder in tumbling 10 s windows of processing time (the reference's `PROCTIME()`):
/// `bidder, bid_count, starttime, endtime`, the window's bounds in wall-clock epoch
/// milliseconds. Which bids share a window depends on when they are processed, so the rows
/// differ from run to run (only the counts' total is fixed); the windows still open when a
/// bounded input ends fire then, as in Flink.
fn q12(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids
        .key_by(|b: &Bid| b.bidder)
        .window(Tumbling::processing_time(Duration::from_secs(10)))
        .aggregate("q12", Count)
        .map("q12-row", |w: Windowed<i64, u64>| tsv(&[&w.key, &w.value, &w.window.start, &w.window.end]));
    output(&rows, args)
}

/// `0.908 * price` as a `DECIMAL(23, 3)`, exactly.
struct Euros(i64);

impl std::fmt::Display for Euros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let thousandths = i128::from(self.0) * 908;
        let sign = if thousandths < 0 { "-" } else { "" };
        let abs = thousandths.unsigned_abs();
        write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

/// Bids with `0.908 * price` strictly between 1 000 000 and 50 000 000, with the price in
/// euros, the hour's kind (`dayTime` 8–18 h, `nightTime` up to 6 h and from 20 h, else
/// `otherTime`; UTC), and the number of `c`s in `extra` (the reference's `count_char` UDF):
/// `auction, bidder, price, bidTimeType, dateTime, extra, c_counts`.
fn q14(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids
        .filter("q14-price", |b: &Bid| (1_000_000_001..50_000_000_000).contains(&(i128::from(b.price) * 908)))
        .map("q14", |b: Bid| {
            let hour = b.date_time.div_euclid(3_600_000).rem_euclid(24);
            let kind = match hour {
                8..=18 => "dayTime",
                ..=6 | 20.. => "nightTime",
                _ => "otherTime",
            };
            let c_counts = b.extra.bytes().filter(|&c| c == b'c').count();
            tsv(&[&b.auction, &b.bidder, &Euros(b.price), &kind, &b.date_time, &b.extra, &c_counts])
        });
    output(&rows, args)
}

/// Bounded side input: `SELECT B.auction, B.bidder, B.price, B.dateTime, S.value FROM bid B
/// JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S ON mod(B.auction, 10000) = S.key`. The
/// side input is a CSV `key,value` file (`--side-input PATH`, read by each subtask when it
/// opens), by default the reference's: `i,i` for `i` below 10 000. A lookup join on processing
/// time against a table that does not change is a lookup in it.
fn q13(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let side = args.get_opt("side-input").map(PathBuf::from);
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.operator("q13", move || SideInputJoin { path: side.clone(), table: HashMap::new() });
    output(&rows, args)
}

/// q13's lookup: the side input in a hash map.
struct SideInputJoin {
    path: Option<PathBuf>,
    table: HashMap<i64, String>,
}

impl Operator for SideInputJoin {
    type In = Bid;
    type Out = String;

    fn open(&mut self, _: &mut OpenContext<'_>) -> Result<()> {
        let Some(path) = &self.path else {
            self.table = (0..10_000).map(|i| (i, i.to_string())).collect();
            return Ok(());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| WeirError::user(format!("cannot read the side input {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad =
                |why: &str| WeirError::user(format!("side input {} line {}: {why}: '{line}'", path.display(), n + 1));
            let (key, value) = line.split_once(',').ok_or_else(|| bad("expected key,value"))?;
            let key = key.trim().parse().map_err(|_| bad("the key is not an integer"))?;
            self.table.insert(key, value.trim().to_owned());
        }
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut Context<'_, String>) -> Result<()> {
        if let Some(value) = self.table.get(&b.auction.rem_euclid(10_000)) {
            ctx.emit(tsv(&[&b.auction, &b.bidder, &b.price, &b.date_time, value]));
        }
        Ok(())
    }
}

/// Expand bid with auction: `SELECT auction, bidder, price, channel, url, B.dateTime, B.extra,
/// itemName, description, initialBid, reserve, A.dateTime, expires, seller, category, A.extra
/// FROM bid B JOIN auction A ON B.auction = A.id WHERE A.category = 10`: a regular join keyed
/// by auction. Bids wait for their auction (they may come first); an auction of another
/// category is remembered so that its bids are dropped (ids are unique, so this changes no row).
fn q20(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let mut sources = Sources::new(env, args);
    let bids = sources.bids()?;
    let auctions = sources.auctions()?;
    let rows = bids
        .key_by(|b: &Bid| b.auction)
        .connect(&auctions.key_by(|a: &Auction| a.id))
        .process("q20", || AuctionJoin { auction: None, waiting: None });
    output(&rows, args)
}

/// q20's join, per auction id.
struct AuctionJoin {
    /// The auction once seen: `Some(auction)` of category 10, `None` of another.
    auction: Option<ValueState<Option<Auction>>>,
    /// Bids before their auction.
    waiting: Option<ListState<Bid>>,
}

impl AuctionJoin {
    fn row(b: &Bid, a: &Auction) -> String {
        let capacity = 128 + b.url.len() + b.extra.len() + a.item_name.len() + a.description.len() + a.extra.len();
        let mut row = tsv_in(capacity, &[&b.auction, &b.bidder, &b.price, &b.channel, &b.url, &b.date_time, &b.extra]);
        tsv_push(&mut row, &auction_columns(a));
        row
    }
}

/// An auction's columns after its id: `itemName, description, initialBid, reserve, dateTime,
/// expires, seller, category, extra`.
fn auction_columns(a: &Auction) -> [&dyn std::fmt::Display; 9] {
    [
        &a.item_name,
        &a.description,
        &a.initial_bid,
        &a.reserve,
        &a.date_time,
        &a.expires,
        &a.seller,
        &a.category,
        &a.extra,
    ]
}

impl KeyedCoProcessFunction for AuctionJoin {
    type Key = i64;
    type In1 = Bid;
    type In2 = Auction;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.auction = Some(ctx.value_state("auction")?);
        self.waiting = Some(ctx.list_state("waiting")?);
        Ok(())
    }

    fn process1(&mut self, b: Bid, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        // Read in place: a `get` would copy the auction (some 500 bytes) for every bid.
        let (mut seen, mut row) = (false, None);
        ctx.value(self.auction.expect("opened")).upsert(&mut |auction| {
            if let Some(auction) = auction {
                seen = true;
                row = auction.as_ref().map(|a| Self::row(&b, a));
            }
            None
        })?;
        match row {
            Some(row) => ctx.emit(row),
            None if !seen => ctx.list(self.waiting.expect("opened")).add(b)?,
            None => {}
        }
        Ok(())
    }

    fn process2(&mut self, a: Auction, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        let waiting = ctx.list(self.waiting.expect("opened")).get()?;
        ctx.list(self.waiting.expect("opened")).clear()?;
        if a.category != 10 {
            return ctx.value(self.auction.expect("opened")).update(None);
        }
        for b in &waiting {
            ctx.emit(Self::row(b, &a));
        }
        ctx.value(self.auction.expect("opened")).update(Some(a))
    }
}

/// `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`: the value of the first `channel_id=`
/// at the start of `url` or after an `&`, up to the next `&`.
fn channel_id(url: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = url[from..].find("channel_id=").map(|i| from + i) {
        if at == 0 || url.as_bytes()[at - 1] == b'&' {
            let value = &url[at + "channel_id=".len()..];
            return Some(value.split('&').next().unwrap_or(""));
        }
        from = at + 1;
    }
    None
}

/// Channel ids: the hot channels' fixed ids, else the `channel_id` of the URL; bids with
/// neither are dropped: `auction, bidder, price, channel, channel_id`.
fn q21(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.flat_map("q21", |b: Bid| {
        let id = match b.channel.to_lowercase().as_str() {
            "apple" => Some("0"),
            "google" => Some("1"),
            "facebook" => Some("2"),
            "baidu" => Some("3"),
            _ => channel_id(&b.url),
        };
        id.map(|id| tsv(&[&b.auction, &b.bidder, &b.price, &b.channel, &id]))
    });
    output(&rows, args)
}

/// URL directories: `SPLIT_INDEX(url, '/', 3 | 4 | 5)` (empty when there is no such part):
/// `auction, bidder, price, channel, dir1, dir2, dir3`.
fn q22(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.map("q22", |b: Bid| {
        let parts: Vec<&str> = b.url.split('/').collect();
        let dir = |i: usize| parts.get(i).copied().unwrap_or("");
        tsv(&[&b.auction, &b.bidder, &b.price, &b.channel, &dir(3), &dir(4), &dir(5)])
    });
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

#[cfg(test)]
mod tests;
