//! Sans-IO combination of the watermarks and idleness of a task's input channels into the
//! task's own, as Flink's `StatusWatermarkValve`.

use crate::{MIN_WATERMARK, Timestamp};

/// What a task forwards downstream after an input event, if anything: the status first, then
/// the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValveOutput {
    /// A new combined watermark, strictly above the last one.
    pub watermark: Option<Timestamp>,
    /// A change of the combined status: `true` = became idle, `false` = active again.
    pub idle: Option<bool>,
}

impl ValveOutput {
    /// Whether there is nothing to forward.
    pub fn is_empty(&self) -> bool {
        self.watermark.is_none() && self.idle.is_none()
    }
}

/// The watermark state of one input channel.
#[derive(Debug, Clone, Copy)]
struct ChannelState {
    watermark: Timestamp,
    idle: bool,
    finished: bool,
    /// Whether the channel takes part in the minimum. A channel that comes back from idleness
    /// behind the combined watermark is left out until it catches up, so that its return does
    /// not hold back (or appear to move back) the time already emitted.
    aligned: bool,
}

/// Combines the watermarks of a task's input channels.
///
/// The combined watermark is the minimum over channels that are active (not idle), not finished
/// and aligned, and is emitted only when it strictly increases. When every unfinished channel
/// is idle the valve is idle and emits no watermark; when every channel is finished it emits
/// nothing at all (the task emits [`crate::MAX_WATERMARK`] itself at the end of its input).
///
/// Channel indices out of range panic.
#[derive(Debug, Clone)]
pub struct WatermarkValve {
    channels: Vec<ChannelState>,
    current: Timestamp,
    idle: bool,
}

impl WatermarkValve {
    /// A valve over `num_channels` channels, all active and at [`MIN_WATERMARK`].
    pub fn new(num_channels: usize) -> Self {
        let channel = ChannelState { watermark: MIN_WATERMARK, idle: false, finished: false, aligned: true };
        Self { channels: vec![channel; num_channels], current: MIN_WATERMARK, idle: false }
    }

    /// Resumes event time at `wm` (a task restored from a checkpoint): nothing at or below it
    /// is emitted again, and the channels take part once their watermarks pass it.
    pub fn resume_at(&mut self, wm: Timestamp) {
        self.current = self.current.max(wm);
    }

    /// A watermark arrived on `channel`. Values below the channel's previous watermark are
    /// ignored.
    ///
    /// A watermark on an idle channel makes it active first: the producer evidently resumed,
    /// and dropping its watermarks could stall event time downstream.
    pub fn on_watermark(&mut self, channel: usize, wm: Timestamp) -> ValveOutput {
        let state = &mut self.channels[channel];
        if state.finished {
            return ValveOutput::default();
        }
        if state.idle {
            state.idle = false;
            state.aligned = state.watermark >= self.current;
        }
        if wm > state.watermark {
            state.watermark = wm;
        }
        if !state.aligned && state.watermark >= self.current {
            state.aligned = true;
        }
        self.output()
    }

    /// `channel`'s producer became idle (`true`) or active again (`false`).
    pub fn on_idle(&mut self, channel: usize, idle: bool) -> ValveOutput {
        let current = self.current;
        let state = &mut self.channels[channel];
        if state.finished || state.idle == idle {
            return ValveOutput::default();
        }
        state.idle = idle;
        // A channel leaving idleness takes part in the minimum only if it is not behind.
        state.aligned = !idle && state.watermark >= current;
        self.output()
    }

    /// `channel` sent its end of data: it no longer holds the watermark back.
    pub fn on_end_of_data(&mut self, channel: usize) -> ValveOutput {
        let state = &mut self.channels[channel];
        if state.finished {
            return ValveOutput::default();
        }
        state.finished = true;
        self.output()
    }

    /// The last watermark emitted ([`MIN_WATERMARK`] at first).
    pub fn current(&self) -> Timestamp {
        self.current
    }

    /// Whether the valve last emitted idle: every unfinished channel is idle.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Whether every channel sent its end of data.
    pub fn all_finished(&self) -> bool {
        self.channels.iter().all(|c| c.finished)
    }

    /// The status change and new watermark, if any, after a channel's state changed.
    fn output(&mut self) -> ValveOutput {
        let mut out = ValveOutput::default();
        let mut unfinished = self.channels.iter().filter(|c| !c.finished).peekable();
        if unfinished.peek().is_none() {
            // Every channel is finished: the task handles the end of input itself.
            return out;
        }
        let all_idle = unfinished.all(|c| c.idle);
        if all_idle != self.idle {
            self.idle = all_idle;
            out.idle = Some(all_idle);
        }
        let candidate = if all_idle {
            // As Flink: when every input is idle, what the inputs already promised still
            // holds, so the highest of their watermarks is emitted (else windows that all
            // inputs are past would wait for an input that may never speak again).
            self.channels.iter().filter(|c| !c.finished).map(|c| c.watermark).max()
        } else {
            self.channels.iter().filter(|c| !c.finished && !c.idle && c.aligned).map(|c| c.watermark).min()
        };
        if let Some(wm) = candidate
            && wm > self.current
        {
            self.current = wm;
            out.watermark = Some(wm);
        }
        out
    }
}

#[cfg(test)]
mod tests;
