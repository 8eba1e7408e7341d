//! Watermarks: the strategy a stream's event time follows ([`WatermarkStrategy`]), the
//! generators that derive watermarks from timestamps ([`WatermarkGenerator`]), and the link that
//! assigns timestamps and watermarks anywhere in a dataflow (Flink's
//! `TimestampsAndWatermarksOperator`). (How watermarks combine across input channels, as the
//! minimum with idle channels ignored, is the dataplane's `WatermarkValve`.)
//!
//! A source applies its strategy to what it emits, and emits its watermark after every poll
//! (a batch): per batch rather than per `auto_watermark_interval`, so that a source's
//! watermarks follow its records deterministically, at no cost worth saving; a source that
//! reads splits may have a generator per split, its watermark their minimum ([`SplitId`], see
//! `splits.rs`). Anywhere else,
//! `assign_timestamps_and_watermarks` runs the strategy in a link: each record gets its
//! timestamp from the assigner and goes to the generator; the generator's periodic emission
//! runs every `auto_watermark_interval` of processing time (the job's, default 200 ms, as
//! Flink's); watermarks from upstream are dropped, except the final one.

use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::{CheckpointBarrier, MAX_WATERMARK, Timestamp};

use crate::base::data::Data;
use crate::base::link::Link;
use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;

pub use crate::base::time::DEFAULT_AUTO_WATERMARK_INTERVAL;

mod splits;
pub use splits::SplitId;
pub(crate) use splits::SplitWatermarks;

/// What a generator emits: a watermark, or that its stream is idle (or active again).
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    watermark: Option<Timestamp>,
    idle: Option<bool>,
}

impl WatermarkOutput {
    /// Emits `watermark` (one at or below the last emitted is ignored). It marks the stream
    /// active.
    pub fn emit_watermark(&mut self, watermark: Timestamp) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.idle = Some(false);
    }

    /// Marks the stream idle: it does not hold the watermark back downstream until it emits
    /// again.
    pub fn mark_idle(&mut self) {
        self.idle = Some(true);
    }

    /// Marks the stream active again.
    pub fn mark_active(&mut self) {
        self.idle = Some(false);
    }

    /// The highest watermark emitted, if any.
    pub(crate) fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// The idleness last marked, if any.
    pub(crate) fn idle(&self) -> Option<bool> {
        self.idle
    }
}

/// Derives watermarks from the events of one subtask (Flink's `WatermarkGenerator`): on each
/// event (a punctuated generator emits here), and periodically (a periodic one emits here).
pub trait WatermarkGenerator<T>: Send {
    /// An event with its timestamp.
    fn on_event(&mut self, event: &T, timestamp: Timestamp, output: &mut WatermarkOutput);
    /// Called periodically: after every poll at a source, every `auto_watermark_interval`
    /// elsewhere, and once at the end of input.
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);
}

/// Timestamps up to `bound_ms` out of order: the watermark is the highest timestamp seen − the
/// bound − 1 (Flink's `BoundedOutOfOrdernessWatermarks`).
#[derive(Debug, Clone, Copy)]
pub struct BoundedOutOfOrderness {
    max_timestamp: Timestamp,
    bound_ms: i64,
}

impl BoundedOutOfOrderness {
    /// A generator for timestamps up to `bound` out of order.
    pub fn new(bound: Duration) -> Self {
        BoundedOutOfOrderness { max_timestamp: Timestamp::MIN, bound_ms: duration_ms(bound) }
    }

