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
use weir_state::{KeyedStateStore, StateData, StateKey, ValueStateHandle};

use crate::api::functions::AggregateFunction;
use crate::api::keyed::{KeySelector, ValueAccess, ValueState};
use crate::api::side_output::{OutputTag, emit_side};
use crate::base::data::{Data, Key};
use crate::base::error::WeirError;
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::subtask::SubtaskInfo;
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

/// A window function given all of a window's elements when it fires (Flink's
/// `ProcessWindowFunction`), with a [`WindowContext`]: the window, the watermark, state kept
/// per window and per key, and where to emit. With
/// [`aggregate_with`](crate::api::stream::WindowedStream::aggregate_with) it is given the
/// window's incremental aggregate instead, as its one element.
///
/// ```
/// use std::time::Duration;
/// use weir_actors::prelude::*;
///
/// /// `key start..end: n records, max v`.
/// struct Describe;
///
/// impl ProcessWindowFunction for Describe {
///     type Key = char;
///     type In = (char, u32);
///     type Out = String;
///     fn process(&mut self, key: &char, elements: Vec<(char, u32)>, ctx: &mut WindowContext<'_, char, String>) -> Result<()> {
///         let max = elements.iter().map(|e| e.1).max().unwrap_or(0);
///         let w = ctx.window();
///         ctx.emit(format!("{key} {}..{}: {} records, max {max}", w.start, w.end, elements.len()));
///         Ok(())
///     }
/// }
///
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("r", vec![(('a', 4), 100), (('a', 9), 700), (('a', 1), 1_200)])
///         .key_by(|r: &(char, u32)| r.0)
///         .window(Tumbling::event_time(Duration::from_secs(1)))
///         .process("describe", || Describe)
/// }).unwrap();
/// assert_eq!(out, ["a 0..1000: 2 records, max 9", "a 1000..2000: 1 records, max 1"]);
/// ```
pub trait ProcessWindowFunction: Send + 'static {
    /// The key type.
    type Key: Key;
    /// What the window holds: the records, or the incremental aggregate's result.
    type In: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first window: register state here.
    fn open(&mut self, ctx: &mut WindowOpenContext<'_, Self::Key>) -> Result<(), WeirError> {
        let _ = ctx;
        Ok(())
    }

    /// The window fired: its elements, in arrival order (a session's: those of each session
    /// it merged, by start, then the record that merged them, and so on).
    fn process(
        &mut self,
        key: &Self::Key,
        elements: Vec<Self::In>,
        ctx: &mut WindowContext<'_, Self::Key, Self::Out>,
    ) -> Result<(), WeirError>;

    /// The window is dropped (the watermark passed its end plus the allowed lateness): clear
    /// its per-window state here.
    fn clear(&mut self, ctx: &mut WindowContext<'_, Self::Key, Self::Out>) -> Result<(), WeirError> {
        let _ = ctx;
        Ok(())
    }
}

/// A value kept per key and window (its handle; register it in
/// [`ProcessWindowFunction::open`]).
pub type WindowState<V> = ValueStateHandle<TimeWindow, V>;

/// Where a window function registers its state.
pub struct WindowOpenContext<'a, K: StateKey> {
    pub(crate) store: &'a mut KeyedStateStore<K>,
    pub(crate) info: &'a SubtaskInfo,
}

impl<K: Key> WindowOpenContext<'_, K> {
    /// A value kept per key, across its windows (Flink's `globalState`).
    pub fn value_state<V: StateData>(&mut self, name: &str) -> Result<ValueState<V>, WeirError> {
        Ok(self.store.value_state(name)?)
    }

    /// A value kept per key and window (Flink's `windowState`).
    pub fn window_state<V: StateData>(&mut self, name: &str) -> Result<WindowState<V>, WeirError> {
        Ok(self.store.value_state(name)?)
    }

    /// The subtask this function runs in.
    pub fn subtask(&self) -> &SubtaskInfo {
        self.info
    }
}

/// What a window function sees when a window fires or is dropped.
pub struct WindowContext<'a, K: StateKey, O> {
    pub(crate) key: &'a K,
    pub(crate) key_group: weir_dataplane::KeyGroup,
    pub(crate) window: TimeWindow,
    /// Session windows merge: they have no per-window state.
    pub(crate) merging: bool,
    pub(crate) store: &'a mut KeyedStateStore<K>,
    pub(crate) out: &'a mut Outputs<O>,
    pub(crate) io: &'a mut TaskIo,
}

