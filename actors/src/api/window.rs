//! Windows: assigners (tumbling, sliding, session, global; event or processing time) and the
//! window operator that aggregates per key and window in keyed state and fires by timers.
//!
//! Semantics follow Flink's `WindowOperator` with its default triggers: an event-time window
//! fires when the watermark passes its last millisecond (`end - 1`); with allowed lateness its
//! state stays until `end - 1 + lateness`, and each late record within that bound fires the
//! window again with the updated result. A record whose every window is past cleanup is late:
//! it is counted (`late_records_dropped`) and, if asked for, sent to the late side output; it
//! is never merged into a result. Session windows merge when a record bridges two sessions.
//!
//! Decision: the window operator emits [`Windowed`] (key, window, result) rather than the bare
//! result, so jobs need no separate window function to know what they are looking at.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::{CheckpointBarrier, NO_TIMESTAMP, Timestamp};
use weir_state::ValueStateHandle;

use crate::api::functions::AggregateFunction;
use crate::api::keyed::KeySelector;
use crate::api::side_output::{OutputTag, emit_side};
use crate::base::data::{Data, Key};
use crate::base::error::WeirError;
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::keyed_state::KeyedParts;

/// A window of time `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: Timestamp,
    /// First millisecond after the window.
    pub end: Timestamp,
}

impl TimeWindow {
    /// The window that spans all time (global windows).
    pub const GLOBAL: TimeWindow = TimeWindow { start: Timestamp::MIN, end: Timestamp::MAX };

    /// The last millisecond in the window: when it fires.
    pub fn max_timestamp(&self) -> Timestamp {
        self.end - 1
    }

    /// Whether two windows overlap or touch (sessions that touch merge, as in Flink).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A window result: the key, the window and the aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Windowed<K, R> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: TimeWindow,
    /// The aggregate over the key's records in the window.
    pub value: R,
}

/// How records are assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAssigner {
    /// Fixed-size, non-overlapping windows.
    Tumbling {
        /// Window length (ms).
        size: i64,
        /// Shift of window starts from the epoch (ms).
        offset: i64,
        /// The clock that assigns and fires.
        domain: TimeDomain,
    },
    /// Fixed-size windows starting every `slide`.
    Sliding {
        /// Window length (ms).
        size: i64,
        /// Distance between window starts (ms).
        slide: i64,
        /// Shift of window starts from the epoch (ms).
        offset: i64,
        /// The clock that assigns and fires.
        domain: TimeDomain,
    },
    /// Windows per key that close after `gap` without records.
    Session {
        /// Inactivity gap (ms).
        gap: i64,
        /// The clock that assigns and fires.
        domain: TimeDomain,
    },
    /// One window over all time, per key; it fires when the input ends.
    Global,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl WindowAssigner {
    /// The clock this assigner follows (global windows: event time, firing at end of input).
    pub fn domain(&self) -> TimeDomain {
        match *self {
            WindowAssigner::Tumbling { domain, .. }
            | WindowAssigner::Sliding { domain, .. }
            | WindowAssigner::Session { domain, .. } => domain,
            WindowAssigner::Global => TimeDomain::EventTime,
        }
    }

    /// Checks sizes: a window must have a positive length.
    pub fn validate(&self) -> Result<(), WeirError> {
        let ok = match *self {
            WindowAssigner::Tumbling { size, .. } => size > 0,
            WindowAssigner::Sliding { size, slide, .. } => size > 0 && slide > 0,
            WindowAssigner::Session { gap, .. } => gap > 0,
            WindowAssigner::Global => true,
        };
        if ok { Ok(()) } else { Err(WeirError::Graph(format!("window sizes must be positive: {self:?}"))) }
    }

    /// The windows a record at `ts` belongs to (not for sessions, which merge).
    pub(crate) fn assign(&self, ts: Timestamp, out: &mut Vec<TimeWindow>) {
        out.clear();
        match *self {
            WindowAssigner::Tumbling { size, offset, .. } => {
                let start = ts - (ts - offset).rem_euclid(size);
                out.push(TimeWindow { start, end: start + size });
            }
            WindowAssigner::Sliding { size, slide, offset, .. } => {
                let last_start = ts - (ts - offset).rem_euclid(slide);
                let mut start = last_start;
                while start > ts - size {
                    out.push(TimeWindow { start, end: start + size });
                    start -= slide;
                }
            }
            WindowAssigner::Session { gap, .. } => out.push(TimeWindow { start: ts, end: ts.saturating_add(gap) }),
            WindowAssigner::Global => out.push(TimeWindow::GLOBAL),
        }
    }
}

