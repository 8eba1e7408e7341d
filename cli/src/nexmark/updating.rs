//! The Nexmark queries whose results update: unbounded aggregations (q4, q15, q16, q17),
//! Top-N (q9, q19) and deduplication (q18).
//!
//! Their result is a table that changes with every event, which a stream of lines can only
//! carry as its changes. They write what Flink's planner sends the reference's sink (the
//! blackhole sink is an upsert sink, so no `UPDATE_BEFORE` rows are made for it): an upsert
//! changelog keyed by each query's unique key, one line per change, its first column the
//! change's kind as Flink prints it (`+I` a new row, `+U` the new value of a key's row, `-D` a
//! row gone), then the SELECT's columns. The table is the last row of each key, in the order
//! one subtask's part files were written (each key's changes come from one subtask). The keys:
//! q4 `category`, q9 `id`, q15 `day`, q16 `channel, day`, q17 `auction, day`, q18 `bidder,
//! auction`, q19 `auction, rank_number`.
//!
//! Between q4's two aggregations the winning prices travel as retractions, as in Flink: the
//! average must take back a price that a higher bid replaced.

use std::fmt::{self, Display};

use weir_actors::api::connectors::nexmark::{Auction, Bid};
use weir_actors::prelude::*;

use super::{Sources, auction_columns, output, tsv, tsv_in, tsv_push};

/// The kind of a change of an updating query's result, as Flink's `RowKind` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// A key's first row: `+I`.
    Insert,
    /// A key's row changed: `+U`.
    Update,
    /// A key's row is gone: `-D`.
    Delete,
}

impl Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Insert => "+I",
            Change::Update => "+U",
            Change::Delete => "-D",
        })
    }
}

/// `+I` for a key's first row, `+U` after.
fn upsert(first: bool) -> Change {
    if first { Change::Insert } else { Change::Update }
}

/// One day in milliseconds.
const DAY: i64 = 86_400_000;

/// `DATE_FORMAT(dateTime, 'yyyy-MM-dd')` of a day counted from the epoch (UTC, as the
/// reference's `TIMESTAMP(3)` of epoch milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Day(pub(super) i64);

impl Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Howard Hinnant's `civil_from_days`.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// `DATE_FORMAT(dateTime, 'HH:mm')` of a minute of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Minute(pub(super) i64);

impl Display for Minute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// The price ranks of q15–q17: `price < 10 000`, `10 000 <= price < 1 000 000`, `price >=
/// 1 000 000`, as 0, 1, 2.
fn rank(price: i64) -> usize {
    match price {
        ..10_000 => 0,
        10_000..1_000_000 => 1,
        _ => 2,
    }
}

/// The join q4 and q9 share (the reference's "winning bids" core): `auction A, bid B WHERE
/// A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires`, keyed by auction, with
/// an aggregation per auction on the joined bids. Bids wait for their auction (the predicate
/// needs its times); after it, each bid in its time goes to the aggregation and none is kept,
/// where Flink's join keeps every bid.
pub(super) trait BidsInTime: Send + 'static {
    /// What is kept of an auction.
    type Auction: Data;
    /// What is kept of a bid waiting for its auction.
    type Bid: Data;
    /// The aggregation's changes.
    type Out: Data;
    fn auction(a: Auction) -> Self::Auction;
    fn bid(b: Bid) -> Self::Bid;
    /// The auction's start and end.
    fn span(a: &Self::Auction) -> (Timestamp, Timestamp);
    fn time(b: &Self::Bid) -> Timestamp;
    /// Registers the aggregation's state.
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()>;
    /// Aggregates a bid in its auction's time.
    fn offer(&mut self, a: &Self::Auction, b: Self::Bid, ctx: &mut KeyedContext<'_, i64, Self::Out>) -> Result<()>;
}

/// Runs a [`BidsInTime`] per auction.
pub(super) struct AuctionTimeJoin<W: BidsInTime> {
    per_auction: W,
    auction: Option<ValueState<W::Auction>>,
    waiting: Option<ListState<W::Bid>>,
}

