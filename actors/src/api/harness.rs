//! A test harness for operators, after Flink's `OneInputStreamOperatorTestHarness` and
//! `KeyedOneInputStreamOperatorTestHarness`: one subtask of a pipeline fragment, run by hand,
//! without a cluster or a thread.
//!
//! The fragment is written with the same builder as a job: a closure gets the harness's input
//! as a [`DataStream`] and returns the stream whose records the harness collects. Whatever it
//! chains in between (an [`Operator`](crate::api::operator::Operator), a
//! [`KeyedProcessFunction`](crate::api::keyed::KeyedProcessFunction) after `key_by`, a window,
//! maps and filters) runs as one chain of the subtask, exactly as the runtime runs it, with
//! its keyed state in the configured backend and its timers. A test then:
//!
//! - feeds records, with or without timestamps, and watermarks ([`OperatorHarness::process_at`],
//!   [`OperatorHarness::process_watermark`]);
//! - moves processing time, firing the processing-time timers that are due
//!   ([`OperatorHarness::set_processing_time`]);
//! - reads what came out: records, watermarks, side outputs, and the timers still registered;
//! - takes a snapshot ([`OperatorHarness::snapshot`]) and restores it into a fresh instance, at
//!   the same or another parallelism ([`HarnessConfig::restore`]): keyed state and timers are
//!   redistributed by key group, operator state by union, as when a job rescales.
//!
//! A [`SourceHarness`] does the same for a source ([`HarnessConfig::build_source`]): it polls
//! it as one subtask, with the watermarks its strategy derives after each poll (per split for
//! a source that emits per split), snapshots its position, and restores it at any parallelism.
//!
//! Exchanges (`key_by`, `rebalance`) do not move records here: the harness is one subtask, so
//! a keyed fragment must be fed only the keys its subtask owns ([`HarnessConfig::owns`] says
//! which; all of them at parallelism 1). A record of a key another subtask owns fails the
//! call that fed it when its state is touched.
//!
//! ```
//! use weir_actors::prelude::*;
//!
//! /// Counts each key's records and emits the running count.
//! struct Counter { count: Option<ValueState<u64>> }
//!
//! impl KeyedProcessFunction for Counter {
//!     type Key = char;
//!     type In = char;
//!     type Out = (char, u64);
//!     fn open(&mut self, ctx: &mut KeyedOpenContext<'_, char>) -> Result<()> {
//!         self.count = Some(ctx.value_state("count")?);
//!         Ok(())
//!     }
//!     fn process(&mut self, c: char, ctx: &mut KeyedContext<'_, char, (char, u64)>) -> Result<()> {
//!         let state = self.count.expect("opened");
//!         let n = ctx.value(state).get()?.unwrap_or(0) + 1;
//!         ctx.value(state).update(n)?;
//!         ctx.emit((c, n));
//!         Ok(())
//!     }
//! }
//!
//! let pipeline = |input: DataStream<char>| input.key_by(|c: &char| *c).process("count", || Counter { count: None });
//! let mut harness = OperatorHarness::new(pipeline).unwrap();
//! for c in ['a', 'b', 'a'] {
//!     harness.process(c).unwrap();
//! }
//! assert_eq!(harness.take_output(), vec![('a', 1), ('b', 1), ('a', 2)]);
//!
//! // Its state survives a snapshot and a restore into a fresh instance.
//! let snapshot = harness.snapshot().unwrap();
//! let mut restored = HarnessConfig::new().restore(vec![snapshot]).build(pipeline).unwrap();
//! restored.process('a').unwrap();
//! assert_eq!(restored.output(), vec![('a', 3)]);
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weir_dataplane::{
    BarrierKind, BatchConfig, CheckpointBarrier, DEFAULT_MAX_PARALLELISM, MAX_WATERMARK, NO_TIMESTAMP, Timestamp,
    key_group_of, subtask_for_key_group,
};

