//! Keyed processing: the keyed process function users write by hand (state and timers per
//! key), and the link that runs it with a key-group-scoped state store.
//!
//! The key of each record is extracted again at the consumer (as Flink does) from the same
//! selector the upstream hash partitioner used, so the record's key group is owned here.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_dataplane::{CheckpointBarrier, KeyGroup, Timestamp};
use weir_state::{
    KeyedStateStore, ListStateHandle, ListTable, MapStateHandle, MapTable, StateData, StateKey, ValueStateHandle,
    ValueTable,
};

use crate::api::functions::AggregateFunction;
use crate::api::side_output::{OutputTag, emit_side};
use crate::base::data::{Data, Key};
use crate::base::error::Result;
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::keyed_state::KeyedParts;

/// Extracts the key of a record.
pub type KeySelector<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// A handle to a value kept per key (register it in `open`).
pub type ValueState<V> = ValueStateHandle<(), V>;
/// A handle to a list kept per key.
pub type ListState<V> = ListStateHandle<(), V>;
/// A handle to a map kept per key.
pub type MapState<UK, UV> = MapStateHandle<(), UK, UV>;

/// A value per key folded with a reduce function as values are added (Flink's
/// `ReducingState`); each `add` is one state lookup.
pub struct ReducingState<V> {
    handle: ValueState<V>,
    reduce: ReduceFn<V>,
}

/// A reduce function shared by the subtasks of an operator.
type ReduceFn<V> = Arc<dyn Fn(&V, &V) -> V + Send + Sync>;

impl<V> Clone for ReducingState<V> {
    fn clone(&self) -> Self {
        ReducingState { handle: self.handle, reduce: self.reduce.clone() }
    }
}

/// A process function on a keyed stream: per-key state and timers, written by hand.
///
/// # Examples
///
/// Emit a key's running count every time it is seen:
///
/// ```
/// use weir_actors::prelude::*;
///
/// #[derive(Default)]
/// struct Counter { seen: Option<ValueState<u64>> }
///
/// impl KeyedProcessFunction for Counter {
///     type Key = String;
///     type In = String;
///     type Out = (String, u64);
///     fn open(&mut self, ctx: &mut KeyedOpenContext<'_, String>) -> Result<()> {
///         self.seen = Some(ctx.value_state("seen")?);
///         Ok(())
///     }
///     fn process(&mut self, word: String, ctx: &mut KeyedContext<'_, String, Self::Out>) -> Result<()> {
///         let mut seen = ctx.value(self.seen.unwrap());
///         let n = seen.get()?.unwrap_or(0) + 1;
///         seen.update(n)?;
///         ctx.emit((word, n));
///         Ok(())
///     }
/// }
///
/// let mut out = MiniCluster::collect(|env| {
///     env.from_vec("words", vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
///         .key_by(|w: &String| w.clone())
///         .process("count", Counter::default)
/// }).unwrap();
/// out.sort();
/// assert_eq!(out, vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]);
/// ```
pub trait KeyedProcessFunction: Send + 'static {
    /// The key type.
    type Key: Key;
    /// The input record type.
    type In: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record: register state here.
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, Self::Key>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called for every record, with the record's key as the current key.
    fn process(&mut self, value: Self::In, ctx: &mut KeyedContext<'_, Self::Key, Self::Out>) -> Result<()>;

    /// Called when a timer registered for the current key fires.
    fn on_timer(
        &mut self,
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, Self::Key, Self::Out>,
    ) -> Result<()> {
        let _ = (timestamp, domain, ctx);
        Ok(())
    }
}

/// What a keyed process function sees when it opens: where to register state.
pub struct KeyedOpenContext<'a, K: StateKey> {
    pub(crate) store: &'a mut KeyedStateStore<K>,
    pub(crate) info: &'a SubtaskInfo,
}

