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
use weir_dataplane::{
    BatchConfig, ChannelId, CheckpointBarrier, Element, InputGate, MAX_WATERMARK, Timestamp, WatermarkValve,
};

use crate::checkpoint::{CheckpointAck, OperatorState, TaskControl, TaskSnapshot};

use crate::error::{Result, WeirError};
use crate::graph::{AnyBox, ExecutableGraph, TaskFuture, TaskWiring, WriterEdge};
use crate::job::JobId;
use crate::operator::{Data, OpenContext, SubtaskInfo};
use crate::runtime::io::{ErasedOutput, Link, LinkInfo, TaskIo, TaskMetrics, records_in};
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

/// Control messages of a subtask's loop.
pub(crate) type ControlReceiver = tokio::sync::mpsc::UnboundedReceiver<TaskControl>;

/// What a processing loop runs with besides its chain: the runtime services, the output
/// senders and the control channel.
pub(crate) struct TaskParts {
    pub(crate) io: TaskIo,
    pub(crate) outputs: Vec<Box<dyn ErasedOutput>>,
    pub(crate) control: ControlReceiver,
}

/// Snapshots the chain at `barrier` (which the links then pass on) and stores the snapshot
/// off the loop; the acknowledgement follows once it is stored.
fn checkpoint_chain<T>(
    head: &mut dyn Link<T>,
    barrier: CheckpointBarrier,
    io: &mut TaskIo,
    alignment: Duration,
    mut operators: Vec<OperatorState>,
) {
    head.checkpoint(barrier, io, &mut operators);
    let Some(checkpoints) = io.checkpoints.clone() else { return };
    if io.has_failed() {
        return;
    }
    let snapshot = TaskSnapshot {
        checkpoint: barrier.checkpoint_id,
        vertex: checkpoints.vertex,
        subtask: io.info.index,
        operators,
    };
    tokio::task::spawn_blocking(move || {
        let handle = checkpoints.storage.write_task(&snapshot).map_err(|e| e.to_string());
        let _ = checkpoints.acks.send(CheckpointAck {
            checkpoint: snapshot.checkpoint,
            handle,
            alignment_ms: alignment.as_millis() as u64,
        });
    });
}

/// Barrier alignment of a subtask with several input channels: a channel that delivered
/// the barrier of checkpoint `n` is not read further until every open channel has.
struct Alignment {
    barrier: CheckpointBarrier,
    arrived: Vec<bool>,
    started: Instant,
}

/// What happens to the rest of a batch after one element.
enum Next {
    Continue,
    /// The channel is blocked for alignment: keep the rest of its batch for later.
    Stash,
}

struct InputState<T> {
    valve: WatermarkValve,
    ended: Vec<bool>,
    open_channels: usize,
    alignment: Option<Alignment>,
    stash: Vec<std::collections::VecDeque<Element<T>>>,
}

impl<T: Data> InputState<T> {
    fn element(
        &mut self,
        channel: usize,
        element: Element<T>,
        head: &mut dyn Link<T>,
        io: &mut TaskIo,
        gate: &mut InputGate<T>,
    ) -> Next {
        match element {
            Element::Record(value, ts) => head.record(value, ts, io),
            Element::Watermark(wm) => {
                if let Some(wm) = self.valve.on_watermark(channel, wm).watermark {
                    io.watermark = wm;
                    head.watermark(wm, io);
                }
            }
            Element::Idle(idle) => {
                let out = self.valve.on_idle(channel, idle);
                if let Some(idle) = out.idle {
                    head.idle(idle, io);
                }
                if let Some(wm) = out.watermark {
                    io.watermark = wm;
                    head.watermark(wm, io);
                }
            }
            Element::Barrier(barrier) => {
                match &self.alignment {
                    Some(a) if a.barrier.checkpoint_id > barrier.checkpoint_id => return Next::Continue, // stale
                    Some(a) if a.barrier.checkpoint_id == barrier.checkpoint_id => {}
                    // A newer checkpoint overtook one that never completed here: give it up.
                    Some(_) => self.abort_alignment(gate),
                    None => {}
                }
                let alignment = self.alignment.get_or_insert_with(|| Alignment {
                    barrier,
                    arrived: vec![false; gate.num_channels()],
                    started: Instant::now(),
                });
                alignment.arrived[channel] = true;
                gate.block(channel);
                if !self.try_complete(head, io, gate) {
                    return Next::Stash;
                }
            }
            Element::EndOfData => {
                if !std::mem::replace(&mut self.ended[channel], true) {
                    self.open_channels -= 1;
                    if let Some(wm) = self.valve.on_end_of_data(channel).watermark {
                        io.watermark = wm;
                        head.watermark(wm, io);
                    }
                    self.try_complete(head, io, gate);
                }
            }
        }
        Next::Continue
    }