    #[inline]
    fn see(&mut self, timestamp: Timestamp) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    fn watermark(&self) -> Option<Timestamp> {
        (self.max_timestamp != Timestamp::MIN)
            .then(|| self.max_timestamp.saturating_sub(self.bound_ms).saturating_sub(1))
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    fn on_event(&mut self, _event: &T, timestamp: Timestamp, _output: &mut WatermarkOutput) {
        self.see(timestamp);
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        if let Some(wm) = self.watermark() {
            output.emit_watermark(wm);
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a stream is idle (Flink's `IdlenessTimer`): no new event for the idle timeout,
/// measured from the periodic check that last saw one.
#[derive(Debug, Clone, Copy)]
struct IdlenessTimer {
    /// The events count at the last check.
    last_events: u64,
    /// Since when (processing time) it has not changed.
    quiet_since: Timestamp,
}

impl IdlenessTimer {
    /// A timer started at processing time `now`.
    fn new(now: Timestamp) -> Self {
        IdlenessTimer { last_events: 0, quiet_since: now }
    }

    /// A periodic check at `now`, `events` seen so far: idle once they have not changed for
    /// `timeout` (never without one).
    fn is_idle(&mut self, events: u64, now: Timestamp, timeout: Option<Duration>) -> bool {
        if events != self.last_events {
            (self.last_events, self.quiet_since) = (events, now);
        }
        timeout.is_some_and(|timeout| now.saturating_sub(self.quiet_since) >= duration_ms(timeout))
    }
}

/// Extracts a record's event timestamp; gets the timestamp it carries (`NO_TIMESTAMP`: none).
pub type TimestampAssigner<T> = Arc<dyn Fn(&T, Timestamp) -> Timestamp + Send + Sync>;

/// Makes a subtask's generator.
type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// Which generator a strategy makes: the built-in ones are matched directly on the record path.
enum Generator<T> {
    None,
    Bounded(Duration),
    Custom(GeneratorFactory<T>),
}

/// How a stream's event time goes (Flink's `WatermarkStrategy`): where timestamps come from,
/// how watermarks are derived from them, and when the stream counts as idle.
pub struct WatermarkStrategy<T> {
    generator: Generator<T>,
    assigner: Option<TimestampAssigner<T>>,
    idle_timeout: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        let generator = match &self.generator {
            Generator::None => Generator::None,
            Generator::Bounded(b) => Generator::Bounded(*b),
            Generator::Custom(f) => Generator::Custom(f.clone()),
        };
        WatermarkStrategy { generator, assigner: self.assigner.clone(), idle_timeout: self.idle_timeout }
    }
}

impl<T> std::fmt::Debug for WatermarkStrategy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generator = match &self.generator {
            Generator::None => "none".to_owned(),
            Generator::Bounded(b) => format!("bounded out-of-orderness {b:?}"),
            Generator::Custom(_) => "custom".to_owned(),
        };
        f.debug_struct("WatermarkStrategy")
            .field("generator", &generator)
            .field("assigner", &self.assigner.is_some())
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// No watermarks (only the final one when a bounded input ends).
    pub fn none() -> Self {
        WatermarkStrategy { generator: Generator::None, assigner: None, idle_timeout: None }
    }

    /// Timestamps may be up to `bound` out of order (Flink's `forBoundedOutOfOrderness`).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy { generator: Generator::Bounded(bound), ..Self::none() }
    }

    /// Timestamps never decrease (Flink's `forMonotonousTimestamps`).
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// Watermarks from a generator of your own, one made per subtask (Flink's
    /// `forGenerator`).
    pub fn for_generator<G, F>(make: F) -> Self
    where
        G: WatermarkGenerator<T> + 'static,
        F: Fn() -> G + Send + Sync + 'static,
    {
        let factory: GeneratorFactory<T> = Arc::new(move || Box::new(make()));
        WatermarkStrategy { generator: Generator::Custom(factory), ..Self::none() }
    }

    /// Takes each record's timestamp from `assign(record, timestamp it carries)` instead of the
    /// timestamp it carries.
    pub fn with_timestamp_assigner(
        mut self,
        assign: impl Fn(&T, Timestamp) -> Timestamp + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(assign));
        self
    }

    /// Marks the stream idle after `timeout` without records, so it does not hold the
    /// watermark back downstream; its next record makes it active again.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Whether it emits watermarks at all (a source then emits one record a poll, see
    /// `VecSource`).
    pub(crate) fn emits_watermarks(&self) -> bool {
        !matches!(self.generator, Generator::None)
    }

    /// After how long without records the stream is idle.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// A subtask's instance of the strategy.
    pub(crate) fn start(&self) -> EventTime<T> {
        let generator = match &self.generator {
            Generator::None => Active::None,
            Generator::Bounded(bound) => Active::Bounded(BoundedOutOfOrderness::new(*bound)),
            Generator::Custom(make) => Active::Custom(make()),
        };
        EventTime { generator, assigner: self.assigner.clone(), output: WatermarkOutput::default(), events: 0 }
    }
}

/// A subtask's generator: the built-in one without a virtual call per record.
enum Active<T> {
    None,
    Bounded(BoundedOutOfOrderness),
    Custom(Box<dyn WatermarkGenerator<T>>),
}

/// A strategy at work in one subtask: timestamps assigned, events seen, watermarks proposed.
pub(crate) struct EventTime<T> {
    generator: Active<T>,
    assigner: Option<TimestampAssigner<T>>,
    output: WatermarkOutput,
    /// Events seen (idleness is no new event between two periodic checks).
    pub(crate) events: u64,
}

impl<T> EventTime<T> {
    /// Whether a source must show it each record: it assigns timestamps or has a generator of
    /// its own. (A source tracks its highest timestamp anyway, which is all a built-in
    /// generator needs: see [`resume`](Self::resume).)
    pub(crate) fn sees_records(&self) -> bool {
        self.assigner.is_some() || matches!(self.generator, Active::Custom(_))
    }

    /// An event: its timestamp (assigned, or the one it carries), which the generator sees.
    #[inline]
    pub(crate) fn on_event(&mut self, event: &T, timestamp: Timestamp) -> Timestamp {
        let timestamp = match &self.assigner {
            Some(assign) => assign(event, timestamp),
            None => timestamp,
        };
        self.events += 1;
        match &mut self.generator {
            Active::None => {}
            Active::Bounded(bounded) => bounded.see(timestamp),
            Active::Custom(generator) => generator.on_event(event, timestamp, &mut self.output),
        }
        timestamp
    }

    /// The highest timestamp a source has read (after a restore: had read), for a built-in
    /// generator, which needs no more.
    pub(crate) fn resume(&mut self, max_timestamp: Timestamp) {
        if let Active::Bounded(bounded) = &mut self.generator {
            bounded.see(max_timestamp);
        }
    }