impl<K: Key, O: Data> WindowContext<'_, K, O> {
    /// The window.
    pub fn window(&self) -> TimeWindow {
        self.window
    }

    /// The key.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }

    /// The current processing time (ms since the epoch).
    pub fn processing_time(&self) -> Timestamp {
        self.io.now_ms()
    }

    /// Emits a record at the window's last millisecond (its timestamp, as Flink's).
    #[inline]
    pub fn emit(&mut self, value: O) {
        self.out.record(value, self.window.max_timestamp(), self.io);
    }

    /// Sends a record to the side output `tag`, at the window's last millisecond.
    pub fn output<X: Data>(&mut self, tag: &OutputTag<X>, value: X) {
        emit_side(self.out, tag, value, self.window.max_timestamp(), self.io);
    }

    /// This key's value of `state` in this window. Session windows, which merge, have none
    /// (as in Flink): that is an error.
    pub fn window_state<V: StateData>(
        &mut self,
        state: WindowState<V>,
    ) -> Result<ValueAccess<'_, K, V, TimeWindow>, WeirError> {
        if self.merging {
            return Err(WeirError::user("session windows merge: they have no per-window state (use global state)"));
        }
        Ok(ValueAccess::new(self.store.value(state), self.key_group, self.key, &self.window))
    }

    /// This key's value of `state`, across its windows.
    pub fn global_state<V: StateData>(&mut self, state: ValueState<V>) -> ValueAccess<'_, K, V> {
        ValueAccess::new(self.store.value(state), self.key_group, self.key, &())
    }
}

/// All of a window's records, for a [`ProcessWindowFunction`].
pub(crate) struct Elements;

impl<T: Data> AggregateFunction<T> for Elements {
    type Acc = Vec<T>;
    type Out = Vec<T>;
    fn create(&self) -> Vec<T> {
        Vec::new()
    }
    #[inline]
    fn add(&self, acc: &mut Vec<T>, value: &T) {
        acc.push(value.clone());
    }
    fn merge(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
    }
    fn result(&self, acc: &Vec<T>) -> Vec<T> {
        acc.clone()
    }
}

/// A key's open sessions, by start. A deque: sessions close oldest first (timers fire in time
/// order) and open newest last, so both ends move in O(1). (Encoded as a `Vec` would be:
/// postcard writes both as a length and the elements.)
type Sessions<A> = std::collections::VecDeque<(TimeWindow, A)>;

/// Runs one keyed window aggregation in a chain; `E` makes the output of each firing.
pub(crate) struct WindowLink<K: Key, T, A: AggregateFunction<T>, E: WindowEmit<K, A::Out>> {
    pub(crate) assigner: WindowAssigner,
    pub(crate) lateness: i64,
    /// The side output late records go to, if any.
    pub(crate) late: Option<OutputTag<T>>,
    pub(crate) agg: Arc<A>,
    pub(crate) selector: KeySelector<T, K>,
    pub(crate) parts: Option<KeyedParts<K, TimeWindow>>,
    pub(crate) accs: Option<ValueStateHandle<TimeWindow, A::Acc>>,
    pub(crate) sessions: Option<ValueStateHandle<(), Sessions<A::Acc>>>,
    pub(crate) emit: E,
    pub(crate) down: Outputs<E::Out>,
    pub(crate) name: LinkInfo,
    pub(crate) scratch: Vec<TimeWindow>,
    pub(crate) _types: PhantomData<fn(T)>,
}

/// How a window operator's firing becomes output: [`Windowed`] results, or what a
/// [`ProcessWindowFunction`] makes of them.
pub(crate) trait WindowEmit<K: Key, R>: Send + 'static {
    type Out: Data;
    /// Registers the function's state.
    fn open(&mut self, ctx: &mut WindowOpenContext<'_, K>) -> Result<(), WeirError> {
        let _ = ctx;
        Ok(())
    }
    /// The window fired with `result`.
    fn fire(&mut self, result: R, ctx: &mut WindowContext<'_, K, Self::Out>) -> Result<(), WeirError>;
    /// The window is dropped (its allowed lateness passed).
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, Self::Out>) -> Result<(), WeirError> {
        let _ = ctx;
        Ok(())
    }
}

/// Emits each firing as a [`Windowed`] result.
pub(crate) struct EmitWindowed;

impl<K: Key, R: Data> WindowEmit<K, R> for EmitWindowed {
    type Out = Windowed<K, R>;
    #[inline]
    fn fire(&mut self, result: R, ctx: &mut WindowContext<'_, K, Windowed<K, R>>) -> Result<(), WeirError> {
        let out = Windowed { key: ctx.key.clone(), window: ctx.window, value: result };
        ctx.emit(out);
        Ok(())
    }
}

/// Hands each firing to a [`ProcessWindowFunction`], as its elements (`elements` turns the
/// aggregate into them: all the window's records, or the one incremental result).
pub(crate) struct EmitProcess<F: ProcessWindowFunction, R> {
    pub(crate) f: F,
    pub(crate) elements: fn(R) -> Vec<F::In>,
}

impl<F: ProcessWindowFunction, R: 'static> WindowEmit<F::Key, R> for EmitProcess<F, R> {
    type Out = F::Out;
    fn open(&mut self, ctx: &mut WindowOpenContext<'_, F::Key>) -> Result<(), WeirError> {
        self.f.open(ctx)
    }
    fn fire(&mut self, result: R, ctx: &mut WindowContext<'_, F::Key, F::Out>) -> Result<(), WeirError> {
        let key = ctx.key.clone();
        self.f.process(&key, (self.elements)(result), ctx)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, F::Key, F::Out>) -> Result<(), WeirError> {
        self.f.clear(ctx)
    }
}

