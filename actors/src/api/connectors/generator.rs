//! A deterministic, seeded generator of events: bounded or unbounded, rate-limited or not,
//! with bounded out-of-order event timestamps. What it generates is an [`EventSequence`]: the
//! click events of [`GeneratorConfig`], or Nexmark's (`connectors::nexmark`).
//!
//! Event `i` (of the whole job) is a pure function of `(seed, i)`; subtask `j` of `p`
//! generates the events `i ≡ j (mod p)`. Timestamps advance with `i` and are pulled back by at
//! most `out_of_order_ms`, which is also the watermark bound, so no record is ever late: the
//! output of a job is the same at any parallelism and any rate.
//!
//! A checkpoint keeps each subtask's position: "the events `i ≡ offset (mod stride)` below
//! `next` are emitted". Restored at another parallelism, a subtask emits its new residue
//! class minus every event some old position covers; until it has passed them all, its own
//! checkpoints carry those inherited positions along, so a second rescale (2 → 3 → 1) still
//! knows what the first run emitted.

use std::time::Duration;

use weir_dataplane::Timestamp;

use crate::api::job_args::JobArgs;
use crate::api::operator::OpenContext;
use crate::api::source::{Source, SourceContext};
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::time::wall_clock_ms;
use crate::runtime::nodes::ValidateContext;
use crate::runtime::source_head::SourcePoll;
use crate::runtime::watermark::WatermarkStrategy;

/// A generated click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Click {
    /// The user who clicked, `0..keys`.
    pub user: u32,
    /// Event time (ms).
    pub time: Timestamp,
    /// The event's index in the whole generated sequence.
    pub index: u64,
}

impl Click {
    /// The click's number among its user's clicks (`0, 1, 2, …`) when users take turns
    /// ([`GeneratorConfig::keys_in_turn`]) among `keys` users.
    #[inline]
    pub fn key_sequence(&self, keys: u32) -> u64 {
        self.index / u64::from(keys)
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorConfig {
    /// Total events; `None` for an unbounded stream.
    pub events: Option<u64>,
    /// Distinct users.
    pub keys: u32,
    /// Seed of the pseudo-random users and disorder.
    pub seed: u64,
    /// Events per second over all subtasks; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// How far (ms) a timestamp may be behind the highest one before it.
    pub out_of_order_ms: i64,
    /// Events per second of event time (the event clock's speed).
    pub event_time_rate: u64,
    /// Users take turns (`user = index % keys`) instead of being drawn at random: user `u`'s
    /// `n`-th event is event `n * keys + u`, so [`Click::key_sequence`] numbers each user's
    /// events `0, 1, 2, …`, and with `keys` a multiple of the parallelism every user's events
    /// come from one subtask, in order (the semantics check's input).
    pub keys_in_turn: bool,
    /// Every `late_every`-th event (0: none) is [`late_ms`](Self::late_ms) behind its time:
    /// late data, when that is more than the watermark bound. Only events after the first
    /// `2 × late_ms` of event time are moved, so that whether one is late does not depend on
    /// how far the other source subtasks got (as long as they are less than `late_ms` apart).
    pub late_every: u64,
    /// How far (ms) a late event is behind.
    pub late_ms: i64,
    /// Event time of event 0 (ms since the epoch).
    pub base_time: Timestamp,
    /// Event time is the wall clock: each event is emitted once the clock reaches its time
    /// (see [`EventSequence::real_time`]), so `event_time_rate` is also the wall-clock rate.
    pub real_time: bool,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            events: Some(10_000),
            keys: 100,
            seed: 1,
            rate: None,
            out_of_order_ms: 0,
            event_time_rate: 1000,
            keys_in_turn: false,
            late_every: 0,
            late_ms: 0,
            base_time: 0,
            real_time: false,
        }
    }
}

