//! Two-input operators: [`connect`](crate::api::stream::DataStream::connect) two streams,
//! possibly of different types, into one operator that sees both (Flink's `ConnectedStreams`
//! with `CoMapFunction`, `CoFlatMapFunction`, `CoProcessFunction`, and on two keyed streams
//! `KeyedCoProcessFunction`).
//!
//! The operator's watermark is the minimum of both inputs' (an idle input left out), and a
//! checkpoint's barrier is aligned across both: its snapshot holds exactly the records of each
//! input before the barrier. On keyed connected streams both inputs are partitioned by key
//! with the same key groups, so a key's records of either input meet in one subtask with the
//! key's state and timers.
//!
//! Decision: Flink's `CoMapFunction` and `CoFlatMapFunction` are interfaces because Java
//! lambdas come one per interface; here they are [`ConnectedStreams::map`] and
//! [`ConnectedStreams::flat_map`] with a closure per input, and a function with state or
//! hooks is a [`CoProcessFunction`].

use std::sync::Arc;

use weir_dataplane::Timestamp;

use crate::api::keyed::KeyedLink;
use crate::api::keyed::{KeySelector, KeyedContext, KeyedOpenContext, KeyedProcessFunction};
use crate::api::operator::OperatorLink;
use crate::api::operator::{Context, OpenContext, Operator};
use crate::api::stream::{DataStream, KeyedStream};
use crate::base::data::{Data, Key};
use crate::base::error::{Result, WeirError};
use crate::base::time::TimeDomain;
pub use crate::runtime::input::TwoInput;
use crate::runtime::job_graph::NodeKind;
use crate::runtime::nodes::{MakeLink, NodeFactory, TwoInputNode};
use crate::runtime::stream_graph::StreamEdge;

/// A function of two inputs (Flink's `CoProcessFunction`): `process1` gets the first input's
/// records, `process2` the second's, both with a [`Context`] to emit to the main output or to
/// side outputs. Its hooks and operator state are an [`Operator`]'s.
///
/// ```
/// use weir_actors::prelude::*;
///
/// /// Passes words through until a control stream says "stop".
/// struct Gate { open: bool }
///
/// impl CoProcessFunction for Gate {
///     type In1 = String;
///     type In2 = String;
///     type Out = String;
///     fn process1(&mut self, word: String, ctx: &mut Context<'_, String>) -> Result<()> {
///         if self.open { ctx.emit(word) }
///         Ok(())
///     }
///     fn process2(&mut self, control: String, _: &mut Context<'_, String>) -> Result<()> {
///         self.open = control != "stop";
///         Ok(())
///     }
/// }
///
/// let mut h = HarnessConfig::new()
///     .build_two_input(|words: DataStream<String>, control: DataStream<String>| {
///         words.connect(&control).process("gate", || Gate { open: true })
///     })
///     .unwrap();
/// h.process1("a".to_owned()).unwrap();
/// h.process2("stop".to_owned()).unwrap();
/// h.process1("b".to_owned()).unwrap();
/// assert_eq!(h.output(), vec!["a".to_owned()]);
/// ```
pub trait CoProcessFunction: Send + 'static {
    /// The first input's record type.
    type In1: Data;
    /// The second input's record type.
    type In2: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record (see [`Operator::open`]).
    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called for every record of the first input.
    fn process1(&mut self, value: Self::In1, ctx: &mut Context<'_, Self::Out>) -> Result<()>;

    /// Called for every record of the second input.
    fn process2(&mut self, value: Self::In2, ctx: &mut Context<'_, Self::Out>) -> Result<()>;

    /// Called when the combined watermark of both inputs advances.
    fn on_watermark(&mut self, watermark: Timestamp, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        let _ = (watermark, ctx);
        Ok(())
    }

    /// Called when both inputs have ended.
    fn end_input(&mut self, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the subtask ends normally (see [`Operator::close`]).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// Its operator state at a checkpoint (see [`Operator::snapshot_state`]).
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        let _ = checkpoint_id;
        Ok(None)
    }

    /// Restores its operator state (see [`Operator::restore_state`]).
    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let _ = states;
        Ok(())
    }
}

/// A [`CoProcessFunction`] run as the operator of a two-input node.
pub(crate) struct CoOperator<F>(pub(crate) F);