impl<K: Key> KeyedOpenContext<'_, K> {
    /// Registers (or finds) a value state named `name`.
    pub fn value_state<V: StateData>(&mut self, name: &str) -> Result<ValueState<V>> {
        Ok(self.store.value_state(name)?)
    }
    /// Registers (or finds) a reducing state named `name`, folded with `reduce`.
    pub fn reducing_state<V: StateData>(
        &mut self,
        name: &str,
        reduce: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> Result<ReducingState<V>> {
        Ok(ReducingState { handle: self.store.value_state(name)?, reduce: Arc::new(reduce) })
    }
    /// Registers (or finds) a list state named `name`.
    pub fn list_state<V: StateData>(&mut self, name: &str) -> Result<ListState<V>> {
        Ok(self.store.list_state(name)?)
    }
    /// Registers (or finds) a map state named `name`.
    pub fn map_state<UK: StateKey, UV: StateData>(&mut self, name: &str) -> Result<MapState<UK, UV>> {
        Ok(self.store.map_state(name)?)
    }
    /// The subtask this function runs in.
    pub fn subtask(&self) -> &SubtaskInfo {
        self.info
    }
}

/// What a keyed process function sees per record or timer: the current key, its state,
/// timers, and where to emit.
pub struct KeyedContext<'a, K: StateKey, O> {
    key: &'a K,
    key_group: KeyGroup,
    timestamp: Timestamp,
    parts: &'a mut KeyedParts<K, ()>,
    out: &'a mut Outputs<O>,
    io: &'a mut TaskIo,
}

impl<'a, K: Key, O: Data> KeyedContext<'a, K, O> {
    /// The context of a record of `key` at `timestamp`.
    pub(crate) fn new(
        key: &'a K,
        timestamp: Timestamp,
        parts: &'a mut KeyedParts<K, ()>,
        out: &'a mut Outputs<O>,
        io: &'a mut TaskIo,
    ) -> Self {
        let key_group = parts.key_group(key);
        KeyedContext { key, key_group, timestamp, parts, out, io }
    }

    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }

    /// Emits a record with the current timestamp.
    #[inline]
    pub fn emit(&mut self, value: O) {
        self.out.record(value, self.timestamp, self.io);
    }

    /// Emits a record with the given timestamp.
    pub fn emit_at(&mut self, value: O, timestamp: Timestamp) {
        self.out.record(value, timestamp, self.io);
    }

    /// Emits a record to the side output `tag`, with the current timestamp.
    pub fn output<X: Data>(&mut self, tag: &OutputTag<X>, value: X) {
        emit_side(self.out, tag, value, self.timestamp, self.io);
    }

    /// The current record's (or firing timer's) timestamp, if any.
    pub fn timestamp(&self) -> Option<Timestamp> {
        (self.timestamp != weir_dataplane::NO_TIMESTAMP).then_some(self.timestamp)
    }

    /// The current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }

    /// The current processing time (ms since the epoch).
    pub fn processing_time(&self) -> Timestamp {
        self.io.now_ms()
    }

    /// This context for something at `timestamp` (an interval join's pair).
    pub(crate) fn at(&mut self, timestamp: Timestamp) -> KeyedContext<'_, K, O> {
        KeyedContext {
            key: self.key,
            key_group: self.key_group,
            timestamp,
            parts: &mut *self.parts,
            out: &mut *self.out,
            io: &mut *self.io,
        }
    }

    /// Counts a record dropped as late (`late_records_dropped`).
    pub(crate) fn count_late(&mut self) {
        self.io.late_records += 1;
    }

    /// The current key's value of `state`.
    pub fn value<V: StateData>(&mut self, state: ValueState<V>) -> ValueAccess<'_, K, V> {
        ValueAccess::new(self.parts.store.value(state), self.key_group, self.key, &())
    }

    /// The current key's value of a reducing state.
    pub fn reducing<'s, V: StateData>(&'s mut self, state: &'s ReducingState<V>) -> ReducingAccess<'s, K, V> {
        ReducingAccess {
            value: ValueAccess::new(self.parts.store.value(state.handle), self.key_group, self.key, &()),
            reduce: &*state.reduce,
        }
    }

    /// The current key's list of `state`.
    pub fn list<V: StateData>(&mut self, state: ListState<V>) -> ListAccess<'_, K, V> {
        ListAccess { table: self.parts.store.list(state), key_group: self.key_group, key: self.key }
    }

    /// The current key's map of `state`.
    pub fn map<UK: StateKey, UV: StateData>(&mut self, state: MapState<UK, UV>) -> MapAccess<'_, K, UK, UV> {
        MapAccess { table: self.parts.store.map(state), key_group: self.key_group, key: self.key }
    }

    /// Registers an event-time timer for the current key (deduplicated).
    pub fn register_event_time_timer(&mut self, timestamp: Timestamp) {
        self.parts.event_timers.register(timestamp, self.key, &());
    }

    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, timestamp: Timestamp) {
        self.parts.event_timers.delete(timestamp, self.key, &());
    }

    /// Registers a processing-time timer for the current key (deduplicated).
    pub fn register_processing_time_timer(&mut self, timestamp: Timestamp) {
        if self.parts.processing_timers.register(timestamp, self.key, &()) {
            self.io.request_processing_time(timestamp);
        }
    }

    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, timestamp: Timestamp) {
        self.parts.processing_timers.delete(timestamp, self.key, &());
    }
}