use crate::api::source::{Source, SourcePoll};
use crate::api::stream::{DataStream, StreamEnv};
use crate::base::data::{Data, Key};
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::link::{Link, LinkInfo, Outputs, SideLinks};
use crate::base::metrics::TaskMetrics;
use crate::base::state::{EventClock, NodeStates, OperatorState, RestoredState, StateBackend};
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::{TimeDomain, TokioClock};
use crate::runtime::input::TwoInput;
use crate::runtime::nodes::{AnyBox, typed};
use crate::runtime::source_head::{SourceHead, SourceTime};
use crate::runtime::stream_graph::StreamGraph;

/// What a collecting link received.
struct Collected<T> {
    records: Vec<(T, Timestamp)>,
    watermarks: Vec<Timestamp>,
    idle: bool,
}

impl<T: Clone> Collected<T> {
    /// The records' values, in order.
    fn values(&self) -> Vec<T> {
        self.records.iter().map(|(v, _)| v.clone()).collect()
    }

    /// Takes the records, with their timestamps (`None`: without one).
    fn take(&mut self) -> Vec<(T, Option<Timestamp>)> {
        std::mem::take(&mut self.records).into_iter().map(|(v, ts)| (v, (ts != NO_TIMESTAMP).then_some(ts))).collect()
    }
}

type Shared<T> = Arc<Mutex<Collected<T>>>;

/// Whether subtask `index` of `parallelism` owns `key`: its key group is in the subtask's range.
fn owns<K: Key>(key: &K, max_parallelism: u16, parallelism: usize, index: usize) -> bool {
    subtask_for_key_group(max_parallelism, parallelism, key_group_of(key, max_parallelism)) == index
}

/// The end of a harness chain: keeps what reaches it.
struct Collect<T>(Shared<T>);

impl<T: Data> Link<T> for Collect<T> {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, value: T, ts: Timestamp, _io: &mut TaskIo) {
        self.0.lock().expect("harness output").records.push((value, ts));
    }
    fn watermark(&mut self, wm: Timestamp, _io: &mut TaskIo) {
        self.0.lock().expect("harness output").watermarks.push(wm);
    }
    fn idle(&mut self, idle: bool, _io: &mut TaskIo) {
        self.0.lock().expect("harness output").idle = idle;
    }
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, _drain: bool, _io: &mut TaskIo) {}
    fn close(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, _barrier: &CheckpointBarrier, _io: &mut TaskIo, _out: &mut Vec<OperatorState>) {}
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// A stream the harness collects: how to make its collecting link, and where it collects.
struct Output {
    node: usize,
    output: usize,
    make: Box<dyn Fn() -> AnyBox>,
    collected: Arc<dyn Any + Send + Sync>,
}

impl Output {
    fn of<T: Data>(stream: &DataStream<T>) -> (Output, Shared<T>) {
        let shared: Shared<T> =
            Arc::new(Mutex::new(Collected { records: Vec::new(), watermarks: Vec::new(), idle: false }));
        let for_link = shared.clone();
        let make = Box::new(move || -> AnyBox { Box::new(Box::new(Collect(for_link.clone())) as Box<dyn Link<T>>) });
        (Output { node: stream.node_id(), output: stream.output_id(), make, collected: shared.clone() }, shared)
    }
}

/// Streams besides the main output that a harness collects, by name (e.g. the late records
/// of a window).
#[derive(Default)]
pub struct SideOutputs {
    outputs: Vec<(String, Output)>,
}

impl SideOutputs {
    /// Collects `stream` under `name`; read it with [`OperatorHarness::side_output`].
    pub fn add<T: Data>(&mut self, name: &str, stream: &DataStream<T>) {
        self.outputs.push((name.to_owned(), Output::of(stream).0));
    }
}

/// A subtask's state as the harness snapshotted it, to restore into a fresh harness.
#[derive(Debug, Clone)]
pub struct HarnessSnapshot {
    index: usize,
    parallelism: usize,
    max_parallelism: u16,
    operators: Vec<OperatorState>,
    clock: EventClock,
}

impl HarnessSnapshot {
    /// The subtask it was taken of, and its parallelism then.
    pub fn subtask(&self) -> (usize, usize) {
        (self.index, self.parallelism)
    }
}

