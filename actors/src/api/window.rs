//! Windows: assigners (tumbling, sliding, session, global; event or processing time), window
//! functions and their contexts; the [`trigger`]s that fire windows, the [`evictor`]s that
//! drop records from them, and the window operator (`operator`) that keeps each key's windows
//! in keyed state.
//!
//! Semantics follow Flink's `WindowOperator` with its default triggers: an event-time window
//! fires when the watermark passes its last millisecond (`end - 1`); with allowed lateness its
//! state stays until `end - 1 + lateness`, and each late record within that bound fires the
//! window again with the updated result. A record whose every window is past cleanup is late:
//! it is counted (`late_records_dropped`) and, if asked for, sent to the late side output; it
//! is never merged into a result. Session windows merge when a record bridges two sessions.
//! Count windows are global windows with a count trigger (and, sliding, a count evictor), as
//! Flink builds them.
//!
//! Decision: the window operator emits [`Windowed`] (key, window, result) rather than the bare
//! result, so jobs need no separate window function to know what they are looking at.

use std::time::Duration;

use weir_dataplane::Timestamp;
use weir_state::{KeyedStateStore, StateData, StateKey, ValueStateHandle};

use crate::api::keyed::{ValueAccess, ValueState};
use crate::api::side_output::{OutputTag, emit_side};
use crate::base::data::{Data, Key};
use crate::base::error::WeirError;
use crate::base::link::{Link, Outputs};
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;

pub mod evictor;
pub(crate) mod operator;
pub mod trigger;

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

#[cfg(test)]
mod tests;