/// The current key's value of one value state (in namespace `N`: a window's, or none).
pub struct ValueAccess<'a, K, V, N = ()> {
    table: &'a mut dyn ValueTable<K, N, V>,
    key_group: KeyGroup,
    key: &'a K,
    ns: &'a N,
}

impl<'a, K, V, N> ValueAccess<'a, K, V, N> {
    pub(crate) fn new(table: &'a mut dyn ValueTable<K, N, V>, key_group: KeyGroup, key: &'a K, ns: &'a N) -> Self {
        ValueAccess { table, key_group, key, ns }
    }
    /// The value, if set.
    pub fn get(&mut self) -> Result<Option<V>> {
        Ok(self.table.get(self.key_group, self.key, self.ns)?)
    }
    /// Sets the value.
    pub fn update(&mut self, value: V) -> Result<()> {
        Ok(self.table.put(self.key_group, self.key, self.ns, value)?)
    }
    /// Read-modify-write in one lookup (see [`ValueTable::upsert`]).
    pub fn upsert(&mut self, f: &mut dyn FnMut(Option<&mut V>) -> Option<V>) -> Result<()> {
        Ok(self.table.upsert(self.key_group, self.key, self.ns, f)?)
    }
    /// Removes the value.
    pub fn clear(&mut self) -> Result<()> {
        self.table.remove(self.key_group, self.key, self.ns)?;
        Ok(())
    }
}

/// The current key's value of one reducing state.
pub struct ReducingAccess<'a, K, V> {
    value: ValueAccess<'a, K, V>,
    reduce: &'a (dyn Fn(&V, &V) -> V + Send + Sync),
}

impl<K, V> ReducingAccess<'_, K, V> {
    /// The folded value, if any was added.
    pub fn get(&mut self) -> Result<Option<V>> {
        self.value.get()
    }
    /// Folds `value` in.
    pub fn add(&mut self, value: V) -> Result<()> {
        let reduce = self.reduce;
        let mut input = Some(value);
        self.value.upsert(&mut |current| match current {
            Some(current) => {
                *current = reduce(current, input.as_ref().expect("called once"));
                None
            }
            None => input.take(),
        })
    }
    /// Removes the value.
    pub fn clear(&mut self) -> Result<()> {
        self.value.clear()
    }
}

/// The current key's list of one list state.
pub struct ListAccess<'a, K, V> {
    table: &'a mut dyn ListTable<K, (), V>,
    key_group: KeyGroup,
    key: &'a K,
}

impl<K, V> ListAccess<'_, K, V> {
    /// The elements (empty if none).
    pub fn get(&mut self) -> Result<Vec<V>> {
        Ok(self.table.get(self.key_group, self.key, &())?)
    }
    /// Appends one element.
    pub fn add(&mut self, value: V) -> Result<()> {
        Ok(self.table.add(self.key_group, self.key, &(), value)?)
    }
    /// Replaces the elements.
    pub fn update(&mut self, values: Vec<V>) -> Result<()> {
        Ok(self.table.update(self.key_group, self.key, &(), values)?)
    }
    /// Removes all elements.
    pub fn clear(&mut self) -> Result<()> {
        Ok(self.table.clear(self.key_group, self.key, &())?)
    }
}

/// The current key's map of one map state.
pub struct MapAccess<'a, K, UK, UV> {
    table: &'a mut dyn MapTable<K, (), UK, UV>,
    key_group: KeyGroup,
    key: &'a K,
}