    /// Completes the alignment if every channel delivered the barrier or ended.
    fn try_complete(&mut self, head: &mut dyn Link<T>, io: &mut TaskIo, gate: &mut InputGate<T>) -> bool {
        let Some(a) = &self.alignment else { return true };
        if !(0..a.arrived.len()).all(|c| a.arrived[c] || self.ended[c]) {
            return false;
        }
        let (barrier, waited) = (a.barrier, a.started.elapsed());
        self.alignment = None;
        checkpoint_chain(head, barrier, io, waited, Vec::new());
        gate.unblock_all();
        true
    }

    fn abort_alignment(&mut self, gate: &mut InputGate<T>) {
        self.alignment = None;
        gate.unblock_all();
    }

    /// Feeds `elements` of `channel` to the chain, stashing what follows a barrier that
    /// blocked the channel.
    fn batch(
        &mut self,
        channel: usize,
        elements: impl IntoIterator<Item = Element<T>>,
        head: &mut dyn Link<T>,
        io: &mut TaskIo,
        gate: &mut InputGate<T>,
    ) {
        let mut elements = elements.into_iter();
        while let Some(element) = elements.next() {
            // Records are nearly every element: keep them off the general path.
            if let Element::Record(value, ts) = element {
                head.record(value, ts, io);
                continue;
            }
            if let Next::Stash = self.element(channel, element, head, io, gate) {
                self.stash[channel].extend(elements);
                return;
            }
            if io.has_failed() {
                return;
            }
        }
    }
}