/// Which subtask a harness runs, where its keyed state lives, and what it restores.
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    index: usize,
    parallelism: usize,
    max_parallelism: u16,
    state_backend: StateBackend,
    processing_time: Timestamp,
    restore: Vec<HarnessSnapshot>,
    batch_size: usize,
    auto_watermark_interval: std::time::Duration,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        HarnessConfig {
            index: 0,
            parallelism: 1,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            state_backend: StateBackend::Memory,
            processing_time: 0,
            restore: Vec::new(),
            batch_size: BatchConfig::default().max_records,
            auto_watermark_interval: crate::base::time::DEFAULT_AUTO_WATERMARK_INTERVAL,
        }
    }
}

impl HarnessConfig {
    /// Subtask 0 of 1, keyed state in memory, processing time at 0, nothing to restore.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs subtask `index` of `parallelism` (its key groups, its share of restored state).
    pub fn subtask(mut self, index: usize, parallelism: usize) -> Self {
        (self.index, self.parallelism) = (index, parallelism);
        self
    }

    /// The job's maximum parallelism: the number of key groups (default 128).
    pub fn max_parallelism(mut self, max_parallelism: u16) -> Self {
        self.max_parallelism = max_parallelism;
        self
    }

    /// Where keyed state lives (default: memory).
    pub fn state_backend(mut self, backend: StateBackend) -> Self {
        self.state_backend = backend;
        self
    }

    /// How often watermark generators emit periodically (default 200 ms, as a job's
    /// [`StreamEnv::set_auto_watermark_interval`]).
    pub fn auto_watermark_interval(mut self, interval: std::time::Duration) -> Self {
        self.auto_watermark_interval = interval;
        self
    }

    /// The processing time the harness starts at (default 0).
    pub fn processing_time(mut self, ms: Timestamp) -> Self {
        self.processing_time = ms;
        self
    }

