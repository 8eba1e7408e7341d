//! The plumbing of one subtask: links of an operator chain, and the writer at its end that
//! batches records per output channel.
//!
//! A chain is a tree of [`Link`]s called directly, record by record; only the writer touches
//! channels, and only whole batches leave it. Errors raised inside a link are parked in the
//! [`TaskIo`] (the first one wins) and the processing loop fails the subtask after the call,
//! so `Context::emit` stays infallible for users.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_dataplane::{
    BatchSender, ChannelMetrics, CheckpointBarrier, Element, KeyGroup, OutputBuffer, Partitioning, Timestamp,
    count_records, subtask_for_key_group,
};

use crate::checkpoint::{CheckpointIo, OperatorState, RestoredState};
use crate::error::{Result, WeirError};
use crate::operator::{Data, SubtaskInfo};
use crate::time::SharedClock;

/// A boxed future that sends one batch.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Which operator a link runs: its name (for messages) and its node in the stream graph
/// (what its checkpointed state is filed under).
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) name: Arc<str>,
    pub(crate) node: usize,
}

impl std::ops::Deref for LinkInfo {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

/// One step of an operator chain, typed by what flows into it.
pub(crate) trait Link<T>: Send {
    /// Opens this link's operator and everything downstream of it (downstream first).
    fn open(&mut self, io: &mut TaskIo);
    /// One record.
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo);
    /// The combined input watermark advanced.
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo);
    /// The input became idle (`true`) or active again.
    fn idle(&mut self, idle: bool, io: &mut TaskIo);
    /// Processing time reached `now`: fire due processing-time timers, report the next one.
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo);
    /// Move partial batches out (the latency bound).
    fn flush(&mut self, io: &mut TaskIo);
    /// Every input delivered `barrier`: snapshot this link's state into `out`, then pass the
    /// barrier on (the writer sends it on every output channel).
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>);
    /// Checkpoint `id` completed everywhere (two-phase sinks commit).
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo);
    /// All input ended. With `drain`, operators finish (they emit what they hold, as Flink's
    /// `finish()`); without (a stop-with-savepoint without drain, or a subtask restored
    /// after it had finished), they are left as they are. Then the end is passed on: the
    /// writer sends end of data on every channel.
    fn end_input(&mut self, drain: bool, io: &mut TaskIo);
    /// The subtask ends normally, after its input ended and its last checkpoint: operators
    /// release what they hold.
    fn close(&mut self, io: &mut TaskIo);
}

/// Counters of one subtask, read by the JobMaster and tests while it runs.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    /// Records read from input channels (or produced by a source).
    pub records_in: AtomicU64,
    /// Records written to output channels.
    pub records_out: AtomicU64,
    /// Records dropped as late by window operators.
    pub late_records_dropped: AtomicU64,
    /// Nanoseconds spent waiting for room in output channels (backpressure).
    pub backpressure_nanos: AtomicU64,
    /// The subtask's output channels, for queue measurements.
    pub(crate) output_channels: std::sync::OnceLock<Vec<Arc<ChannelMetrics>>>,
    /// When the subtask handled its first record (processing time, epoch ms; 0: not yet).
    pub(crate) first_record_ms: std::sync::atomic::AtomicI64,
    /// When the subtask ended after all its input (epoch ms; 0: not yet).
    pub(crate) finished_ms: std::sync::atomic::AtomicI64,
    /// Counters reported by a remote TaskManager, which replace the local ones.
    pub(crate) remote: std::sync::Mutex<Option<TaskMetricsSnapshot>>,
}