impl<K, UK, UV> MapAccess<'_, K, UK, UV> {
    /// The value under `user_key`.
    pub fn get(&mut self, user_key: &UK) -> Result<Option<UV>> {
        Ok(self.table.get(self.key_group, self.key, &(), user_key)?)
    }
    /// Sets the value under `user_key`.
    pub fn put(&mut self, user_key: UK, value: UV) -> Result<()> {
        Ok(self.table.put(self.key_group, self.key, &(), user_key, value)?)
    }
    /// Removes `user_key`.
    pub fn remove(&mut self, user_key: &UK) -> Result<Option<UV>> {
        Ok(self.table.remove(self.key_group, self.key, &(), user_key)?)
    }
    /// Whether `user_key` is present.
    pub fn contains(&mut self, user_key: &UK) -> Result<bool> {
        Ok(self.table.contains(self.key_group, self.key, &(), user_key)?)
    }
    /// All entries.
    pub fn entries(&mut self) -> Result<Vec<(UK, UV)>> {
        Ok(self.table.entries(self.key_group, self.key, &())?)
    }
    /// Removes all entries.
    pub fn clear(&mut self) -> Result<()> {
        Ok(self.table.clear(self.key_group, self.key, &())?)
    }
}

/// Runs a [`KeyedProcessFunction`] in a chain.
pub(crate) struct KeyedLink<F: KeyedProcessFunction> {
    pub(crate) f: F,
    pub(crate) selector: KeySelector<F::In, F::Key>,
    pub(crate) parts: Option<KeyedParts<F::Key, ()>>,
    pub(crate) down: Outputs<F::Out>,
    pub(crate) name: LinkInfo,
}

