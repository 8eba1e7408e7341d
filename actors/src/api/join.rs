//! Joins of two streams.
//!
//! The window join (Flink's `JoinedStreams`, built as Flink builds it on a co-group): records
//! of both streams with equal keys in the same window (tumbling, sliding, session; event or
//! processing time) are paired when the window fires, every left record with every right
//! one; each pair gives what the join function returns, at the window's last millisecond.
//!
//! The interval join (Flink's `IntervalJoinOperator`): a record `l` of the left stream joins
//! every record `r` of the right stream with the same key and
//! `l.ts + lower <= r.ts <= l.ts + upper` (both bounds inclusive unless made exclusive); the
//! result's timestamp is the larger of the two. Each side's records wait in keyed state,
//! bucketed by timestamp, for as long as a record of the other side could still join them: a
//! left bucket at `t` is dropped when the watermark passes `t + upper` (or `t` when `upper`
//! is negative), a right bucket at `t` when it passes `t - lower` (or `t`). A record below the
//! current watermark is late: it joins nothing and is counted as a late record (as Flink
//! drops it), or goes to a side output if one is asked for.

use weir_dataplane::Timestamp;

use std::sync::Arc;

use crate::api::co_process::KeyedCoProcessFunction;
use crate::api::keyed::{KeySelector, KeyedContext, KeyedOpenContext, MapState};
use crate::api::side_output::OutputTag;
use crate::api::stream::{DataStream, KeyedStream};
use crate::api::window::{ProcessWindowFunction, WindowAssigner, WindowContext};
use crate::base::data::{Data, Key};
use crate::base::error::{Result, WeirError};
use crate::base::time::TimeDomain;
use crate::runtime::input::TwoInput;

/// Two streams to join in windows: name the key of each with [`where_`](Self::where_) and
/// [`equal_to`](JoinWhere::equal_to), then the [`window`](JoinEqual::window).
pub struct JoinedStreams<A, B> {
    left: DataStream<A>,
    right: DataStream<B>,
}

impl<A: Data> DataStream<A> {
    /// Joins this stream with `other` in windows (Flink's `join`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     // (user, page) clicks and (user, amount) purchases.
    ///     let clicks = env.from_vec_timestamped("clicks", vec![(('u', 1), 100), (('u', 2), 900), (('v', 1), 200)]);
    ///     let buys = env.from_vec_timestamped("buys", vec![(('u', 30), 500), (('u', 40), 1_500)]);
    ///     clicks
    ///         .join(&buys)
    ///         .where_(|c: &(char, u8)| c.0)
    ///         .equal_to(|b: &(char, u32)| b.0)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .apply("click-then-buy", |c: &(char, u8), b: &(char, u32)| format!("{} page {} bought {}", c.0, c.1, b.1))
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, ["u page 1 bought 30", "u page 2 bought 30"]);
    /// ```
    pub fn join<B: Data>(&self, other: &DataStream<B>) -> JoinedStreams<A, B> {
        JoinedStreams { left: self.clone(), right: other.clone() }
    }
}

impl<A: Data, B: Data> JoinedStreams<A, B> {
    /// The left stream's key.
    pub fn where_<K: Key>(self, key: impl Fn(&A) -> K + Send + Sync + 'static) -> JoinWhere<K, A, B> {
        JoinWhere { join: self, left_key: Arc::new(key) }
    }
}

/// A window join with its left key.
pub struct JoinWhere<K, A, B> {
    join: JoinedStreams<A, B>,
    left_key: KeySelector<A, K>,
}

impl<K: Key, A: Data, B: Data> JoinWhere<K, A, B> {
    /// The right stream's key, equal to the left one's for records that join.
    pub fn equal_to(self, key: impl Fn(&B) -> K + Send + Sync + 'static) -> JoinEqual<K, A, B> {
        JoinEqual { join: self.join, left_key: self.left_key, right_key: Arc::new(key) }
    }
}

/// A window join with both keys.
pub struct JoinEqual<K, A, B> {
    join: JoinedStreams<A, B>,
    left_key: KeySelector<A, K>,
    right_key: KeySelector<B, K>,
}

impl<K: Key, A: Data, B: Data> JoinEqual<K, A, B> {
    /// The windows records are joined in.
    pub fn window(self, assigner: WindowAssigner) -> WindowedJoin<K, A, B> {
        WindowedJoin { join: self, assigner, lateness: std::time::Duration::ZERO }
    }
}

/// A window join ready for its join function.
pub struct WindowedJoin<K, A, B> {
    join: JoinEqual<K, A, B>,
    assigner: WindowAssigner,
    lateness: std::time::Duration,
}