impl TaskMetrics {
    /// Records the subtask's first record, once.
    pub(crate) fn mark_first_record(&self, now_ms: Timestamp) {
        let _ = self.first_record_ms.compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records the end of the subtask's input, once.
    pub(crate) fn mark_finished(&self, now_ms: Timestamp) {
        let _ = self.finished_ms.compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Replaces the counters with what a remote TaskManager reported.
    pub(crate) fn set_remote(&self, snapshot: TaskMetricsSnapshot) {
        *self.remote.lock().expect("metrics lock") = Some(snapshot);
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> TaskMetricsSnapshot {
        if let Some(remote) = *self.remote.lock().expect("metrics lock") {
            return remote;
        }
        let at = |v: &std::sync::atomic::AtomicI64| Some(v.load(Ordering::Relaxed)).filter(|&ms| ms != 0);
        TaskMetricsSnapshot {
            first_record_ms: at(&self.first_record_ms),
            finished_ms: at(&self.finished_ms),
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            late_records_dropped: self.late_records_dropped.load(Ordering::Relaxed),
            backpressure_ms: self.backpressure_nanos.load(Ordering::Relaxed) / 1_000_000,
            queued_out: self.output_channels.get().map_or(0, |c| c.iter().map(|m| m.queued_records()).sum()),
            peak_queued_out: self
                .output_channels
                .get()
                .map_or(0, |c| c.iter().map(|m| m.peak_queued_records()).max().unwrap_or(0)),
        }
    }
}

/// A point-in-time copy of [`TaskMetrics`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskMetricsSnapshot {
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Late records dropped.
    pub late_records_dropped: u64,
    /// Milliseconds blocked on full output channels.
    pub backpressure_ms: u64,
    /// Records sitting in this subtask's output channels now.
    pub queued_out: u64,
    /// The most records ever queued in one of its output channels.
    pub peak_queued_out: u64,
    /// When it handled its first record (epoch ms).
    pub first_record_ms: Option<Timestamp>,
    /// When its input ended (epoch ms).
    pub finished_ms: Option<Timestamp>,
}

/// A full batch waiting to be sent on output `output`, channel `channel`.
pub(crate) struct ReadyBatch {
    pub(crate) output: usize,
    pub(crate) channel: usize,
    pub(crate) batch: Box<dyn Any + Send>,
}

/// The runtime services of one subtask's chain.
pub(crate) struct TaskIo {
    pub(crate) info: Arc<SubtaskInfo>,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<TaskMetrics>,
    error: Option<WeirError>,
    pub(crate) ready: VecDeque<ReadyBatch>,
    /// Records sit in partial batches (the flush timer must be armed).
    pub(crate) unflushed: bool,
    /// The earliest processing-time timer any link has (`Timestamp::MAX`: none).
    pub(crate) next_processing_timer: Timestamp,
    /// The task's current input watermark.
    pub(crate) watermark: Timestamp,
    pub(crate) records_out: u64,
    pub(crate) late_records: u64,
    /// Checkpoint storage and where acknowledgements go (`None` only in unit tests).
    pub(crate) checkpoints: Option<CheckpointIo>,
    /// What to restore from, read by each link as it opens.
    pub(crate) restored: Option<Arc<RestoredState>>,
    /// Where keyed operators keep their state.
    pub(crate) state_backend: crate::job::StateBackend,
    /// Keyed snapshots whose synchronous part is done, by their operator's position in the
    /// checkpoint's operator states: stored off the loop with the rest of the snapshot.
    pub(crate) pending_keyed: Vec<(usize, weir_state::PendingKeyedSnapshot)>,
    /// Snapshot writes still running off the loop.
    pub(crate) snapshot_writes: SnapshotWrites,
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

impl TaskIo {
    pub(crate) fn new(info: Arc<SubtaskInfo>, clock: SharedClock, metrics: Arc<TaskMetrics>) -> Self {
        TaskIo {
            info,
            clock,
            metrics,
            error: None,
            ready: VecDeque::new(),
            unflushed: false,
            next_processing_timer: Timestamp::MAX,
            watermark: Timestamp::MIN,
            records_out: 0,
            late_records: 0,
            checkpoints: None,
            restored: None,
            state_backend: Default::default(),
            pending_keyed: Vec::new(),
            snapshot_writes: SnapshotWrites::default(),
        }
    }

    /// Parks the first error raised in the chain.
    pub(crate) fn fail(&mut self, error: WeirError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Whether the job takes periodic checkpoints (two-phase sinks then commit only when a
    /// checkpoint completes, even at the end of input).
    pub(crate) fn checkpointing(&self) -> bool {
        self.checkpoints.as_ref().is_some_and(|c| c.storage.is_some())
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.error.is_some()
    }

    pub(crate) fn take_error(&mut self) -> Option<WeirError> {
        self.error.take()
    }

    /// A link has a processing-time timer at `ts`.
    pub(crate) fn request_processing_time(&mut self, ts: Timestamp) {
        self.next_processing_timer = self.next_processing_timer.min(ts);
    }

    pub(crate) fn now_ms(&self) -> Timestamp {
        use crate::time::Clock;
        self.clock.now_ms()
    }

    /// Publishes the counters kept in plain fields to the shared metrics.
    pub(crate) fn publish_metrics(&mut self) {
        if self.records_out != 0 {
            self.metrics.records_out.fetch_add(self.records_out, Ordering::Relaxed);
            self.records_out = 0;
        }
        if self.late_records != 0 {
            self.metrics.late_records_dropped.fetch_add(self.late_records, Ordering::Relaxed);
            self.late_records = 0;
        }
    }
}

/// The senders of one output edge, with the batch type erased so the loop can drive them all.
pub(crate) trait ErasedOutput: Send {
    /// Sends a batch (a boxed `Batch<T>` of this output's type) on one channel.
    fn send(&mut self, channel: usize, batch: Box<dyn Any + Send>) -> SendFuture<'_>;
    /// The channels' metrics.
    fn metrics(&self) -> Vec<Arc<ChannelMetrics>>;
}

/// The typed senders of one output edge.
pub(crate) struct OutputChannels<T> {
    pub(crate) senders: Vec<BatchSender<T>>,
}

impl<T: Data> ErasedOutput for OutputChannels<T> {
    fn send(&mut self, channel: usize, batch: Box<dyn Any + Send>) -> SendFuture<'_> {
        Box::pin(async move {
            let batch = batch
                .downcast::<Vec<Element<T>>>()
                .map_err(|_| WeirError::runtime("batch of the wrong type on an output channel"))?;
            self.senders[channel].send(*batch).await.map_err(WeirError::from)
        })
    }

    fn metrics(&self) -> Vec<Arc<ChannelMetrics>> {
        self.senders.iter().map(|s| s.metrics().clone()).collect()
    }
}

/// Computes the key group of a record (the key selector and the stable hash).
pub(crate) type KeyGroupFn<T> = Arc<dyn Fn(&T, u16) -> KeyGroup + Send + Sync>;

/// How one output edge picks channels.
pub(crate) struct EdgeWriter<T> {
    pub(crate) output: usize,
    pub(crate) partitioning: Partitioning,
    pub(crate) key_group: Option<KeyGroupFn<T>>,
    pub(crate) max_parallelism: u16,
    pub(crate) consumer_parallelism: usize,
    pub(crate) consumers: Range<usize>,
    pub(crate) buffer: OutputBuffer<T>,
    pub(crate) next: usize,
}

impl<T: Data> EdgeWriter<T> {
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        match self.partitioning {
            Partitioning::Forward => self.buffer.push_record(0, value, ts),
            Partitioning::Rebalance | Partitioning::Rescale => {
                let channel = self.next;
                self.next += 1;
                if self.next == self.buffer.num_channels() {
                    self.next = 0;
                }
                self.buffer.push_record(channel, value, ts)
            }
            Partitioning::Hash => {
                let kg = (self.key_group.as_ref().expect("hash edge has a key selector"))(&value, self.max_parallelism);
                let target = subtask_for_key_group(self.max_parallelism, self.consumer_parallelism, kg);
                self.buffer.push_record(target - self.consumers.start, value, ts)
            }
            Partitioning::Broadcast => self.buffer.broadcast(Element::Record(value, ts)),
        }
        if self.buffer.has_ready() {
            self.move_ready(io);
        }
    }

    fn move_ready(&mut self, io: &mut TaskIo) {
        while let Some((channel, batch)) = self.buffer.pop_ready() {
            io.ready.push_back(ReadyBatch { output: self.output, channel, batch: Box::new(batch) });
        }
    }
}

/// The end of a chain that has network outputs: batches records per channel.
pub(crate) struct Writer<T> {
    pub(crate) edges: Vec<EdgeWriter<T>>,
}

impl<T: Data> Writer<T> {
    fn broadcast(&mut self, element: Element<T>, io: &mut TaskIo) {
        for edge in &mut self.edges {
            edge.buffer.broadcast(element.clone());
            edge.move_ready(io);
        }
    }
}

impl<T: Data> Link<T> for Writer<T> {
    fn open(&mut self, _io: &mut TaskIo) {}

    #[inline]
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        io.records_out += 1;
        io.unflushed = true;
        if let [edge] = self.edges.as_mut_slice() {
            edge.push(value, ts, io);
        } else if let Some((last, rest)) = self.edges.split_last_mut() {
            for edge in rest {
                edge.push(value.clone(), ts, io);
            }
            last.push(value, ts, io);
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        io.unflushed = true;
        self.broadcast(Element::Watermark(wm), io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        io.unflushed = true;
        self.broadcast(Element::Idle(idle), io);
    }

    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}

    fn flush(&mut self, io: &mut TaskIo) {
        for edge in &mut self.edges {
            edge.buffer.flush();
            edge.move_ready(io);
        }
    }

    fn end_input(&mut self, _drain: bool, io: &mut TaskIo) {
        self.broadcast(Element::EndOfData, io);
        self.flush(io);
    }

    fn close(&mut self, _io: &mut TaskIo) {}

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, _out: &mut Vec<OperatorState>) {
        // Broadcasting a barrier closes every channel's batch: it leaves at once.
        self.broadcast(Element::Barrier(barrier.clone()), io);
    }

    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// The end of a chain with no outputs (after a sink).
pub(crate) struct NullLink;

impl<T: Send> Link<T> for NullLink {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, _value: T, _ts: Timestamp, _io: &mut TaskIo) {}
    fn watermark(&mut self, _wm: Timestamp, _io: &mut TaskIo) {}
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, _drain: bool, _io: &mut TaskIo) {}
    fn close(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, _barrier: &CheckpointBarrier, _io: &mut TaskIo, _out: &mut Vec<OperatorState>) {}
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// Several chained successors (and maybe a writer) fed the same records.
pub(crate) struct FanOut<T> {
    pub(crate) outs: Vec<Box<dyn Link<T>>>,
}

impl<T: Data> Link<T> for FanOut<T> {
    fn open(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.open(io));
    }
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        if let Some((last, rest)) = self.outs.split_last_mut() {
            for out in rest {
                out.record(value.clone(), ts, io);
            }
            last.record(value, ts, io);
        }
    }
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.watermark(wm, io));
    }
    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.idle(idle, io));
    }
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.processing_time(now, io));
    }
    fn flush(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.flush(io));
    }
    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.end_input(drain, io));
    }
    fn close(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.close(io));
    }
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.outs.iter_mut().for_each(|o| o.checkpoint(barrier, io, out));
    }
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.checkpoint_complete(id, io));
    }
}

/// Counts the records of a batch given as its elements.
pub(crate) fn records_in<T>(batch: &[Element<T>]) -> u64 {
    count_records(batch) as u64
}