    /// How many records a source harness asks a source for in one poll (default: the runtime's
    /// batch size).
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.max(1);
        self
    }

    /// Restores from snapshots of the same fragment: one per subtask it ran at (all of them,
    /// or at the same parallelism at least this subtask's own), as a job restores from a
    /// checkpoint. At another parallelism keyed state and timers are redistributed by key
    /// group and operator state is given to every subtask (union), as when a job rescales.
    pub fn restore(mut self, snapshots: Vec<HarnessSnapshot>) -> Self {
        self.restore = snapshots;
        self
    }

    /// Whether this subtask owns `key` (its key group is in the subtask's range).
    pub fn owns<K: Key>(&self, key: &K) -> bool {
        owns(key, self.max_parallelism, self.parallelism, self.index)
    }

    /// A harness polling `source` as this subtask, restored from the configured snapshots
    /// (of the same source).
    pub fn build_source<S: Source>(self, mut source: S) -> Result<SourceHarness<S>> {
        let io = self.io("source")?;
        let name = LinkInfo { name: Arc::from("source"), node: SOURCE_NODE };
        SourceHead::open(&mut source, &io).map_err(|e| e.in_operator(&name))?;
        let restored = io.restored.as_ref().map(|r| r.operator_states(SOURCE_NODE)).unwrap_or_default();
        if !restored.is_empty() {
            source.restore(restored).map_err(|e| e.in_operator(&name))?;
        }
        let clock = io.restored.as_ref().map(|r| r.clock).unwrap_or_default();
        let time = SourceTime::new(&Source::watermark_strategy(&source), clock);
        let collected = Arc::new(Mutex::new(Collected { records: Vec::new(), watermarks: Vec::new(), idle: false }));
        Ok(SourceHarness { source, name, out: Collect(collected), io, config: self, time, checkpoints: 0 })
    }

    /// The services a harness's subtask runs with, and its identity.
    fn io(&self, vertex: &str) -> Result<TaskIo> {
        if self.parallelism == 0 || self.index >= self.parallelism {
            return Err(WeirError::Argument(format!(
                "harness subtask {} of parallelism {}: the index must be below the parallelism",
                self.index, self.parallelism
            )));
        }
        let info = SubtaskInfo {
            job_id: JobId(0),
            job_name: "harness".into(),
            vertex: vertex.to_owned(),
            index: self.index,
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            attempt: 0,
        };
        let clock = Arc::new(TokioClock::manual(self.processing_time));
        let mut io = TaskIo::new(Arc::new(info), clock, Arc::new(TaskMetrics::default()));
        io.state_backend = self.state_backend.clone();
        // The harness takes snapshots: two-phase sinks commit when told a checkpoint completed.
        io.checkpointing = true;
        if !self.restore.is_empty() {
            let restored = self.restored()?;
            io.watermark = restored.clock.watermark;
            io.restored = Some(Arc::new(restored));
        }
        Ok(io)
    }

    /// A harness running `pipeline` (input to output), with no side outputs.
    pub fn build<In: Data, Out: Data>(
        self,
        pipeline: impl FnOnce(DataStream<In>) -> DataStream<Out>,
    ) -> Result<OperatorHarness<In, Out>> {
        self.build_with_side_outputs(|input, _| pipeline(input))
    }

    /// A harness running `pipeline`, collecting the streams it adds to its [`SideOutputs`]
    /// too.
    pub fn build_with_side_outputs<In: Data, Out: Data>(
        self,
        pipeline: impl FnOnce(DataStream<In>, &mut SideOutputs) -> DataStream<Out>,
    ) -> Result<OperatorHarness<In, Out>> {
        let mut env = self.env();
        let input = env.harness_input::<In>();
        let input_node = input.node_id();
        let mut sides = SideOutputs::default();
        let main = pipeline(input, &mut sides);
        self.finish(env, &main, sides, |graph, chain| {
            let (head, sides) = chain.build(input_node)?;
            let vertex = graph.nodes.get(input_node + 1).map_or_else(|| "harness".to_owned(), |n| n.name.clone());
            Ok((Outputs { main: typed::<In>(head), sides }.into_link(), vertex))
        })
    }

    /// A harness running a two-input operator (Flink's `TwoInputStreamOperatorTestHarness`):
    /// `pipeline` connects its two inputs into one operator, and may chain more after it.
    /// Feed it with [`OperatorHarness::process1`], [`OperatorHarness::process2`] and each
    /// input's watermark.
    pub fn build_two_input<A: Data, B: Data, Out: Data>(
        self,
        pipeline: impl FnOnce(DataStream<A>, DataStream<B>) -> DataStream<Out>,
    ) -> Result<OperatorHarness<TwoInput<A, B>, Out>> {
        self.build_two_input_with_side_outputs(|a, b, _| pipeline(a, b))
    }

    /// As [`build_two_input`](Self::build_two_input), collecting the streams `pipeline` adds
    /// to its [`SideOutputs`] too.
    pub fn build_two_input_with_side_outputs<A: Data, B: Data, Out: Data>(
        self,
        pipeline: impl FnOnce(DataStream<A>, DataStream<B>, &mut SideOutputs) -> DataStream<Out>,
    ) -> Result<OperatorHarness<TwoInput<A, B>, Out>> {
        let mut env = self.env();
        let (first, second) = (env.harness_input::<A>(), env.harness_input::<B>());
        let inputs = (first.node_id(), second.node_id());
        let mut sides = SideOutputs::default();
        let main = pipeline(first, second, &mut sides);
        self.finish(env, &main, sides, |graph, chain| {
            let reads_both = |n: &&crate::runtime::stream_graph::StreamNode| {
                n.inputs.len() == 2 && (n.inputs[0].from, n.inputs[1].from) == inputs
            };
            let Some(head) = graph.nodes.iter().position(|n| reads_both(&n)) else {
                return Err(WeirError::Graph(
                    "the two-input harness runs one operator that reads its first and second inputs: connect them \
                     directly"
                        .into(),
                ));
            };
            let node = &graph.nodes[head];
            let (down, sides) = chain.build(head)?;
            let link = node.factory.link(LinkInfo { name: Arc::from(node.name.as_str()), node: head }, down, sides)?;
            Ok((typed::<TwoInput<A, B>>(link), node.name.clone()))
        })
    }

    /// The builder a harness's fragment is made with.
    fn env(&self) -> StreamEnv {
        let mut env = StreamEnv::new(self.parallelism.max(1));
        env.set_auto_watermark_interval(self.auto_watermark_interval);
        env
    }

    /// The harness of a fragment built in `env` whose output is `main`: `head` builds its
    /// chain's head link (given the graph and the chain builder) and names its vertex.
    fn finish<In: Data, Out: Data>(
        self,
        env: StreamEnv,
        main: &DataStream<Out>,
        sides: SideOutputs,
        head: impl FnOnce(&StreamGraph, &Chain<'_>) -> Result<(Box<dyn Link<In>>, String)>,
    ) -> Result<OperatorHarness<In, Out>> {
        let (main, collected) = Output::of(main);
        let graph = env.finish()?;
        let mut outputs: Vec<(String, Output)> = vec![(String::new(), main)];
        outputs.extend(sides.outputs);
        let (head, vertex) = head(&graph, &Chain { graph: &graph, outputs: &outputs })?;
        let side_outputs = outputs.into_iter().skip(1).map(|(name, o)| (name, o.collected)).collect();
        let mut io = self.io(&vertex)?;
        io.watermark_interval = graph.auto_watermark_interval;
        let mut harness = OperatorHarness {
            head,
            io,
            collected,
            side_outputs,
            index: self.index,
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            checkpoints: 0,
            max_timestamp: Timestamp::MIN,
            input_watermarks: [Timestamp::MIN; 2],
        };
        harness.head.open(&mut harness.io);
        harness.check()?;
        Ok(harness)
    }

    /// The state this subtask restores from its snapshots.
    fn restored(&self) -> Result<RestoredState> {
        let old = self.restore[0].parallelism;
        let mut seen = vec![false; old];
        let mut by_node: HashMap<usize, NodeStates> = HashMap::new();
        for snapshot in &self.restore {
            if snapshot.parallelism != old || snapshot.max_parallelism != self.max_parallelism {
                return Err(WeirError::Argument(format!(
                    "harness snapshots of parallelism {} and max parallelism {} cannot be restored beside ones of {old} \
                     and into max parallelism {}",
                    snapshot.parallelism, snapshot.max_parallelism, self.max_parallelism
                )));
            }
            if std::mem::replace(&mut seen[snapshot.index], true) {
                return Err(WeirError::Argument(format!("two harness snapshots of subtask {}", snapshot.index)));
            }
            for state in &snapshot.operators {
                let node = by_node
                    .entry(state.node)
                    .or_insert_with(|| NodeStates { parallelism: old, states: vec![OperatorState::default(); old] });
                node.states[snapshot.index] = state.clone();
            }
        }
        // Event time goes on from the earliest clock of the subtasks whose state this one takes.
        let same = old == self.parallelism;
        let theirs = self.restore.iter().filter(|s| !same || s.index == self.index);
        let clock = EventClock::earliest(theirs.map(|s| s.clock));
        Ok(RestoredState {
            by_node,
            index: self.index,
            parallelism: self.parallelism,
            finished: false,
            clock,
            shared_dir: weir_state::storage::Location::default(),
        })
    }
}

