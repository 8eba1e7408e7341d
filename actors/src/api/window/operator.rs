//! The window operator: keeps each key's windows in keyed state (an incremental aggregate, or
//! every record under an evictor), asks its [`Trigger`] on every record and timer, and fires,
//! purges and drops windows as Flink's `WindowOperator` (and `EvictingWindowOperator`) does.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_dataplane::{CheckpointBarrier, KeyGroup, NO_TIMESTAMP, Timestamp};
use weir_state::ValueStateHandle;

use crate::api::functions::AggregateFunction;
use crate::api::keyed::{KeySelector, keyed_checkpoint_complete, keyed_timers};
use crate::api::side_output::{OutputTag, emit_side};
use crate::api::window::trigger::{Trigger, TriggerContext, TriggerResult};
use crate::api::window::{
    ProcessWindowFunction, TimeWindow, WindowAssigner, WindowContext, WindowOpenContext, Windowed,
};
use crate::base::data::{Data, Key};
use crate::base::error::WeirError;
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::keyed_state::KeyedParts;

/// What a window keeps between firings and how a firing reads it.
pub(crate) trait WindowContents<T>: Send + Sync + 'static {
    type Acc: Data;
    type Out;
    fn create(&self) -> Self::Acc;
    fn add(&self, acc: &mut Self::Acc, value: &T, ts: Timestamp);
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result of a firing. Evicting contents drop records while firing: returns whether
    /// `acc` changed (and must be written back).
    fn fire(&self, acc: &mut Self::Acc, window: &TimeWindow, io: &TaskIo) -> (Self::Out, bool);
}

/// An incremental aggregate per window.
pub(crate) struct Incremental<A>(pub(crate) A);

impl<T, A: AggregateFunction<T>> WindowContents<T> for Incremental<A> {
    type Acc = A::Acc;
    type Out = A::Out;
    fn create(&self) -> A::Acc {
        self.0.create()
    }
    #[inline]
    fn add(&self, acc: &mut A::Acc, value: &T, _: Timestamp) {
        self.0.add(acc, value);
    }
    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.0.merge(acc, other);
    }
    fn fire(&self, acc: &mut A::Acc, _: &TimeWindow, _: &TaskIo) -> (A::Out, bool) {
        (self.0.result(acc), false)
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

/// A key's open sessions, by start, with their contents (`None` once purged by the trigger: the
/// session stays until it is dropped, as Flink's merging window set keeps it). A deque:
/// sessions close oldest first (timers fire in time order) and open newest last, so both ends
/// move in O(1). (Encoded as a `Vec` would be: postcard writes both as a length and the
/// elements.)
type Sessions<A> = std::collections::VecDeque<(TimeWindow, Option<A>)>;

/// How a firing reads a window's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// A copy; they stay.
    Copy,
    /// Taken out: the window stays, empty.
    Purge,
    /// Taken out with the window.
    Window,
}