impl<W: BidsInTime> AuctionTimeJoin<W> {
    fn new(per_auction: W) -> Self {
        AuctionTimeJoin { per_auction, auction: None, waiting: None }
    }

    fn in_time(a: &W::Auction, b: &W::Bid) -> bool {
        let (start, end) = W::span(a);
        (start..=end).contains(&W::time(b))
    }
}

impl<W: BidsInTime> KeyedCoProcessFunction for AuctionTimeJoin<W> {
    type Key = i64;
    type In1 = Bid;
    type In2 = Auction;
    type Out = W::Out;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.auction = Some(ctx.value_state("auction")?);
        self.waiting = Some(ctx.list_state("waiting")?);
        self.per_auction.open(ctx)
    }

    fn process1(&mut self, b: Bid, ctx: &mut KeyedContext<'_, i64, W::Out>) -> Result<()> {
        let b = W::bid(b);
        match ctx.value(self.auction.expect("opened")).get()? {
            Some(a) if Self::in_time(&a, &b) => self.per_auction.offer(&a, b, ctx),
            Some(_) => Ok(()),
            None => ctx.list(self.waiting.expect("opened")).add(b),
        }
    }

    fn process2(&mut self, a: Auction, ctx: &mut KeyedContext<'_, i64, W::Out>) -> Result<()> {
        let a = W::auction(a);
        let waiting = ctx.list(self.waiting.expect("opened")).get()?;
        ctx.list(self.waiting.expect("opened")).clear()?;
        for b in waiting.into_iter().filter(|b| Self::in_time(&a, b)) {
            self.per_auction.offer(&a, b, ctx)?;
        }
        ctx.value(self.auction.expect("opened")).update(a)
    }
}

/// Average winning price per category: `SELECT Q.category, AVG(Q.final) FROM (SELECT
/// MAX(B.price) AS final, A.category FROM auction A, bid B WHERE A.id = B.auction AND
/// B.dateTime BETWEEN A.dateTime AND A.expires GROUP BY A.id, A.category) Q GROUP BY
/// Q.category`: `+I/+U/-D, category, avg` (the average of `BIGINT`s truncated, as Flink's).
///
/// The join and the inner aggregation share their key (the auction), so one keyed function
/// does both ([`BidsInTime`]), keeping only an auction's times and category and its highest
/// price. Its changes go to the outer aggregation as Flink sends them: the new price, after
/// the old one taken back.
pub(super) fn q4(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let mut sources = Sources::new(env, args);
    let bids = sources.bids()?;
    let auctions = sources.auctions()?;
    let rows = bids
        .key_by(|b: &Bid| b.auction)
        .connect(&auctions.key_by(|a: &Auction| a.id))
        .process("q4-winning", || AuctionTimeJoin::new(HighestPrice(None)))
        .key_by(|c: &PriceChange| c.category)
        .process("q4", || CategoryAverage { sum: None });
    output(&rows, args)
}

/// q4's inner result changing: an auction's highest price in its category, added or taken
/// back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct PriceChange {
    pub(super) category: i64,
    pub(super) price: i64,
    pub(super) retract: bool,
}

/// q4's inner aggregation, per auction: the highest price of a bid in its time.
pub(super) struct HighestPrice(Option<ValueState<i64>>);

impl BidsInTime for HighestPrice {
    /// Start, end, category.
    type Auction = (Timestamp, Timestamp, i64);
    /// Time, price.
    type Bid = (Timestamp, i64);
    type Out = PriceChange;