    /// Whether the generator may have emitted from `on_event` (only a custom one does).
    #[inline]
    pub(crate) fn punctuated(&self) -> bool {
        matches!(self.generator, Active::Custom(_))
    }

    /// The periodic emission.
    pub(crate) fn on_periodic_emit(&mut self) {
        match &mut self.generator {
            Active::None => {}
            Active::Bounded(bounded) => {
                <BoundedOutOfOrderness as WatermarkGenerator<T>>::on_periodic_emit(bounded, &mut self.output)
            }
            Active::Custom(generator) => generator.on_periodic_emit(&mut self.output),
        }
    }

    /// What the generator emitted since the last call.
    pub(crate) fn take(&mut self) -> WatermarkOutput {
        std::mem::take(&mut self.output)
    }
}

/// Where a link's emitted watermarks stand.
#[derive(Debug)]
struct Emitted {
    watermark: Timestamp,
    idle: bool,
}

impl Emitted {
    /// Passes what a generator emitted on to `down`: a watermark above the last one, and a
    /// change of idleness. With `io.watermark` set to the new watermark meanwhile.
    fn apply<T>(&mut self, output: WatermarkOutput, down: &mut dyn Link<T>, io: &mut TaskIo) {
        if let Some(wm) = output.watermark
            && wm > self.watermark
        {
            self.watermark = wm;
            if std::mem::take(&mut self.idle) {
                down.idle(false, io);
            }
            let input = std::mem::replace(&mut io.watermark, wm);
            down.watermark(wm, io);
            io.watermark = input;
        } else if let Some(idle) = output.idle
            && idle != self.idle
        {
            self.idle = idle;
            down.idle(idle, io);
        }
    }
}

/// Assigns timestamps and watermarks to a stream anywhere in a dataflow (Flink's
/// `TimestampsAndWatermarksOperator`): see the [module docs](self).
pub(crate) struct TimestampsAndWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    time: Option<EventTime<T>>,
    emitted: Emitted,
    down: Box<dyn Link<T>>,
    /// The next periodic emission (processing time).
    next_emit: Timestamp,
    idleness: IdlenessTimer,
}

impl<T: Data> TimestampsAndWatermarks<T> {
    pub(crate) fn new(strategy: WatermarkStrategy<T>, down: Box<dyn Link<T>>) -> Self {
        TimestampsAndWatermarks {
            strategy,
            time: None,
            emitted: Emitted { watermark: Timestamp::MIN, idle: false },
            down,
            next_emit: Timestamp::MAX,
            idleness: IdlenessTimer::new(Timestamp::MIN),
        }
    }

    fn schedule(&mut self, now: Timestamp, io: &mut TaskIo) {
        let interval = duration_ms(io.watermark_interval).max(1);
        self.next_emit = now.saturating_add(interval);
        io.request_processing_time(self.next_emit);
    }

    fn emit(&mut self, io: &mut TaskIo) {
        let Some(time) = self.time.as_mut() else { return };
        let output = time.take();
        self.emitted.apply(output, &mut *self.down, io);
    }
}

impl<T: Data> Link<T> for TimestampsAndWatermarks<T> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        self.time = Some(self.strategy.start());
        let now = io.now_ms();
        self.idleness = IdlenessTimer::new(now);
        self.schedule(now, io);
    }

    #[inline]
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        let time = self.time.as_mut().expect("opened");
        let ts = time.on_event(&value, ts);
        let punctuated = time.punctuated();
        if self.emitted.idle {
            self.emitted.idle = false;
            self.down.idle(false, io);
        }
        let input = std::mem::replace(&mut io.watermark, self.emitted.watermark);
        self.down.record(value, ts, io);
        io.watermark = input;
        if punctuated {
            self.emit(io);
        }
    }

    /// Upstream watermarks are dropped, except the final one (the end of input).
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        if wm == MAX_WATERMARK && self.emitted.watermark != MAX_WATERMARK {
            if let Some(time) = self.time.as_mut() {
                time.on_periodic_emit();
            }
            self.emit(io);
            self.emitted.watermark = MAX_WATERMARK;
            self.down.watermark(MAX_WATERMARK, io);
        }
    }

    /// Upstream idleness is dropped: this link decides its stream's.
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        if self.emitted.watermark == MAX_WATERMARK {
            // Event time has ended: nothing more to emit.
            self.next_emit = Timestamp::MAX;
        } else if now >= self.next_emit
            && let Some(time) = self.time.as_mut()
        {
            if self.idleness.is_idle(time.events, now, self.strategy.idle_timeout) {
                if !self.emitted.idle {
                    self.emitted.idle = true;
                    self.down.idle(true, io);
                }
            } else {
                time.on_periodic_emit();
                self.emit(io);
            }
            self.schedule(now, io);
        } else if self.next_emit != Timestamp::MAX {
            io.request_processing_time(self.next_emit);
        }
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.down.checkpoint(barrier, io, out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.down.checkpoint_complete(id, io);
    }

    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.down.timers(out);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        self.down.close(io);
    }
}

#[cfg(test)]
mod tests;
