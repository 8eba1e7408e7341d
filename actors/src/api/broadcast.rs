//! Broadcast state (Flink's broadcast state pattern): a low-volume stream — rules, thresholds,
//! a lookup table — is broadcast to every subtask of an operator that also reads a regular
//! (or keyed) stream. Each subtask keeps the same map, the broadcast state, written only by
//! the broadcast side ([`BroadcastProcessFunction::process_broadcast_element`]) and read by
//! the other side, so every subtask sees the same rules in the order they came.
//!
//! The broadcast state is checkpointed by every subtask and restored at any parallelism: each
//! subtask of the new parallelism takes one copy (they are all equal), as Flink does.
//!
//! Decision: the state is handed to the functions as a parameter, a shared reference on the
//! element side and a mutable one on the broadcast side, rather than through the context as
//! Flink's `ReadOnlyBroadcastState`: the compiler then enforces the read-only side.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weir_dataplane::{CheckpointBarrier, Partitioning, Timestamp};

use crate::api::keyed::{
    KeyedContext, KeyedOpenContext, fire_timers, keyed_checkpoint_complete, keyed_timers, open_keyed,
};
use crate::api::operator::{Context, OpenContext, Operator};
use crate::api::side_output::{OutputTag, emit_side};
use crate::api::stream::{DataStream, KeyedStream};
use crate::base::data::{Data, Key};
use crate::base::error::{Result, WeirError};
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::input::TwoInput;
use crate::runtime::keyed_state::KeyedParts;
use crate::runtime::nodes::MakeLink;

/// Names a broadcast state: a map from `K` to `V` (Flink's `MapStateDescriptor` given to
/// `broadcast`).
pub struct BroadcastStateDescriptor<K, V> {
    name: Arc<str>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for BroadcastStateDescriptor<K, V> {
    fn clone(&self) -> Self {
        BroadcastStateDescriptor { name: self.name.clone(), _types: PhantomData }
    }
}

impl<K: Data + Ord, V: Data> BroadcastStateDescriptor<K, V> {
    /// A broadcast state named `name`.
    pub fn new(name: &str) -> Self {
        BroadcastStateDescriptor { name: Arc::from(name), _types: PhantomData }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The broadcast state of one subtask: a map, in key order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BroadcastState<K: Ord, V> {
    map: BTreeMap<K, V>,
}

impl<K: Ord, V> Default for BroadcastState<K, V> {
    fn default() -> Self {
        BroadcastState { map: BTreeMap::new() }
    }
}

impl<K: Ord, V> BroadcastState<K, V> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }
    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }
    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Sets `key` to `value` (broadcast side only).
    pub fn put(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }
    /// Removes `key` (broadcast side only).
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }
    /// Removes every entry (broadcast side only).
    pub fn clear(&mut self) {
        self.map.clear()
    }
}

impl<K: Ord + Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> BroadcastState<K, V> {
    fn encode(&self, name: &str) -> Result<Vec<u8>> {
        postcard::to_allocvec(self)
            .map_err(|e| WeirError::runtime(format!("cannot encode broadcast state '{name}': {e}")))
    }

    /// The state a checkpoint holds: every subtask's copy is the same, so any one does.
    fn restore(states: &[Vec<u8>], name: &str) -> Result<Self> {
        match states.first() {
            None => Ok(Self::default()),
            Some(bytes) => postcard::from_bytes(bytes)
                .map_err(|e| WeirError::runtime(format!("the checkpoint's broadcast state '{name}' is corrupt: {e}"))),
        }
    }
}

/// A stream broadcast with its state's descriptor, to connect to another stream.
pub struct BroadcastStream<B, K, V> {
    stream: DataStream<B>,
    descriptor: BroadcastStateDescriptor<K, V>,
}

impl<T: Data> DataStream<T> {
    /// Broadcasts this stream to every subtask of the operator it is connected to, which keeps
    /// a broadcast state named by `descriptor` (Flink's `broadcast(MapStateDescriptor)`); see
    /// [`connect_broadcast`](Self::connect_broadcast).
    pub fn broadcast_state<K: Data + Ord, V: Data>(
        &self,
        descriptor: &BroadcastStateDescriptor<K, V>,
    ) -> BroadcastStream<T, K, V> {
        BroadcastStream { stream: self.clone().broadcast(), descriptor: descriptor.clone() }
    }

