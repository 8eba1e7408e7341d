//! The counters of one subtask, kept by its loop and read by the JobMaster, REST and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use weir_dataplane::{ChannelMetrics, Timestamp};

/// Counters of one subtask, read by the JobMaster and tests while it runs.
#[derive(Debug)]
pub struct TaskMetrics {
    /// Records read from input channels (or produced by a source).
    pub records_in: AtomicU64,
    /// Records written to output channels.
    pub records_out: AtomicU64,
    /// Records dropped as late by window operators.
    pub late_records_dropped: AtomicU64,
    /// Nanoseconds spent waiting for room in output channels (backpressure).
    pub backpressure_nanos: AtomicU64,
    /// Nanoseconds the loop waited for something to do (input, a timer, a control message).
    pub idle_nanos: AtomicU64,
    /// Nanoseconds the loop worked: its time neither idle nor backpressured.
    pub busy_nanos: AtomicU64,
    /// The subtask's output channels, for queue and byte measurements.
    pub(crate) output_channels: std::sync::OnceLock<Vec<Arc<ChannelMetrics>>>,
    /// The subtask's input channels, for queue and byte measurements.
    pub(crate) input_channels: std::sync::OnceLock<Vec<Arc<ChannelMetrics>>>,
    /// The subtask's current input watermark (`Timestamp::MIN`: none yet), published with the
    /// other counters once per batch.
    pub(crate) input_watermark: AtomicI64,
    /// The last watermark the subtask's chain sent downstream (`Timestamp::MIN`: none yet).
    pub(crate) output_watermark: AtomicI64,
    /// The subtask's part of the latest checkpoint it stored.
    pub(crate) last_checkpoint: std::sync::Mutex<Option<SubtaskCheckpoint>>,
    /// When the subtask handled its first record (processing time, epoch ms; 0: not yet).
    pub(crate) first_record_ms: AtomicI64,
    /// When the subtask ended after all its input (epoch ms; 0: not yet).
    pub(crate) finished_ms: AtomicI64,
    /// Counters reported by a remote TaskManager, which replace the local ones.
    pub(crate) remote: std::sync::Mutex<Option<TaskMetricsSnapshot>>,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            late_records_dropped: AtomicU64::new(0),
            backpressure_nanos: AtomicU64::new(0),
            idle_nanos: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            output_channels: Default::default(),
            input_channels: Default::default(),
            input_watermark: AtomicI64::new(Timestamp::MIN),
            output_watermark: AtomicI64::new(Timestamp::MIN),
            last_checkpoint: Default::default(),
            first_record_ms: AtomicI64::new(0),
            finished_ms: AtomicI64::new(0),
            remote: Default::default(),
        }
    }
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

    /// The subtask reads `channels`: their queues and bytes count as its input's.
    pub(crate) fn watch_inputs<'a>(&self, channels: impl Iterator<Item = &'a Arc<ChannelMetrics>>) {
        let _ = self.input_channels.set(channels.cloned().collect());
    }

    /// Records the subtask's part of a checkpoint it stored.
    pub(crate) fn checkpoint_stored(&self, checkpoint: SubtaskCheckpoint) {
        *self.last_checkpoint.lock().expect("metrics lock") = Some(checkpoint);
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
        let at = |v: &AtomicI64| Some(v.load(Ordering::Relaxed)).filter(|&ms| ms != 0);
        let watermark = |v: &AtomicI64| Some(v.load(Ordering::Relaxed)).filter(|&wm| wm != Timestamp::MIN);
        let outputs = self.output_channels.get().map_or(&[][..], Vec::as_slice);
        let inputs = self.input_channels.get().map_or(&[][..], Vec::as_slice);
        TaskMetricsSnapshot {
            first_record_ms: at(&self.first_record_ms),
            finished_ms: at(&self.finished_ms),
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            late_records_dropped: self.late_records_dropped.load(Ordering::Relaxed),
            backpressure_ms: self.backpressure_nanos.load(Ordering::Relaxed) / 1_000_000,
            idle_ms: self.idle_nanos.load(Ordering::Relaxed) / 1_000_000,
            busy_ms: self.busy_nanos.load(Ordering::Relaxed) / 1_000_000,
            queued_out: outputs.iter().map(|m| m.queued_records()).sum(),
            peak_queued_out: outputs.iter().map(|m| m.peak_queued_records()).max().unwrap_or(0),
            bytes_in: inputs.iter().map(|m| m.bytes()).sum(),
            bytes_out: outputs.iter().map(|m| m.bytes()).sum(),
            in_queue_usage_permille: queue_usage_permille(inputs),
            out_queue_usage_permille: queue_usage_permille(outputs),
            input_watermark: watermark(&self.input_watermark),
            output_watermark: watermark(&self.output_watermark),
            last_checkpoint: *self.last_checkpoint.lock().expect("metrics lock"),
        }
    }
}

/// How full `channels` are together, in thousandths of their capacity in batches (Flink's
/// `inPoolUsage` and `outPoolUsage`, which count buffers).
fn queue_usage_permille(channels: &[Arc<ChannelMetrics>]) -> u16 {
    let capacity: u64 = channels.iter().map(|m| m.capacity_batches()).sum();
    let queued: u64 = channels.iter().map(|m| m.queued_batches()).sum();
    (queued.min(capacity) * 1000).checked_div(capacity).unwrap_or(0) as u16
}

/// A subtask's part of a checkpoint (or savepoint) it stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskCheckpoint {
    /// The checkpoint's id.
    pub id: u64,
    /// Bytes of the subtask's state in it (Flink's checkpointed data size).
    pub bytes: u64,
    /// Time the subtask spent aligning its inputs' barriers (ms).
    pub alignment_ms: u64,
    /// The synchronous part of its snapshot, on its loop (µs).
    pub sync_us: u64,
    /// The asynchronous part, off its loop (µs).
    pub async_us: u64,
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
    /// Milliseconds waiting for something to do.
    pub idle_ms: u64,
    /// Milliseconds working (neither idle nor backpressured).
    pub busy_ms: u64,
    /// Records sitting in this subtask's output channels now.
    pub queued_out: u64,
    /// The most records ever queued in one of its output channels.
    pub peak_queued_out: u64,
    /// When it handled its first record (epoch ms).
    pub first_record_ms: Option<Timestamp>,
    /// When its input ended (epoch ms).
    pub finished_ms: Option<Timestamp>,
    /// Bytes of network frames read for it (0 when its inputs are all in its process).
    pub bytes_in: u64,
    /// Bytes of network frames written for it.
    pub bytes_out: u64,
    /// How full its input channels are, in thousandths of their capacity.
    pub in_queue_usage_permille: u16,
    /// How full its output channels are, in thousandths of their capacity.
    pub out_queue_usage_permille: u16,
    /// Its current input watermark.
    pub input_watermark: Option<Timestamp>,
    /// The last watermark its chain sent downstream.
    pub output_watermark: Option<Timestamp>,
    /// Its part of the latest checkpoint it stored.
    pub last_checkpoint: Option<SubtaskCheckpoint>,
}