/// Tumbling windows.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir_actors::prelude::*;
///
/// let mut out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("clicks", vec![("u1".to_owned(), 10), ("u1".to_owned(), 20), ("u1".to_owned(), 1500)])
///         .key_by(|u: &String| u.clone())
///         .window(Tumbling::event_time(Duration::from_secs(1)))
///         .aggregate("count", Count)
/// }).unwrap();
/// out.sort();
/// assert_eq!(out[0].value, 2);
/// assert_eq!(out[0].window, TimeWindow { start: 0, end: 1000 });
/// assert_eq!(out[1].value, 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Tumbling;

impl Tumbling {
    /// Event-time tumbling windows of `size`.
    pub fn event_time(size: Duration) -> WindowAssigner {
        WindowAssigner::Tumbling { size: millis(size), offset: 0, domain: TimeDomain::EventTime }
    }
    /// Processing-time tumbling windows of `size`.
    pub fn processing_time(size: Duration) -> WindowAssigner {
        WindowAssigner::Tumbling { size: millis(size), offset: 0, domain: TimeDomain::ProcessingTime }
    }
}

/// Sliding windows.
#[derive(Debug, Clone, Copy)]
pub struct Sliding;

impl Sliding {
    /// Event-time windows of `size` every `slide`.
    pub fn event_time(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner::Sliding { size: millis(size), slide: millis(slide), offset: 0, domain: TimeDomain::EventTime }
    }
    /// Processing-time windows of `size` every `slide`.
    pub fn processing_time(size: Duration, slide: Duration) -> WindowAssigner {
        WindowAssigner::Sliding {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
            domain: TimeDomain::ProcessingTime,
        }
    }
}

/// Session windows.
#[derive(Debug, Clone, Copy)]
pub struct Session;

impl Session {
    /// Event-time sessions closed by `gap` of inactivity.
    pub fn event_time(gap: Duration) -> WindowAssigner {
        WindowAssigner::Session { gap: millis(gap), domain: TimeDomain::EventTime }
    }
    /// Processing-time sessions closed by `gap` of inactivity.
    pub fn processing_time(gap: Duration) -> WindowAssigner {
        WindowAssigner::Session { gap: millis(gap), domain: TimeDomain::ProcessingTime }
    }
}

/// One window per key over all time, fired when the input ends (bounded jobs' final results).
#[derive(Debug, Clone, Copy)]
pub struct Global;

impl Global {
    /// The global window assigner.
    #[allow(clippy::new_ret_no_self, reason = "assigner builders return the assigner, as Tumbling::event_time does")]
    pub fn new() -> WindowAssigner {
        WindowAssigner::Global
    }
}

type Sessions<A> = Vec<(TimeWindow, A)>;

/// Runs one keyed window aggregation in a chain.
pub(crate) struct WindowLink<K: Key, T, A: AggregateFunction<T>> {
    pub(crate) assigner: WindowAssigner,
    pub(crate) lateness: i64,
    /// The side output late records go to, if any.
    pub(crate) late: Option<OutputTag<T>>,
    pub(crate) agg: Arc<A>,
    pub(crate) selector: KeySelector<T, K>,
    pub(crate) parts: Option<KeyedParts<K, TimeWindow>>,
    pub(crate) accs: Option<ValueStateHandle<TimeWindow, A::Acc>>,
    pub(crate) sessions: Option<ValueStateHandle<(), Sessions<A::Acc>>>,
    pub(crate) down: Outputs<Windowed<K, A::Out>>,
    pub(crate) name: LinkInfo,
    pub(crate) scratch: Vec<TimeWindow>,
    pub(crate) _types: PhantomData<fn(T)>,
}

impl<K: Key, T: Data, A: AggregateFunction<T>> WindowLink<K, T, A> {
    pub(crate) fn new(
        assigner: WindowAssigner,
        lateness: i64,
        late: Option<OutputTag<T>>,
        agg: Arc<A>,
        selector: KeySelector<T, K>,
        down: Outputs<Windowed<K, A::Out>>,
        name: LinkInfo,
    ) -> Self {
        WindowLink {
            // Processing time has no lateness: records are never behind the clock.
            lateness: if assigner.domain() == TimeDomain::EventTime { lateness.max(0) } else { 0 },
            assigner,
            late,
            agg,
            selector,
            parts: None,
            accs: None,
            sessions: None,
            down,
            name,
            scratch: Vec::new(),
            _types: PhantomData,
        }
    }

    fn event_time(&self) -> bool {
        self.assigner.domain() == TimeDomain::EventTime
    }

