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
    Alignment, BarrierAligner, BarrierKind, BatchConfig, CheckpointBarrier, Element, EndOfData, MAX_WATERMARK,
    StopMode, Timestamp, WatermarkValve,
};

use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::failpoint::{self, Step};
use crate::base::link::{Link, LinkInfo};
use crate::base::state::{EventClock, OperatorState};
use crate::base::task_io::TaskIo;
use crate::runtime::checkpoint::storage::write_task_in;
use crate::runtime::checkpoint::{CheckpointAck, CheckpointEvent, PendingRestore, TaskControl, TaskSnapshot};
use crate::runtime::input::{TaskInput, next};
use crate::runtime::source_head::{SourceHead, SourcePoll, SourceTime};
use crate::runtime::writer::ErasedOutput;

mod lifecycle;

use crate::base::metrics::{SubtaskCheckpoint, TaskMetrics};
use crate::runtime::checkpoint::CheckpointIo;
use lifecycle::Lifecycle;

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

/// A loop's time split as Flink's `busyTimeMsPerSecond`, `idleTimeMsPerSecond` and
/// `backPressuredTimeMsPerSecond` split it, kept as totals (a rate of them is the per-second
/// figure): idle is the time waiting in [`wake`] for something to do, backpressure the time
/// [`drain`] waits for room downstream, busy the rest. Read twice per wake (per batch), never
/// per record.
struct LoopClock {
    started: Instant,
    idle: Duration,
}

impl LoopClock {
    fn new() -> Self {
        LoopClock { started: Instant::now(), idle: Duration::ZERO }
    }

    /// Before waiting: publishes the busy time so far, and returns when the wait began.
    fn before_wait(&self, metrics: &TaskMetrics) -> Instant {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Instant::now();
        let run = now.saturating_duration_since(self.started).saturating_sub(self.idle).as_nanos() as u64;
        metrics.busy_nanos.store(run.saturating_sub(metrics.backpressure_nanos.load(Relaxed)), Relaxed);
        now
    }

