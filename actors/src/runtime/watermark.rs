//! Watermarks: how a source subtask derives them from the timestamps it emits, and when it
//! declares itself idle. (How watermarks combine across input channels, as the minimum with
//! idle channels ignored, is the dataplane's `WatermarkValve`.)

use std::time::Duration;

/// How a source's watermarks are derived from its records' timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// `Some(d)`: watermark = highest timestamp seen − d − 1 (Flink's bounded
    /// out-of-orderness); `None`: no watermarks until the end of input.
    pub out_of_orderness_ms: Option<i64>,
    /// A source subtask that emits nothing for this long is marked idle, so it does not hold
    /// back the watermark downstream.
    pub idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// No watermarks (only the final one when a bounded input ends).
    pub fn none() -> Self {
        WatermarkStrategy { out_of_orderness_ms: None, idle_timeout: None }
    }
    /// Timestamps may be up to `bound` out of order.
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy { out_of_orderness_ms: Some(bound.as_millis() as i64), idle_timeout: None }
    }
    /// Timestamps never decrease.
    pub fn monotonous() -> Self {
        WatermarkStrategy { out_of_orderness_ms: Some(0), idle_timeout: None }
    }
    /// Marks the source idle after `timeout` without records.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }
}