impl GeneratorConfig {
    /// Reads the generator arguments shared by the examples: `--events`, `--keys`, `--seed`,
    /// `--rate`, `--out-of-order-ms`, `--event-time-rate`, `--late-every`, `--late-ms`,
    /// `--base-time-ms`, `--real-time`.
    pub fn from_args(args: &JobArgs) -> Result<Self> {
        let d = GeneratorConfig::default();
        let config = GeneratorConfig {
            events: args.parse_opt("events")?,
            keys: args.parse_or("keys", d.keys)?,
            seed: args.parse_or("seed", d.seed)?,
            rate: args.parse_opt("rate")?,
            out_of_order_ms: args.parse_or("out-of-order-ms", d.out_of_order_ms)?,
            event_time_rate: args.parse_or("event-time-rate", d.event_time_rate)?,
            keys_in_turn: d.keys_in_turn,
            late_every: args.parse_or("late-every", d.late_every)?,
            late_ms: args.parse_or("late-ms", d.late_ms)?,
            base_time: args.parse_or("base-time-ms", d.base_time)?,
            real_time: args.parse_or("real-time", d.real_time)?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(WeirError::Argument(m.to_owned()));
        if self.keys == 0 {
            return bad("--keys must be at least 1");
        }
        if !(0..=MAX_OUT_OF_ORDER_MS).contains(&self.out_of_order_ms) {
            return bad(&format!(
                "--out-of-order-ms must be 0 to {MAX_OUT_OF_ORDER_MS} (a year), not {}",
                self.out_of_order_ms
            ));
        }
        if !(0..=MAX_OUT_OF_ORDER_MS).contains(&self.late_ms) {
            return bad(&format!("--late-ms must be 0 to {MAX_OUT_OF_ORDER_MS} (a year), not {}", self.late_ms));
        }
        if self.event_time_rate == 0 {
            return bad("--event-time-rate must be at least 1");
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate.is_finite())
        {
            return bad("--rate must be a positive number of events per second");
        }
        if self.real_time && self.rate.is_some() {
            return bad("--real-time paces events by their time (--event-time-rate from --base-time-ms); drop --rate");
        }
        Ok(())
    }

    /// Event `index` of the sequence.
    #[inline]
    pub fn event(&self, index: u64) -> Click {
        let h = mix(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let user = if self.keys_in_turn { index % u64::from(self.keys) } else { h % u64::from(self.keys) } as u32;
        let disorder = if self.out_of_order_ms == 0 { 0 } else { (mix(h) % (self.out_of_order_ms as u64 + 1)) as i64 };
        let base = event_time_ms(index, self.event_time_rate);
        let late = self.late_every > 0
            && index % self.late_every == self.late_every - 1
            && base >= self.late_ms.saturating_mul(2);
        let behind = if late { self.late_ms } else { 0 };
        let time = base.saturating_add(self.out_of_order_ms - disorder) - behind;
        Click { user, time: time.saturating_add(self.base_time), index }
    }
}

/// The event time (ms from the base time) of event `index` at `rate` events per second:
/// `index × 1000 / rate`, saturating rather than wrapping at the (unreachable in practice) end
/// of time. In 64 bits whenever `index × 1000` fits, which it does below 1.8 × 10^16 events: the
/// 128-bit division needed otherwise is a call into the compiler's runtime (`__udivti3`), 10 of
/// the benchmark's ~570 instructions per event (callgrind, keyed case).
#[inline]
pub(super) fn event_time_ms(index: u64, rate: u64) -> i64 {
    match index.checked_mul(1000) {
        Some(ms) => i64::try_from(ms / rate).unwrap_or(i64::MAX),
        None => i64::try_from(u128::from(index) * 1000 / u128::from(rate)).unwrap_or(i64::MAX),
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed, stable hash.
#[inline]
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Events that are each a pure function of their index in the sequence: what a [`Generator`]
/// emits, subtask `j` of `p` the events `i ≡ j (mod p)`.
pub trait EventSequence: Clone + Send + Sync + 'static {
    /// The event type.
    type Event: Data;
    /// Event `index` and its event timestamp.
    fn generate(&self, index: u64) -> (Self::Event, Timestamp);
    /// How many events (`None`: unbounded).
    fn events(&self) -> Option<u64>;
    /// Events per second of wall-clock time over all subtasks (`None`: as fast as possible).
    fn rate(&self) -> Option<f64>;
    /// How far a timestamp may be behind the highest before it: the watermark bound.
    fn out_of_orderness(&self) -> Duration;
    /// Checks the configuration (an error names the bad argument).
    fn check(&self) -> Result<()>;
    /// Whether event times are wall-clock times (epoch milliseconds) at which the events are
    /// made: each is emitted once the wall clock reaches its time, not before, so that the
    /// time from an event's timestamp to a sink is its end-to-end latency (a latency
    /// benchmark's input; the reference generator's events are timed so).
    fn real_time(&self) -> bool {
        false
    }
}

impl EventSequence for GeneratorConfig {
    type Event = Click;
    #[inline]
    fn generate(&self, index: u64) -> (Click, Timestamp) {
        let click = self.event(index);
        (click, click.time)
    }
    fn events(&self) -> Option<u64> {
        self.events
    }
    fn rate(&self) -> Option<f64> {
        self.rate
    }
    fn out_of_orderness(&self) -> Duration {
        Duration::from_millis(self.out_of_order_ms as u64)
    }
    fn check(&self) -> Result<()> {
        GeneratorConfig::check(self)
    }
    fn real_time(&self) -> bool {
        self.real_time
    }
}

/// The generator source.
///
/// # Examples
///
/// ```
/// use weir_actors::prelude::*;
///
/// let config = GeneratorConfig { events: Some(100), keys: 5, ..GeneratorConfig::default() };
/// let out = MiniCluster::collect(move |env| env.source("clicks", Generator::new(config))).unwrap();
/// assert_eq!(out.len(), 100);
/// assert!(out.iter().all(|c| c.user < 5));
/// ```
#[derive(Debug, Clone)]
pub struct Generator<S = GeneratorConfig> {
    config: S,
    next: u64,
    stride: u64,
    emitted: u64,
    started: Option<tokio::time::Instant>,
    subtask_rate: Option<f64>,
    /// After a restore at another parallelism: what earlier subtasks emitted already.
    done: Vec<Position>,
    done_below: u64,
}

/// The largest `--out-of-order-ms`: a year (event times stay far from overflowing).
const MAX_OUT_OF_ORDER_MS: i64 = 365 * 24 * 3600 * 1000;

/// A generator subtask's position: it emits the events `offset, offset + stride, …` and has
/// emitted those below `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Position {
    stride: u64,
    offset: u64,
    next: u64,
}

impl Position {
    fn covers(&self, index: u64) -> bool {
        index < self.next && index % self.stride == self.offset
    }
}

/// What a checkpoint keeps of a generator subtask: its own position, and the positions of
/// earlier subtasks (another parallelism) whose events it has not passed yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct GeneratorState {
    position: Position,
    inherited: Vec<Position>,
}

impl<S: EventSequence> Generator<S> {
    /// A generator of `config`'s events.
    pub fn new(config: S) -> Self {
        Generator {
            config,
            next: 0,
            stride: 1,
            emitted: 0,
            started: None,
            subtask_rate: None,
            done: Vec::new(),
            done_below: 0,
        }
    }
}

impl<S: EventSequence> Source for Generator<S> {
    type Out = S::Event;