impl<F: CoProcessFunction> Operator for CoOperator<F> {
    type In = TwoInput<F::In1, F::In2>;
    type Out = F::Out;
    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn process(&mut self, value: Self::In, ctx: &mut Context<'_, F::Out>) -> Result<()> {
        match value {
            TwoInput::First(a) => self.0.process1(a, ctx),
            TwoInput::Second(b) => self.0.process2(b, ctx),
        }
    }
    fn on_watermark(&mut self, watermark: Timestamp, ctx: &mut Context<'_, F::Out>) -> Result<()> {
        self.0.on_watermark(watermark, ctx)
    }
    fn end_input(&mut self, ctx: &mut Context<'_, F::Out>) -> Result<()> {
        self.0.end_input(ctx)
    }
    fn close(&mut self) -> Result<()> {
        self.0.close()
    }
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.0.snapshot_state(checkpoint_id)
    }
    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.0.restore_state(states)
    }
}

/// A function of two keyed inputs with per-key state and timers (Flink's
/// `KeyedCoProcessFunction`): a key's records of both inputs, and its timers, see the same
/// state.
///
/// ```
/// use weir_actors::prelude::*;
///
/// /// Emits each order with the latest price of its item.
/// struct Enrich { price: Option<ValueState<u32>> }
///
/// impl KeyedCoProcessFunction for Enrich {
///     type Key = String;
///     type In1 = (String, u32); // (item, quantity)
///     type In2 = (String, u32); // (item, price)
///     type Out = (String, u32);  // (item, total)
///     fn open(&mut self, ctx: &mut KeyedOpenContext<'_, String>) -> Result<()> {
///         self.price = Some(ctx.value_state("price")?);
///         Ok(())
///     }
///     fn process1(&mut self, order: (String, u32), ctx: &mut KeyedContext<'_, String, (String, u32)>) -> Result<()> {
///         if let Some(price) = ctx.value(self.price.unwrap()).get()? {
///             ctx.emit((order.0, order.1 * price));
///         }
///         Ok(())
///     }
///     fn process2(&mut self, price: (String, u32), ctx: &mut KeyedContext<'_, String, (String, u32)>) -> Result<()> {
///         ctx.value(self.price.unwrap()).update(price.1)
///     }
/// }
///
/// let mut h = HarnessConfig::new()
///     .build_two_input(|orders: DataStream<(String, u32)>, prices: DataStream<(String, u32)>| {
///         orders
///             .key_by(|o: &(String, u32)| o.0.clone())
///             .connect(&prices.key_by(|p: &(String, u32)| p.0.clone()))
///             .process("enrich", || Enrich { price: None })
///     })
///     .unwrap();
/// h.process1(("tea".to_owned(), 2)).unwrap(); // no price yet
/// h.process2(("tea".to_owned(), 3)).unwrap();
/// h.process1(("tea".to_owned(), 4)).unwrap();
/// assert_eq!(h.output(), vec![("tea".to_owned(), 12)]);
/// ```
pub trait KeyedCoProcessFunction: Send + 'static {
    /// The key type both inputs are keyed by.
    type Key: Key;
    /// The first input's record type.
    type In1: Data;
    /// The second input's record type.
    type In2: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record: register state here.
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, Self::Key>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called for every record of the first input, with its key as the current key.
    fn process1(&mut self, value: Self::In1, ctx: &mut KeyedContext<'_, Self::Key, Self::Out>) -> Result<()>;

    /// Called for every record of the second input, with its key as the current key.
    fn process2(&mut self, value: Self::In2, ctx: &mut KeyedContext<'_, Self::Key, Self::Out>) -> Result<()>;

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

/// A [`KeyedCoProcessFunction`] run as the keyed function of a two-input node.
pub(crate) struct KeyedCoOperator<F>(pub(crate) F);

impl<F: KeyedCoProcessFunction> KeyedProcessFunction for KeyedCoOperator<F> {
    type Key = F::Key;
    type In = TwoInput<F::In1, F::In2>;
    type Out = F::Out;
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, F::Key>) -> Result<()> {
        self.0.open(ctx)
    }
    #[inline]
    fn process(&mut self, value: Self::In, ctx: &mut KeyedContext<'_, F::Key, F::Out>) -> Result<()> {
        match value {
            TwoInput::First(a) => self.0.process1(a, ctx),
            TwoInput::Second(b) => self.0.process2(b, ctx),
        }
    }
    fn on_timer(
        &mut self,
        timestamp: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, F::Key, F::Out>,
    ) -> Result<()> {
        self.0.on_timer(timestamp, domain, ctx)
    }
}

impl<T: Data> DataStream<T> {
    /// Connects this stream with `other` (of any type) into a two-input operator (Flink's
    /// `connect`); see [`ConnectedStreams`].
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     let a = env.from_vec("a", vec![1u8, 2]);
    ///     let b = env.from_vec("b", vec!['x']);
    ///     a.connect(&b).map("either", |n: u8| n.to_string(), |c: char| c.to_string())
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, ["1", "2", "x"]);
    /// ```
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams { first: self.clone(), second: other.clone() }
    }

    /// Adds a two-input operator node reading this stream as its first input and `other` as
    /// its second, over `edges` (this stream's and `other`'s).
    pub(crate) fn add_two_input<B: Data, O: Data>(
        &self,
        other: &DataStream<B>,
        name: &str,
        edges: [StreamEdge; 2],
        make: MakeLink<TwoInput<T, B>, O>,
    ) -> DataStream<O> {
        if !std::rc::Rc::ptr_eq(&self.env, &other.env) {
            self.fail(WeirError::Graph(format!("'{name}' connects streams of two different job builders")));
        }
        let factory: Arc<dyn NodeFactory> = Arc::new(TwoInputNode { make });
        Self::add_node(&self.env, name, NodeKind::Operator, edges.into(), factory)
    }

    /// A two-input operator over this stream and `other` (see [`ConnectedStreams::process`]).
    pub(crate) fn operator_of_two<B, O, F>(&self, other: &DataStream<B>, name: &str, factory: F) -> DataStream<O::Out>
    where
        B: Data,
        O: Operator<In = TwoInput<T, B>>,
        F: Fn() -> O + Send + Sync + 'static,
    {
        let make: MakeLink<TwoInput<T, B>, O::Out> =
            Arc::new(move |name, down| Box::new(OperatorLink::new(factory(), down, name)));
        self.add_two_input(other, name, [self.edge(), other.edge()], make)
    }
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    /// Connects this keyed stream with `other`, keyed by the same key type, into a keyed
    /// two-input operator; see [`KeyedConnectedStreams`].
    pub fn connect<B: Data>(&self, other: &KeyedStream<K, B>) -> KeyedConnectedStreams<K, T, B> {
        KeyedConnectedStreams { first: self.clone(), second: other.clone() }
    }

    /// A keyed two-input operator over this stream and `other`, both partitioned by key:
    /// `selector` gives the key of a record of either.
    pub(crate) fn keyed_of_two<B, F, Mk>(
        &self,
        other: &KeyedStream<K, B>,
        name: &str,
        selector: KeySelector<TwoInput<T, B>, K>,
        factory: Mk,
    ) -> DataStream<F::Out>
    where
        B: Data,
        F: KeyedProcessFunction<Key = K, In = TwoInput<T, B>>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        let make: MakeLink<TwoInput<T, B>, F::Out> = Arc::new(move |name, down| {
            Box::new(KeyedLink { f: factory(), selector: selector.clone(), parts: None, down, name })
        });
        self.stream.add_two_input(&other.stream, name, [self.hash_edge(), other.hash_edge()], make)
    }
}

