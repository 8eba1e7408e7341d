//! The counters of one subtask, kept by its loop and read by the JobMaster, REST and tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_dataplane::{ChannelMetrics, Timestamp};

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
    /// Nanoseconds the loop waited for something to do (input, a timer, a control message).
    pub idle_nanos: AtomicU64,
    /// Nanoseconds the loop worked: its time neither idle nor backpressured.
    pub busy_nanos: AtomicU64,
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
            idle_ms: self.idle_nanos.load(Ordering::Relaxed) / 1_000_000,
            busy_ms: self.busy_nanos.load(Ordering::Relaxed) / 1_000_000,
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
}