    /// After a wait that began `since`: publishes the idle time.
    fn after_wait(&mut self, since: Instant, metrics: &TaskMetrics) {
        self.idle += since.elapsed();
        metrics.idle_nanos.store(self.idle.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
    }
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

/// What woke a processing loop that had nothing to do.
enum Wake<T> {
    /// A control message.
    Control(TaskControl),
    /// The control channel closed (the subtask ends once its work is done).
    ControlClosed,
    /// Partial batches are due.
    Flush,
    /// A processing-time timer is due.
    ProcessingTime,
    /// The loop's own event: input (a task), or the end of a pause (a source).
    Ready(T),
}

/// Waits for the next thing a loop acts on, in this order: control messages, the flush
/// deadline, processing-time timers (only while `active`), a completed asynchronous request
/// (while some run), then `ready` (none: nothing else to wait for), and if none of them is
/// ready at once and the chain holds partial batches, a flush. Both loops wait here. With
/// nothing left to wait for (the control channel gone while the subtask waits to end) that is
/// an error.
async fn wake<T>(
    control: &mut ControlReceiver,
    control_open: &mut bool,
    timers: &mut LoopTimers,
    active: bool,
    async_wake: Option<Arc<tokio::sync::Notify>>,
    ready: Option<impl std::future::Future<Output = T>>,
    unflushed: bool,
) -> Result<Wake<T>> {
    let timers_run = active && timers.processing_at != Timestamp::MAX;
    let async_waits = async_wake.is_some();
    let async_done = async {
        match &async_wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    let waits = ready.is_some();
    let ready = async {
        match ready {
            Some(ready) => ready.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        ctl = control.recv(), if *control_open => Ok(match ctl {
            Some(ctl) => Wake::Control(ctl),
            None => {
                *control_open = false;
                Wake::ControlClosed
            }
        }),
        _ = timers.flush.as_mut(), if timers.flush_armed => Ok(Wake::Flush),
        _ = timers.processing.as_mut(), if timers_run => Ok(Wake::ProcessingTime),
        // An asynchronous request completed: the chain takes its results in a tick.
        _ = async_done, if async_waits => Ok(Wake::ProcessingTime),
        out = ready, if waits => Ok(Wake::Ready(out)),
        // Nothing else to do: what the chain holds goes out now rather than at the flush
        // interval (under load the input is always ready and batches fill; when it runs dry,
        // waiting would only add latency).
        _ = std::future::ready(()), if unflushed => Ok(Wake::Flush),
        else => Err(WeirError::Disconnected("the subtask lost its control channel while waiting to end".into())),
    }
}

/// Control messages of a subtask's loop.
pub(crate) type ControlReceiver = tokio::sync::mpsc::UnboundedReceiver<TaskControl>;

/// What a processing loop runs with besides its chain: the runtime services, the output
/// senders and the control channel.
pub(crate) struct TaskParts {
    pub(crate) io: TaskIo,
    pub(crate) outputs: Vec<Box<dyn ErasedOutput>>,
    pub(crate) control: ControlReceiver,
    /// State to restore, read when the loop starts (before the chain opens).
    pub(crate) restore: Option<PendingRestore>,
    /// Checkpoint storage and where acknowledgements go (`None` only in unit tests).
    pub(crate) checkpoints: Option<CheckpointIo>,
}

/// Where a loop's snapshots go, and those still being written off the loop.
struct Snapshots {
    checkpoints: Option<CheckpointIo>,
    writes: SnapshotWrites,
}

impl TaskParts {
    /// The loop's parts, with the state it restores read (off this thread).
    async fn restored(self) -> Result<(TaskIo, Vec<Box<dyn ErasedOutput>>, ControlReceiver, Snapshots)> {
        let TaskParts { mut io, outputs, control, restore, checkpoints } = self;
        if let Some(restore) = restore {
            io.restored = Some(Arc::new(restore.read().await?));
        }
        Ok((io, outputs, control, Snapshots { checkpoints, writes: SnapshotWrites::default() }))
    }
}

/// The lifecycle a subtask starts with: whether the job checkpoints periodically, and whether
/// it was restored from a snapshot taken after its input had ended.
fn lifecycle(io: &TaskIo) -> Lifecycle {
    Lifecycle::new(io.checkpointing(), io.restored.as_ref().is_some_and(|r| r.finished))
}

/// Ends the chain: with `drain`, the final watermark fires every event-time timer and the
/// operators finish; then end of data goes out, and the coordinator learns the input ended.
fn end_chain<T>(head: &mut dyn Link<T>, io: &mut TaskIo, drain: bool, life: &mut Lifecycle, snapshots: &Snapshots) {
    if drain && io.watermark != MAX_WATERMARK {
        io.set_watermark(MAX_WATERMARK);
        head.watermark(MAX_WATERMARK, io);
    }
    head.end_input(drain, io);
    io.metrics.mark_finished(io.now_ms());
    life.end();
    if let Some(checkpoints) = &snapshots.checkpoints {
        let _ = checkpoints.events.send(CheckpointEvent::InputEnded);
    }
}

/// The subtask ends normally: operators close, the last batches leave.
async fn close_chain<T>(
    head: &mut dyn Link<T>,
    io: &mut TaskIo,
    outputs: &mut [Box<dyn ErasedOutput>],
    snapshots: &mut Snapshots,
) -> Result<()> {
    // Its acknowledgements are out before it reports its end.
    snapshots.writes.finish().await;
    head.close(io);
    check(io)?;
    drain(io, outputs).await?;
    io.publish_metrics();
    check(io)
}

/// A checkpoint's completion: two-phase sinks commit, and the lifecycle moves on.
fn complete<T>(
    head: &mut dyn Link<T>,
    io: &mut TaskIo,
    life: &mut Lifecycle,
    checkpoint: u64,
    commit: bool,
    end: bool,
) {
    if commit {
        head.checkpoint_complete(checkpoint, io);
    }
    life.completed(checkpoint, end);
}

/// What a chain's head adds to its snapshot before the links do: a source's position, and the
/// highest timestamp it read (its part of the event clock).
struct HeadState {
    operators: Vec<OperatorState>,
    max_timestamp: Timestamp,
}

impl Default for HeadState {
    fn default() -> Self {
        HeadState { operators: Vec::new(), max_timestamp: Timestamp::MIN }
    }
}

/// Snapshots the chain at `barrier` (which the links then pass on) and stores the snapshot
/// off the loop, in the job's checkpoint storage or the savepoint's directory; the
/// acknowledgement follows once it is stored.
fn checkpoint_chain<T>(
    head: &mut dyn Link<T>,
    barrier: &CheckpointBarrier,
    io: &mut TaskIo,
    alignment: Duration,
    head_state: HeadState,
    life: &mut Lifecycle,
    snapshots: &mut Snapshots,
) {
    let HeadState { mut operators, max_timestamp } = head_state;
    let sync_started = Instant::now();
    head.checkpoint(barrier, io, &mut operators);
    let sync = sync_started.elapsed();
    let finished = life.ended();
    life.took(barrier);
    // Taken now, so that an abandoned checkpoint frees its local RocksDB checkpoints (and its
    // share of copy-on-write memory state) at once.
    let pending = std::mem::take(&mut io.pending_keyed);
    let Some(checkpoints) = snapshots.checkpoints.clone() else { return };
    if io.has_failed() {
        return;
    }
    let id = barrier.checkpoint_id;
    let dir = match &barrier.kind {
        BarrierKind::Checkpoint => checkpoints
            .storage
            .as_ref()
            .map(|s| s.checkpoint_dir(id))
            .ok_or_else(|| "the job takes no periodic checkpoints: it has no checkpoint storage".to_owned()),
        BarrierKind::Savepoint { target, .. } => weir_state::storage::Location::parse(target),
    };
    let shared = checkpoints.storage.as_ref().map(|s| crate::runtime::checkpoint::shared_dir(s.job_dir()));
    let fs = checkpoints.storage.as_ref().map_or_else(crate::base::fs::local, |s| s.file_system().clone());
    let attempt = io.info.attempt;
    let clock = EventClock { watermark: io.watermark, max_timestamp };
    let mut snapshot =
        TaskSnapshot { checkpoint: id, vertex: checkpoints.vertex, subtask: io.info.index, finished, operators, clock };
    let job = io.info.job_id;
    let metrics = io.metrics.clone();
    let write = tokio::task::spawn_blocking(move || {
        let async_started = Instant::now();
        // Keyed state is serialized (memory) or uploaded (RocksDB, then referenced from the
        // subtask's file like any other state) here, off the loop. A write that panics declines
        // the checkpoint (rather than leaving it to time out).
        let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let target = shared.map(weir_state::SnapshotTarget::new);
            pending.into_iter().try_for_each(|(index, pending)| {
                match pending.materialize(target.as_ref()).map_err(|e| format!("cannot store keyed state: {e}"))? {
                    weir_state::KeyedStateHandle::Incremental(handle) => {
                        snapshot.operators[index].incremental = Some(handle)
                    }
                    weir_state::KeyedStateHandle::Full(full) => snapshot.operators[index].keyed = Some(full),
                }
                Ok::<(), String>(())
            })?;
            failpoint::hit(Step::DuringUpload, job);
            let handle = write_task_in(&*fs, &dir?, &snapshot, attempt).map_err(|e| e.to_string())?;
            failpoint::hit(Step::BeforeAck, job);
            Ok(handle)
        }));
        let handle = stored.unwrap_or_else(|panic| {
            Err(format!("the snapshot write panicked: {}", crate::base::failpoint::panic_text(&*panic)))
        });
        if let Ok(handle) = &handle {
            metrics.checkpoint_stored(SubtaskCheckpoint {
                id,
                bytes: handle.bytes,
                alignment_ms: alignment.as_millis() as u64,
                sync_us: sync.as_micros() as u64,
                async_us: async_started.elapsed().as_micros() as u64,
            });
        }
        let ack = CheckpointAck {
            checkpoint: id,
            handle,
            alignment_ms: alignment.as_millis() as u64,
            sync_us: sync.as_micros() as u64,
            async_us: async_started.elapsed().as_micros() as u64,
            finished,
        };
        let _ = checkpoints.events.send(CheckpointEvent::Ack(ack));
    });
    snapshots.writes.push(id, write);
}

/// What happens to the rest of a batch after one element.
enum Next {
    Continue,
    /// The channel is blocked for alignment: keep the rest of its batch for later.
    Stash,
}

struct InputState<T> {
    valve: WatermarkValve,
    /// Barrier alignment (sans-IO): which channels ended, which delivered the barrier being
    /// aligned, which barriers are stale.
    aligner: BarrierAligner,
    /// When the alignment under way started.
    aligning_since: Option<Instant>,
    stash: Vec<std::collections::VecDeque<Element<T>>>,
    life: Lifecycle,
    snapshots: Snapshots,
}

impl<T: Data> InputState<T> {
    fn element(
        &mut self,
        channel: usize,
        element: Element<T>,
        head: &mut dyn Link<T>,
        io: &mut TaskIo,
        gate: &mut impl TaskInput<Item = T>,
    ) -> Next {
        match element {
            Element::Record(value, ts) => head.record(value, ts, io),
            // After a stop-with-savepoint's barrier, time stands still: the savepoint holds
            // the windows and timers a later watermark would fire.
            Element::Watermark(wm) => {
                if let Some(wm) = self.valve.on_watermark(channel, wm).watermark
                    && self.life.active()
                {
                    io.set_watermark(wm);
                    head.watermark(wm, io);
                }
            }
            Element::Idle(idle) => {
                let out = self.valve.on_idle(channel, idle);
                if !self.life.active() {
                    return Next::Continue;
                }
                if let Some(idle) = out.idle {
                    head.idle(idle, io);
                }
                if let Some(wm) = out.watermark {
                    io.set_watermark(wm);
                    head.watermark(wm, io);
                }
            }
            Element::Barrier(barrier) => {
                let outcome = self.aligner.on_barrier(channel, barrier);
                if outcome.abandoned.is_some() {
                    self.abort_alignment(gate);
                }
                match outcome.alignment {
                    Alignment::Ignore => {}
                    Alignment::Block => {
                        self.aligning_since.get_or_insert_with(Instant::now);
                        gate.block(channel);
                        return Next::Stash;
                    }
                    Alignment::Aligned(barrier) => self.aligned(barrier, head, io, gate),
                }
            }
            Element::EndOfData => {
                if let EndOfData::Now(aligned) = self.aligner.on_end_of_data(channel) {
                    if let Some(wm) = self.valve.on_end_of_data(channel).watermark
                        && self.life.active()
                    {
                        io.set_watermark(wm);
                        head.watermark(wm, io);
                    }
                    if let Some(barrier) = aligned {
                        self.aligned(barrier, head, io, gate);
                    }
                }
            }
        }
        Next::Continue
    }

