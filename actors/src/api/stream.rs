//! The typed stream builder: sugar over operators, as Flink's DataStream API.
//!
//! A job builder calls these on a [`StreamEnv`]; each call adds a node to the job's stream
//! graph. Nothing runs until the job is submitted. Each method's example runs on an embedded
//! [`MiniCluster`](crate::MiniCluster).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::{BatchConfig, DEFAULT_MAX_PARALLELISM, KeyGroup, Partitioning, Timestamp, key_group_of};

use crate::api::connectors::{PrintSink, VecSource};
use crate::api::functions::{AggregateFunction, FilterOp, FlatMapOp, MapOp, ProcessOp, ReduceAgg};
use crate::api::keyed::{KeySelector, KeyedLink, KeyedProcessFunction, RollingAggregate, RollingReduce};
use crate::api::operator::{Operator, OperatorLink};
use crate::api::side_output::OutputTag;
use crate::api::sink::{Sink, SinkOperator};
use crate::api::source::{Source, SourceNode};
use crate::api::window::evictor::{CountEvictor, Evicting, Evictor};
use crate::api::window::operator::{
    Elements, EmitProcess, EmitWindowed, Incremental, WindowContents, WindowEmit, WindowLink, WindowSpec,
};
use crate::api::window::trigger::{CountTrigger, DefaultTrigger, PurgingTrigger, Trigger};
use crate::api::window::{Global, ProcessWindowFunction, WindowAssigner, Windowed};
use crate::base::data::{Data, Key};
use crate::base::error::{Result, WeirError};
use crate::runtime::job_graph::NodeKind;
use crate::runtime::nodes::{MakeLink, NodeFactory, OperatorNode, Port, Validate};
use crate::runtime::stream_graph::{StreamEdge, StreamGraph, StreamNode};
use crate::runtime::watermark::{TimestampsAndWatermarks, WatermarkStrategy};
use crate::runtime::writer::KeyGroupFn;

#[derive(Default)]
pub(crate) struct Builder {
    pub(crate) graph: StreamGraph,
    pub(crate) errors: Vec<WeirError>,
}

/// Where a job builder makes its dataflow.
pub struct StreamEnv {
    inner: Rc<RefCell<Builder>>,
}

impl StreamEnv {
    pub(crate) fn new(parallelism: usize) -> Self {
        let graph = StreamGraph {
            nodes: Vec::new(),
            default_parallelism: parallelism.max(1),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            batch: BatchConfig::default(),
            auto_watermark_interval: crate::base::time::DEFAULT_AUTO_WATERMARK_INTERVAL,
        };
        StreamEnv { inner: Rc::new(RefCell::new(Builder { graph, errors: Vec::new() })) }
    }

    /// The default parallelism of operators (from `weir run --parallelism`).
    pub fn parallelism(&self) -> usize {
        self.inner.borrow().graph.default_parallelism
    }

    /// Sets the default parallelism of operators.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.set_parallelism(2);
    ///     env.source("clicks", Generator::new(GeneratorConfig { events: Some(10), ..Default::default() }))
    /// }).unwrap();
    /// assert_eq!(out.len(), 10);
    /// ```
    pub fn set_parallelism(&mut self, parallelism: usize) -> &mut Self {
        self.inner.borrow_mut().graph.default_parallelism = parallelism;
        self
    }

    /// Sets the number of key groups (default 128): the upper bound of any keyed
    /// operator's parallelism, fixed for the life of the job's state.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.set_max_parallelism(16);
    ///     env.from_vec("n", vec![1u32, 2, 1]).key_by(|x: &u32| *x).aggregate("count", Count)
    /// }).unwrap();
    /// assert_eq!(out.len(), 3);
    /// ```
    pub fn set_max_parallelism(&mut self, max_parallelism: u16) -> &mut Self {
        self.inner.borrow_mut().graph.max_parallelism = max_parallelism;
        self
    }

    /// Sets batching: records per batch, the flush interval (latency bound) and the
    /// capacity of each channel in batches (memory per channel).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.set_batch_config(BatchConfig { max_records: 8, flush_interval: Duration::from_millis(1), channel_capacity: 2 });
    ///     env.from_vec("n", (0..100u32).collect()).map("inc", |x: u32| x + 1).disable_chaining()
    /// }).unwrap();
    /// assert_eq!(out.len(), 100);
    /// ```
    pub fn set_batch_config(&mut self, batch: BatchConfig) -> &mut Self {
        self.inner.borrow_mut().graph.batch = batch;
        self
    }

    /// Adds a source.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let config = GeneratorConfig { events: Some(5), keys: 2, ..Default::default() };
    /// let out = MiniCluster::collect(move |env| env.source("clicks", Generator::new(config))).unwrap();
    /// assert_eq!(out.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    /// ```
    pub fn source<S: Source + Clone + Sync>(&mut self, name: &str, source: S) -> DataStream<S::Out> {
        let factory: Arc<dyn NodeFactory> = Arc::new(SourceNode { source });
        DataStream::<()>::add_node(&self.inner, name, NodeKind::Source, Vec::new(), factory)
    }

    /// A source over a vector (parallelism 1), without timestamps.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("nums", vec![1, 2, 3])).unwrap();
    /// assert_eq!(out, vec![1, 2, 3]);
    /// ```
    pub fn from_vec<T: Data + Sync>(&mut self, name: &str, items: Vec<T>) -> DataStream<T> {
        self.source(name, VecSource::new(items)).set_parallelism(1)
    }

