//! Triggers: when a window fires, and when its contents are purged (Flink's `Trigger`).
//!
//! The window operator asks its trigger on every record (`on_element`) and on every timer of a
//! window (`on_event_time`, `on_processing_time`); the answer fires the window, purges its
//! contents, both, or neither. A trigger keeps what it needs per key and window in window
//! state and sets its own timers; the operator still drops each window (its contents, the
//! trigger's state via [`Trigger::clear`], the window function's state) when the watermark
//! passes its end plus the allowed lateness (processing time: its end), as Flink does.
//!
//! The assigner's own trigger is [`DefaultTrigger`]: event time fires when the watermark passes
//! the window's last millisecond, processing time when the clock does. The built-in others are
//! Flink's: [`CountTrigger`], [`ContinuousEventTimeTrigger`] and
//! [`ContinuousProcessingTimeTrigger`] (both a [`ContinuousTrigger`]), and [`PurgingTrigger`].

use std::time::Duration;

use weir_dataplane::{KeyGroup, Timestamp};
use weir_state::{KeyedStateStore, StateData, StateKey, TimerService};

use crate::api::keyed::ValueAccess;
use crate::api::window::{TimeWindow, WindowOpenContext, WindowState};
use crate::base::data::Key;
use crate::base::error::{Result, WeirError};
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::keyed_state::KeyedParts;

/// What a trigger decides for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window function runs on the window's contents; they are kept.
    Fire,
    /// The window's contents are dropped without firing (the window stays, as do the
    /// trigger's state and timers).
    Purge,
    /// The window fires, then its contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window fires.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the window's contents are dropped.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// Decides when a window fires (Flink's `Trigger`). Made once per operator subtask (cloned
/// from the one given to [`WindowedStream::trigger`](crate::api::stream::WindowedStream::trigger));
/// anything it must remember per key and window goes in window state registered in
/// [`open`](Self::open), so that it is checkpointed and rescaled with the key.
///
/// ```
/// use weir_actors::prelude::*;
///
/// /// Fires every window whose record is above 100 at once, and otherwise as the watermark passes it.
/// #[derive(Clone)]
/// struct Urgent;
///
/// impl Trigger<u32> for Urgent {
///     fn on_element<K: Key>(&mut self, v: &u32, ts: Timestamp, w: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<TriggerResult> {
///         if *v > 100 {
///             return Ok(TriggerResult::Fire);
///         }
///         DefaultTrigger::event_time().on_element(v, ts, w, ctx)
///     }
///     fn on_event_time<K: Key>(&mut self, t: Timestamp, w: TimeWindow, _: &mut TriggerContext<'_, K>) -> Result<TriggerResult> {
///         Ok(if t == w.max_timestamp() { TriggerResult::Fire } else { TriggerResult::Continue })
///     }
///     fn on_processing_time<K: Key>(&mut self, _: Timestamp, _: TimeWindow, _: &mut TriggerContext<'_, K>) -> Result<TriggerResult> {
///         Ok(TriggerResult::Continue)
///     }
///     fn clear<K: Key>(&mut self, w: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
///         ctx.delete_event_time_timer(w.max_timestamp());
///         Ok(())
///     }
/// }
///
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("v", vec![(5, 10), (500, 20), (7, 30)])
///         .key_by(|_: &u32| 0u8)
///         .window(Tumbling::event_time(std::time::Duration::from_secs(1)))
///         .trigger(Urgent)
///         .aggregate("count", Count)
/// }).unwrap();
/// let counts: Vec<u64> = out.iter().map(|w| w.value).collect();
/// assert_eq!(counts, [2, 3]); // at the record of 500, then at the window's end
/// ```
pub trait Trigger<T>: Clone + Send + Sync + 'static {
    /// Registers the trigger's state (once per operator subtask, before any record).
    fn open<K: Key>(&mut self, ctx: &mut WindowOpenContext<'_, K>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// A record at `ts` was added to `window`.
    fn on_element<K: Key>(
        &mut self,
        value: &T,
        ts: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult>;

    /// An event-time timer at `time` of `window` (set by this trigger or the operator's
    /// cleanup) is due.
    fn on_event_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult>;

    /// A processing-time timer at `time` of `window` is due.
    fn on_processing_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult>;

    /// Whether the trigger works with merging (session) windows: then it implements
    /// [`on_merge`](Self::on_merge).
    fn can_merge(&self) -> bool {
        false
    }

    /// Windows merged into `window` (they are [`TriggerContext::merged_windows`]; each is
    /// [`clear`](Self::clear)ed afterwards): fold their state into `window`'s and set its timers.
    fn on_merge<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        let _ = (window, ctx);
        Err(WeirError::user("this trigger cannot merge windows"))
    }

    /// `window` is dropped: delete the trigger's timers and state for it.
    fn clear<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()>;
}