impl<K: Key, A: Data, B: Data> WindowedJoin<K, A, B> {
    /// Keeps windows for late records up to `lateness` past their end; each late record fires
    /// its window again (with every pair again, as Flink's).
    pub fn allowed_lateness(mut self, lateness: std::time::Duration) -> Self {
        self.lateness = lateness;
        self
    }

    /// Pairs every left record with every right record of the same key and window, and emits
    /// what `f` returns for each pair (Flink's `JoinFunction`).
    pub fn apply<O: Data>(self, name: &str, f: impl Fn(&A, &B) -> O + Clone + Send + Sync + 'static) -> DataStream<O> {
        let JoinEqual { join, left_key, right_key } = self.join;
        let left = join.left.map(&format!("{name}.left"), TwoInput::<A, B>::First);
        let right = join.right.map(&format!("{name}.right"), TwoInput::<A, B>::Second);
        left.union(&[right])
            .key_by(move |r: &TwoInput<A, B>| match r {
                TwoInput::First(a) => left_key(a),
                TwoInput::Second(b) => right_key(b),
            })
            .window(self.assigner)
            .allowed_lateness(self.lateness)
            .process(name, move || PairUp { f: f.clone(), _types: std::marker::PhantomData })
    }
}

/// The window function of a window join: every left record with every right one.
struct PairUp<K, A, B, O, F> {
    f: F,
    _types: std::marker::PhantomData<fn(K, A, B) -> O>,
}

impl<K: Key, A: Data, B: Data, O: Data, F: Fn(&A, &B) -> O + Send + 'static> ProcessWindowFunction
    for PairUp<K, A, B, O, F>
{
    type Key = K;
    type In = TwoInput<A, B>;
    type Out = O;
    fn process(&mut self, _: &K, elements: Vec<TwoInput<A, B>>, ctx: &mut WindowContext<'_, K, O>) -> Result<()> {
        let (mut lefts, mut rights) = (Vec::new(), Vec::new());
        for e in elements {
            match e {
                TwoInput::First(a) => lefts.push(a),
                TwoInput::Second(b) => rights.push(b),
            }
        }
        for a in &lefts {
            for b in &rights {
                ctx.emit((self.f)(a, b));
            }
        }
        Ok(())
    }
}

/// Two keyed streams to join by time intervals: see [`IntervalJoin::between`].
pub struct IntervalJoin<K, A, B> {
    left: KeyedStream<K, A>,
    right: KeyedStream<K, B>,
}

impl<K: Key, A: Data> KeyedStream<K, A> {
    /// Joins this stream's records with `other`'s of the same key whose timestamps are within
    /// an interval of theirs (Flink's `intervalJoin`); see the [module docs](crate::api::join).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut h = HarnessConfig::new()
    ///     .build_two_input(|orders: DataStream<(u32, i64)>, payments: DataStream<(u32, i64)>| {
    ///         orders
    ///             .key_by(|o: &(u32, i64)| o.0)
    ///             .interval_join(&payments.key_by(|p: &(u32, i64)| p.0))
    ///             .between(0, 100)
    ///             .process("paid", |o: &(u32, i64), p: &(u32, i64), ctx: &mut JoinContext<'_, u32, (u32, i64)>| {
    ///                 ctx.emit((o.0, p.1 - o.1));
    ///                 Ok(())
    ///             })
    ///     })
    ///     .unwrap();
    /// h.process1_at((7, 1_000), 1_000).unwrap();
    /// h.process2_at((7, 1_040), 1_040).unwrap(); // within [1000, 1100]
    /// h.process2_at((7, 1_200), 1_200).unwrap(); // too late to match
    /// assert_eq!(h.output(), vec![(7, 40)]);
    /// ```
    pub fn interval_join<B: Data>(&self, other: &KeyedStream<K, B>) -> IntervalJoin<K, A, B> {
        IntervalJoin { left: self.clone(), right: other.clone() }
    }
}

impl<K: Key, A: Data, B: Data> IntervalJoin<K, A, B> {
    /// Joins a left record at `t` with the right records at `t + lower ..= t + upper`
    /// (milliseconds; either may be negative; both inclusive until made exclusive).
    pub fn between(self, lower: i64, upper: i64) -> IntervalJoined<K, A, B> {
        IntervalJoined {
            join: self,
            lower,
            upper,
            lower_exclusive: false,
            upper_exclusive: false,
            left_late: None,
            right_late: None,
        }
    }
}

/// An interval join with its bounds, ready for its join function.
pub struct IntervalJoined<K, A, B> {
    join: IntervalJoin<K, A, B>,
    lower: i64,
    upper: i64,
    lower_exclusive: bool,
    upper_exclusive: bool,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
}