    /// A source over `(record, event timestamp)` pairs (parallelism 1), with monotonous watermarks.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// struct Stamp;
    /// impl Operator for Stamp {
    ///     type In = char;
    ///     type Out = (char, i64);
    ///     fn process(&mut self, c: char, ctx: &mut Context<'_, (char, i64)>) -> Result<()> {
    ///         let ts = ctx.timestamp().unwrap();
    ///         ctx.emit((c, ts));
    ///         Ok(())
    ///     }
    /// }
    /// let out = MiniCluster::collect(|env| env.from_vec_timestamped("t", vec![('a', 5), ('b', 7)]).operator("stamp", || Stamp)).unwrap();
    /// assert_eq!(out, vec![('a', 5), ('b', 7)]);
    /// ```
    pub fn from_vec_timestamped<T: Data + Sync>(&mut self, name: &str, items: Vec<(T, Timestamp)>) -> DataStream<T> {
        self.source(name, VecSource::timestamped(items, WatermarkStrategy::monotonous())).set_parallelism(1)
    }

    /// How often watermark generators emit periodically where a stream is given a
    /// [`WatermarkStrategy`] mid-dataflow (default 200 ms; Flink's
    /// `pipeline.auto-watermark-interval`). Sources emit after every poll instead.
    pub fn set_auto_watermark_interval(&mut self, interval: Duration) -> &mut Self {
        if interval.is_zero() {
            self.fail(WeirError::Graph("the auto-watermark interval must be positive".into()));
        }
        self.inner.borrow_mut().graph.auto_watermark_interval = interval;
        self
    }

    /// Records an error found while building; the job is refused with it.
    pub fn fail(&mut self, error: WeirError) {
        self.inner.borrow_mut().errors.push(error);
    }

    /// The input of an operator test harness: a node that is never run, whose successors the
    /// harness feeds by hand.
    pub(crate) fn harness_input<T: Data>(&mut self) -> DataStream<T> {
        let make: MakeLink<T, T> = Arc::new(|_, down| down.into_link());
        let factory: Arc<dyn NodeFactory> = Arc::new(OperatorNode { make, validate: None });
        DataStream::<T>::add_node(&self.inner, "harness-input", NodeKind::Source, Vec::new(), factory)
    }

    pub(crate) fn finish(self) -> Result<StreamGraph> {
        let mut builder = std::mem::take(&mut *self.inner.borrow_mut());
        match builder.errors.drain(..).next() {
            Some(e) => Err(e),
            None => Ok(builder.graph),
        }
    }
}

/// A stream of `T` records.
pub struct DataStream<T> {
    pub(crate) env: Rc<RefCell<Builder>>,
    node: usize,
    /// Which output of the node: 0 its main output, `i` its side output `i - 1`.
    output: usize,
    partitioning: Option<Partitioning>,
    _types: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            node: self.node,
            output: self.output,
            partitioning: self.partitioning,
            _types: PhantomData,
        }
    }
}

impl<T: Data> DataStream<T> {
    pub(crate) fn add_node<O>(
        env: &Rc<RefCell<Builder>>,
        name: &str,
        kind: NodeKind,
        inputs: Vec<StreamEdge>,
        factory: Arc<dyn NodeFactory>,
    ) -> DataStream<O> {
        let mut b = env.borrow_mut();
        b.graph.nodes.push(StreamNode {
            name: name.to_owned(),
            uid: None,
            state_version: 1,
            kind,
            parallelism: None,
            chaining: true,
            inputs,
            factory,
            side_outputs: Vec::new(),
        });
        DataStream {
            env: env.clone(),
            node: b.graph.nodes.len() - 1,
            output: 0,
            partitioning: None,
            _types: PhantomData,
        }
    }

    /// This stream's node in the stream graph.
    pub(crate) fn node_id(&self) -> usize {
        self.node
    }

    /// Refuses the job with `error`, found while building it.
    pub(crate) fn fail(&self, error: WeirError) {
        self.env.borrow_mut().errors.push(error);
    }

    /// Which output of its node this stream is (0: the main one).
    pub(crate) fn output_id(&self) -> usize {
        self.output
    }

    pub(crate) fn edge(&self) -> StreamEdge {
        StreamEdge { from: self.node, output: self.output, partitioning: self.partitioning, key_group: None }
    }

    pub(crate) fn then<O: Data>(
        &self,
        name: &str,
        kind: NodeKind,
        make: MakeLink<T, O>,
        validate: Option<Validate>,
    ) -> DataStream<O> {
        let factory: Arc<dyn NodeFactory> = Arc::new(OperatorNode { make, validate });
        Self::add_node(&self.env, name, kind, vec![self.edge()], factory)
    }

    /// Changes this stream's operator. A side output has no operator of its own: what is set
    /// on it is refused (set it on the operator that produces it).
    fn with_node(self, what: &str, f: impl FnOnce(&mut StreamNode)) -> Self {
        let mut b = self.env.borrow_mut();
        if self.output == 0 {
            f(&mut b.graph.nodes[self.node]);
        } else {
            let node = &b.graph.nodes[self.node];
            let error = WeirError::Graph(format!(
                "{what} on the side output '{}' of '{}': a side output has no operator of its own; set it on '{}'",
                node.side_outputs[self.output - 1].0,
                node.name,
                node.name
            ));
            b.errors.push(error);
        }
        drop(b);
        self
    }