impl<K: Key, T: Data, A: AggregateFunction<T>, E: WindowEmit<K, A::Out>> WindowLink<K, T, A, E> {
    #[allow(clippy::too_many_arguments, reason = "the window operator's parts, given once")]
    pub(crate) fn new(
        assigner: WindowAssigner,
        lateness: i64,
        late: Option<OutputTag<T>>,
        agg: Arc<A>,
        selector: KeySelector<T, K>,
        emit: E,
        down: Outputs<E::Out>,
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
            emit,
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
        if !event_time {
            if parts.processing_timers.register(w.max_timestamp(), key, &w) {
                io.request_processing_time(w.max_timestamp());
            }
            return;
        }
        let late_firing = w.max_timestamp() <= io.watermark;
        if !late_firing {
            parts.event_timers.register(w.max_timestamp(), key, &w);
        }
        parts.event_timers.register(cleanup, key, &w);
        if late_firing {
            // A late record within allowed lateness: fire again with the updated result.
            let result = self.agg.result(acc);
            if let Err(e) = self.output(key, w, Some(result), false, io) {
                io.fail(e.in_operator(&self.name));
            }
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
        let (agg, lateness) = (&*self.agg, self.lateness);
        let KeyedParts { store, event_timers, processing_timers, .. } = parts;
        let mut merged = TimeWindow { start: ts, end: ts.saturating_add(gap) };
        let mut snapshot = None;
        // Changed in place (one lookup): a key may hold many sessions.
        store.value(handle).upsert(kg, &key, &(), &mut |current| {
            let mut fresh = None;
            let sessions = match current {
                Some(sessions) => sessions,
                None => fresh.insert(Sessions::new()),
            };
            // A key's sessions are sorted by start and apart (touching ones merged): those the
            // record's window touches are one run of them, found by binary search; the window
            // grows over each (a record can bridge several). Their accumulators fold in by
            // start, then the record.
            let first = sessions.partition_point(|(w, _)| w.end < merged.start);
            let mut end = first;
            while end < sessions.len() && sessions[end].0.start <= merged.end {
                merged = merged.cover(&sessions[end].0);
                end += 1;
            }
            let mut acc = agg.create();
            for (w, other) in sessions.drain(first..end) {
                agg.merge(&mut acc, other);
                let cleanup = w.max_timestamp().saturating_add(lateness);
                if event_time {
                    event_timers.delete(w.max_timestamp(), &key, &w);
                    event_timers.delete(cleanup, &key, &w);
                } else {
                    processing_timers.delete(w.max_timestamp(), &key, &w);
                }
            }
            agg.add(&mut acc, &value);
            snapshot = Some(acc.clone());
            sessions.insert(first, (merged, acc));
            fresh
        })?;
        let snapshot = snapshot.expect("upsert calls once");
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
                // Changed in place (not cloned): a key may hold many sessions.
                let (mut acc, mut emptied) = (None, false);
                parts.store.value(handle).upsert(kg, &key, &(), &mut |current| {
                    if let Some(sessions) = current {
                        let found = sessions.binary_search_by_key(&w.start, |(s, _)| s.start);
                        if let Some(i) = found.ok().filter(|&i| sessions[i].0 == w) {
                            acc = if cleans { sessions.remove(i).map(|(_, a)| a) } else { Some(sessions[i].1.clone()) };
                        }
                        emptied = sessions.is_empty();
                    }
                    None
                })?;
                if emptied {
                    parts.store.value(handle).remove(kg, &key, &())?;
                }
                let Some(acc) = acc else { continue };
                Some(acc)
            } else {
                let table = parts.store.value(self.accs.expect("opened"));
                if cleans { table.remove(kg, &key, &w)? } else { table.get(kg, &key, &w)? }
            };
            let result = match (fires, acc) {
                (true, Some(acc)) => Some(self.agg.result(&acc)),
                _ => None,
            };
            if result.is_some() || cleans {
                self.output(&key, w, result, cleans, io)?;
            }
        }
    }

    /// `w` of `key` fires with `result` (if any), then is dropped if `clears`.
    fn output(
        &mut self,
        key: &K,
        w: TimeWindow,
        result: Option<A::Out>,
        clears: bool,
        io: &mut TaskIo,
    ) -> Result<(), WeirError> {
        let parts = self.parts.as_mut().expect("opened");
        let key_group = parts.key_group(key);
        let merging = self.sessions.is_some();
        let mut ctx =
            WindowContext { key, key_group, window: w, merging, store: &mut parts.store, out: &mut self.down, io };
        if let Some(result) = result {
            self.emit.fire(result, &mut ctx)?;
        }
        if clears {
            self.emit.clear(&mut ctx)?;
        }
        Ok(())
    }
}

impl<K: Key, T: Data, A: AggregateFunction<T>, E: WindowEmit<K, A::Out>> Link<T> for WindowLink<K, T, A, E> {
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
        let info = io.info.clone();
        if let Err(e) = self.emit.open(&mut WindowOpenContext { store: &mut parts.store, info: &info }) {
            io.fail(e.in_operator(&self.name));
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