impl<K: Key, A: Data, B: Data> IntervalJoined<K, A, B> {
    /// Excludes the lower bound: `t + lower < r.ts`.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower_exclusive = true;
        self
    }

    /// Excludes the upper bound: `r.ts < t + upper`.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper_exclusive = true;
        self
    }

    /// Sends left records that arrive below the watermark to the side output `tag` instead
    /// of dropping them (Flink's `sideOutputLeftLateData`).
    pub fn side_output_left_late_data(mut self, tag: OutputTag<A>) -> Self {
        self.left_late = Some(tag);
        self
    }

    /// Sends late right records to the side output `tag` (Flink's `sideOutputRightLateData`).
    pub fn side_output_right_late_data(mut self, tag: OutputTag<B>) -> Self {
        self.right_late = Some(tag);
        self
    }

    /// Runs `f` on every joined pair (Flink's `ProcessJoinFunction`), with a [`JoinContext`]
    /// to emit results (at the later of the two timestamps) and read both timestamps.
    pub fn process<O, F>(self, name: &str, f: F) -> DataStream<O>
    where
        O: Data,
        F: Fn(&A, &B, &mut JoinContext<'_, K, O>) -> Result<()> + Clone + Send + Sync + 'static,
    {
        let lower = if self.lower_exclusive { self.lower.saturating_add(1) } else { self.lower };
        let upper = if self.upper_exclusive { self.upper.saturating_sub(1) } else { self.upper };
        let (left, right) = (&self.join.left, &self.join.right);
        if lower > upper {
            left.stream.fail(WeirError::Graph(format!(
                "interval join '{name}': the lower bound ({lower} ms) is above the upper bound ({upper} ms)"
            )));
        }
        let (left_late, right_late) = (self.left_late, self.right_late);
        left.connect(right).process(name, move || IntervalJoinFunction {
            lower,
            upper,
            f: f.clone(),
            left_late: left_late.clone(),
            right_late: right_late.clone(),
            left: None,
            right: None,
            _types: std::marker::PhantomData,
        })
    }
}

/// What a join function sees per joined pair: where to emit, and both records' timestamps.
pub struct JoinContext<'a, K: Key, O> {
    inner: KeyedContext<'a, K, O>,
    left: Timestamp,
    right: Timestamp,
}

impl<K: Key, O: Data> JoinContext<'_, K, O> {
    /// Emits a result, at the later of the two records' timestamps.
    pub fn emit(&mut self, value: O) {
        self.inner.emit(value);
    }

    /// Sends a record to the side output `tag`, at the later of the two timestamps.
    pub fn output<X: Data>(&mut self, tag: &OutputTag<X>, value: X) {
        self.inner.output(tag, value);
    }

    /// The key both records have.
    pub fn key(&self) -> &K {
        self.inner.key()
    }

    /// The left record's timestamp.
    pub fn left_timestamp(&self) -> Timestamp {
        self.left
    }

    /// The right record's timestamp.
    pub fn right_timestamp(&self) -> Timestamp {
        self.right
    }

    /// The result's timestamp: the later of the two.
    pub fn timestamp(&self) -> Timestamp {
        self.left.max(self.right)
    }
}

/// The interval join as a keyed two-input function: each side's records in a map state by
/// timestamp, dropped by event-time timers. A timer at `t` drops the left bucket and the
/// right bucket whose cleanup time is `t` (each side's cleanup time is a one-to-one function
/// of its bucket's timestamp, so the two need no separate timers).
struct IntervalJoinFunction<K, A, B, O, F> {
    lower: i64,
    upper: i64,
    f: F,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
    left: Option<MapState<Timestamp, Vec<A>>>,
    right: Option<MapState<Timestamp, Vec<B>>>,
    _types: std::marker::PhantomData<fn(K) -> O>,
}

impl<K, A, B, O, F> IntervalJoinFunction<K, A, B, O, F> {
    /// When a left bucket at `ts` can no longer join anything.
    fn left_cleanup(&self, ts: Timestamp) -> Timestamp {
        if self.upper > 0 { ts.saturating_add(self.upper) } else { ts }
    }

    /// When a right bucket at `ts` can no longer join anything.
    fn right_cleanup(&self, ts: Timestamp) -> Timestamp {
        if self.lower < 0 { ts.saturating_sub(self.lower) } else { ts }
    }
}

/// The record's timestamp, or an error saying that an interval join needs one.
fn timestamp_of<K: Key, O: Data>(ctx: &KeyedContext<'_, K, O>, side: &str) -> Result<Timestamp> {
    ctx.timestamp().ok_or_else(|| {
        WeirError::runtime(format!(
            "a {side} record of an interval join has no timestamp: assign timestamps and watermarks to both inputs"
        ))
    })
}