    /// The side output `tag` of this stream's operator, as a stream (Flink's
    /// `getSideOutput`): what the operator sends there with `ctx.output(&tag, ..)`, with the
    /// operator's watermarks. See [`OutputTag`] for an example.
    pub fn get_side_output<X: Data>(&self, tag: &OutputTag<X>) -> DataStream<X> {
        let mut b = self.env.borrow_mut();
        let port = Port::<X>::shared();
        let node = &mut b.graph.nodes[self.node];
        let output = match node.side_outputs.iter().position(|(id, _)| **id == *tag.id()) {
            Some(i) if node.side_outputs[i].1.type_name() != port.type_name() => {
                let error = WeirError::Graph(format!(
                    "the side output '{}' of '{}' is read as {} and as {}: one tag id, one type",
                    tag.id(),
                    node.name,
                    node.side_outputs[i].1.type_name(),
                    port.type_name()
                ));
                b.errors.push(error);
                i + 1
            }
            Some(i) => i + 1,
            None => {
                node.side_outputs.push((tag.shared_id(), port));
                node.side_outputs.len()
            }
        };
        drop(b);
        DataStream { env: self.env.clone(), node: self.node, output, partitioning: None, _types: PhantomData }
    }

    /// Assigns timestamps and watermarks from here on (Flink's
    /// `assignTimestampsAndWatermarks`): each record's timestamp comes from the strategy's
    /// assigner (or is the one it carries), watermarks from its generator, emitted on events
    /// and every [auto-watermark interval](StreamEnv::set_auto_watermark_interval); watermarks
    /// from upstream are dropped, except the final one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("readings", vec![('a', 100), ('a', 900), ('a', 1500)])
    ///         .assign_timestamps_and_watermarks(
    ///             WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100))
    ///                 .with_timestamp_assigner(|r: &(char, i64), _| r.1),
    ///         )
    ///         .key_by(|r: &(char, i64)| r.0)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .aggregate("count", Count)
    /// }).unwrap();
    /// let counts: Vec<(i64, u64)> = out.iter().map(|w| (w.window.start, w.value)).collect();
    /// assert_eq!(counts, vec![(0, 2), (1000, 1)]);
    /// ```
    pub fn assign_timestamps_and_watermarks(&self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        let make: MakeLink<T, T> =
            Arc::new(move |_, down| Box::new(TimestampsAndWatermarks::new(strategy.clone(), down.into_link())));
        self.then("timestamps-and-watermarks", NodeKind::Operator, make, None)
    }