    /// Every open channel delivered `barrier` (or ended): the snapshot, then every channel
    /// is read again.
    fn aligned(
        &mut self,
        barrier: CheckpointBarrier,
        head: &mut dyn Link<T>,
        io: &mut TaskIo,
        gate: &mut impl TaskInput<Item = T>,
    ) {
        let waited = self.aligning_since.take().map_or(Duration::ZERO, |since| since.elapsed());
        if self.aligner.open_channels() == 0 && !self.life.ended() {
            // Every input ended before the barrier: the chain ends first, so the snapshot
            // (and the downstream one after it) holds what ending it emits.
            let drain = self.life.active();
            end_chain(head, io, drain, &mut self.life, &self.snapshots);
        }
        checkpoint_chain(head, &barrier, io, waited, HeadState::default(), &mut self.life, &mut self.snapshots);
        gate.unblock_all();
    }

    /// The alignment under way was given up: every channel is read again.
    fn abort_alignment(&mut self, gate: &mut impl TaskInput<Item = T>) {
        self.aligning_since = None;
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
        gate: &mut impl TaskInput<Item = T>,
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

    fn control(
        &mut self,
        ctl: TaskControl,
        head: &mut dyn Link<T>,
        io: &mut TaskIo,
        gate: &mut impl TaskInput<Item = T>,
    ) {
        match ctl {
            TaskControl::CheckpointComplete { checkpoint, commit, end } => {
                complete(head, io, &mut self.life, checkpoint, commit, end)
            }
            TaskControl::CheckpointAborted(id) => {
                // Its barriers still on their way are stale from now on (they would block
                // their channels until the next checkpoint, and snapshot for nothing).
                if self.aligner.on_abort(id) {
                    self.abort_alignment(gate);
                }
                self.life.aborted(id);
            }
            // Only sources start checkpoints.
            TaskControl::TriggerCheckpoint(_) => {}
        }
    }
}

/// The loop of a subtask whose chain reads input channels.
pub(crate) async fn run_input<T: Data, I: TaskInput<Item = T>>(
    mut gate: I,
    mut head: Box<dyn Link<T>>,
    parts: TaskParts,
    batch: BatchConfig,
) -> Result<()> {
    let (mut io, mut outputs, mut control, snapshots) = parts.restored().await?;
    head.open(&mut io);
    check(&mut io)?;
    let channels = gate.num_channels();
    let mut valve = WatermarkValve::new(channels);
    // Restored: event time goes on from the watermark at the checkpoint (timers at or below it
    // had fired before it, so there is nothing to fire now).
    if let Some(clock) = io.restored.as_ref().map(|r| r.clock) {
        io.set_watermark(io.watermark.max(clock.watermark));
        valve.resume_at(clock.watermark);
    }
    let mut state = InputState {
        valve,
        aligner: BarrierAligner::new(channels),
        aligning_since: None,
        stash: (0..channels).map(|_| std::collections::VecDeque::new()).collect(),
        life: lifecycle(&io),
        snapshots,
    };
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut clock = LoopClock::new();
    let mut last_open = gate.num_open();
    let mut control_open = true;
    loop {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        if !state.life.ended() && (state.aligner.open_channels() == 0 || state.life.released()) {
            let drain = state.aligner.open_channels() == 0 && state.life.active();
            end_chain(&mut *head, &mut io, drain, &mut state.life, &state.snapshots);
            continue;
        }
        if state.life.may_end() && gate.num_open() == 0 {
            break;
        }
        timers.arm(&io);
        // What a finished alignment unblocked comes before new input, in channel order.
        if let Some(c) = (0..channels).find(|&c| !gate.is_blocked(c) && !state.stash[c].is_empty()) {
            let stashed = std::mem::take(&mut state.stash[c]);
            state.batch(c, stashed, &mut *head, &mut io, &mut gate);
            continue;
        }
        // A link that can take no more input (async I/O at capacity) holds it back.
        let input = (gate.num_open() > 0 && !io.async_work.input_held).then(|| next(&mut gate));
        let async_wake = io.async_work.waker();
        let unflushed = io.unflushed;
        let waiting = clock.before_wait(&io.metrics);
        let woke =
            wake(&mut control, &mut control_open, &mut timers, state.life.active(), async_wake, input, unflushed)
                .await?;
        clock.after_wait(waiting, &io.metrics);
        match woke {
            Wake::Control(ctl) => state.control(ctl, &mut *head, &mut io, &mut gate),
            Wake::Flush => flush(&mut *head, &mut io, &mut timers),
            Wake::ProcessingTime => fire_processing_time(&mut *head, &mut io, &mut timers),
            // `None`: a channel closed; whether it ended first is checked below.
            Wake::Ready(None) | Wake::ControlClosed => {}
            Wake::Ready(Some((channel, elements))) => {
                io.metrics.mark_first_record(io.now_ms());
                io.metrics.records_in.fetch_add(I::records(&elements), std::sync::atomic::Ordering::Relaxed);
                state.batch(channel, elements, &mut *head, &mut io, &mut gate);
            }
        }
        if gate.num_open() != last_open {
            last_open = gate.num_open();
            if let Some(c) = (0..channels).find(|&c| gate.is_closed(c) && !state.aligner.has_ended(c)) {
                return Err(WeirError::Disconnected(format!(
                    "input channel {c} closed without end-of-data (its producer failed or was cancelled)"
                )));
            }
        }
        if timers.flush_due() {
            flush(&mut *head, &mut io, &mut timers);
        }
    }
    close_chain(&mut *head, &mut io, &mut outputs, &mut state.snapshots).await
}

/// What a source subtask's control messages act on.
struct SourceTask<'a, T, S: SourceHead<T>> {
    source: &'a mut S,
    name: &'a LinkInfo,
    head: &'a mut dyn Link<T>,
    io: &'a mut TaskIo,
    life: &'a mut Lifecycle,
    snapshots: &'a mut Snapshots,
    time: &'a mut SourceTime<T>,
}

impl<T: Data, S: SourceHead<T>> SourceTask<'_, T, S> {
    /// Ends the source's input: the chain ends, draining unless stopped.
    fn end(&mut self, drain: bool) {
        self.time.set_idle(false, self.head, self.io);
        end_chain(self.head, self.io, drain, self.life, self.snapshots);
    }