    /// Connects this stream with a broadcast stream into a [`BroadcastProcessFunction`].
    ///
    /// ```
    /// use weir_actors::prelude::*;
    ///
    /// /// Tags words with the label the broadcast table has for their first letter.
    /// struct Label;
    /// impl BroadcastProcessFunction for Label {
    ///     type In = String;
    ///     type Broadcast = (char, String);
    ///     type StateKey = char;
    ///     type StateValue = String;
    ///     type Out = String;
    ///     fn process_element(&mut self, word: String, labels: &BroadcastState<char, String>, ctx: &mut Context<'_, String>) -> Result<()> {
    ///         let label = word.chars().next().and_then(|c| labels.get(&c)).cloned().unwrap_or_default();
    ///         ctx.emit(format!("{word}:{label}"));
    ///         Ok(())
    ///     }
    ///     fn process_broadcast_element(&mut self, (c, label): (char, String), labels: &mut BroadcastState<char, String>, _: &mut Context<'_, String>) -> Result<()> {
    ///         labels.put(c, label);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let labels = BroadcastStateDescriptor::<char, String>::new("labels");
    /// let mut h = HarnessConfig::new()
    ///     .build_two_input(move |words: DataStream<String>, table: DataStream<(char, String)>| {
    ///         words.connect_broadcast(&table.broadcast_state(&labels)).process("label", || Label)
    ///     })
    ///     .unwrap();
    /// h.process2(('a', "first".to_owned())).unwrap();
    /// h.process1("apple".to_owned()).unwrap();
    /// h.process1("pear".to_owned()).unwrap();
    /// assert_eq!(h.output(), ["apple:first", "pear:"]);
    /// ```
    pub fn connect_broadcast<B: Data, K: Data + Ord, V: Data>(
        &self,
        broadcast: &BroadcastStream<B, K, V>,
    ) -> BroadcastConnectedStream<T, B, K, V> {
        BroadcastConnectedStream {
            stream: self.clone(),
            broadcast: broadcast.stream.clone(),
            descriptor: broadcast.descriptor.clone(),
        }
    }
}

impl<Key_: Key, T: Data> KeyedStream<Key_, T> {
    /// Connects this keyed stream with a broadcast stream into a
    /// [`KeyedBroadcastProcessFunction`]: keyed state and timers for the keyed side, the
    /// broadcast state on every subtask.
    pub fn connect_broadcast<B: Data, K: Data + Ord, V: Data>(
        &self,
        broadcast: &BroadcastStream<B, K, V>,
    ) -> KeyedBroadcastConnectedStream<Key_, T, B, K, V> {
        KeyedBroadcastConnectedStream {
            stream: self.clone(),
            broadcast: broadcast.stream.clone(),
            descriptor: broadcast.descriptor.clone(),
        }
    }
}

/// A stream connected with a broadcast stream.
pub struct BroadcastConnectedStream<T, B, K, V> {
    stream: DataStream<T>,
    broadcast: DataStream<B>,
    descriptor: BroadcastStateDescriptor<K, V>,
}

impl<T: Data, B: Data, K: Data + Ord, V: Data> BroadcastConnectedStream<T, B, K, V> {
    /// Runs a [`BroadcastProcessFunction`], made once per subtask by `factory`.
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: BroadcastProcessFunction<In = T, Broadcast = B, StateKey = K, StateValue = V>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        let descriptor = self.descriptor.clone();
        self.stream.operator_of_two(&self.broadcast, name, move || BroadcastOperator {
            f: factory(),
            state: BroadcastState::default(),
            name: descriptor.name.clone(),
        })
    }
}

/// A function of a stream and a broadcast stream (Flink's `BroadcastProcessFunction`).
pub trait BroadcastProcessFunction: Send + 'static {
    /// The record type of the non-broadcast input.
    type In: Data;
    /// The record type of the broadcast input.
    type Broadcast: Data;
    /// The broadcast state's key type.
    type StateKey: Data + Ord;
    /// The broadcast state's value type.
    type StateValue: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record.
    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// A record of the non-broadcast input, with the broadcast state to read.
    fn process_element(
        &mut self,
        value: Self::In,
        state: &BroadcastState<Self::StateKey, Self::StateValue>,
        ctx: &mut Context<'_, Self::Out>,
    ) -> Result<()>;

    /// A record of the broadcast input, with the broadcast state to change (every subtask
    /// gets the same records, and must change its state the same way).
    fn process_broadcast_element(
        &mut self,
        value: Self::Broadcast,
        state: &mut BroadcastState<Self::StateKey, Self::StateValue>,
        ctx: &mut Context<'_, Self::Out>,
    ) -> Result<()>;
}

/// A [`BroadcastProcessFunction`] with its broadcast state, as an operator of two inputs.
struct BroadcastOperator<F: BroadcastProcessFunction> {
    f: F,
    state: BroadcastState<F::StateKey, F::StateValue>,
    name: Arc<str>,
}