    /// Sets this operator's parallelism.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| env.from_vec("n", vec![1, 2, 3, 4]).map("double", |x: i32| x * 2).set_parallelism(2)).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![2, 4, 6, 8]);
    /// ```
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.with_node("set_parallelism", |n| n.parallelism = Some(parallelism))
    }

    /// Renames this operator.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// use weir_actors::api::functions::TryMapOp;
    /// let err = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![0u32]).operator("op", || TryMapOp::new(|_: u32| -> Result<u32> { Err("no".into()) })).name("checker")
    /// }).unwrap_err();
    /// assert!(err.to_string().contains("operator 'checker' failed: no"));
    /// ```
    pub fn name(self, name: &str) -> Self {
        self.with_node("name", |n| n.name = name.to_owned())
    }

    /// Gives this operator a stable id (kept across job versions for its state).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1u8]).map("id", |x: u8| x).uid("identity-v1")).unwrap();
    /// assert_eq!(out, vec![1]);
    /// ```
    pub fn uid(self, uid: &str) -> Self {
        self.with_node("uid", |n| n.uid = Some(uid.to_owned()))
    }

    /// Declares the version of this operator's state layout (1 unless declared): raise it
    /// when the types its state holds change in a way their encoding does not survive (a
    /// field added to a struct in a `ValueState`, say). A savepoint whose state this operator
    /// wrote under another version is refused with both versions named, rather than decoded
    /// into garbage; Flink's serializer snapshots carry such versions.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![1u8, 2]).key_by(|x: &u8| *x).reduce("sum", |a: &u8, b: &u8| a + b).uid("sum").state_version(2)
    /// }).unwrap();
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn state_version(self, version: u32) -> Self {
        self.with_node("state_version", |n| n.state_version = version)
    }

    /// Keeps this operator out of chains: it runs in its own subtasks, connected by channels.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1, 2]).map("inc", |x: i32| x + 1).disable_chaining()).unwrap();
    /// assert_eq!(out, vec![2, 3]);
    /// ```
    pub fn disable_chaining(self) -> Self {
        self.with_node("disable_chaining", |n| n.chaining = false)
    }

    /// Distributes the next operator's input round-robin.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| env.from_vec("n", (0..8u32).collect()).rebalance().map("m", |x: u32| x).set_parallelism(4)).unwrap();
    /// out.sort();
    /// assert_eq!(out, (0..8).collect::<Vec<_>>());
    /// ```
    pub fn rebalance(mut self) -> Self {
        self.partitioning = Some(Partitioning::Rebalance);
        self
    }

    /// Distributes the next operator's input round-robin within local groups (Flink's rescale).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1u32, 2]).rescale().map("m", |x: u32| x).set_parallelism(2)).unwrap();
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn rescale(mut self) -> Self {
        self.partitioning = Some(Partitioning::Rescale);
        self
    }

    /// Sends every record to every subtask of the next operator.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1u32]).broadcast().map("m", |x: u32| x).set_parallelism(3)).unwrap();
    /// assert_eq!(out, vec![1, 1, 1]);
    /// ```
    pub fn broadcast(mut self) -> Self {
        self.partitioning = Some(Partitioning::Broadcast);
        self
    }

    /// Transforms each record.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1, 2]).map("square", |x: i64| x * x)).unwrap();
    /// assert_eq!(out, vec![1, 4]);
    /// ```
    pub fn map<O: Data, F>(&self, name: &str, f: F) -> DataStream<O>
    where
        F: Fn(T) -> O + Clone + Send + Sync + 'static,
    {
        self.operator(name, move || MapOp::new(f.clone()))
    }

    /// Keeps the records the predicate accepts.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![1, 2, 3, 4]).filter("even", |x: &i32| x % 2 == 0)).unwrap();
    /// assert_eq!(out, vec![2, 4]);
    /// ```
    pub fn filter<F>(&self, name: &str, f: F) -> DataStream<T>
    where
        F: Fn(&T) -> bool + Clone + Send + Sync + 'static,
    {
        self.operator(name, move || FilterOp::new(f.clone()))
    }

    /// Turns each record into any number of records.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("lines", vec!["a b".to_owned(), "c".to_owned()])
    ///         .flat_map("split", |l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    /// }).unwrap();
    /// assert_eq!(out, vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map<O: Data, I, F>(&self, name: &str, f: F) -> DataStream<O>
    where
        I: IntoIterator<Item = O> + 'static,
        F: Fn(T) -> I + Clone + Send + Sync + 'static,
    {
        self.operator(name, move || FlatMapOp::new(f.clone()))
    }

    /// Runs a hand-written [`Operator`], made once per subtask by `factory`.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// use weir_actors::api::functions::MapOp;
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![2u32]).operator("double", || MapOp::new(|x: u32| x * 2))).unwrap();
    /// assert_eq!(out, vec![4]);
    /// ```
    pub fn operator<O, F>(&self, name: &str, factory: F) -> DataStream<O::Out>
    where
        O: Operator<In = T>,
        F: Fn() -> O + Send + Sync + 'static,
    {
        let make: MakeLink<T, O::Out> = Arc::new(move |name, down| Box::new(OperatorLink::new(factory(), down, name)));
        self.then(name, NodeKind::Operator, make, None)
    }

    /// Runs `f` on each record with a [`Context`](crate::api::operator::Context): it emits any
    /// number of records, to the main output or to side outputs (Flink's `ProcessFunction` on
    /// a non-keyed stream). For open/close hooks and operator state, write an [`Operator`].
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![1u32, 20, 3]).process("big", |n: u32, ctx: &mut Context<'_, String>| {
    ///         if n > 10 {
    ///             ctx.emit(format!("{n} is big"));
    ///         }
    ///         Ok(())
    ///     })
    /// }).unwrap();
    /// assert_eq!(out, vec!["20 is big".to_owned()]);
    /// ```
    pub fn process<O: Data, F>(&self, name: &str, f: F) -> DataStream<O>
    where
        F: FnMut(T, &mut crate::api::operator::Context<'_, O>) -> Result<()> + Clone + Send + Sync + 'static,
    {
        self.operator(name, move || ProcessOp::new(f.clone()))
    }

    /// Merges streams of the same type.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     let a = env.from_vec("a", vec![1, 2]);
    ///     let b = env.from_vec("b", vec![3]);
    ///     a.union(&[b])
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![1, 2, 3]);
    /// ```
    pub fn union(&self, others: &[DataStream<T>]) -> DataStream<T> {
        let mut inputs = vec![self.edge()];
        inputs.extend(others.iter().map(DataStream::edge));
        let make: MakeLink<T, T> = Arc::new(|_name, down| down.into_link());
        let factory: Arc<dyn NodeFactory> = Arc::new(OperatorNode { make, validate: None });
        Self::add_node(&self.env, "union", NodeKind::Operator, inputs, factory)
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask, and
    /// the next operator keeps state per key.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     env.from_vec("words", vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    ///         .key_by(|w: &String| w.clone())
    ///         .aggregate("count", Count)
    ///         .set_parallelism(2)
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![("a".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 1)]);
    /// ```
    pub fn key_by<K: Key, F>(&self, selector: F) -> KeyedStream<K, T>
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        KeyedStream { stream: self.clone(), selector: Arc::new(selector) }
    }

    /// Writes the stream to a sink.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let (sink, collected) = CollectSink::new();
    /// MiniCluster::collect(move |env| {
    ///     let nums = env.from_vec("n", vec![1u32, 2]);
    ///     nums.sink("copy", sink.clone());
    ///     nums
    /// }).unwrap();
    /// assert_eq!(collected.take(), vec![1, 2]);
    /// ```
    pub fn sink<S: Sink<In = T> + Clone + Sync>(&self, name: &str, sink: S) -> DataStream<()> {
        let validator = sink.clone();
        let make: MakeLink<T, ()> =
            Arc::new(move |name, down| Box::new(OperatorLink::new(SinkOperator { sink: sink.clone() }, down, name)));
        self.then(name, NodeKind::Sink, make, Some(Arc::new(move |ctx| validator.validate(ctx))))
    }

    /// Prints the stream to standard output.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// MiniCluster::collect(|env| {
    ///     let nums = env.from_vec("n", vec![1u32, 2]);
    ///     nums.print("print");
    ///     nums
    /// }).unwrap();
    /// ```
    pub fn print(&self, name: &str) -> DataStream<()>
    where
        T: std::fmt::Display,
    {
        self.sink(name, PrintSink::new())
    }
}