    fn auction(a: Auction) -> Self::Auction {
        (a.date_time, a.expires, a.category)
    }
    fn bid(b: Bid) -> Self::Bid {
        (b.date_time, b.price)
    }
    fn span(a: &Self::Auction) -> (Timestamp, Timestamp) {
        (a.0, a.1)
    }
    fn time(b: &Self::Bid) -> Timestamp {
        b.0
    }

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.0 = Some(ctx.value_state("highest")?);
        Ok(())
    }

    /// Makes the price the auction's highest if it is, with the changes to send.
    fn offer(
        &mut self,
        a: &Self::Auction,
        (_, price): (Timestamp, i64),
        ctx: &mut KeyedContext<'_, i64, PriceChange>,
    ) -> Result<()> {
        let (mut before, mut raised) = (None, false);
        ctx.value(self.0.expect("opened")).upsert(&mut |highest| match highest {
            Some(h) if *h >= price => None,
            Some(h) => {
                (before, raised) = (Some(*h), true);
                *h = price;
                None
            }
            None => {
                raised = true;
                Some(price)
            }
        })?;
        let category = a.2;
        if let Some(old) = before {
            ctx.emit(PriceChange { category, price: old, retract: true });
        }
        if raised {
            ctx.emit(PriceChange { category, price, retract: false });
        }
        Ok(())
    }
}

/// q4's outer aggregation, per category: the sum and count of the winning prices.
pub(super) struct CategoryAverage {
    sum: Option<ValueState<(i64, i64)>>,
}

impl KeyedProcessFunction for CategoryAverage {
    type Key = i64;
    type In = PriceChange;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.sum = Some(ctx.value_state("sum")?);
        Ok(())
    }

    /// As Flink's `GroupAggFunction`: a retraction of a category without state is dropped,
    /// a change leaving no price deletes the row, one leaving the average as it was emits
    /// nothing.
    fn process(&mut self, c: PriceChange, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        let state = self.sum.expect("opened");
        let before = ctx.value(state).get()?;
        let (mut sum, mut count) = match before {
            Some(acc) => acc,
            None if c.retract => return Ok(()),
            None => (0, 0),
        };
        if c.retract {
            (sum, count) = (sum - c.price, count - 1);
        } else {
            (sum, count) = (sum + c.price, count + 1);
        }
        let average = |(sum, count): (i64, i64)| sum / count;
        let category = *ctx.key();
        if count == 0 {
            ctx.value(state).clear()?;
            if let Some(before) = before {
                ctx.emit(tsv(&[&Change::Delete, &category, &average(before)]));
            }
            return Ok(());
        }
        ctx.value(state).update((sum, count))?;
        let after = average((sum, count));
        if before.map(average) != Some(after) {
            ctx.emit(tsv(&[&upsert(before.is_none()), &category, &after]));
        }
        Ok(())
    }
}

/// Winning bids: each auction with its highest bid in its time (`ROW_NUMBER() OVER (PARTITION
/// BY A.id ORDER BY B.price DESC, B.dateTime ASC) <= 1` over the join of q4): `+I/+U`, the
/// auction's ten columns, then `auction, bidder, price, bid_dateTime, bid_extra`. Of bids equal
/// in price and time the first seen wins (Flink's Top-N keeps the earlier).
pub(super) fn q9(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let mut sources = Sources::new(env, args);
    let bids = sources.bids()?;
    let auctions = sources.auctions()?;
    let rows = bids
        .key_by(|b: &Bid| b.auction)
        .connect(&auctions.key_by(|a: &Auction| a.id))
        .process("q9", || AuctionTimeJoin::new(WinningBid(None)));
    output(&rows, args)
}

/// q9's Top-1, per auction: the best bid in its time.
pub(super) struct WinningBid(Option<ValueState<Bid>>);

impl WinningBid {
    /// Whether `b` ranks before `best`: a higher price, or the same at an earlier time.
    fn beats(b: &Bid, best: &Bid) -> bool {
        b.price > best.price || (b.price == best.price && b.date_time < best.date_time)
    }

    fn row(change: Change, a: &Auction, b: &Bid) -> String {
        let capacity = 160 + a.item_name.len() + a.description.len() + a.extra.len() + b.extra.len();
        let mut row = tsv_in(capacity, &[&change, &a.id]);
        tsv_push(&mut row, &auction_columns(a));
        tsv_push(&mut row, &[&b.auction, &b.bidder, &b.price, &b.date_time, &b.extra]);
        row
    }
}