/// Builds a harness's chain from the stream graph of its fragment.
struct Chain<'a> {
    graph: &'a StreamGraph,
    outputs: &'a [(String, Output)],
}

impl Chain<'_> {
    /// The links of `node`'s outputs: its successors, and the harness's collectors of them.
    fn build(&self, node: usize) -> Result<(AnyBox, SideLinks)> {
        let stream_node = &self.graph.nodes[node];
        let mut downs: Vec<Vec<AnyBox>> = (0..=stream_node.side_outputs.len()).map(|_| Vec::new()).collect();
        for (child, consumer) in self.graph.nodes.iter().enumerate() {
            let Some(edge) = consumer.inputs.iter().find(|e| e.from == node) else { continue };
            if consumer.inputs.len() != 1 {
                return Err(WeirError::Graph(format!(
                    "the operator harness runs one chain from its input: '{}' has {} inputs",
                    consumer.name,
                    consumer.inputs.len()
                )));
            }
            let (down, sides) = self.build(child)?;
            let info = LinkInfo { name: Arc::from(consumer.name.as_str()), node: child };
            downs[edge.output].push(consumer.factory.link(info, down, sides)?);
        }
        for (_, o) in self.outputs.iter().filter(|(_, o)| o.node == node) {
            downs[o.output].push((o.make)());
        }
        Ok(stream_node.assemble(downs))
    }
}

/// The node a source harness files its source's state under.
const SOURCE_NODE: usize = 0;