impl<F: BroadcastProcessFunction> Operator for BroadcastOperator<F> {
    type In = TwoInput<F::In, F::Broadcast>;
    type Out = F::Out;
    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        self.f.open(ctx)
    }
    #[inline]
    fn process(&mut self, value: Self::In, ctx: &mut Context<'_, F::Out>) -> Result<()> {
        match value {
            TwoInput::First(value) => self.f.process_element(value, &self.state, ctx),
            TwoInput::Second(value) => self.f.process_broadcast_element(value, &mut self.state, ctx),
        }
    }
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.state.encode(&self.name).map(Some)
    }
    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.state = BroadcastState::restore(&states, &self.name)?;
        Ok(())
    }
}

/// A keyed stream connected with a broadcast stream.
pub struct KeyedBroadcastConnectedStream<Key_, T, B, K, V> {
    stream: KeyedStream<Key_, T>,
    broadcast: DataStream<B>,
    descriptor: BroadcastStateDescriptor<K, V>,
}

impl<Key_: Key, T: Data, B: Data, K: Data + Ord, V: Data> KeyedBroadcastConnectedStream<Key_, T, B, K, V> {
    /// Runs a [`KeyedBroadcastProcessFunction`], made once per subtask by `factory`.
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: KeyedBroadcastProcessFunction<Key = Key_, In = T, Broadcast = B, StateKey = K, StateValue = V>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        let (selector, descriptor) = (self.stream.selector.clone(), self.descriptor.clone());
        let make: MakeLink<TwoInput<T, B>, F::Out> = Arc::new(move |name, down| {
            Box::new(KeyedBroadcastLink {
                f: factory(),
                selector: selector.clone(),
                parts: None,
                state: BroadcastState::default(),
                state_name: descriptor.name.clone(),
                down,
                name,
            })
        });
        let edges = [self.stream.hash_edge(), self.broadcast.edge()];
        debug_assert_eq!(edges[1].partitioning, Some(Partitioning::Broadcast));
        self.stream.stream.add_two_input(&self.broadcast, name, edges, make)
    }
}

/// A function of a keyed stream and a broadcast stream (Flink's
/// `KeyedBroadcastProcessFunction`): per-key state and timers on the keyed side, the
/// broadcast state read there and written by the broadcast side.
///
/// ```
/// use weir_actors::prelude::*;
///
/// /// Alerts on a transaction above the limit the broadcast rules set for its account.
/// struct Limits;
/// impl KeyedBroadcastProcessFunction for Limits {
///     type Key = String;
///     type In = (String, u64); // (account, amount)
///     type Broadcast = (String, u64); // (account, limit)
///     type StateKey = String;
///     type StateValue = u64;
///     type Out = String;
///     fn process_element(&mut self, (account, amount): (String, u64), limits: &BroadcastState<String, u64>, ctx: &mut KeyedContext<'_, String, String>) -> Result<()> {
///         if limits.get(&account).is_some_and(|limit| amount > *limit) {
///             ctx.emit(format!("{account}: {amount}"));
///         }
///         Ok(())
///     }
///     fn process_broadcast_element(&mut self, (account, limit): (String, u64), limits: &mut BroadcastState<String, u64>, _: &mut BroadcastContext<'_, String>) -> Result<()> {
///         limits.put(account, limit);
///         Ok(())
///     }
/// }
///
/// let limits = BroadcastStateDescriptor::<String, u64>::new("limits");
/// let mut h = HarnessConfig::new()
///     .build_two_input(move |tx: DataStream<(String, u64)>, rules: DataStream<(String, u64)>| {
///         tx.key_by(|t: &(String, u64)| t.0.clone()).connect_broadcast(&rules.broadcast_state(&limits)).process("limits", || Limits)
///     })
///     .unwrap();
/// h.process2(("acc-1".to_owned(), 100)).unwrap();
/// h.process1(("acc-1".to_owned(), 150)).unwrap();
/// h.process1(("acc-1".to_owned(), 50)).unwrap();
/// assert_eq!(h.output(), ["acc-1: 150"]);
/// ```
pub trait KeyedBroadcastProcessFunction: Send + 'static {
    /// The key type of the keyed input.
    type Key: Key;
    /// The record type of the keyed input.
    type In: Data;
    /// The record type of the broadcast input.
    type Broadcast: Data;
    /// The broadcast state's key type.
    type StateKey: Data + Ord;
    /// The broadcast state's value type.
    type StateValue: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record: register keyed state here.
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, Self::Key>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// A record of the keyed input, with its key's state and the broadcast state to read.
    fn process_element(
        &mut self,
        value: Self::In,
        state: &BroadcastState<Self::StateKey, Self::StateValue>,
        ctx: &mut KeyedContext<'_, Self::Key, Self::Out>,
    ) -> Result<()>;

    /// A record of the broadcast input, with the broadcast state to change.
    fn process_broadcast_element(
        &mut self,
        value: Self::Broadcast,
        state: &mut BroadcastState<Self::StateKey, Self::StateValue>,
        ctx: &mut BroadcastContext<'_, Self::Out>,
    ) -> Result<()>;

    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        timestamp: Timestamp,
        domain: TimeDomain,
        state: &BroadcastState<Self::StateKey, Self::StateValue>,
        ctx: &mut KeyedContext<'_, Self::Key, Self::Out>,
    ) -> Result<()> {
        let _ = (timestamp, domain, state, ctx);
        Ok(())
    }
}