impl BidsInTime for WinningBid {
    type Auction = Auction;
    type Bid = Bid;
    type Out = String;

    fn auction(a: Auction) -> Auction {
        a
    }
    fn bid(b: Bid) -> Bid {
        b
    }
    fn span(a: &Auction) -> (Timestamp, Timestamp) {
        (a.date_time, a.expires)
    }
    fn time(b: &Bid) -> Timestamp {
        b.date_time
    }

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.0 = Some(ctx.value_state("best")?);
        Ok(())
    }

    /// Makes the bid the auction's best if it is, emitting the changed row.
    fn offer(&mut self, a: &Auction, b: Bid, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        let mut change = None;
        let mut offered = Some(b);
        ctx.value(self.0.expect("opened")).upsert(&mut |best| match best {
            Some(best) if !Self::beats(offered.as_ref().expect("once"), best) => None,
            Some(best) => {
                *best = offered.take().expect("once");
                change = Some(Self::row(Change::Update, a, best));
                None
            }
            None => {
                let b = offered.take().expect("once");
                change = Some(Self::row(Change::Insert, a, &b));
                Some(b)
            }
        })?;
        if let Some(row) = change {
            ctx.emit(row);
        }
        Ok(())
    }
}

/// The counters of q15–q17's `count(*) FILTER (…)` and `count(DISTINCT …) FILTER (…)`: index
/// 0 all bids, 1–3 the price ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct RankCounts {
    bids: [u64; 4],
    bidders: [u64; 4],
    auctions: [u64; 4],
    /// The latest minute of the day seen (q16's `max(DATE_FORMAT(dateTime, 'HH:mm'))`).
    minute: i64,
}

impl RankCounts {
    fn fields(&self) -> [&dyn Display; 12] {
        let [b, r] = [&self.bids, &self.bidders];
        let a = &self.auctions;
        [&b[0], &b[1], &b[2], &b[3], &r[0], &r[1], &r[2], &r[3], &a[0], &a[1], &a[2], &a[3]]
    }
}

/// Bidding statistics per day: `day`, then `count(*)`, `count(DISTINCT bidder)` and
/// `count(DISTINCT auction)`, each of all bids and of each price rank (13 columns).
pub(super) fn q15(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|b: &Bid| b.date_time.div_euclid(DAY)).process("q15", || {
        DistinctCounts::new(|day: &i64, c: &RankCounts, change| {
            let mut row = tsv(&[&change, &Day(*day)]);
            tsv_push(&mut row, &c.fields());
            row
        })
    });
    output(&rows, args)
}

/// Channel statistics: q15's per channel and day, with the day's latest minute: `channel,
/// day, minute`, then q15's twelve counts.
pub(super) fn q16(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|b: &Bid| (b.channel.clone(), b.date_time.div_euclid(DAY))).process("q16", || {
        DistinctCounts::new(|(channel, day): &(String, i64), c: &RankCounts, change| {
            let mut row = tsv(&[&change, channel, &Day(*day), &Minute(c.minute)]);
            tsv_push(&mut row, &c.fields());
            row
        })
    });
    output(&rows, args)
}

/// q15's and q16's aggregation, per key: the counters, and for each bidder and auction seen
/// the ranks it was seen in (a bit each; the input only grows, so a set is enough where
/// Flink's distinct aggregation counts).
pub(super) struct DistinctCounts<K> {
    counts: Option<ValueState<RankCounts>>,
    bidders: Option<MapState<i64, u8>>,
    auctions: Option<MapState<i64, u8>>,
    row: fn(&K, &RankCounts, Change) -> String,
}

impl<K> DistinctCounts<K> {
    fn new(row: fn(&K, &RankCounts, Change) -> String) -> Self {
        DistinctCounts { counts: None, bidders: None, auctions: None, row }
    }
}