/// One subtask of a source, polled by hand ([`HarnessConfig::build_source`]): what it emits,
/// its position in a snapshot, and a restore from snapshots at any parallelism.
pub struct SourceHarness<S: Source> {
    source: S,
    name: LinkInfo,
    out: Collect<S::Out>,
    io: TaskIo,
    config: HarnessConfig,
    time: SourceTime<S::Out>,
    checkpoints: u64,
}

impl<S: Source> SourceHarness<S> {
    /// Subtask 0 of 1 polling `source`.
    pub fn new(source: S) -> Result<Self> {
        HarnessConfig::new().build_source(source)
    }

    /// Polls the source once for up to `records` records (the batch size at most).
    pub fn poll_at_most(&mut self, records: usize) -> Result<SourcePoll> {
        self.poll_counted(records).map(|(poll, _)| poll)
    }

    /// One poll, and how many records it emitted.
    fn poll_counted(&mut self, records: usize) -> Result<(SourcePoll, usize)> {
        let mut ctx = self.time.context(&mut self.out, &mut self.io, records.min(self.config.batch_size));
        let poll = self.source.poll(&mut ctx).map_err(|e| e.in_operator(&self.name))?;
        let emitted = ctx.emitted;
        // The periodic emission after every poll, as a subtask's loop does it.
        self.time.after_poll(&mut self.out, &mut self.io);
        Ok((poll, emitted))
    }

    /// Polls until the source emitted `records` more records or finished (`true`: it
    /// finished), waiting out the pauses a source asks for.
    pub fn run(&mut self, records: usize) -> Result<bool> {
        let mut emitted = 0;
        while emitted < records {
            let (poll, polled) = self.poll_counted(records - emitted)?;
            emitted += polled;
            match poll {
                SourcePoll::Finished => return Ok(true),
                SourcePoll::Ready => {}
                SourcePoll::Pending(wait) => std::thread::sleep(wait),
            }
        }
        Ok(false)
    }

    /// The records emitted so far (and not taken).
    pub fn output(&self) -> Vec<S::Out> {
        self.out.0.lock().expect("harness output").values()
    }

    /// Takes the records emitted so far, with their timestamps (`None`: without one).
    pub fn take_output(&mut self) -> Vec<(S::Out, Option<Timestamp>)> {
        self.out.0.lock().expect("harness output").take()
    }

    /// The watermarks emitted so far, in order: after each poll, from the source's
    /// watermark strategy, as a subtask's loop emits them.
    pub fn watermarks(&self) -> Vec<Timestamp> {
        self.out.0.lock().expect("harness output").watermarks.clone()
    }

    /// Whether the source's stream is idle now (every split idle, with the strategy's idle
    /// timeout).
    pub fn is_idle(&self) -> bool {
        self.out.0.lock().expect("harness output").idle
    }

    /// Moves processing time to `ms` (idle timeouts count in it); the next poll sees it.
    pub fn set_processing_time(&mut self, ms: Timestamp) {
        self.io.clock.set_ms(ms);
    }

    /// The source's position, as at a checkpoint barrier between polls; restore it with
    /// [`HarnessConfig::restore`] and [`HarnessConfig::build_source`]. The `n`-th snapshot is
    /// checkpoint `n` (see [`SourceHarness::checkpoint_complete`]).
    pub fn snapshot(&mut self) -> Result<HarnessSnapshot> {
        self.checkpoints += 1;
        let position = self.source.snapshot(self.checkpoints).map_err(|e| e.in_operator(&self.name))?;
        Ok(HarnessSnapshot {
            index: self.config.index,
            parallelism: self.config.parallelism,
            max_parallelism: self.config.max_parallelism,
            operators: vec![OperatorState { node: SOURCE_NODE, operator: Some(position), ..Default::default() }],
            clock: EventClock { watermark: Timestamp::MIN, max_timestamp: self.time.max_timestamp },
        })
    }

    /// Tells the source that checkpoint `checkpoint` (its `checkpoint`-th snapshot) completed.
    pub fn checkpoint_complete(&mut self, checkpoint: u64) -> Result<()> {
        SourceHead::checkpoint_complete(&mut self.source, checkpoint).map_err(|e| e.in_operator(&self.name))
    }