    fn cleanup_time(&self, w: &TimeWindow) -> Timestamp {
        w.max_timestamp().saturating_add(self.lateness)
    }

    /// Registers the firing (and cleanup) timers of `w`, or fires now if the watermark is past it.
    fn schedule(&mut self, key: &K, w: TimeWindow, acc: &A::Acc, io: &mut TaskIo) {
        let event_time = self.event_time();
        let cleanup = self.cleanup_time(&w);
        let parts = self.parts.as_mut().expect("opened");
        if event_time {
            if w.max_timestamp() <= io.watermark {
                // A late record within allowed lateness: fire again with the updated result.
                let out = Windowed { key: key.clone(), window: w, value: self.agg.result(acc) };
                self.down.record(out, w.max_timestamp(), io);
            } else {
                parts.event_timers.register(w.max_timestamp(), key, &w);
            }
            parts.event_timers.register(cleanup, key, &w);
        } else if parts.processing_timers.register(w.max_timestamp(), key, &w) {
            io.request_processing_time(w.max_timestamp());
        }
    }

    fn on_record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) -> Result<(), WeirError> {
        let event_time = self.event_time();
        let ts = match self.assigner {
            WindowAssigner::Global => ts,
            _ if !event_time => io.now_ms(),
            _ if ts == NO_TIMESTAMP => {
                return Err(WeirError::user(
                    "an event-time window got a record without a timestamp (give the source a watermark strategy or timestamps)",
                ));
            }
            _ => ts,
        };
        let key = (self.selector)(&value);
        if let WindowAssigner::Session { .. } = self.assigner {
            return self.on_session_record(key, value, ts, io);
        }
        let mut windows = std::mem::take(&mut self.scratch);
        self.assigner.assign(ts, &mut windows);
        let mut skipped = true;
        for &w in &windows {
            if event_time && w != TimeWindow::GLOBAL && self.cleanup_time(&w) <= io.watermark {
                continue;
            }
            skipped = false;
            let parts = self.parts.as_mut().expect("opened");
            let kg = parts.key_group(&key);
            let agg = &*self.agg;
            let mut fresh = None;
            parts.store.value(self.accs.expect("opened")).upsert(kg, &key, &w, &mut |acc| match acc {
                Some(acc) => {
                    agg.add(acc, &value);
                    None
                }
                None => {
                    let mut acc = agg.create();
                    agg.add(&mut acc, &value);
                    fresh = Some(());
                    Some(acc)
                }
            })?;
            let late_firing = event_time && w.max_timestamp() <= io.watermark;
            if fresh.is_some() || late_firing {
                let acc =
                    if late_firing { parts.store.value(self.accs.expect("opened")).get(kg, &key, &w)? } else { None };
                match acc {
                    Some(acc) => self.schedule(&key, w, &acc, io),
                    None => self.schedule_timers_only(&key, w, io),
                }
            }
        }
        self.scratch = windows;
        if skipped && event_time && ts.saturating_add(self.lateness) <= io.watermark {
            self.late(value, ts, io);
        }
        Ok(())
    }

    /// Timers for a new window that is not (yet) late.
    fn schedule_timers_only(&mut self, key: &K, w: TimeWindow, io: &mut TaskIo) {
        let cleanup = self.cleanup_time(&w);
        let event_time = self.event_time();
        let parts = self.parts.as_mut().expect("opened");
        if event_time {
            parts.event_timers.register(w.max_timestamp(), key, &w);
            parts.event_timers.register(cleanup, key, &w);
        } else if parts.processing_timers.register(w.max_timestamp(), key, &w) {
            io.request_processing_time(w.max_timestamp());
        }
    }

    fn late(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        io.late_records += 1;
        if let Some(tag) = &self.late {
            emit_side(&mut self.down, tag, value, ts, io);
        }
    }

    fn on_session_record(&mut self, key: K, value: T, ts: Timestamp, io: &mut TaskIo) -> Result<(), WeirError> {
        let event_time = self.event_time();
        if event_time && ts.saturating_add(self.lateness) <= io.watermark {
            self.late(value, ts, io);
            return Ok(());
        }
        let WindowAssigner::Session { gap, .. } = self.assigner else { unreachable!("session assigner") };
        let handle = self.sessions.expect("opened");
        let parts = self.parts.as_mut().expect("opened");
        let kg = parts.key_group(&key);
        let mut sessions = parts.store.value(handle).remove(kg, &key, &())?.unwrap_or_default();
        let mut merged = TimeWindow { start: ts, end: ts.saturating_add(gap) };
        let mut acc = self.agg.create();
        self.agg.add(&mut acc, &value);
        // Merge until no session touches the growing window (a record can bridge several).
        while let Some(i) = sessions.iter().position(|(w, _)| w.intersects(&merged)) {
            let (w, other) = sessions.swap_remove(i);
            merged = merged.cover(&w);
            self.agg.merge(&mut acc, other);
            let cleanup = w.max_timestamp().saturating_add(self.lateness);
            if event_time {
                parts.event_timers.delete(w.max_timestamp(), &key, &w);
                parts.event_timers.delete(cleanup, &key, &w);
            } else {
                parts.processing_timers.delete(w.max_timestamp(), &key, &w);
            }
        }
        let snapshot = acc.clone();
        sessions.push((merged, acc));
        sessions.sort_by_key(|(w, _)| w.start);
        parts.store.value(handle).put(kg, &key, &(), sessions)?;
        self.schedule(&key, merged, &snapshot, io);
        Ok(())
    }

    fn fire(&mut self, domain: TimeDomain, upto: Timestamp, io: &mut TaskIo) -> Result<(), WeirError> {
        let lateness = self.lateness;
        loop {
            let parts = self.parts.as_mut().expect("opened");
            let timers = match domain {
                TimeDomain::EventTime => &mut parts.event_timers,
                TimeDomain::ProcessingTime => &mut parts.processing_timers,
            };
            let Some((t, key, w)) = timers.pop_due(upto) else { return Ok(()) };
            let kg = parts.key_group(&key);
            let fires = t == w.max_timestamp();
            let cleans = domain == TimeDomain::ProcessingTime || t == w.max_timestamp().saturating_add(lateness);
            let acc = if let Some(handle) = self.sessions {
                let sessions = parts.store.value(handle).get(kg, &key, &())?.unwrap_or_default();
                let Some(pos) = sessions.iter().position(|(s, _)| *s == w) else { continue };
                let acc = sessions[pos].1.clone();
                if cleans {
                    let mut sessions = sessions;
                    sessions.swap_remove(pos);
                    if sessions.is_empty() {
                        parts.store.value(handle).remove(kg, &key, &())?;
                    } else {
                        sessions.sort_by_key(|(w, _)| w.start);
                        parts.store.value(handle).put(kg, &key, &(), sessions)?;
                    }
                }
                Some(acc)
            } else {
                let table = parts.store.value(self.accs.expect("opened"));
                if cleans { table.remove(kg, &key, &w)? } else { table.get(kg, &key, &w)? }
            };
            if let (true, Some(acc)) = (fires, acc) {
                let out = Windowed { key, window: w, value: self.agg.result(&acc) };
                self.down.record(out, w.max_timestamp(), io);
            }
        }
    }
}