/// Runs one keyed window operator in a chain: contents `C`, trigger `G`; `E` makes the output
/// of each firing.
pub(crate) struct WindowLink<K: Key, T, C: WindowContents<T>, G, E: WindowEmit<K, C::Out>> {
    assigner: WindowAssigner,
    lateness: i64,
    /// The side output late records go to, if any.
    late: Option<OutputTag<T>>,
    contents: Arc<C>,
    trigger: G,
    selector: KeySelector<T, K>,
    parts: Option<KeyedParts<K, TimeWindow>>,
    accs: Option<ValueStateHandle<TimeWindow, C::Acc>>,
    sessions: Option<ValueStateHandle<(), Sessions<C::Acc>>>,
    emit: E,
    down: Outputs<E::Out>,
    name: LinkInfo,
    scratch: Vec<TimeWindow>,
    _types: PhantomData<fn(T)>,
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

/// The parts a window link is built from, given once by the builder.
pub(crate) struct WindowSpec<K, T> {
    pub(crate) assigner: WindowAssigner,
    pub(crate) lateness: i64,
    pub(crate) late: Option<OutputTag<T>>,
    pub(crate) selector: KeySelector<T, K>,
}

impl<K: Key, T: Data, C: WindowContents<T>, G: Trigger<T>, E: WindowEmit<K, C::Out>> WindowLink<K, T, C, G, E> {
    pub(crate) fn new(
        spec: WindowSpec<K, T>,
        contents: Arc<C>,
        trigger: G,
        emit: E,
        down: Outputs<E::Out>,
        name: LinkInfo,
    ) -> Self {
        let WindowSpec { assigner, lateness, late, selector } = spec;
        WindowLink {
            // Processing time has no lateness: records are never behind the clock.
            lateness: if assigner.domain() == TimeDomain::EventTime { lateness.max(0) } else { 0 },
            assigner,
            late,
            contents,
            trigger,
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

    /// When the window is dropped: the watermark passed its end plus the allowed lateness
    /// (processing time: the clock passed its end).
    fn cleanup_time(&self, w: &TimeWindow) -> Timestamp {
        w.max_timestamp().saturating_add(self.lateness)
    }

    fn register_cleanup(&mut self, key: &K, w: &TimeWindow, io: &mut TaskIo) {
        let cleanup = self.cleanup_time(w);
        let event_time = self.event_time();
        let parts = self.parts.as_mut().expect("opened");
        if event_time {
            parts.event_timers.register(cleanup, key, w);
        } else if parts.processing_timers.register(cleanup, key, w) {
            io.request_processing_time(cleanup);
        }
    }

    fn delete_cleanup(&mut self, key: &K, w: &TimeWindow) {
        let cleanup = self.cleanup_time(w);
        let event_time = self.event_time();
        let parts = self.parts.as_mut().expect("opened");
        if event_time {
            parts.event_timers.delete(cleanup, key, w);
        } else {
            parts.processing_timers.delete(cleanup, key, w);
        }
    }

    fn trigger_ctx<'a>(
        parts: &'a mut Option<KeyedParts<K, TimeWindow>>,
        key: &'a K,
        kg: KeyGroup,
        w: TimeWindow,
        io: &'a mut TaskIo,
        merged: &'a [TimeWindow],
    ) -> TriggerContext<'a, K> {
        TriggerContext::new(parts.as_mut().expect("opened"), key, kg, w, io, merged, true)
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
            let contents = &*self.contents;
            let mut fresh = false;
            parts.store.value(self.accs.expect("opened")).upsert(kg, &key, &w, &mut |acc| match acc {
                Some(acc) => {
                    contents.add(acc, &value, ts);
                    None
                }
                None => {
                    let mut acc = contents.create();
                    contents.add(&mut acc, &value, ts);
                    fresh = true;
                    Some(acc)
                }
            })?;
            if fresh {
                self.register_cleanup(&key, &w, io);
            }
            let parts = self.parts.as_mut().expect("opened");
            let mut ctx = TriggerContext::new(parts, &key, kg, w, io, &[], fresh);
            let decided = self.trigger.on_element(&value, ts, w, &mut ctx)?;
            if decided != TriggerResult::Continue {
                self.act(&key, kg, w, decided, false, io)?;
            }
        }
        self.scratch = windows;
        if skipped && event_time && ts.saturating_add(self.lateness) <= io.watermark {
            self.late(value, ts, io);
        }
        Ok(())
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
        let contents = &*self.contents;
        let mut merged = TimeWindow { start: ts, end: ts.saturating_add(gap) };
        let mut olds = std::mem::take(&mut self.scratch);
        olds.clear();
        // Changed in place (one lookup): a key may hold many sessions.
        parts.store.value(handle).upsert(kg, &key, &(), &mut |current| {
            let mut fresh = None;
            let sessions = match current {
                Some(sessions) => sessions,
                None => fresh.insert(Sessions::new()),
            };
            // A key's sessions are sorted by start and apart (touching ones merged): those the
            // record's window touches are one run of them, found by binary search; the window
            // grows over each (a record can bridge several). Their contents fold in by start,
            // then the record.
            let first = sessions.partition_point(|(w, _)| w.end < merged.start);
            let mut end = first;
            while end < sessions.len() && sessions[end].0.start <= merged.end {
                merged = merged.cover(&sessions[end].0);
                end += 1;
            }
            let mut acc = contents.create();
            for (w, other) in sessions.drain(first..end) {
                if let Some(other) = other {
                    contents.merge(&mut acc, other);
                }
                olds.push(w);
            }
            contents.add(&mut acc, &value, ts);
            sessions.insert(first, (merged, Some(acc)));
            fresh
        })?;
        // The session the record fell in, unchanged, is no merge.
        let new_session = olds.is_empty();
        olds.retain(|w| *w != merged);
        if !olds.is_empty() {
            // As Flink: the trigger folds the merged windows' state into the new one, then
            // each merged window is cleared and loses its cleanup timer.
            self.trigger.on_merge(merged, &mut Self::trigger_ctx(&mut self.parts, &key, kg, merged, io, &olds))?;
            for &old in &olds {
                self.trigger.clear(old, &mut Self::trigger_ctx(&mut self.parts, &key, kg, old, io, &[]))?;
                self.delete_cleanup(&key, &old);
            }
        }
        // A new or merged session needs its timers; the one the record fell in has them.
        if new_session || !olds.is_empty() {
            self.register_cleanup(&key, &merged, io);
        }
        self.scratch = olds;
        let parts = self.parts.as_mut().expect("opened");
        let mut ctx = TriggerContext::new(parts, &key, kg, merged, io, &[], new_session);
        let decided = self.trigger.on_element(&value, ts, merged, &mut ctx)?;
        self.act(&key, kg, merged, decided, false, io)
    }

