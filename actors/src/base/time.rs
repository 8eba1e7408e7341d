//! Clocks: processing time comes from an injected clock so tests can control it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use weir_dataplane::Timestamp;

/// A source of processing time, in milliseconds since the Unix epoch.
///
/// Runtime code never reads `std::time` directly: the [`TokioClock`] follows tokio's clock, so
/// `tokio::time::pause` and `advance` move processing time in tests.
pub trait Clock: Send + Sync + 'static {
    /// The current processing time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> Timestamp;
}

/// Wall-clock time anchored once, then advanced by tokio's monotonic clock; or, for the
/// operator test harness, time that stands still until it is set.
#[derive(Debug, Clone)]
pub struct TokioClock {
    epoch_ms: Timestamp,
    start: tokio::time::Instant,
    /// Set by hand (the harness), instead of following tokio's clock.
    manual: Option<Arc<AtomicI64>>,
}

impl TokioClock {
    /// A clock anchored at the current wall-clock time.
    pub fn new() -> Self {
        TokioClock { epoch_ms: wall_clock_ms(), start: tokio::time::Instant::now(), manual: None }
    }

    /// A clock that starts at `epoch_ms` (for tests).
    pub fn starting_at(epoch_ms: Timestamp) -> Self {
        TokioClock { epoch_ms, start: tokio::time::Instant::now(), manual: None }
    }

    /// A clock that reads `epoch_ms` until [`set_ms`](Self::set_ms) moves it.
    pub(crate) fn manual(epoch_ms: Timestamp) -> Self {
        let manual = Some(Arc::new(AtomicI64::new(epoch_ms)));
        TokioClock { epoch_ms, start: tokio::time::Instant::now(), manual }
    }

    /// Sets a manual clock to `ms` (a clock following tokio's is left alone).
    pub(crate) fn set_ms(&self, ms: Timestamp) {
        if let Some(manual) = &self.manual {
            manual.store(ms, Ordering::Relaxed);
        }
    }

    /// The tokio instant at which this clock reads `ms` (now, if `ms` is in the past).
    pub fn instant_at(&self, ms: Timestamp) -> tokio::time::Instant {
        let offset = ms.saturating_sub(self.epoch_ms).max(0) as u64;
        self.start + std::time::Duration::from_millis(offset)
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> Timestamp {
        if let Some(manual) = &self.manual {
            return manual.load(Ordering::Relaxed);
        }
        self.epoch_ms + self.start.elapsed().as_millis() as Timestamp
    }
}

/// The wall clock in epoch milliseconds, for timestamps of reports and of real-time events
/// (not for timers).
pub fn wall_clock_ms() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
}

/// How often watermark generators emit periodically unless a job sets its own interval
/// (Flink's `pipeline.auto-watermark-interval`).
pub const DEFAULT_AUTO_WATERMARK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// A shared clock.
pub type SharedClock = Arc<TokioClock>;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum TimeDomain {
    /// Event time: fires when the watermark passes.
    EventTime,
    /// Processing time: fires when the clock passes.
    ProcessingTime,
}