/// What the broadcast side of a keyed broadcast function sees: no key, so no keyed state;
/// where to emit, the record's timestamp and the watermark.
pub struct BroadcastContext<'a, O> {
    out: &'a mut Outputs<O>,
    io: &'a mut TaskIo,
    timestamp: Timestamp,
}

impl<O: Data> BroadcastContext<'_, O> {
    /// Emits a record with the broadcast record's timestamp.
    pub fn emit(&mut self, value: O) {
        self.out.record(value, self.timestamp, self.io);
    }
    /// Sends a record to the side output `tag`.
    pub fn output<X: Data>(&mut self, tag: &OutputTag<X>, value: X) {
        emit_side(self.out, tag, value, self.timestamp, self.io);
    }
    /// The broadcast record's timestamp, if it has one.
    pub fn timestamp(&self) -> Option<Timestamp> {
        (self.timestamp != weir_dataplane::NO_TIMESTAMP).then_some(self.timestamp)
    }
    /// The current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }
}

/// Runs a [`KeyedBroadcastProcessFunction`]: keyed state and timers as a keyed function's,
/// and the broadcast state in the operator's state of each subtask.
struct KeyedBroadcastLink<F: KeyedBroadcastProcessFunction> {
    f: F,
    selector: crate::api::keyed::KeySelector<F::In, F::Key>,
    parts: Option<KeyedParts<F::Key, ()>>,
    state: BroadcastState<F::StateKey, F::StateValue>,
    state_name: Arc<str>,
    down: Outputs<F::Out>,
    name: LinkInfo,
}

impl<F: KeyedBroadcastProcessFunction> KeyedBroadcastLink<F> {
    fn fire(&mut self, domain: TimeDomain, upto: Timestamp, io: &mut TaskIo) {
        let (parts, f, state) = (self.parts.as_mut().expect("opened"), &mut self.f, &self.state);
        fire_timers(parts, &mut self.down, io, &self.name, domain, upto, |ts, ctx| f.on_timer(ts, domain, state, ctx));
    }
}

impl<F: KeyedBroadcastProcessFunction> Link<TwoInput<F::In, F::Broadcast>> for KeyedBroadcastLink<F> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        let f = &mut self.f;
        self.parts = open_keyed(io, &self.name, |ctx| f.open(ctx));
        let states = io.restored.as_ref().map(|r| r.operator_states(self.name.node)).unwrap_or_default();
        match BroadcastState::restore(&states, &self.state_name) {
            Ok(state) => self.state = state,
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
    }

    #[inline]
    fn record(&mut self, value: TwoInput<F::In, F::Broadcast>, ts: Timestamp, io: &mut TaskIo) {
        let result = match value {
            TwoInput::First(value) => {
                let parts = self.parts.as_mut().expect("opened");
                let key = (self.selector)(&value);
                let mut ctx = KeyedContext::new(&key, ts, parts, &mut self.down, io);
                self.f.process_element(value, &self.state, &mut ctx)
            }
            TwoInput::Second(value) => {
                let mut ctx = BroadcastContext { out: &mut self.down, io: &mut *io, timestamp: ts };
                self.f.process_broadcast_element(value, &mut self.state, &mut ctx)
            }
        };
        if let Err(e) = result {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        let at = out.len();
        self.parts.as_mut().expect("opened").snapshot_into(&self.name, barrier, io, out);
        match self.state.encode(&self.state_name) {
            Ok(bytes) if out.len() > at => out[at].operator = Some(bytes),
            Ok(_) => {}
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
        self.down.checkpoint(barrier, io, out);
    }

    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        keyed_timers(&self.parts, &self.down, out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        keyed_checkpoint_complete(&mut self.parts, &mut self.down, id, io);
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

#[cfg(test)]
mod tests;