impl<K: Key> DistinctCounts<K> {
    /// Adds the ranks `bits` to `id`'s, counting those it is new in.
    fn distinct(
        map: MapState<i64, u8>,
        id: i64,
        bits: u8,
        counts: &mut [u64; 4],
        ctx: &mut KeyedContext<'_, K, String>,
    ) -> Result<()> {
        let seen = ctx.map(map).get(&id)?.unwrap_or(0);
        let new = bits & !seen;
        if new != 0 {
            ctx.map(map).put(id, seen | bits)?;
            for (i, count) in counts.iter_mut().enumerate() {
                *count += u64::from(new >> i & 1);
            }
        }
        Ok(())
    }
}

impl<K: Key> KeyedProcessFunction for DistinctCounts<K> {
    type Key = K;
    type In = Bid;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, K>) -> Result<()> {
        self.counts = Some(ctx.value_state("counts")?);
        self.bidders = Some(ctx.map_state("bidders")?);
        self.auctions = Some(ctx.map_state("auctions")?);
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut KeyedContext<'_, K, String>) -> Result<()> {
        let state = self.counts.expect("opened");
        let before = ctx.value(state).get()?;
        let mut c = before.unwrap_or_default();
        let rank = rank(b.price);
        let bits = 1 | 1 << (rank + 1);
        c.bids[0] += 1;
        c.bids[rank + 1] += 1;
        c.minute = c.minute.max(b.date_time.rem_euclid(DAY) / 60_000);
        Self::distinct(self.bidders.expect("opened"), b.bidder, bits, &mut c.bidders, ctx)?;
        Self::distinct(self.auctions.expect("opened"), b.auction, bits, &mut c.auctions, ctx)?;
        ctx.value(state).update(c)?;
        let row = (self.row)(ctx.key(), &c, upsert(before.is_none()));
        ctx.emit(row);
        Ok(())
    }
}

/// Auction statistics per day: `auction, day, total_bids, rank1_bids, rank2_bids, rank3_bids,
/// min_price, max_price, avg_price, sum_price`.
pub(super) fn q17(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|b: &Bid| (b.auction, b.date_time.div_euclid(DAY))).process("q17", || PriceStats(None));
    output(&rows, args)
}

/// q17's aggregation, per auction and day: the counts (all, per rank), min, max and sum of
/// the prices.
pub(super) struct PriceStats(Option<ValueState<Prices>>);

/// q17's accumulator: counts (all, per rank), min, max, sum.
type Prices = ([u64; 4], i64, i64, i64);

impl KeyedProcessFunction for PriceStats {
    type Key = (i64, i64);
    type In = Bid;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, (i64, i64)>) -> Result<()> {
        self.0 = Some(ctx.value_state("stats")?);
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut KeyedContext<'_, (i64, i64), String>) -> Result<()> {
        let mut first = false;
        let mut stats = ([0; 4], 0, 0, 0);
        ctx.value(self.0.expect("opened")).upsert(&mut |s| {
            let s = match s {
                Some(s) => s,
                None => {
                    first = true;
                    stats = ([0; 4], b.price, b.price, 0);
                    &mut stats
                }
            };
            s.0[0] += 1;
            s.0[rank(b.price) + 1] += 1;
            s.1 = s.1.min(b.price);
            s.2 = s.2.max(b.price);
            s.3 += b.price;
            stats = *s;
            first.then_some(stats)
        })?;
        let (&(auction, day), (n, min, max, sum)) = (ctx.key(), stats);
        let average = sum / n[0] as i64;
        let row = tsv(&[&upsert(first), &auction, &Day(day), &n[0], &n[1], &n[2], &n[3], &min, &max, &average, &sum]);
        ctx.emit(row);
        Ok(())
    }
}