/// What a trigger sees: the key and window it decides for, the clocks, its timers and its
/// window state.
pub struct TriggerContext<'a, K: StateKey> {
    key: &'a K,
    key_group: KeyGroup,
    window: TimeWindow,
    store: &'a mut KeyedStateStore<K>,
    event_timers: &'a mut TimerService<K, TimeWindow>,
    processing_timers: &'a mut TimerService<K, TimeWindow>,
    io: &'a mut TaskIo,
    merged: &'a [TimeWindow],
    /// Whether the window got its first record now (or may have: merged, restored): the
    /// default trigger sets its timer only then, sparing a timer lookup per record.
    fresh: bool,
}

impl<'a, K: Key> TriggerContext<'a, K> {
    /// The context of `key`'s `window` (`merged`: the windows merged into it; `fresh`: it got
    /// its first record now, or may have).
    pub(crate) fn new(
        parts: &'a mut KeyedParts<K, TimeWindow>,
        key: &'a K,
        key_group: KeyGroup,
        window: TimeWindow,
        io: &'a mut TaskIo,
        merged: &'a [TimeWindow],
        fresh: bool,
    ) -> Self {
        let KeyedParts { store, event_timers, processing_timers, .. } = parts;
        TriggerContext { key, key_group, window, store, event_timers, processing_timers, io, merged, fresh }
    }

    /// The key whose window this is.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }

    /// The current processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> Timestamp {
        self.io.now_ms()
    }

    /// Calls [`Trigger::on_event_time`] for this window when the watermark reaches `time`
    /// (one timer per key, window and time).
    pub fn register_event_time_timer(&mut self, time: Timestamp) {
        self.event_timers.register(time, self.key, &self.window);
    }

    /// Deletes an event-time timer of this window.
    pub fn delete_event_time_timer(&mut self, time: Timestamp) {
        self.event_timers.delete(time, self.key, &self.window);
    }

    /// Calls [`Trigger::on_processing_time`] for this window when the clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: Timestamp) {
        if self.processing_timers.register(time, self.key, &self.window) {
            self.io.request_processing_time(time);
        }
    }

    /// Deletes a processing-time timer of this window.
    pub fn delete_processing_time_timer(&mut self, time: Timestamp) {
        self.processing_timers.delete(time, self.key, &self.window);
    }

    /// This key's value of `state` in this window.
    pub fn window_state<V: StateData>(&mut self, state: WindowState<V>) -> ValueAccess<'_, K, V, TimeWindow> {
        ValueAccess::new(self.store.value(state), self.key_group, self.key, &self.window)
    }

    /// In [`Trigger::on_merge`]: the windows merged into this one.
    pub fn merged_windows(&self) -> &[TimeWindow] {
        self.merged
    }

    /// In [`Trigger::on_merge`]: folds the merged windows' values of `state` into this
    /// window's with `f` (Flink's `mergePartitionedState`), removing theirs.
    pub fn merge_window_state<V: StateData>(&mut self, state: WindowState<V>, f: impl Fn(V, V) -> V) -> Result<()> {
        let table = self.store.value(state);
        let mut acc = table.remove(self.key_group, self.key, &self.window)?;
        for w in self.merged {
            if let Some(v) = table.remove(self.key_group, self.key, w)? {
                acc = Some(match acc {
                    Some(a) => f(a, v),
                    None => v,
                });
            }
        }
        if let Some(v) = acc {
            table.put(self.key_group, self.key, &self.window, v)?;
        }
        Ok(())
    }
}