    /// Closes the source, as a subtask that ends normally does.
    pub fn close(&mut self) -> Result<()> {
        self.source.close().map_err(|e| e.in_operator(&self.name))
    }
}

/// One subtask of a pipeline fragment, run by hand: see the [module docs](self).
pub struct OperatorHarness<In, Out> {
    head: Box<dyn Link<In>>,
    io: TaskIo,
    collected: Shared<Out>,
    side_outputs: Vec<(String, Arc<dyn Any + Send + Sync>)>,
    index: usize,
    parallelism: usize,
    max_parallelism: u16,
    checkpoints: u64,
    max_timestamp: Timestamp,
    /// Each input's watermark (a two-input harness).
    input_watermarks: [Timestamp; 2],
}

impl<A: Data, B: Data, Out: Data> OperatorHarness<TwoInput<A, B>, Out> {
    /// Feeds a record of the first input, without a timestamp.
    pub fn process1(&mut self, value: A) -> Result<()> {
        self.process(TwoInput::First(value))
    }

    /// Feeds a record of the first input with its event timestamp.
    pub fn process1_at(&mut self, value: A, timestamp: Timestamp) -> Result<()> {
        self.process_at(TwoInput::First(value), timestamp)
    }

    /// Feeds a record of the second input, without a timestamp.
    pub fn process2(&mut self, value: B) -> Result<()> {
        self.process(TwoInput::Second(value))
    }

    /// Feeds a record of the second input with its event timestamp.
    pub fn process2_at(&mut self, value: B, timestamp: Timestamp) -> Result<()> {
        self.process_at(TwoInput::Second(value), timestamp)
    }

    /// Feeds a watermark of the first input: the operator's watermark is the minimum of both
    /// inputs'.
    pub fn process_watermark1(&mut self, watermark: Timestamp) -> Result<()> {
        self.input_watermark(0, watermark)
    }

    /// Feeds a watermark of the second input.
    pub fn process_watermark2(&mut self, watermark: Timestamp) -> Result<()> {
        self.input_watermark(1, watermark)
    }

    fn input_watermark(&mut self, input: usize, watermark: Timestamp) -> Result<()> {
        self.input_watermarks[input] = self.input_watermarks[input].max(watermark);
        let combined = self.input_watermarks[0].min(self.input_watermarks[1]);
        self.process_watermark(combined)
    }
}

impl<In: Data, Out: Data> OperatorHarness<In, Out> {
    /// Subtask 0 of 1 running `pipeline`, its state in memory (see [`HarnessConfig`] for more).
    pub fn new(pipeline: impl FnOnce(DataStream<In>) -> DataStream<Out>) -> Result<Self> {
        HarnessConfig::new().build(pipeline)
    }