/// The seven columns of a bid after a change's kind.
fn bid_row(change: Change, b: &Bid, rank: Option<usize>) -> String {
    let capacity = 96 + b.url.len() + b.extra.len();
    let fields: [&dyn Display; 8] =
        [&change, &b.auction, &b.bidder, &b.price, &b.channel, &b.url, &b.date_time, &b.extra];
    let mut row = tsv_in(capacity, &fields);
    if let Some(rank) = rank {
        tsv_push(&mut row, &[&rank]);
    }
    row
}

/// Last bid: each bidder's latest bid on each auction (`ROW_NUMBER() OVER (PARTITION BY
/// bidder, auction ORDER BY dateTime DESC) <= 1`, Flink's deduplication keeping the last row
/// in event time: a bid at the same time as the kept one replaces it, an earlier one does
/// not): `+I/+U` and the bid's seven columns.
pub(super) fn q18(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|b: &Bid| (b.bidder, b.auction)).process("q18", || LastBid(None));
    output(&rows, args)
}

/// q18's deduplication, per bidder and auction.
pub(super) struct LastBid(Option<ValueState<Bid>>);

impl KeyedProcessFunction for LastBid {
    type Key = (i64, i64);
    type In = Bid;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, (i64, i64)>) -> Result<()> {
        self.0 = Some(ctx.value_state("last")?);
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut KeyedContext<'_, (i64, i64), String>) -> Result<()> {
        let mut row = None;
        let mut offered = Some(b);
        ctx.value(self.0.expect("opened")).upsert(&mut |last| match last {
            Some(last) if offered.as_ref().expect("once").date_time < last.date_time => None,
            Some(last) => {
                *last = offered.take().expect("once");
                row = Some(bid_row(Change::Update, last, None));
                None
            }
            None => {
                let b = offered.take().expect("once");
                row = Some(bid_row(Change::Insert, &b, None));
                Some(b)
            }
        })?;
        if let Some(row) = row {
            ctx.emit(row);
        }
        Ok(())
    }
}

/// How many bids q19 ranks per auction.
const TOP: usize = 10;

/// Auction Top-10 price: each auction's ten highest bids with their rank (`ROW_NUMBER() OVER
/// (PARTITION BY auction ORDER BY price DESC) <= 10`): `+I/+U`, the bid's seven columns and
/// `rank_number`. As Flink's append-only Top-N with the row number in the output: a bid taking
/// rank `r` updates every rank from `r` down (the bids below move one down), inserts the rank
/// that was not yet filled, and a bid at the price of the tenth when ten are ranked changes
/// nothing (equal prices rank in the order seen).
pub(super) fn q19(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let bids = Sources::new(env, args).bids()?;
    let rows = bids.key_by(|b: &Bid| b.auction).process("q19", || TopBids(None));
    output(&rows, args)
}

/// q19's Top-N, per auction: the ranked bids, highest first.
#[derive(Default)]
pub(super) struct TopBids(Option<ValueState<Vec<Bid>>>);

impl KeyedProcessFunction for TopBids {
    type Key = i64;
    type In = Bid;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, i64>) -> Result<()> {
        self.0 = Some(ctx.value_state("top")?);
        Ok(())
    }

    fn process(&mut self, b: Bid, ctx: &mut KeyedContext<'_, i64, String>) -> Result<()> {
        let mut rows = Vec::new();
        let mut offered = Some(b);
        ctx.value(self.0.expect("opened")).upsert(&mut |top| {
            let b = offered.take().expect("once");
            let Some(top) = top else {
                rows.push(bid_row(Change::Insert, &b, Some(1)));
                return Some(vec![b]);
            };
            if top.len() == TOP && top.last().is_some_and(|last| b.price <= last.price) {
                return None;
            }
            let (at, ranked) = (top.partition_point(|t| t.price >= b.price), top.len());
            top.insert(at, b);
            top.truncate(TOP);
            for (i, t) in top.iter().enumerate().skip(at) {
                let change = if i == ranked { Change::Insert } else { Change::Update };
                rows.push(bid_row(change, t, Some(i + 1)));
            }
            None
        })?;
        for row in rows {
            ctx.emit(row);
        }
        Ok(())
    }
}