    fn validate(&self, _ctx: &ValidateContext) -> Result<()> {
        self.config.check()
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        let info = ctx.subtask();
        self.next = info.index as u64;
        self.stride = info.parallelism as u64;
        self.subtask_rate = self.config.rate().map(|r| r / info.parallelism as f64);
        Ok(())
    }

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, S::Event>) -> Result<SourcePoll> {
        let mut budget = ctx.batch_size() as u64;
        if let Some(rate) = self.subtask_rate {
            let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
            let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
            if due <= self.emitted {
                let wait = (self.emitted + 1) as f64 / rate - started.elapsed().as_secs_f64();
                return Ok(SourcePoll::Pending(Duration::from_secs_f64(wait.clamp(0.0005, 1.0))));
            }
            budget = budget.min(due - self.emitted);
        }
        let end = self.config.events().unwrap_or(u64::MAX);
        let real_time = self.config.real_time();
        let mut now = Timestamp::MIN;
        for _ in 0..budget {
            if self.next >= end {
                return Ok(SourcePoll::Finished);
            }
            if self.next < self.done_below && self.done.iter().any(|p| p.covers(self.next)) {
                self.next += self.stride;
                continue;
            }
            let (event, ts) = self.config.generate(self.next);
            // The clock is read again only for an event ahead of the last reading.
            if real_time && ts > now {
                now = wall_clock_ms();
                if ts > now {
                    // Made again when due (the position does not move past it).
                    let wait = Duration::from_millis(u64::try_from(ts - now).unwrap_or(0));
                    return Ok(SourcePoll::Pending(wait.min(Duration::from_secs(1))));
                }
            }
            ctx.emit_at(event, ts);
            self.next += self.stride;
            self.emitted += 1;
        }
        Ok(if self.next >= end { SourcePoll::Finished } else { SourcePoll::Ready })
    }

    fn watermark_strategy(&self) -> WatermarkStrategy<S::Event> {
        WatermarkStrategy::bounded_out_of_orderness(self.config.out_of_orderness())
    }

    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        let position = Position { stride: self.stride, offset: self.next % self.stride, next: self.next };
        // Once past every inherited event, this subtask's own position covers them.
        let inherited = if self.next < self.done_below { self.done.clone() } else { Vec::new() };
        postcard::to_allocvec(&GeneratorState { position, inherited })
            .map_err(|e| WeirError::runtime(format!("cannot encode a position: {e}")))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let corrupt = |e: &dyn std::fmt::Display| {
            WeirError::runtime(format!("the generator's checkpointed position is corrupt: {e}"))
        };
        let states = states
            .iter()
            .map(|b| postcard::from_bytes::<GeneratorState>(b))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| corrupt(&e))?;
        for p in states.iter().flat_map(|s| std::iter::once(&s.position).chain(&s.inherited)) {
            if p.stride == 0 || p.offset >= p.stride {
                return Err(corrupt(&format_args!("offset {} with stride {}", p.offset, p.stride)));
            }
        }
        let done: Vec<Position> = match states.as_slice() {
            // The same subtask at the same parallelism: resume where it stood.
            [own] if own.position.stride == self.stride && own.position.offset == self.next % self.stride => {
                self.next = own.position.next;
                own.inherited.clone()
            }
            // Another parallelism: emit what no earlier subtask emitted.
            _ => states.into_iter().flat_map(|s| std::iter::once(s.position).chain(s.inherited)).collect(),
        };
        let mut done = done;
        done.sort_unstable();
        done.dedup();
        self.done_below = done.iter().map(|p| p.next).max().unwrap_or(0);
        self.done = done;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
