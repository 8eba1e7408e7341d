//! The services one subtask's chain runs with: its identity, processing time, the batches
//! its writer filled, what it restores from, where keyed state lives, and the first error
//! raised in the chain. Errors raised inside a link are parked here (the first one wins) and
//! the processing loop fails the subtask after the call, so `Context::emit` stays infallible
//! for users.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use weir_dataplane::Timestamp;

use crate::base::error::WeirError;
use crate::base::metrics::TaskMetrics;
use crate::base::state::RestoredState;
use crate::base::subtask::SubtaskInfo;
use crate::base::time::SharedClock;

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
    /// How often watermark generators emit periodically (the job's auto-watermark interval).
    pub(crate) watermark_interval: std::time::Duration,
    pub(crate) records_out: u64,
    pub(crate) late_records: u64,
    /// Whether the job takes periodic checkpoints.
    pub(crate) checkpointing: bool,
    /// What to restore from, read by each link as it opens.
    pub(crate) restored: Option<Arc<RestoredState>>,
    /// Where keyed operators keep their state.
    pub(crate) state_backend: crate::base::state::StateBackend,
    /// Keyed snapshots whose synchronous part is done, by their operator's position in the
    /// checkpoint's operator states: stored off the loop with the rest of the snapshot.
    pub(crate) pending_keyed: Vec<(usize, weir_state::PendingKeyedSnapshot)>,
    /// Asynchronous work of the chain's links (async I/O requests): how many are running, and
    /// how they wake the loop when one completes (the loop then gives the chain a
    /// processing-time tick, in which the links take their results).
    pub(crate) async_work: AsyncWork,
}

/// The asynchronous requests of a subtask's chain and how they wake its loop.
#[derive(Debug, Default)]
pub(crate) struct AsyncWork {
    /// Notified by each request that completes.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Requests running (the loop waits for the notification only while there are some).
    pub(crate) running: usize,
    /// A link can take no more input until requests complete: the loop stops reading it.
    pub(crate) input_held: bool,
}

impl AsyncWork {
    /// What the loop waits on for completions, while requests run.
    pub(crate) fn waker(&self) -> Option<Arc<tokio::sync::Notify>> {
        (self.running > 0).then(|| self.wake.clone())
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
            watermark_interval: crate::base::time::DEFAULT_AUTO_WATERMARK_INTERVAL,
            records_out: 0,
            late_records: 0,
            checkpointing: false,
            restored: None,
            state_backend: Default::default(),
            pending_keyed: Vec::new(),
            async_work: AsyncWork::default(),
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
        self.checkpointing
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
        use crate::base::time::Clock;
        self.clock.now_ms()
    }

    /// The task's input watermark advanced to `wm` (once per watermark, never per record).
    pub(crate) fn set_watermark(&mut self, wm: Timestamp) {
        self.watermark = wm;
        self.metrics.input_watermark.store(wm, Ordering::Relaxed);
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