    fn check(&mut self) -> Result<()> {
        match self.io.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Feeds a record without a timestamp.
    pub fn process(&mut self, value: In) -> Result<()> {
        self.process_at(value, NO_TIMESTAMP)
    }

    /// Feeds a record with its event timestamp.
    pub fn process_at(&mut self, value: In, timestamp: Timestamp) -> Result<()> {
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.head.record(value, timestamp, &mut self.io);
        self.check()
    }

    /// Feeds a watermark. As in a subtask, a watermark that does not advance event time is
    /// ignored.
    pub fn process_watermark(&mut self, watermark: Timestamp) -> Result<()> {
        if watermark > self.io.watermark {
            self.io.watermark = watermark;
            self.head.watermark(watermark, &mut self.io);
        }
        self.check()
    }

    /// The current input watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }

    /// Moves processing time to `ms` and fires the processing-time timers due by then (those
    /// the firing registers at or before `ms` too).
    pub fn set_processing_time(&mut self, ms: Timestamp) -> Result<()> {
        self.io.clock.set_ms(ms);
        while self.io.next_processing_timer <= ms {
            self.io.next_processing_timer = Timestamp::MAX;
            self.head.processing_time(ms, &mut self.io);
            self.check()?;
        }
        Ok(())
    }

    /// The input ends, as a bounded job's does: the final watermark fires every event-time
    /// timer, and operators emit what they hold.
    pub fn end_input(&mut self) -> Result<()> {
        if self.io.watermark != MAX_WATERMARK {
            self.io.watermark = MAX_WATERMARK;
            self.head.watermark(MAX_WATERMARK, &mut self.io);
            self.check()?;
        }
        self.head.end_input(true, &mut self.io);
        self.check()
    }

    /// Closes the operators, as a subtask that ends normally does.
    pub fn close(&mut self) -> Result<()> {
        self.head.close(&mut self.io);
        self.check()
    }

    /// The records emitted so far (and not taken).
    pub fn output(&self) -> Vec<Out> {
        self.collected.lock().expect("harness output").values()
    }

    /// The records emitted so far with their timestamps (`None`: without one).
    pub fn output_with_timestamps(&self) -> Vec<(Out, Option<Timestamp>)> {
        let collected = self.collected.lock().expect("harness output");
        collected.records.iter().map(|(v, ts)| (v.clone(), (*ts != NO_TIMESTAMP).then_some(*ts))).collect()
    }

    /// Takes the records emitted so far.
    pub fn take_output(&mut self) -> Vec<Out> {
        self.collected.lock().expect("harness output").take().into_iter().map(|(v, _)| v).collect()
    }

    /// The watermarks that reached the output, in order.
    pub fn watermarks(&self) -> Vec<Timestamp> {
        self.collected.lock().expect("harness output").watermarks.clone()
    }

    /// Whether the output stream is idle now (marked so by a watermark strategy's idleness).
    pub fn is_idle(&self) -> bool {
        self.collected.lock().expect("harness output").idle
    }

    /// The records of the side output `name` so far.
    pub fn side_output<T: Data>(&self, name: &str) -> Result<Vec<T>> {
        let (_, collected) = self
            .side_outputs
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| WeirError::Argument(format!("the harness has no side output '{name}'")))?;
        let collected = collected.clone().downcast::<Mutex<Collected<T>>>().map_err(|_| {
            WeirError::Argument(format!("the side output '{name}' is not of {}", std::any::type_name::<T>()))
        })?;
        Ok(collected.lock().expect("harness output").values())
    }

    /// The timers registered now, by domain and time, in order.
    pub fn timers(&self) -> Vec<(TimeDomain, Timestamp)> {
        let mut timers = Vec::new();
        self.head.timers(&mut timers);
        timers.sort();
        timers
    }

    /// Whether this subtask owns `key` (see [`HarnessConfig::owns`]).
    pub fn owns<K: Key>(&self, key: &K) -> bool {
        owns(key, self.max_parallelism, self.parallelism, self.index)
    }

    /// Snapshots every operator of the fragment, as at a checkpoint barrier; restore it with
    /// [`HarnessConfig::restore`].
    pub fn snapshot(&mut self) -> Result<HarnessSnapshot> {
        self.checkpoints += 1;
        // A savepoint's barrier: keyed state is snapshotted whole, in any backend.
        let barrier = CheckpointBarrier {
            checkpoint_id: self.checkpoints,
            timestamp_ms: self.io.now_ms(),
            kind: BarrierKind::Savepoint { target: String::new(), stop: None },
        };
        let mut operators = Vec::new();
        self.head.checkpoint(&barrier, &mut self.io, &mut operators);
        self.check()?;
        for (index, pending) in std::mem::take(&mut self.io.pending_keyed) {
            match pending.materialize(None)? {
                weir_state::KeyedStateHandle::Full(full) => operators[index].keyed = Some(full),
                weir_state::KeyedStateHandle::Incremental(_) => {
                    return Err(WeirError::runtime("an incremental keyed snapshot in the harness"));
                }
            }
        }
        Ok(HarnessSnapshot {
            index: self.index,
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            operators,
            clock: EventClock { watermark: self.io.watermark, max_timestamp: self.max_timestamp },
        })
    }

    /// Tells the operators that the `n`-th snapshot's checkpoint completed (two-phase sinks
    /// commit).
    pub fn notify_checkpoint_complete(&mut self, n: u64) -> Result<()> {
        self.head.checkpoint_complete(n, &mut self.io);
        self.check()
    }
}

#[cfg(test)]
mod tests;