impl<K: Key, T: Data, A: AggregateFunction<T>> Link<T> for WindowLink<K, T, A> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        let mut parts = match KeyedParts::open(io, self.name.node) {
            Ok(parts) => parts,
            Err(e) => {
                io.fail(e.in_operator(&self.name));
                return;
            }
        };
        let registered = match self.assigner {
            WindowAssigner::Session { .. } => {
                parts.store.value_state("window-sessions").map(|h| self.sessions = Some(h))
            }
            _ => parts.store.value_state("window-contents").map(|h| self.accs = Some(h)),
        };
        if let Err(e) = registered {
            io.fail(WeirError::from(e).in_operator(&self.name));
        }
        if let Some(restored) = io.restored.clone()
            && let Err(e) = parts.restore(&restored, self.name.node, io)
        {
            io.fail(e.in_operator(&self.name));
        }
        self.parts = Some(parts);
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.parts.as_mut().expect("opened").snapshot_into(&self.name, barrier, io, out);
        self.down.checkpoint(barrier, io, out);
    }

    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        if let Some(parts) = &self.parts {
            parts.timers(out);
        }
        self.down.timers(out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        if let Some(parts) = &mut self.parts {
            parts.checkpoint_complete(id);
        }
        self.down.checkpoint_complete(id, io);
    }

    #[inline]
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.on_record(value, ts, io) {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.fire(TimeDomain::EventTime, wm, io) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.watermark(wm, io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.fire(TimeDomain::ProcessingTime, now, io) {
            io.fail(e.in_operator(&self.name));
        }
        if let Some(parts) = &self.parts {
            parts.report_next_processing_timer(io);
        }
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        // Processing-time windows still open when a bounded input ends fire now, as Flink
        // does at end of input; event-time ones fired with the final watermark.
        if drain && let Err(e) = self.fire(TimeDomain::ProcessingTime, Timestamp::MAX, io) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        self.down.close(io);
    }
}

#[cfg(test)]
mod tests;
