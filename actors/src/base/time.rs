//! Clocks: processing time comes from an injected clock so tests can control it.

use std::sync::Arc;
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

/// Wall-clock time anchored once, then advanced by tokio's monotonic clock.
#[derive(Debug, Clone)]
pub struct TokioClock {
    epoch_ms: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock anchored at the current wall-clock time.
    pub fn new() -> Self {
        TokioClock { epoch_ms: wall_clock_ms(), start: tokio::time::Instant::now() }
    }

    /// A clock that starts at `epoch_ms` (for tests).
    pub fn starting_at(epoch_ms: Timestamp) -> Self {
        TokioClock { epoch_ms, start: tokio::time::Instant::now() }
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
        self.epoch_ms + self.start.elapsed().as_millis() as Timestamp
    }
}

/// The wall clock in epoch milliseconds, for timestamps of reports (not for timers).
pub fn wall_clock_ms() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
}

/// A shared clock.
pub type SharedClock = Arc<TokioClock>;
