//! The processing loop of one subtask, and how a subtask's chain is wired from the plan.
//!
//! The loop owns the chain and the output senders. Each step reads one input batch (or polls
//! the source once), pushes its elements through the chain by direct calls, then awaits the
//! sends of the batches that filled up: a full output channel stops the loop, which stops
//! reading its inputs, which fills the upstream channels: that is the backpressure. Partial
//! batches leave after `flush_interval` at the latest (the latency bound).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weir_dataplane::{BatchConfig, ChannelId, Element, InputGate, MAX_WATERMARK, Timestamp, WatermarkValve};

use crate::error::{Result, WeirError};
use crate::graph::{AnyBox, ExecutableGraph, TaskFuture, TaskWiring, WriterEdge};
use crate::job::JobId;
use crate::operator::{Data, OpenContext, SubtaskInfo};
use crate::runtime::io::{ErasedOutput, Link, TaskIo, TaskMetrics, records_in};
use crate::source::{Source, SourceContext, SourcePoll};
use crate::time::SharedClock;

/// How long a sleep is when there is nothing to wait for (re-armed before it matters).
const FAR: Duration = Duration::from_secs(86_400);

/// Sends every batch that is ready; the time spent waiting is backpressure.
async fn drain(io: &mut TaskIo, outputs: &mut [Box<dyn ErasedOutput>]) -> Result<()> {
    if io.ready.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    while let Some(ready) = io.ready.pop_front() {
        outputs[ready.output].send(ready.channel, ready.batch).await.map_err(|e| match e {
            WeirError::Dataplane(_) => {
                WeirError::Disconnected("a downstream subtask is gone (its input channel closed)".into())
            }
            other => other,
        })?;
    }
    let waited = started.elapsed().as_nanos() as u64;
    io.metrics.backpressure_nanos.fetch_add(waited, std::sync::atomic::Ordering::Relaxed);
    io.publish_metrics();
    Ok(())
}