/// A stream partitioned by key.
pub struct KeyedStream<K, T> {
    pub(crate) stream: DataStream<T>,
    pub(crate) selector: KeySelector<T, K>,
}

impl<K, T> Clone for KeyedStream<K, T> {
    fn clone(&self) -> Self {
        KeyedStream { stream: self.stream.clone(), selector: self.selector.clone() }
    }
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    pub(crate) fn hash_edge(&self) -> StreamEdge {
        let selector = self.selector.clone();
        let key_group: KeyGroupFn<T> =
            Arc::new(move |record: &T, max: u16| -> KeyGroup { key_group_of(&selector(record), max) });
        StreamEdge {
            from: self.stream.node,
            output: self.stream.output,
            partitioning: Some(Partitioning::Hash),
            key_group: Some(Arc::new(key_group)),
        }
    }

    fn keyed<O: Data>(&self, name: &str, make: MakeLink<T, O>) -> DataStream<O> {
        let factory: Arc<dyn NodeFactory> = Arc::new(OperatorNode { make, validate: None });
        DataStream::<T>::add_node(&self.stream.env, name, NodeKind::Operator, vec![self.hash_edge()], factory)
    }

    /// Runs a [`KeyedProcessFunction`] (state and timers per key), made per subtask by `factory`.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// struct Echo;
    /// impl KeyedProcessFunction for Echo {
    ///     type Key = u32;
    ///     type In = u32;
    ///     type Out = (u32, u32);
    ///     fn process(&mut self, v: u32, ctx: &mut KeyedContext<'_, u32, (u32, u32)>) -> Result<()> {
    ///         let key = *ctx.key();
    ///         ctx.emit((key, v));
    ///         Ok(())
    ///     }
    /// }
    /// let out = MiniCluster::collect(|env| env.from_vec("n", vec![7u32]).key_by(|x: &u32| x % 2).process("echo", || Echo)).unwrap();
    /// assert_eq!(out, vec![(1, 7)]);
    /// ```
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: KeyedProcessFunction<Key = K, In = T>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        let selector = self.selector.clone();
        let make: MakeLink<T, F::Out> = Arc::new(move |name, down| {
            Box::new(KeyedLink { f: factory(), selector: selector.clone(), parts: None, down, name })
        });
        self.keyed(name, make)
    }

    /// A rolling reduce: emits the key's reduced value after every record.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![('a', 1), ('b', 5), ('a', 2)])
    ///         .key_by(|r: &(char, i32)| r.0)
    ///         .reduce("sum", |x, y| (x.0, x.1 + y.1))
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 1), ('a', 3), ('b', 5)]);
    /// ```
    pub fn reduce<F>(&self, name: &str, f: F) -> DataStream<T>
    where
        F: Fn(&T, &T) -> T + Clone + Send + Sync + 'static,
    {
        self.process(name, move || RollingReduce::<K, T, F> { f: f.clone(), state: None, _types: PhantomData })
    }

    /// A rolling minimum by `by`: emits, after every record, the key's record with the
    /// smallest `by` so far, the first of equals (Flink's `minBy`; a field is named by a
    /// closure rather than a position).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut h = OperatorHarness::new(|input: DataStream<(char, i32, String)>| {
    ///     input.key_by(|r: &(char, i32, String)| r.0).min_by("lowest", |r: &(char, i32, String)| r.1)
    /// }).unwrap();
    /// for (v, tag) in [(5, "first"), (3, "second"), (3, "third"), (7, "fourth")] {
    ///     h.process(('a', v, tag.to_owned())).unwrap();
    /// }
    /// let tags: Vec<String> = h.output().into_iter().map(|r| r.2).collect();
    /// assert_eq!(tags, ["first", "second", "second", "second"]);
    /// ```
    pub fn min_by<V: PartialOrd>(
        &self,
        name: &str,
        by: impl Fn(&T) -> V + Clone + Send + Sync + 'static,
    ) -> DataStream<T> {
        self.reduce(name, move |kept: &T, new: &T| if by(new) < by(kept) { new.clone() } else { kept.clone() })
    }

    /// A rolling maximum by `by`: emits, after every record, the key's record with the
    /// greatest `by` so far, the first of equals (Flink's `maxBy`).
    pub fn max_by<V: PartialOrd>(
        &self,
        name: &str,
        by: impl Fn(&T) -> V + Clone + Send + Sync + 'static,
    ) -> DataStream<T> {
        self.reduce(name, move |kept: &T, new: &T| if by(new) > by(kept) { new.clone() } else { kept.clone() })
    }

    /// A rolling sum of a field (Flink's `sum`): emits, after every record, the key's first
    /// record with `field` replaced by the sum of every record's so far. `field` names the field
    /// as a place (`|r| &mut r.1`) rather than Flink's position.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut h = OperatorHarness::new(|input: DataStream<(char, u32, String)>| {
    ///     input.key_by(|r: &(char, u32, String)| r.0).sum("total", |r: &mut (char, u32, String)| &mut r.1)
    /// }).unwrap();
    /// for (v, tag) in [(5, "first"), (3, "second")] {
    ///     h.process(('a', v, tag.to_owned())).unwrap();
    /// }
    /// assert_eq!(h.output(), [('a', 5, "first".to_owned()), ('a', 8, "first".to_owned())]);
    /// ```
    pub fn sum<V>(&self, name: &str, field: impl Fn(&mut T) -> &mut V + Clone + Send + Sync + 'static) -> DataStream<T>
    where
        V: std::ops::Add<Output = V> + Copy,
    {
        self.fold_field(name, field, |kept, new| kept + new)
    }

    /// A rolling minimum of a field (Flink's `min`): emits, after every record, the key's first
    /// record with `field` replaced by the smallest so far (the other fields are the first
    /// record's; [`min_by`](Self::min_by) keeps the whole record with the smallest field).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("t", vec![('a', 5, 'x'), ('a', 3, 'y')])
    ///         .key_by(|r: &(char, i32, char)| r.0)
    ///         .min("lowest", |r: &mut (char, i32, char)| &mut r.1)
    /// }).unwrap();
    /// assert_eq!(out, [('a', 5, 'x'), ('a', 3, 'x')]);
    /// ```
    pub fn min<V>(&self, name: &str, field: impl Fn(&mut T) -> &mut V + Clone + Send + Sync + 'static) -> DataStream<T>
    where
        V: PartialOrd + Copy,
    {
        self.fold_field(name, field, |kept, new| if new < kept { new } else { kept })
    }

    /// A rolling maximum of a field (Flink's `max`), as [`min`](Self::min).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("t", vec![('a', 5, 'x'), ('a', 7, 'y')])
    ///         .key_by(|r: &(char, i32, char)| r.0)
    ///         .max("highest", |r: &mut (char, i32, char)| &mut r.1)
    /// }).unwrap();
    /// assert_eq!(out, [('a', 5, 'x'), ('a', 7, 'x')]);
    /// ```
    pub fn max<V>(&self, name: &str, field: impl Fn(&mut T) -> &mut V + Clone + Send + Sync + 'static) -> DataStream<T>
    where
        V: PartialOrd + Copy,
    {
        self.fold_field(name, field, |kept, new| if new > kept { new } else { kept })
    }

    /// A rolling reduce that folds one field of each record into the key's first record.
    fn fold_field<V: Copy>(
        &self,
        name: &str,
        field: impl Fn(&mut T) -> &mut V + Clone + Send + Sync + 'static,
        fold: impl Fn(V, V) -> V + Clone + Send + Sync + 'static,
    ) -> DataStream<T> {
        self.reduce(name, move |kept: &T, new: &T| {
            let value = *field(&mut new.clone());
            let mut out = kept.clone();
            let place = field(&mut out);
            *place = fold(*place, value);
            out
        })
    }

    /// A rolling aggregation: emits `(key, result)` after every record.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec!['x', 'y', 'x']).key_by(|w: &char| *w).aggregate("count", Count)
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('x', 1), ('x', 2), ('y', 1)]);
    /// ```
    pub fn aggregate<A>(&self, name: &str, agg: A) -> DataStream<(K, A::Out)>
    where
        A: AggregateFunction<T> + Clone,
    {
        self.process(name, move || RollingAggregate::<K, T, A> { agg: agg.clone(), state: None, _types: PhantomData })
    }

    /// Groups each key's records into windows.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("c", vec![('a', 0), ('a', 50), ('a', 400)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Session::event_time(Duration::from_millis(100)))
    ///         .aggregate("sessions", Count)
    /// }).unwrap();
    /// let sessions: Vec<_> = out.iter().map(|w| (w.window.start, w.window.end, w.value)).collect();
    /// assert_eq!(sessions, vec![(0, 150, 2), (400, 500, 1)]);
    /// ```
    pub fn window(&self, assigner: WindowAssigner) -> WindowedStream<K, T> {
        if let Err(e) = assigner.validate() {
            self.stream.env.borrow_mut().errors.push(e);
        }
        WindowedStream {
            keyed: KeyedStream { stream: self.stream.clone(), selector: self.selector.clone() },
            assigner,
            lateness: 0,
            late: None,
            trigger: DefaultTrigger::of(assigner.domain()),
            evictor: None,
        }
    }

    /// Windows of `size` records per key (Flink's `countWindow(size)`): the global window
    /// fired and purged by a [`CountTrigger`] every `size` records. A key's last records that
    /// do not fill a window are never emitted (as in Flink).
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![('a', 1), ('a', 2), ('b', 5), ('a', 3), ('a', 4), ('a', 9)])
    ///         .key_by(|r: &(char, u32)| r.0)
    ///         .count_window(2)
    ///         .reduce("sum", |x, y| (x.0, x.1 + y.1))
    /// }).unwrap();
    /// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [('a', 3), ('a', 7)]);
    /// ```
    pub fn count_window(&self, size: u64) -> WindowedStream<K, T, PurgingTrigger<CountTrigger>> {
        if size == 0 {
            self.stream
                .env
                .borrow_mut()
                .errors
                .push(WeirError::Graph("a count window must hold at least one record".into()));
        }
        self.window(Global::new()).trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// Windows of the last `size` records per key, fired every `slide` records (Flink's
    /// `countWindow(size, slide)`): the global window with a [`CountTrigger`] of `slide` and a
    /// [`CountEvictor`] of `size`.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![1u32, 2, 3, 4, 5])
    ///         .key_by(|_: &u32| 0u8)
    ///         .count_window_sliding(3, 2)
    ///         .aggregate("sum", Sum::of(|v: &u32| i64::from(*v)))
    /// }).unwrap();
    /// // Fired at the 2nd record (1+2) and the 4th (2+3+4).
    /// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [3, 9]);
    /// ```
    pub fn count_window_sliding(&self, size: u64, slide: u64) -> WindowedStream<K, T, CountTrigger> {
        if size == 0 || slide == 0 {
            let e =
                WeirError::Graph(format!("a count window needs a positive size and slide (got {size} and {slide})"));
            self.stream.env.borrow_mut().errors.push(e);
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        self.window(Global::new()).trigger(CountTrigger::of(slide)).evictor(CountEvictor::of(size))
    }
}

/// A keyed stream grouped into windows; `G` is its trigger.
pub struct WindowedStream<K, T, G = DefaultTrigger> {
    keyed: KeyedStream<K, T>,
    assigner: WindowAssigner,
    lateness: i64,
    late: Option<OutputTag<T>>,
    trigger: G,
    evictor: Option<Arc<dyn Evictor<T>>>,
}

impl<K, T, G: Clone> Clone for WindowedStream<K, T, G> {
    fn clone(&self) -> Self {
        WindowedStream {
            keyed: self.keyed.clone(),
            assigner: self.assigner,
            lateness: self.lateness,
            late: self.late.clone(),
            trigger: self.trigger.clone(),
            evictor: self.evictor.clone(),
        }
    }
}

impl<K: Key, T: Data, G: Trigger<T>> WindowedStream<K, T, G> {
    /// Fires the windows with `trigger` instead of the assigner's own (Flink's `trigger`; see
    /// [`Trigger`] for the built-in ones). Session windows need a trigger that can merge.
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
    /// // Early results at the watermarks past 300 and 600, then 900 and the window's end.
    /// assert_eq!(out.iter().map(|w| w.value).collect::<Vec<_>>(), [2, 3, 3, 3]);
    /// ```
    pub fn trigger<G2: Trigger<T>>(self, trigger: G2) -> WindowedStream<K, T, G2> {
        if matches!(self.assigner, WindowAssigner::Session { .. }) && !trigger.can_merge() {
            let e = WeirError::Graph("session windows merge: their trigger must be able to merge (can_merge)".into());
            self.keyed.stream.env.borrow_mut().errors.push(e);
        }
        let WindowedStream { keyed, assigner, lateness, late, evictor, .. } = self;
        WindowedStream { keyed, assigner, lateness, late, trigger, evictor }
    }

    /// Drops records from each window as it fires, before or after its function runs (Flink's
    /// `evictor`; see [`Evictor`]). The window then keeps every record, not an incremental
    /// aggregate: the aggregate runs over what is left at each firing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("c", vec![('a', 100), ('a', 200), ('a', 900)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .evictor(TimeEvictor::of(Duration::from_millis(500)))
    ///         .aggregate("count", Count)
    /// }).unwrap();
    /// assert_eq!(out[0].value, 1); // only the record at 900 is within 500 ms of the newest
    /// ```
    pub fn evictor<V: Evictor<T>>(mut self, evictor: V) -> Self {
        self.evictor = Some(Arc::new(evictor));
        self
    }

    /// Keeps windows open for late records up to `lateness` past their end (event time):
    /// each late record within the bound fires the window again with the updated result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("c", vec![('a', 100), ('a', 1500), ('a', 200)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .allowed_lateness(Duration::from_secs(1))
    ///         .aggregate("count", Count)
    /// }).unwrap();
    /// // [0, 1000) fired with 1 when the watermark passed it, then with 2 for the late record.
    /// let first: Vec<u64> = out.iter().filter(|w| w.window.start == 0).map(|w| w.value).collect();
    /// assert_eq!(first, vec![1, 2]);
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Sends the records that arrive too late for any of their windows (past allowed
    /// lateness) to the side output `tag` (Flink's `sideOutputLateData`); without it they are
    /// dropped (and counted).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let late = OutputTag::<char>::new("late");
    /// let (late_sink, late_records) = CollectSink::new();
    /// let out = MiniCluster::collect(move |env| {
    ///     let counts = env
    ///         .from_vec_timestamped("c", vec![('a', 100), ('a', 2500), ('b', 300)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .side_output_late_data(late.clone())
    ///         .aggregate("count", Count);
    ///     counts.get_side_output(&late).sink("late", late_sink.clone());
    ///     counts
    /// }).unwrap();
    /// assert_eq!(out.len(), 2);
    /// assert_eq!(late_records.take(), vec!['b']);
    /// ```
    pub fn side_output_late_data(mut self, tag: OutputTag<T>) -> Self {
        self.late = Some(tag);
        self
    }

    /// Aggregates each key's window incrementally; emits one [`Windowed`] result per firing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let mut out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("clicks", vec![('u', 100), ('u', 900), ('u', 1100)])
    ///         .key_by(|u: &char| *u)
    ///         .window(Sliding::event_time(Duration::from_secs(1), Duration::from_millis(500)))
    ///         .aggregate("count", Count)
    /// }).unwrap();
    /// out.sort_by_key(|w| w.window.start);
    /// let counts: Vec<(i64, u64)> = out.iter().map(|w| (w.window.start, w.value)).collect();
    /// assert_eq!(counts, vec![(-500, 1), (0, 2), (500, 2), (1000, 1)]);
    /// ```
    pub fn aggregate<A: AggregateFunction<T>>(&self, name: &str, agg: A) -> DataStream<Windowed<K, A::Out>> {
        self.window_operator(name, agg, || EmitWindowed)
    }

    /// Runs a [`ProcessWindowFunction`] (made per subtask by `factory`) on each firing, with
    /// all of the window's records (see the trait for an example). The records are kept in
    /// the window's state until it fires: prefer [`aggregate_with`](Self::aggregate_with)
    /// where an incremental aggregate will do.
    pub fn process<F, Mk>(&self, name: &str, factory: Mk) -> DataStream<F::Out>
    where
        F: ProcessWindowFunction<Key = K, In = T>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        self.window_operator(name, Elements, move || EmitProcess { f: factory(), elements: |all: Vec<T>| all })
    }

    /// Aggregates each window incrementally with `agg`, and gives its result to a
    /// [`ProcessWindowFunction`] when it fires (Flink's `aggregate(aggFunction,
    /// windowFunction)`): the window function sees the window and its context, the state holds
    /// one accumulator.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    ///
    /// struct Label;
    /// impl ProcessWindowFunction for Label {
    ///     type Key = char;
    ///     type In = u64;
    ///     type Out = String;
    ///     fn process(&mut self, key: &char, counts: Vec<u64>, ctx: &mut WindowContext<'_, char, String>) -> Result<()> {
    ///         let (start, wm) = (ctx.window().start, ctx.current_watermark());
    ///         ctx.emit(format!("{key}@{start}: {} (watermark {wm})", counts[0]));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("c", vec![('a', 10), ('a', 20), ('a', 1_500)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .aggregate_with("count", Count, || Label)
    /// }).unwrap();
    /// assert_eq!(out[0], "a@0: 2 (watermark 1499)");
    /// ```
    pub fn aggregate_with<A, F, Mk>(&self, name: &str, agg: A, factory: Mk) -> DataStream<F::Out>
    where
        A: AggregateFunction<T>,
        F: ProcessWindowFunction<Key = K, In = A::Out>,
        Mk: Fn() -> F + Send + Sync + 'static,
    {
        self.window_operator(name, agg, move || EmitProcess { f: factory(), elements: |one: A::Out| vec![one] })
    }

    /// The window operator with `agg` per window (over what the evictor leaves, if any) and
    /// what `emit` makes of each firing.
    fn window_operator<A, E, Mk>(&self, name: &str, agg: A, emit: Mk) -> DataStream<E::Out>
    where
        A: AggregateFunction<T>,
        E: WindowEmit<K, A::Out>,
        Mk: Fn() -> E + Send + Sync + 'static,
    {
        match self.evictor.clone() {
            None => self.window_link(name, Incremental(agg), emit),
            Some(evictor) => self.window_link(name, Evicting { agg, evictor }, emit),
        }
    }

    fn window_link<C, E, Mk>(&self, name: &str, contents: C, emit: Mk) -> DataStream<E::Out>
    where
        C: WindowContents<T>,
        E: WindowEmit<K, C::Out>,
        Mk: Fn() -> E + Send + Sync + 'static,
    {
        let (assigner, lateness, late, selector) =
            (self.assigner, self.lateness, self.late.clone(), self.keyed.selector.clone());
        let (contents, trigger) = (Arc::new(contents), self.trigger.clone());
        let make: MakeLink<T, E::Out> = Arc::new(move |name, down| {
            let spec = WindowSpec { assigner, lateness, late: late.clone(), selector: selector.clone() };
            Box::new(WindowLink::new(spec, contents.clone(), trigger.clone(), emit(), down, name))
        });
        self.keyed.keyed(name, make)
    }

    /// As [`aggregate`](Self::aggregate), and also returns the late records (those whose
    /// windows were all past allowed lateness): a shorthand for
    /// [`side_output_late_data`](Self::side_output_late_data) with a tag named
    /// `"{name}.late"`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let (late_sink, late) = CollectSink::new();
    /// let out = MiniCluster::collect(move |env| {
    ///     let (counts, late_records) = env
    ///         .from_vec_timestamped("c", vec![('a', 100), ('a', 2500), ('b', 300)])
    ///         .key_by(|c: &char| *c)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .aggregate_with_late("count", Count);
    ///     late_records.sink("late", late_sink.clone());
    ///     counts
    /// }).unwrap();
    /// assert_eq!(out.len(), 2);
    /// assert_eq!(late.take(), vec!['b']);
    /// ```
    pub fn aggregate_with_late<A: AggregateFunction<T>>(
        &self,
        name: &str,
        agg: A,
    ) -> (DataStream<Windowed<K, A::Out>>, DataStream<T>) {
        let tag = OutputTag::new(&format!("{name}.late"));
        let windows = WindowedStream { late: Some(tag.clone()), ..self.clone() };
        let results = windows.aggregate(name, agg);
        let late = results.get_side_output(&tag);
        (results, late)
    }

    /// Reduces each key's window with `f`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec_timestamped("n", vec![(('a', 3), 10), (('a', 9), 20)])
    ///         .key_by(|r: &(char, u32)| r.0)
    ///         .window(Tumbling::event_time(Duration::from_secs(1)))
    ///         .reduce("max", |x, y| if x.1 >= y.1 { *x } else { *y })
    /// }).unwrap();
    /// assert_eq!(out[0].value, ('a', 9));
    /// ```
    pub fn reduce<F>(&self, name: &str, f: F) -> DataStream<Windowed<K, T>>
    where
        F: Fn(&T, &T) -> T + Send + Sync + 'static,
    {
        self.aggregate(name, ReduceAgg::new(f))
    }
}