    /// The contents of `key`'s window `w`: copied, taken out (purged), or taken out with the
    /// window (a session: the session itself goes).
    fn get_contents(&mut self, key: &K, kg: KeyGroup, w: TimeWindow, how: Take) -> Result<Option<C::Acc>, WeirError> {
        let parts = self.parts.as_mut().expect("opened");
        let Some(handle) = self.sessions else {
            let table = parts.store.value(self.accs.expect("opened"));
            return Ok(if how == Take::Copy { table.get(kg, key, &w)? } else { table.remove(kg, key, &w)? });
        };
        let (mut found, mut emptied) = (None, false);
        parts.store.value(handle).upsert(kg, key, &(), &mut |current| {
            if let Some(sessions) = current {
                if let Ok(i) = sessions.binary_search_by_key(&w.start, |(s, _)| s.start)
                    && sessions[i].0 == w
                {
                    found = match how {
                        Take::Copy => sessions[i].1.clone(),
                        Take::Purge => sessions[i].1.take(),
                        Take::Window => sessions.remove(i).and_then(|(_, acc)| acc),
                    };
                }
                emptied = sessions.is_empty();
            }
            None
        })?;
        if emptied {
            parts.store.value(handle).remove(kg, key, &())?;
        }
        Ok(found)
    }

    /// Writes back the contents of `key`'s window `w` (an evictor changed them).
    fn put_contents(&mut self, key: &K, kg: KeyGroup, w: TimeWindow, acc: C::Acc) -> Result<(), WeirError> {
        let parts = self.parts.as_mut().expect("opened");
        if let Some(handle) = self.sessions {
            let mut acc = Some(acc);
            parts.store.value(handle).upsert(kg, key, &(), &mut |current| {
                if let Some(sessions) = current
                    && let Ok(i) = sessions.binary_search_by_key(&w.start, |(s, _)| s.start)
                    && sessions[i].0 == w
                {
                    sessions[i].1 = acc.take();
                }
                None
            })?;
            return Ok(());
        }
        Ok(parts.store.value(self.accs.expect("opened")).put(kg, key, &w, acc)?)
    }