/// Opens the keyed state of operator `name`: `open` registers the function's state, then
/// what a checkpoint holds for it is restored. `None` (the subtask failed, naming the
/// operator) if any of it fails.
pub(crate) fn open_keyed<K: Key>(
    io: &mut TaskIo,
    name: &LinkInfo,
    open: impl FnOnce(&mut KeyedOpenContext<'_, K>) -> Result<()>,
) -> Option<KeyedParts<K, ()>> {
    let info = io.info.clone();
    let opened = KeyedParts::open(io, name.node).and_then(|mut parts| {
        open(&mut KeyedOpenContext { store: &mut parts.store, info: &info })?;
        if let Some(restored) = io.restored.clone() {
            parts.restore(&restored, name.node, io)?;
        }
        Ok(parts)
    });
    opened.map_err(|e| io.fail(e.in_operator(name))).ok()
}

/// A keyed link's [`Link::timers`]: its own timers, then those downstream.
pub(crate) fn keyed_timers<K: Key, N: std::hash::Hash + Eq + Clone, O: Data>(
    parts: &Option<KeyedParts<K, N>>,
    down: &Outputs<O>,
    out: &mut Vec<(TimeDomain, Timestamp)>,
) {
    if let Some(parts) = parts {
        parts.timers(out);
    }
    down.timers(out);
}

/// A keyed link's [`Link::checkpoint_complete`]: its own state's, then downstream.
pub(crate) fn keyed_checkpoint_complete<K: Key, N: std::hash::Hash + Eq + Clone, O: Data>(
    parts: &mut Option<KeyedParts<K, N>>,
    down: &mut Outputs<O>,
    id: u64,
    io: &mut TaskIo,
) {
    if let Some(parts) = parts {
        parts.checkpoint_complete(id);
    }
    down.checkpoint_complete(id, io);
}

/// Fires the timers of `domain` due by `upto`, each with its key's context, through
/// `on_timer` (the subtask fails, naming the operator, at the first error).
pub(crate) fn fire_timers<K: Key, O: Data>(
    parts: &mut KeyedParts<K, ()>,
    down: &mut Outputs<O>,
    io: &mut TaskIo,
    name: &LinkInfo,
    domain: TimeDomain,
    upto: Timestamp,
    mut on_timer: impl FnMut(Timestamp, &mut KeyedContext<'_, K, O>) -> Result<()>,
) {
    loop {
        let timers = match domain {
            TimeDomain::EventTime => &mut parts.event_timers,
            TimeDomain::ProcessingTime => &mut parts.processing_timers,
        };
        let Some((ts, key, ())) = timers.pop_due(upto) else { break };
        let key_group = parts.key_group(&key);
        let mut ctx =
            KeyedContext { key: &key, key_group, timestamp: ts, parts: &mut *parts, out: &mut *down, io: &mut *io };
        if let Err(e) = on_timer(ts, &mut ctx) {
            io.fail(e.in_operator(name));
            return;
        }
    }
    if domain == TimeDomain::ProcessingTime {
        parts.report_next_processing_timer(io);
    }
}

impl<F: KeyedProcessFunction> KeyedLink<F> {
    fn fire(&mut self, domain: TimeDomain, upto: Timestamp, io: &mut TaskIo) {
        let (parts, f) = (self.parts.as_mut().expect("opened"), &mut self.f);
        fire_timers(parts, &mut self.down, io, &self.name, domain, upto, |ts, ctx| f.on_timer(ts, domain, ctx));
    }
}

impl<F: KeyedProcessFunction> Link<F::In> for KeyedLink<F> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        let f = &mut self.f;
        self.parts = open_keyed(io, &self.name, |ctx| f.open(ctx));
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
    fn record(&mut self, value: F::In, ts: Timestamp, io: &mut TaskIo) {
        let parts = self.parts.as_mut().expect("opened");
        let key = (self.selector)(&value);
        let key_group = parts.key_group(&key);
        let mut ctx = KeyedContext { key: &key, key_group, timestamp: ts, parts, out: &mut self.down, io: &mut *io };
        if let Err(e) = self.f.process(value, &mut ctx) {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        self.fire(TimeDomain::EventTime, wm, io);
        self.down.watermark(wm, io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.fire(TimeDomain::ProcessingTime, now, io);
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        self.down.close(io);
    }
}

/// `KeyedStream::reduce`: a rolling reduce that emits the key's new value per record.
pub(crate) struct RollingReduce<K, T, F> {
    pub(crate) f: F,
    pub(crate) state: Option<ValueState<T>>,
    pub(crate) _types: PhantomData<fn(K)>,
}

// The rolling reduce emits each new value, so it folds in place through `upsert` rather
// than through `ReducingAccess::add`, which would need a second lookup to read the result.

impl<K: Key, T: Data, F: Fn(&T, &T) -> T + Send + Sync + 'static> KeyedProcessFunction for RollingReduce<K, T, F> {
    type Key = K;
    type In = T;
    type Out = T;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, K>) -> Result<()> {
        self.state = Some(ctx.value_state("reduce")?);
        Ok(())
    }

    #[inline]
    fn process(&mut self, value: T, ctx: &mut KeyedContext<'_, K, T>) -> Result<()> {
        let f = &self.f;
        let mut input = Some(value);
        let mut result = None;
        ctx.value(self.state.expect("opened")).upsert(&mut |current| match current {
            Some(current) => {
                *current = f(current, input.as_ref().expect("one call"));
                result = Some(current.clone());
                None
            }
            None => {
                result = input.clone();
                input.take()
            }
        })?;
        if let Some(result) = result {
            ctx.emit(result);
        }
        Ok(())
    }
}

/// `KeyedStream::aggregate`: a rolling aggregation that emits `(key, result)` per record.
pub(crate) struct RollingAggregate<K, T, A: AggregateFunction<T>> {
    pub(crate) agg: A,
    pub(crate) state: Option<ValueState<A::Acc>>,
    pub(crate) _types: PhantomData<fn(K, T)>,
}

impl<K: Key, T: Data, A: AggregateFunction<T>> KeyedProcessFunction for RollingAggregate<K, T, A> {
    type Key = K;
    type In = T;
    type Out = (K, A::Out);

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, K>) -> Result<()> {
        self.state = Some(ctx.value_state("aggregate")?);
        Ok(())
    }

    #[inline]
    fn process(&mut self, value: T, ctx: &mut KeyedContext<'_, K, (K, A::Out)>) -> Result<()> {
        let agg = &self.agg;
        let mut result = None;
        ctx.value(self.state.expect("opened")).upsert(&mut |current| match current {
            Some(acc) => {
                agg.add(acc, &value);
                result = Some(agg.result(acc));
                None
            }
            None => {
                let mut acc = agg.create();
                agg.add(&mut acc, &value);
                result = Some(agg.result(&acc));
                Some(acc)
            }
        })?;
        let key = ctx.key().clone();
        ctx.emit((key, result.expect("upsert calls once")));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