fn check(io: &mut TaskIo) -> Result<()> {
    match io.take_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Timers of the loop: the flush deadline and the next processing-time timer.
struct LoopTimers {
    flush: std::pin::Pin<Box<tokio::time::Sleep>>,
    flush_armed: bool,
    processing: std::pin::Pin<Box<tokio::time::Sleep>>,
    processing_at: Timestamp,
    interval: Duration,
}

impl LoopTimers {
    fn new(interval: Duration) -> Self {
        LoopTimers {
            flush: Box::pin(tokio::time::sleep(FAR)),
            flush_armed: false,
            processing: Box::pin(tokio::time::sleep(FAR)),
            processing_at: Timestamp::MAX,
            interval,
        }
    }

    /// Arms the timers for what the chain now holds.
    fn arm(&mut self, io: &TaskIo) {
        if io.unflushed && !self.flush_armed {
            self.flush_armed = true;
            self.flush.as_mut().reset(Instant::now() + self.interval);
        }
        if io.next_processing_timer != self.processing_at {
            self.processing_at = io.next_processing_timer;
            let at = if self.processing_at == Timestamp::MAX {
                Instant::now() + FAR
            } else {
                io.clock.instant_at(self.processing_at)
            };
            self.processing.as_mut().reset(at);
        }
    }

    fn flush_due(&self) -> bool {
        self.flush_armed && self.flush.deadline() <= Instant::now()
    }

    fn processing_due(&self, io: &TaskIo) -> bool {
        self.processing_at != Timestamp::MAX && self.processing_at <= io.now_ms()
    }
}

fn flush<T>(head: &mut dyn Link<T>, io: &mut TaskIo, timers: &mut LoopTimers) {
    timers.flush_armed = false;
    io.unflushed = false;
    head.flush(io);
}

fn fire_processing_time<T>(head: &mut dyn Link<T>, io: &mut TaskIo, timers: &mut LoopTimers) {
    let now = io.now_ms();
    io.next_processing_timer = Timestamp::MAX;
    timers.processing_at = Timestamp::MIN; // force a re-arm
    head.processing_time(now, io);
}

/// The loop of a subtask whose chain reads input channels.
pub(crate) async fn run_input<T: Data>(
    mut gate: InputGate<T>,
    mut head: Box<dyn Link<T>>,
    mut io: TaskIo,
    mut outputs: Vec<Box<dyn ErasedOutput>>,
    batch: BatchConfig,
) -> Result<()> {
    head.open(&mut io);
    check(&mut io)?;
    let channels = gate.num_channels();
    let mut valve = WatermarkValve::new(channels);
    let mut ended = vec![false; channels];
    let mut open_channels = channels;
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut last_open = gate.num_open();
    while open_channels > 0 {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        timers.arm(&io);
        tokio::select! {
            biased;
            _ = timers.flush.as_mut(), if timers.flush_armed => flush(&mut *head, &mut io, &mut timers),
            _ = timers.processing.as_mut(), if timers.processing_at != Timestamp::MAX => {
                fire_processing_time(&mut *head, &mut io, &mut timers)
            }
            next = gate.next() => {
                let Some((channel, elements)) = next else {
                    return Err(WeirError::Disconnected("an upstream subtask ended without end-of-data (it failed or was cancelled)".into()));
                };
                io.metrics.mark_first_record(io.now_ms());
                io.metrics.records_in.fetch_add(records_in(&elements), std::sync::atomic::Ordering::Relaxed);
                for element in elements {
                    match element {
                        Element::Record(value, ts) => head.record(value, ts, &mut io),
                        Element::Watermark(wm) => {
                            if let Some(wm) = valve.on_watermark(channel, wm).watermark {
                                io.watermark = wm;
                                head.watermark(wm, &mut io);
                            }
                        }
                        Element::Idle(idle) => {
                            let out = valve.on_idle(channel, idle);
                            if let Some(idle) = out.idle {
                                head.idle(idle, &mut io);
                            }
                            if let Some(wm) = out.watermark {
                                io.watermark = wm;
                                head.watermark(wm, &mut io);
                            }
                        }
                        // Checkpoint barriers are carried in order; the protocol arrives with fault tolerance.
                        Element::Barrier(_) => {}
                        Element::EndOfData => {
                            if !std::mem::replace(&mut ended[channel], true) {
                                open_channels -= 1;
                                if let Some(wm) = valve.on_end_of_data(channel).watermark {
                                    io.watermark = wm;
                                    head.watermark(wm, &mut io);
                                }
                            }
                        }
                    }
                    if io.has_failed() {
                        break;
                    }
                }
            }
        }
        if gate.num_open() != last_open {
            last_open = gate.num_open();
            if let Some(c) = (0..channels).find(|&c| gate.is_closed(c) && !ended[c]) {
                return Err(WeirError::Disconnected(format!(
                    "input channel {c} closed without end-of-data (its producer failed or was cancelled)"
                )));
            }
        }
        if timers.flush_due() {
            flush(&mut *head, &mut io, &mut timers);
        }
    }
    finish(&mut *head, &mut io, &mut outputs).await
}

/// All input ended: the final watermark fires every event-time timer, then the chain ends.
async fn finish<T>(head: &mut dyn Link<T>, io: &mut TaskIo, outputs: &mut [Box<dyn ErasedOutput>]) -> Result<()> {
    if io.watermark != MAX_WATERMARK {
        io.watermark = MAX_WATERMARK;
        head.watermark(MAX_WATERMARK, io);
    }
    head.end_input(io);
    check(io)?;
    drain(io, outputs).await?;
    io.publish_metrics();
    io.metrics.mark_finished(io.now_ms());
    check(io)
}

/// The loop of a subtask whose chain starts at a source.
pub(crate) async fn run_source<S: Source>(
    mut source: S,
    name: Arc<str>,
    mut head: Box<dyn Link<S::Out>>,
    mut io: TaskIo,
    mut outputs: Vec<Box<dyn ErasedOutput>>,
    batch: BatchConfig,
) -> Result<()> {
    head.open(&mut io);
    check(&mut io)?;
    let info = io.info.clone();
    source.open(&OpenContext { info: &info }).map_err(|e| e.in_operator(&name))?;
    let strategy = source.watermark_strategy();
    let mut max_timestamp = Timestamp::MIN;
    let mut emitted_watermark = Timestamp::MIN;
    let mut idle = false;
    let mut pending_since: Option<Instant> = None;
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut polls: u32 = 0;
    loop {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        timers.arm(&io);
        if timers.flush_due() {
            flush(&mut *head, &mut io, &mut timers);
            continue;
        }
        if timers.processing_due(&io) {
            fire_processing_time(&mut *head, &mut io, &mut timers);
            continue;
        }
        let mut ctx = SourceContext {
            out: &mut *head,
            io: &mut io,
            max_timestamp: &mut max_timestamp,
            idle: &mut idle,
            emitted: 0,
            batch_size: batch.max_records,
        };
        let poll = source.poll_next(&mut ctx).map_err(|e| e.in_operator(&name))?;
        let emitted = ctx.emitted as u64;
        if emitted > 0 {
            io.metrics.mark_first_record(io.now_ms());
        }
        io.metrics.records_in.fetch_add(emitted, std::sync::atomic::Ordering::Relaxed);
        if let Some(bound) = strategy.out_of_orderness_ms
            && max_timestamp != Timestamp::MIN
        {
            let wm = max_timestamp.saturating_sub(bound).saturating_sub(1);
            if wm > emitted_watermark {
                emitted_watermark = wm;
                io.watermark = wm;
                head.watermark(wm, &mut io);
            }
        }
        match poll {
            SourcePoll::Finished => break,
            SourcePoll::Ready => {
                pending_since = None;
                // A source that never waits must still let other tasks on its worker run.
                polls = polls.wrapping_add(1);
                if polls.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            SourcePoll::Pending(wait) => {
                let since = *pending_since.get_or_insert_with(Instant::now);
                if let Some(timeout) = strategy.idle_timeout
                    && !idle
                    && since.elapsed() >= timeout
                {
                    idle = true;
                    head.idle(true, &mut io);
                }
                drain(&mut io, &mut outputs).await?;
                timers.arm(&io);
                tokio::select! {
                    biased;
                    _ = timers.flush.as_mut(), if timers.flush_armed => flush(&mut *head, &mut io, &mut timers),
                    _ = timers.processing.as_mut(), if timers.processing_at != Timestamp::MAX => {
                        fire_processing_time(&mut *head, &mut io, &mut timers)
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    source.close().map_err(|e| e.in_operator(&name))?;
    if idle {
        head.idle(false, &mut io);
    }
    finish(&mut *head, &mut io, &mut outputs).await
}

/// Builds the downstream of `node` inside its vertex: chained successors and the writer of
/// its network edges.
fn build_down(
    graph: &ExecutableGraph,
    node: usize,
    subtask: usize,
    job: JobId,
    attempt: u32,
    wiring: &TaskWiring<'_>,
    outputs: &mut Vec<Box<dyn ErasedOutput>>,
) -> Result<AnyBox> {
    let factory = &graph.stream.nodes[node].factory;
    let mut downs = Vec::new();
    for &child in &graph.chained_children[node] {
        let down = build_down(graph, child, subtask, job, attempt, wiring, outputs)?;
        let child_node = &graph.stream.nodes[child];
        downs.push(child_node.factory.link(Arc::from(child_node.name.as_str()), down)?);
    }
    if !graph.out_edges[node].is_empty() {
        let mut edges = Vec::new();
        for (i, &edge_id) in graph.out_edges[node].iter().enumerate() {
            let edge = &graph.job.edges[edge_id];
            let p_up = graph.node_parallelism[edge.from_node];
            let p_down = graph.node_parallelism[edge.to_node];
            let consumers = edge.partitioning.consumers_of(subtask, p_up, p_down);
            let channels = consumers
                .clone()
                .map(|c| {
                    let id = ChannelId {
                        job: job.0,
                        attempt,
                        edge: edge_id as u32,
                        producer: subtask as u32,
                        consumer: c as u32,
                    };
                    (id, wiring.remote_peer(c))
                })
                .collect();
            edges.push(WriterEdge {
                output: outputs.len() + i,
                partitioning: edge.partitioning,
                key_group: graph.edge_key_group[edge_id].clone(),
                consumer_parallelism: p_down,
                channels,
                consumers,
            });
        }
        let (writer, outs) = factory.writer(edges, wiring)?;
        outputs.extend(outs);
        downs.push(writer);
    }
    Ok(match downs.len() {
        0 => factory.null_link(),
        1 => downs.pop().expect("one"),
        _ => factory.fan_out(downs),
    })
}

/// Everything a subtask needs to start.
pub(crate) struct SubtaskSpec<'a> {
    pub(crate) graph: &'a ExecutableGraph,
    pub(crate) job: JobId,
    pub(crate) vertex: usize,
    pub(crate) index: usize,
    pub(crate) attempt: u32,
    pub(crate) shuffle: &'a weir_dataplane::LocalShuffle,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// Channels to other processes, this TaskManager's id and where every slot of the job is
    /// (cluster mode; `None` in a MiniCluster).
    pub(crate) remote: Option<RemoteWiring<'a>>,
}

/// What a subtask needs to wire channels to other processes.
pub(crate) struct RemoteWiring<'a> {
    pub(crate) net: &'a Arc<weir_dataplane::NetShuffle>,
    pub(crate) task_manager: &'a str,
    pub(crate) slots: &'a [crate::cluster::task_executor::SlotLocation],
}

/// Wires one subtask's chain and returns its processing loop.
pub(crate) fn build_subtask(spec: SubtaskSpec<'_>) -> Result<TaskFuture> {
    let graph = spec.graph;
    let vertex = &graph.job.vertices[spec.vertex];
    let info = Arc::new(SubtaskInfo {
        job_id: spec.job,
        job_name: graph.job.job_name.clone(),
        vertex: vertex.name.clone(),
        index: spec.index,
        parallelism: vertex.parallelism,
        max_parallelism: graph.job.max_parallelism,
        attempt: spec.attempt,
    });
    let wiring = TaskWiring {
        shuffle: spec.shuffle,
        net: spec.remote.as_ref().map(|r| r.net),
        slots: spec.remote.as_ref().map(|r| (r.task_manager, r.slots)),
        batch: graph.stream.batch,
        max_parallelism: graph.job.max_parallelism,
    };
    let mut outputs = Vec::new();
    let head = vertex.head;
    let down = build_down(graph, head, spec.index, spec.job, spec.attempt, &wiring, &mut outputs)?;
    let inputs: Vec<(ChannelId, bool)> = graph
        .job
        .edges
        .iter()
        .filter(|e| e.to_node == head)
        .flat_map(|e| {
            let p_up = graph.node_parallelism[e.from_node];
            let wiring = &wiring;
            e.partitioning.producers_of(spec.index, p_up, vertex.parallelism).map(move |p| {
                let id = ChannelId {
                    job: spec.job.0,
                    attempt: spec.attempt,
                    edge: e.id as u32,
                    producer: p as u32,
                    consumer: spec.index as u32,
                };
                (id, wiring.remote_peer(p).is_some())
            })
        })
        .collect();
    let _ = spec.metrics.output_channels.set(outputs.iter().flat_map(|o| o.metrics()).collect());
    let io = TaskIo::new(info, spec.clock, spec.metrics);
    let node = &graph.stream.nodes[head];
    node.factory.task(Arc::from(node.name.as_str()), down, inputs, &wiring, io, outputs)
}