/// Adds `value` to the bucket of `ts`.
fn buffer<K: Key, O: Data, V: Data>(
    ctx: &mut KeyedContext<'_, K, O>,
    state: MapState<Timestamp, Vec<V>>,
    ts: Timestamp,
    value: V,
) -> Result<()> {
    let mut map = ctx.map(state);
    let mut bucket = map.get(&ts)?.unwrap_or_default();
    bucket.push(value);
    map.put(ts, bucket)
}

/// One side of the interval join, as a record of it arrives: its late output, its buffer,
/// the other side's buffer, the other side's timestamps it joins, and when its bucket goes.
struct Side<'a, V, W> {
    late: &'a Option<OutputTag<V>>,
    mine: MapState<Timestamp, Vec<V>>,
    other: MapState<Timestamp, Vec<W>>,
    range: (Timestamp, Timestamp),
    cleanup: Timestamp,
}

impl<V: Data, W: Data> Side<'_, V, W> {
    /// A record at `ts` of this side: late (side output or counted), or buffered and joined
    /// with every buffered record of the other side in range (`join` gets this side's record,
    /// the other's and the other's timestamp).
    fn record<K: Key, O: Data>(
        self,
        value: V,
        ts: Timestamp,
        ctx: &mut KeyedContext<'_, K, O>,
        mut join: impl FnMut(&V, &W, Timestamp, &mut KeyedContext<'_, K, O>) -> Result<()>,
    ) -> Result<()> {
        if ts < ctx.current_watermark() {
            match self.late {
                Some(tag) => ctx.output(tag, value),
                None => ctx.count_late(),
            }
            return Ok(());
        }
        buffer(ctx, self.mine, ts, value.clone())?;
        let (from, to) = self.range;
        for (other_ts, records) in ctx.map(self.other).entries()? {
            if (from..=to).contains(&other_ts) {
                for record in &records {
                    join(&value, record, other_ts, ctx)?;
                }
            }
        }
        ctx.register_event_time_timer(self.cleanup);
        Ok(())
    }
}

impl<K, A, B, O, F> KeyedCoProcessFunction for IntervalJoinFunction<K, A, B, O, F>
where
    K: Key,
    A: Data,
    B: Data,
    O: Data,
    F: Fn(&A, &B, &mut JoinContext<'_, K, O>) -> Result<()> + Send + 'static,
{
    type Key = K;
    type In1 = A;
    type In2 = B;
    type Out = O;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, K>) -> Result<()> {
        self.left = Some(ctx.map_state("interval-join-left")?);
        self.right = Some(ctx.map_state("interval-join-right")?);
        Ok(())
    }

    fn process1(&mut self, value: A, ctx: &mut KeyedContext<'_, K, O>) -> Result<()> {
        let ts = timestamp_of(ctx, "left")?;
        let side = Side {
            late: &self.left_late,
            mine: self.left.expect("opened"),
            other: self.right.expect("opened"),
            range: (ts.saturating_add(self.lower), ts.saturating_add(self.upper)),
            cleanup: self.left_cleanup(ts),
        };
        let f = &self.f;
        side.record(value, ts, ctx, |left, right, right_ts, ctx| {
            f(left, right, &mut JoinContext { inner: ctx.at(ts.max(right_ts)), left: ts, right: right_ts })
        })
    }

    fn process2(&mut self, value: B, ctx: &mut KeyedContext<'_, K, O>) -> Result<()> {
        let ts = timestamp_of(ctx, "right")?;
        let side = Side {
            late: &self.right_late,
            mine: self.right.expect("opened"),
            other: self.left.expect("opened"),
            range: (ts.saturating_sub(self.upper), ts.saturating_sub(self.lower)),
            cleanup: self.right_cleanup(ts),
        };
        let f = &self.f;
        side.record(value, ts, ctx, |right, left, left_ts, ctx| {
            f(left, right, &mut JoinContext { inner: ctx.at(ts.max(left_ts)), left: left_ts, right: ts })
        })
    }

    fn on_timer(&mut self, timestamp: Timestamp, _: TimeDomain, ctx: &mut KeyedContext<'_, K, O>) -> Result<()> {
        let left_ts = if self.upper > 0 { timestamp.saturating_sub(self.upper) } else { timestamp };
        let right_ts = if self.lower < 0 { timestamp.saturating_add(self.lower) } else { timestamp };
        ctx.map(self.left.expect("opened")).remove(&left_ts)?;
        ctx.map(self.right.expect("opened")).remove(&right_ts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