/// The assigner's own trigger: an event-time window (and the global window, whose end is the
/// end of input) fires when the watermark passes its last millisecond, and again for each
/// late record within the allowed lateness; a processing-time window when the clock passes
/// its last millisecond (Flink's `EventTimeTrigger` and `ProcessingTimeTrigger`).
///
/// It sets its timer when a window gets its first record (and when windows merge), not on
/// every record as Flink's does: the same timer, without a lookup per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTrigger {
    domain: TimeDomain,
}

impl DefaultTrigger {
    /// Flink's `EventTimeTrigger`.
    pub fn event_time() -> Self {
        DefaultTrigger { domain: TimeDomain::EventTime }
    }

    /// Flink's `ProcessingTimeTrigger`.
    pub fn processing_time() -> Self {
        DefaultTrigger { domain: TimeDomain::ProcessingTime }
    }

    /// The trigger of windows in `domain`.
    pub fn of(domain: TimeDomain) -> Self {
        DefaultTrigger { domain }
    }
}

impl<T> Trigger<T> for DefaultTrigger {
    #[inline]
    fn on_element<K: Key>(
        &mut self,
        _: &T,
        _: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        let end = window.max_timestamp();
        Ok(match self.domain {
            // The watermark is past the window: a late record within allowed lateness.
            TimeDomain::EventTime if end <= ctx.current_watermark() => TriggerResult::Fire,
            _ if !ctx.fresh => TriggerResult::Continue,
            TimeDomain::EventTime => {
                ctx.register_event_time_timer(end);
                TriggerResult::Continue
            }
            TimeDomain::ProcessingTime => {
                ctx.register_processing_time_timer(end);
                TriggerResult::Continue
            }
        })
    }

    fn on_event_time<K: Key>(
        &mut self,
        t: Timestamp,
        w: TimeWindow,
        _: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        let fires = self.domain == TimeDomain::EventTime && t == w.max_timestamp();
        Ok(if fires { TriggerResult::Fire } else { TriggerResult::Continue })
    }

    fn on_processing_time<K: Key>(
        &mut self,
        t: Timestamp,
        w: TimeWindow,
        _: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        let fires = self.domain == TimeDomain::ProcessingTime && t == w.max_timestamp();
        Ok(if fires { TriggerResult::Fire } else { TriggerResult::Continue })
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        let end = window.max_timestamp();
        match self.domain {
            TimeDomain::EventTime if end > ctx.current_watermark() => ctx.register_event_time_timer(end),
            TimeDomain::ProcessingTime if end > ctx.current_processing_time() => {
                ctx.register_processing_time_timer(end)
            }
            _ => {}
        }
        Ok(())
    }

    fn clear<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        match self.domain {
            TimeDomain::EventTime => ctx.delete_event_time_timer(window.max_timestamp()),
            TimeDomain::ProcessingTime => ctx.delete_processing_time_timer(window.max_timestamp()),
        }
        Ok(())
    }
}

/// Fires a window each time it has gathered `n` more records (Flink's `CountTrigger`); the
/// count is kept per key and window, and sessions add theirs up when they merge.
///
/// ```
/// use std::time::Duration;
/// use weir_actors::prelude::*;
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("c", vec![('a', 1), ('a', 2), ('a', 3), ('a', 4), ('a', 5)])
///         .key_by(|c: &char| *c)
///         .window(Tumbling::event_time(Duration::from_secs(1)))
///         .trigger(CountTrigger::of(2))
///         .aggregate("count", Count)
/// }).unwrap();
/// // Fired at the 2nd and the 4th record; the 5th never fires the window (this trigger
/// // replaces the one that fires at the window's end).
/// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [2, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct CountTrigger {
    n: u64,
    count: Option<WindowState<u64>>,
}

impl CountTrigger {
    /// Fires every `n` records (`n` at least 1).
    pub fn of(n: u64) -> Self {
        CountTrigger { n: n.max(1), count: None }
    }

    fn state(&self) -> WindowState<u64> {
        self.count.expect("opened")
    }
}

impl<T> Trigger<T> for CountTrigger {
    fn open<K: Key>(&mut self, ctx: &mut WindowOpenContext<'_, K>) -> Result<()> {
        self.count = Some(ctx.window_state("trigger.count")?);
        Ok(())
    }