/// Two streams connected into one two-input operator (see the [module docs](self)).
pub struct ConnectedStreams<A, B> {
    pub(crate) first: DataStream<A>,
    pub(crate) second: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    /// Maps each input's records with its own closure into one output type (Flink's
    /// `CoMapFunction`).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     let numbers = env.from_vec("numbers", vec![1u32, 2]);
    ///     let words = env.from_vec("words", vec!["three".to_owned()]);
    ///     numbers.connect(&words).map("describe", |n: u32| format!("number {n}"), |w: String| format!("word {w}"))
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, ["number 1", "number 2", "word three"]);
    /// ```
    pub fn map<O, F1, F2>(&self, name: &str, first: F1, second: F2) -> DataStream<O>
    where
        O: Data,
        F1: Fn(A) -> O + Clone + Send + Sync + 'static,
        F2: Fn(B) -> O + Clone + Send + Sync + 'static,
    {
        self.flat_map(name, move |a| Some(first(a)), move |b| Some(second(b)))
    }

    /// Turns each input's records into any number of records with its own closure (Flink's
    /// `CoFlatMapFunction`).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     let lines = env.from_vec("lines", vec!["a b".to_owned()]);
    ///     let counts = env.from_vec("counts", vec![2usize]);
    ///     lines.connect(&counts).flat_map(
    ///         "tokens",
    ///         |l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>(),
    ///         |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>(),
    ///     )
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, ["0", "1", "a", "b"]);
    /// ```
    pub fn flat_map<O, I1, I2, F1, F2>(&self, name: &str, first: F1, second: F2) -> DataStream<O>
    where
        O: Data,
        I1: IntoIterator<Item = O> + 'static,
        I2: IntoIterator<Item = O> + 'static,
        F1: Fn(A) -> I1 + Clone + Send + Sync + 'static,
        F2: Fn(B) -> I2 + Clone + Send + Sync + 'static,
    {
        self.process(name, move || CoFlatMap {
            first: first.clone(),
            second: second.clone(),
            _types: Default::default(),
        })
    }

    /// Runs a [`CoProcessFunction`], made once per subtask by `factory`.
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: CoProcessFunction<In1 = A, In2 = B>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        self.first.operator_of_two(&self.second, name, move || CoOperator(factory()))
    }

    /// Partitions both inputs by key (Flink's `ConnectedStreams.keyBy`): a key's records of
    /// either input go to the same subtask, for a [`KeyedCoProcessFunction`].
    pub fn key_by<K, F1, F2>(&self, first: F1, second: F2) -> KeyedConnectedStreams<K, A, B>
    where
        K: Key,
        F1: Fn(&A) -> K + Send + Sync + 'static,
        F2: Fn(&B) -> K + Send + Sync + 'static,
    {
        KeyedConnectedStreams { first: self.first.key_by(first), second: self.second.key_by(second) }
    }
}