    /// Between polls the source's position is consistent: that is where barriers go in.
    fn control(&mut self, ctl: TaskControl) -> Result<()> {
        match ctl {
            TaskControl::TriggerCheckpoint(barrier) => {
                // Stop with drain: the input ends first, then the savepoint is taken.
                if barrier.stop() == Some(StopMode::Drain) && !self.life.ended() {
                    self.end(true);
                }
                let position = self.source.snapshot(barrier.checkpoint_id).map_err(|e| e.in_operator(self.name))?;
                let operators =
                    vec![OperatorState { node: self.name.node, operator: Some(position), ..Default::default() }];
                checkpoint_chain(
                    self.head,
                    &barrier,
                    self.io,
                    Duration::ZERO,
                    HeadState { operators, max_timestamp: self.time.max_timestamp },
                    self.life,
                    self.snapshots,
                );
            }
            TaskControl::CheckpointComplete { checkpoint, commit, end } => {
                if commit {
                    self.source.checkpoint_complete(checkpoint).map_err(|e| e.in_operator(self.name))?;
                }
                complete(self.head, self.io, self.life, checkpoint, commit, end)
            }
            TaskControl::CheckpointAborted(id) => self.life.aborted(id),
        }
        Ok(())
    }
}

/// The loop of a subtask whose chain starts at a source.
pub(crate) async fn run_source<T: Data, S: SourceHead<T>>(
    mut source: S,
    name: LinkInfo,
    mut head: Box<dyn Link<T>>,
    parts: TaskParts,
    batch: BatchConfig,
) -> Result<()> {
    let (mut io, mut outputs, mut control, mut snapshots) = parts.restored().await?;
    head.open(&mut io);
    check(&mut io)?;
    source.open(&io).map_err(|e| e.in_operator(&name))?;
    let restored = io.restored.as_ref().map(|r| r.operator_states(name.node)).unwrap_or_default();
    if !restored.is_empty() {
        source.restore(restored).map_err(|e| e.in_operator(&name))?;
    }
    let strategy = source.watermark_strategy();
    // Restored: the source's clock goes on from the checkpoint (see `TaskSnapshot::clock`).
    let clock = io.restored.as_ref().map(|r| r.clock).unwrap_or_default();
    let mut time = SourceTime::new(&strategy, clock);
    io.set_watermark(io.watermark.max(clock.watermark));
    let mut pending_since: Option<Instant> = None;
    let mut timers = LoopTimers::new(batch.flush_interval);
    let mut clock = LoopClock::new();
    let mut polls: u32 = 0;
    let mut control_open = true;
    let mut life = lifecycle(&io);
    let finished_before = life.finished_before();
    macro_rules! task {
        () => {
            SourceTask {
                source: &mut source,
                name: &name,
                head: &mut *head,
                io: &mut io,
                life: &mut life,
                snapshots: &mut snapshots,
                time: &mut time,
            }
        };
    }
    if finished_before {
        // It had ended before the checkpoint: end of data at once, nothing finished again.
        end_chain(&mut *head, &mut io, false, &mut life, &snapshots);
    }
    loop {
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        if life.may_end() {
            if life.ended() {
                break;
            }
            end_chain(&mut *head, &mut io, false, &mut life, &snapshots); // stopped
            continue;
        }
        while control_open {
            match control.try_recv() {
                Ok(ctl) => task!().control(ctl)?,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => control_open = false,
            }
        }
        drain(&mut io, &mut outputs).await?;
        check(&mut io)?;
        timers.arm(&io);
        // Ended or stopping: only control messages (and the last partial batches) matter.
        let pause = if life.active() {
            if timers.flush_due() {
                flush(&mut *head, &mut io, &mut timers);
                continue;
            }
            if timers.processing_due(&io) {
                fire_processing_time(&mut *head, &mut io, &mut timers);
                continue;
            }
            let mut ctx = time.context(&mut *head, &mut io, batch.max_records);
            let poll = source.poll(&mut ctx).map_err(|e| e.in_operator(&name))?;
            let emitted = ctx.emitted as u64;
            if emitted > 0 {
                io.metrics.mark_first_record(io.now_ms());
            }
            io.metrics.records_in.fetch_add(emitted, std::sync::atomic::Ordering::Relaxed);
            // A source's periodic emission: after every poll.
            time.after_poll(&mut *head, &mut io);
            match poll {
                SourcePoll::Finished => {
                    task!().end(true);
                    continue;
                }
                SourcePoll::Ready => {
                    pending_since = None;
                    // A source that never waits must still let other tasks on its worker run.
                    polls = polls.wrapping_add(1);
                    if polls.is_multiple_of(16) {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                SourcePoll::Pending(wait) => {
                    let since = *pending_since.get_or_insert_with(Instant::now);
                    if strategy.idle_timeout().is_some_and(|timeout| since.elapsed() >= timeout) {
                        time.set_idle(true, &mut *head, &mut io);
                    }
                    drain(&mut io, &mut outputs).await?;
                    timers.arm(&io);
                    Some(wait)
                }
            }
        } else {
            None
        };
        let pause = pause.map(tokio::time::sleep);
        let async_wake = io.async_work.waker();
        let waiting = clock.before_wait(&io.metrics);
        let woke =
            wake(&mut control, &mut control_open, &mut timers, life.active(), async_wake, pause, io.unflushed).await?;
        clock.after_wait(waiting, &io.metrics);
        match woke {
            Wake::Control(ctl) => task!().control(ctl)?,
            Wake::Flush => flush(&mut *head, &mut io, &mut timers),
            Wake::ProcessingTime => fire_processing_time(&mut *head, &mut io, &mut timers),
            Wake::Ready(()) | Wake::ControlClosed => {}
        }
    }
    source.close().map_err(|e| e.in_operator(&name))?;
    close_chain(&mut *head, &mut io, &mut outputs, &mut snapshots).await
}

/// The snapshot writes of a subtask still running off its processing loop. A subtask that
/// ends normally waits for them, so its acknowledgements are out before it reports its end.
/// One that is cancelled or fails leaves them to finish on their own (each writes its
/// execution attempt's own file, which no newer attempt reads), and the log says so.
#[derive(Default)]
pub(crate) struct SnapshotWrites {
    running: Vec<(u64, tokio::task::JoinHandle<()>)>,
}

impl SnapshotWrites {
    /// Checkpoint `checkpoint`'s write started.
    pub(crate) fn push(&mut self, checkpoint: u64, write: tokio::task::JoinHandle<()>) {
        self.running.retain(|(_, write)| !write.is_finished());
        self.running.push((checkpoint, write));
    }

    /// Waits for every write under way.
    pub(crate) async fn finish(&mut self) {
        for (_, write) in self.running.drain(..) {
            let _ = write.await;
        }
    }
}

impl Drop for SnapshotWrites {
    fn drop(&mut self) {
        for (checkpoint, write) in &self.running {
            if !write.is_finished() {
                tracing::warn!(
                    checkpoint,
                    "the subtask ended (cancelled or failed) with its snapshot still being written; the write goes \
                     on into this execution attempt's own file, which no newer attempt reads"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