    /// Carries out the trigger's decision for `key`'s window `w`; `drops`: the window goes
    /// too (its cleanup time), its contents with it, in the same lookup.
    fn act(
        &mut self,
        key: &K,
        kg: KeyGroup,
        w: TimeWindow,
        decided: TriggerResult,
        drops: bool,
        io: &mut TaskIo,
    ) -> Result<(), WeirError> {
        let how = match (drops, decided.is_purge()) {
            (true, _) => Take::Window,
            (false, true) => Take::Purge,
            (false, false) => Take::Copy,
        };
        if decided.is_fire() {
            if let Some(mut acc) = self.get_contents(key, kg, w, how)? {
                let (result, changed) = self.contents.fire(&mut acc, &w, io);
                if changed && how == Take::Copy {
                    self.put_contents(key, kg, w, acc)?;
                }
                self.output(key, kg, w, Some(result), false, io)?;
            }
        } else if how != Take::Copy {
            self.get_contents(key, kg, w, how)?;
        }
        Ok(())
    }

    /// Runs the timers of `domain` due at `upto`, at most `budget` of them.
    fn fire(
        &mut self,
        domain: TimeDomain,
        upto: Timestamp,
        mut budget: usize,
        io: &mut TaskIo,
    ) -> Result<(), WeirError> {
        let own_domain = self.assigner.domain() == domain;
        while budget > 0 {
            budget -= 1;
            let parts = self.parts.as_mut().expect("opened");
            let timers = match domain {
                TimeDomain::EventTime => &mut parts.event_timers,
                TimeDomain::ProcessingTime => &mut parts.processing_timers,
            };
            let Some((t, key, w)) = timers.pop_due(upto) else { return Ok(()) };
            let kg = parts.key_group(&key);
            let mut ctx = Self::trigger_ctx(&mut self.parts, &key, kg, w, io, &[]);
            let decided = match domain {
                TimeDomain::EventTime => self.trigger.on_event_time(t, w, &mut ctx)?,
                TimeDomain::ProcessingTime => self.trigger.on_processing_time(t, w, &mut ctx)?,
            };
            let drops = own_domain && t == self.cleanup_time(&w);
            self.act(&key, kg, w, decided, drops, io)?;
            if drops {
                self.trigger.clear(w, &mut Self::trigger_ctx(&mut self.parts, &key, kg, w, io, &[]))?;
                self.output(&key, kg, w, None, true, io)?;
            }
        }
        Ok(())
    }

    /// `w` of `key` fires with `result` (if any), then is dropped if `clears`.
    fn output(
        &mut self,
        key: &K,
        key_group: KeyGroup,
        w: TimeWindow,
        result: Option<C::Out>,
        clears: bool,
        io: &mut TaskIo,
    ) -> Result<(), WeirError> {
        let parts = self.parts.as_mut().expect("opened");
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
impl<K: Key, T: Data, C: WindowContents<T>, G: Trigger<T>, E: WindowEmit<K, C::Out>> Link<T>
    for WindowLink<K, T, C, G, E>
{
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
        let mut open = WindowOpenContext { store: &mut parts.store, info: &info };
        if let Err(e) = self.emit.open(&mut open).and_then(|()| self.trigger.open(&mut open)) {
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
        keyed_timers(&self.parts, &self.down, out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        keyed_checkpoint_complete(&mut self.parts, &mut self.down, id, io);
    }

    #[inline]
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.on_record(value, ts, io) {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.fire(TimeDomain::EventTime, wm, usize::MAX, io) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.watermark(wm, io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.fire(TimeDomain::ProcessingTime, now, usize::MAX, io) {
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
        // does at end of input; event-time ones fired with the final watermark. Only the
        // timers set by now: a continuous trigger sets its next one as each fires.
        if drain {
            let due = self.parts.as_ref().map_or(0, |p| p.processing_timers.len());
            if let Err(e) = self.fire(TimeDomain::ProcessingTime, Timestamp::MAX, due, io) {
                io.fail(e.in_operator(&self.name));
            }
        }
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        self.down.close(io);
    }
}