    fn on_element<K: Key>(
        &mut self,
        _: &T,
        _: Timestamp,
        _: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        let mut count = ctx.window_state(self.state());
        let seen = count.get()?.unwrap_or(0) + 1;
        if seen >= self.n {
            count.clear()?;
            return Ok(TriggerResult::Fire);
        }
        count.update(seen)?;
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<K: Key>(
        &mut self,
        _: Timestamp,
        _: TimeWindow,
        _: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time<K: Key>(
        &mut self,
        _: Timestamp,
        _: TimeWindow,
        _: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<K: Key>(&mut self, _: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        ctx.merge_window_state(self.state(), |a, b| a + b)
    }

    fn clear<K: Key>(&mut self, _: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        ctx.window_state(self.state()).clear()
    }
}

fn interval_ms(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The first firing time of a continuous trigger for `t`: the next multiple of `interval`
/// after it, at most the window's last millisecond. (Flink computes `t - t % interval`, which
/// for a negative `t` rounds up; this rounds down.)
fn next_fire(t: Timestamp, interval: i64, window: TimeWindow) -> Timestamp {
    (t - t.rem_euclid(interval)).saturating_add(interval).min(window.max_timestamp())
}

/// Fires a window every `interval` of event time while it is open, and when the watermark
/// passes its end (Flink's `ContinuousEventTimeTrigger`): early results of a long window.
///
/// ```
/// use std::time::Duration;
/// use weir_actors::prelude::*;
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("c", vec![('a', 100), ('a', 350), ('a', 800)])
///         .key_by(|c: &char| *c)
///         .window(Tumbling::event_time(Duration::from_secs(1)))
///         .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(300)))
///         .aggregate("count", Count)
/// }).unwrap();
/// // The watermark follows each record (monotonous: its timestamp - 1): 349 fires the timer at
/// // 300 (2 records), 799 the one at 600 (3); the end of input the ones at 900 and 999.
/// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [2, 3, 3, 3]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ContinuousEventTimeTrigger;

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` of event time.
    pub fn of(interval: Duration) -> ContinuousTrigger {
        ContinuousTrigger { interval: interval_ms(interval), domain: TimeDomain::EventTime, fire_at: None }
    }
}

/// Fires a window every `interval` of processing time, aligned to multiples of it, while it
/// holds records (Flink's `ContinuousProcessingTimeTrigger`).
#[derive(Debug, Clone, Copy)]
pub struct ContinuousProcessingTimeTrigger;

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval` of processing time.
    pub fn of(interval: Duration) -> ContinuousTrigger {
        ContinuousTrigger { interval: interval_ms(interval), domain: TimeDomain::ProcessingTime, fire_at: None }
    }
}

/// A trigger firing every interval of one clock: made by [`ContinuousEventTimeTrigger::of`]
/// and [`ContinuousProcessingTimeTrigger::of`]. Its next firing time is window state (sessions
/// that merge keep the earliest).
#[derive(Debug, Clone)]
pub struct ContinuousTrigger {
    interval: i64,
    domain: TimeDomain,
    fire_at: Option<WindowState<Timestamp>>,
}

impl ContinuousTrigger {
    fn state(&self) -> WindowState<Timestamp> {
        self.fire_at.expect("opened")
    }

    fn event_time(&self) -> bool {
        self.domain == TimeDomain::EventTime
    }

    fn register<K: Key>(&self, ctx: &mut TriggerContext<'_, K>, t: Timestamp) {
        match self.domain {
            TimeDomain::EventTime => ctx.register_event_time_timer(t),
            TimeDomain::ProcessingTime => ctx.register_processing_time_timer(t),
        }
    }

    /// A timer of `domain` at `time`: the window's end fires it, as does its next firing
    /// time, which then moves on by the interval (at most to the window's end).
    fn on_timer<K: Key>(
        &self,
        domain: TimeDomain,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        if domain != self.domain {
            return Ok(TriggerResult::Continue);
        }
        if time == window.max_timestamp() {
            return Ok(TriggerResult::Fire);
        }
        let state = self.state();
        if ctx.window_state(state).get()? != Some(time) {
            return Ok(TriggerResult::Continue);
        }
        let next = time.saturating_add(self.interval).min(window.max_timestamp());
        ctx.window_state(state).update(next)?;
        self.register(ctx, next);
        Ok(TriggerResult::Fire)
    }
}

impl<T> Trigger<T> for ContinuousTrigger {
    fn open<K: Key>(&mut self, ctx: &mut WindowOpenContext<'_, K>) -> Result<()> {
        self.fire_at = Some(ctx.window_state("trigger.fire-time")?);
        Ok(())
    }

    fn on_element<K: Key>(
        &mut self,
        _: &T,
        ts: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        let from = if self.event_time() {
            if window.max_timestamp() <= ctx.current_watermark() {
                return Ok(TriggerResult::Fire);
            }
            ctx.register_event_time_timer(window.max_timestamp());
            ts
        } else {
            ctx.current_processing_time()
        };
        let state = self.state();
        if ctx.window_state(state).get()?.is_none() {
            let next = next_fire(from, self.interval, window);
            ctx.window_state(state).update(next)?;
            self.register(ctx, next);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_event_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        self.on_timer(TimeDomain::EventTime, time, window, ctx)
    }

    fn on_processing_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        self.on_timer(TimeDomain::ProcessingTime, time, window, ctx)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        let state = self.state();
        ctx.merge_window_state(state, |a: Timestamp, b| a.min(b))?;
        if let Some(next) = ctx.window_state(state).get()? {
            self.register(ctx, next);
        }
        if self.event_time() && window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
        Ok(())
    }

    fn clear<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        let next = ctx.window_state(self.state()).get()?;
        ctx.window_state(self.state()).clear()?;
        match self.domain {
            TimeDomain::EventTime => {
                if let Some(t) = next {
                    ctx.delete_event_time_timer(t);
                }
                ctx.delete_event_time_timer(window.max_timestamp());
            }
            TimeDomain::ProcessingTime => {
                if let Some(t) = next {
                    ctx.delete_processing_time_timer(t);
                }
            }
        }
        Ok(())
    }
}

/// Turns each firing of another trigger into fire-and-purge: the window's contents are dropped
/// after each result (Flink's `PurgingTrigger`), so each firing covers the records since the
/// last one.
///
/// ```
/// use std::time::Duration;
/// use weir_actors::prelude::*;
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("c", vec![('a', 1), ('a', 2), ('a', 3), ('a', 4), ('a', 5)])
///         .key_by(|c: &char| *c)
///         .window(Tumbling::event_time(Duration::from_secs(1)))
///         .trigger(PurgingTrigger::of(CountTrigger::of(2)))
///         .aggregate("count", Count)
/// }).unwrap();
/// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [2, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct PurgingTrigger<G> {
    inner: G,
}

impl<G> PurgingTrigger<G> {
    /// Purges after each firing of `inner`.
    pub fn of(inner: G) -> Self {
        PurgingTrigger { inner }
    }
}

fn purging(r: TriggerResult) -> TriggerResult {
    if r.is_fire() { TriggerResult::FireAndPurge } else { r }
}

impl<T, G: Trigger<T>> Trigger<T> for PurgingTrigger<G> {
    fn open<K: Key>(&mut self, ctx: &mut WindowOpenContext<'_, K>) -> Result<()> {
        self.inner.open(ctx)
    }

    fn on_element<K: Key>(
        &mut self,
        value: &T,
        ts: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        self.inner.on_element(value, ts, window, ctx).map(purging)
    }

    fn on_event_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        self.inner.on_event_time(time, window, ctx).map(purging)
    }

    fn on_processing_time<K: Key>(
        &mut self,
        time: Timestamp,
        window: TimeWindow,
        ctx: &mut TriggerContext<'_, K>,
    ) -> Result<TriggerResult> {
        self.inner.on_processing_time(time, window, ctx).map(purging)
    }

    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }

    fn on_merge<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        self.inner.on_merge(window, ctx)
    }

    fn clear<K: Key>(&mut self, window: TimeWindow, ctx: &mut TriggerContext<'_, K>) -> Result<()> {
        self.inner.clear(window, ctx)
    }
}