/// The loop of a subtask whose chain reads input channels.
pub(crate) async fn run_input<T: Data>(
    mut gate: InputGate<T>,
    mut head: Box<dyn Link<T>>,
    parts: TaskParts,
    batch: BatchConfig,
) -> Result<()> {
    let TaskParts { mut io, mut outputs, mut control } = parts;
    head.open(&mut io);
    check(&mut io)?;
    let channels = gate.num_channels();
    let mut state = InputState {
        valve: WatermarkValve::new(channels),
        ended: vec![false; channels],
        open_channels: channels,
        alignment: None,
        stash: (0..channels).map(|_| std::collections::VecDeque::new()).collect(),
    };
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut last_open = gate.num_open();
    let mut control_open = true;
    while state.open_channels > 0 {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        timers.arm(&io);
        // What a finished alignment unblocked comes before new input, in channel order.
        if let Some(c) = (0..channels).find(|&c| !gate.is_blocked(c) && !state.stash[c].is_empty()) {
            let stashed = std::mem::take(&mut state.stash[c]);
            state.batch(c, stashed, &mut *head, &mut io, &mut gate);
            continue;
        }
        tokio::select! {
            biased;
            ctl = control.recv(), if control_open => match ctl {
                Some(TaskControl::CheckpointComplete(id)) => head.checkpoint_complete(id, &mut io),
                Some(TaskControl::CheckpointAborted(id)) => {
                    if state.alignment.as_ref().is_some_and(|a| a.barrier.checkpoint_id == id) {
                        state.abort_alignment(&mut gate);
                    }
                }
                // Only sources start checkpoints.
                Some(TaskControl::TriggerCheckpoint(_)) => {}
                None => control_open = false,
            },
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
                state.batch(channel, elements, &mut *head, &mut io, &mut gate);
            }
        }
        if gate.num_open() != last_open {
            last_open = gate.num_open();
            if let Some(c) = (0..channels).find(|&c| gate.is_closed(c) && !state.ended[c]) {
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
    name: LinkInfo,
    mut head: Box<dyn Link<S::Out>>,
    parts: TaskParts,
    batch: BatchConfig,
) -> Result<()> {
    let TaskParts { mut io, mut outputs, mut control } = parts;
    head.open(&mut io);
    check(&mut io)?;
    let info = io.info.clone();
    source.open(&OpenContext { info: &info }).map_err(|e| e.in_operator(&name))?;
    let restored = io.restored.as_ref().map(|r| r.operator_states(name.node)).unwrap_or_default();
    if !restored.is_empty() {
        source.restore_state(restored).map_err(|e| e.in_operator(&name))?;
    }
    let strategy = source.watermark_strategy();
    let mut max_timestamp = Timestamp::MIN;
    let mut emitted_watermark = Timestamp::MIN;
    let mut idle = false;
    let mut pending_since: Option<Instant> = None;
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut polls: u32 = 0;
    let mut control_open = true;
    // Between polls, the source's position is consistent: that is where barriers go in.
    let handle_control =
        |ctl: TaskControl, source: &mut S, head: &mut dyn Link<S::Out>, io: &mut TaskIo| -> Result<()> {
            match ctl {
                TaskControl::TriggerCheckpoint(barrier) => {
                    let position = source.snapshot_state().map_err(|e| e.in_operator(&name))?;
                    let operators =
                        vec![OperatorState { node: name.node, operator: Some(position), ..Default::default() }];
                    checkpoint_chain(head, barrier, io, Duration::ZERO, operators);
                }
                TaskControl::CheckpointComplete(id) => head.checkpoint_complete(id, io),
                TaskControl::CheckpointAborted(_) => {}
            }
            Ok(())
        };
    loop {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        while control_open {
            match control.try_recv() {
                Ok(ctl) => handle_control(ctl, &mut source, &mut *head, &mut io)?,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => control_open = false,
            }
        }
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
                    ctl = control.recv(), if control_open => match ctl {
                        Some(ctl) => handle_control(ctl, &mut source, &mut *head, &mut io)?,
                        None => control_open = false,
                    },
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
        downs.push(child_node.factory.link(LinkInfo { name: Arc::from(child_node.name.as_str()), node: child }, down)?);
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
    /// Checkpoint storage and where acknowledgements go (when the job checkpoints).
    pub(crate) checkpoints: Option<crate::checkpoint::CheckpointIo>,
    /// What to restore from.
    pub(crate) restored: Option<Arc<crate::checkpoint::RestoredState>>,
}

/// What a subtask needs to wire channels to other processes.
pub(crate) struct RemoteWiring<'a> {
    pub(crate) net: &'a Arc<weir_dataplane::NetShuffle>,
    pub(crate) task_manager: &'a str,
    pub(crate) slots: &'a [crate::cluster::task_executor::SlotLocation],
}

/// Wires one subtask's chain and returns its processing loop and where its control
/// messages go.
pub(crate) fn build_subtask(
    spec: SubtaskSpec<'_>,
) -> Result<(TaskFuture, tokio::sync::mpsc::UnboundedSender<TaskControl>)> {
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
    let mut io = TaskIo::new(info, spec.clock, spec.metrics);
    io.checkpoints = spec.checkpoints;
    io.restored = spec.restored;
    let node = &graph.stream.nodes[head];
    let (control_tx, control) = tokio::sync::mpsc::unbounded_channel();
    let info = LinkInfo { name: Arc::from(node.name.as_str()), node: head };
    let task = node.factory.task(info, down, inputs, &wiring, TaskParts { io, outputs, control })?;
    Ok((task, control_tx))
}

#[cfg(test)]
mod tests;