/// The types a [`CoFlatMap`] maps between.
type CoFlatMapTypes<A, B, O, I1, I2> = fn(A, B) -> (O, I1, I2);

/// `ConnectedStreams::flat_map`: a closure per input.
struct CoFlatMap<A, B, O, I1, I2, F1, F2> {
    first: F1,
    second: F2,
    _types: std::marker::PhantomData<CoFlatMapTypes<A, B, O, I1, I2>>,
}

impl<A, B, O, I1, I2, F1, F2> CoProcessFunction for CoFlatMap<A, B, O, I1, I2, F1, F2>
where
    A: Data,
    B: Data,
    O: Data,
    I1: IntoIterator<Item = O> + 'static,
    I2: IntoIterator<Item = O> + 'static,
    F1: Fn(A) -> I1 + Send + 'static,
    F2: Fn(B) -> I2 + Send + 'static,
{
    type In1 = A;
    type In2 = B;
    type Out = O;
    #[inline]
    fn process1(&mut self, value: A, ctx: &mut Context<'_, O>) -> Result<()> {
        (self.first)(value).into_iter().for_each(|o| ctx.emit(o));
        Ok(())
    }
    #[inline]
    fn process2(&mut self, value: B, ctx: &mut Context<'_, O>) -> Result<()> {
        (self.second)(value).into_iter().for_each(|o| ctx.emit(o));
        Ok(())
    }
}

/// Two keyed streams connected into one keyed two-input operator.
pub struct KeyedConnectedStreams<K, A, B> {
    pub(crate) first: KeyedStream<K, A>,
    pub(crate) second: KeyedStream<K, B>,
}

impl<K: Key, A: Data, B: Data> KeyedConnectedStreams<K, A, B> {
    /// Runs a [`KeyedCoProcessFunction`], made once per subtask by `factory`.
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: KeyedCoProcessFunction<Key = K, In1 = A, In2 = B>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        let (first, second) = (self.first.selector.clone(), self.second.selector.clone());
        let selector: KeySelector<TwoInput<A, B>, K> = Arc::new(move |r| match r {
            TwoInput::First(a) => first(a),
            TwoInput::Second(b) => second(b),
        });
        self.first.keyed_of_two(&self.second, name, selector, move || KeyedCoOperator(factory()))
    }
}

#[cfg(test)]
mod tests;
