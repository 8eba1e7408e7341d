//! Per-split watermarks at a source (FLIP-27's, Flink's `SourceOutputWithWatermarks` and
//! `WatermarkOutputMultiplexer`): a generator for each split a subtask reads, and the
//! subtask's watermark as the minimum of theirs.
//!
//! A source subtask that reads several splits (Kafka partitions, files) at their own paces
//! would, with one generator over all of them, let the fastest split's timestamps carry the
//! watermark past records the slower ones have yet to emit, which then arrive late. With a
//! generator per split, a split holds the watermark back until it has caught up, is idle (no
//! record for the strategy's idle timeout, [`WatermarkStrategy::with_idleness`]), or finished.
//! Splits are slots of a `Vec` indexed by their [`SplitId`]: the record path looks one up
//! without hashing or allocating.

use std::time::Duration;

use weir_dataplane::Timestamp;

use super::{EventTime, IdlenessTimer, WatermarkOutput, WatermarkStrategy};

/// A split of a source's input (a Kafka partition, a file) whose watermark its subtask tracks
/// apart: what [`SourceContext::add_split`](crate::api::source::SourceContext::add_split)
/// answers, to emit its records with and to finish it. Valid until the split is finished,
/// after which the subtask may give the same id to a split added later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SplitId(u32);

impl SplitId {
    /// What a subtask whose strategy emits no watermarks answers: a split it does not track
    /// (its records go on as records without a split).
    const UNTRACKED: SplitId = SplitId(u32::MAX);
}

/// One split's event time.
struct Split<T> {
    time: EventTime<T>,
    /// The highest watermark its generator emitted (`Timestamp::MIN`: none yet).
    watermark: Timestamp,
    idle: bool,
    timer: IdlenessTimer,
}

impl<T> Split<T> {
    /// Its periodic emission at processing time `now`: idle after `timeout` without records,
    /// else its generator's watermark (which makes it active again).
    fn on_periodic_emit(&mut self, now: Timestamp, timeout: Option<Duration>) {
        if self.timer.is_idle(self.time.events, now, timeout) {
            self.idle = true;
            return;
        }
        self.time.on_periodic_emit();
        let output = self.time.take();
        if let Some(wm) = output.watermark() {
            self.watermark = self.watermark.max(wm);
        }
        if let Some(idle) = output.idle() {
            self.idle = idle;
        }
    }
}

/// The splits of a source subtask and their watermarks; see the [module docs](self).
pub(crate) struct SplitWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    /// Whether splits are tracked at all: only when the strategy emits watermarks.
    enabled: bool,
    /// The splits by id; `None`: a finished split's free slot.
    splits: Vec<Option<Split<T>>>,
    /// Free slots, reused before the `Vec` grows.
    free: Vec<u32>,
    /// Splits added and not finished.
    live: usize,
    /// Whether a split was ever added: from then on the splits alone make the watermark.
    used: bool,
}

impl<T: 'static> SplitWatermarks<T> {
    /// No splits yet, each to follow `strategy`.
    pub(crate) fn new(strategy: &WatermarkStrategy<T>) -> Self {
        SplitWatermarks {
            enabled: strategy.emits_watermarks(),
            strategy: strategy.clone(),
            splits: Vec::new(),
            free: Vec::new(),
            live: 0,
            used: false,
        }
    }

    /// A new split, with a generator of its own, read from processing time `now` on (its idle
    /// timeout counts from there). Its watermark holds the subtask's back until it has one.
    pub(crate) fn add(&mut self, now: Timestamp) -> SplitId {
        if !self.enabled {
            return SplitId::UNTRACKED;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // Past 2^32 - 1 splits at once a split is untracked (its records drive no
                // watermark) rather than a panic.
                let next = u32::try_from(self.splits.len()).ok().filter(|s| *s != SplitId::UNTRACKED.0);
                let Some(slot) = next else { return SplitId::UNTRACKED };
                self.splits.push(None);
                slot
            }
        };
        self.splits[slot as usize] = Some(Split {
            time: self.strategy.start(),
            watermark: Timestamp::MIN,
            idle: false,
            timer: IdlenessTimer::new(now),
        });
        self.used = true;
        self.live += 1;
        SplitId(slot)
    }

    /// `split` ended: it no longer holds the watermark back. Finishing a split not added, or
    /// again before its id is given to another, does nothing.
    pub(crate) fn finish(&mut self, split: SplitId) {
        if let Some(slot) = self.splits.get_mut(split.0 as usize)
            && slot.take().is_some()
        {
            self.free.push(split.0);
            self.live -= 1;
        }
    }

    /// The event time of `split`, to show it a record; `None` if it is not tracked (finished,
    /// never added, or the strategy emits no watermarks).
    #[inline]
    pub(crate) fn get_mut(&mut self, split: SplitId) -> Option<&mut EventTime<T>> {
        match self.splits.get_mut(split.0 as usize) {
            Some(Some(split)) => Some(&mut split.time),
            _ => None,
        }
    }

    /// Whether the splits make the subtask's watermark: once one was added (even if all are
    /// finished since: records without a split then drive no watermark).
    pub(crate) fn in_use(&self) -> bool {
        self.used
    }

    /// Every split's periodic emission at processing time `now`, combined: the minimum of the
    /// watermarks of the splits that are not idle (none while one of them has no watermark
    /// yet); idle if every split is. Nothing without splits. Whether the watermark advanced on
    /// the last one is the caller's to check.
    pub(crate) fn on_periodic_emit(&mut self, now: Timestamp) -> WatermarkOutput {
        let timeout = self.strategy.idle_timeout();
        let mut output = WatermarkOutput::default();
        let mut active = false;
        let mut min = Timestamp::MAX;
        for split in self.splits.iter_mut().flatten() {
            split.on_periodic_emit(now, timeout);
            if !split.idle {
                active = true;
                min = min.min(split.watermark);
            }
        }
        if active {
            if min != Timestamp::MIN {
                output.emit_watermark(min);
            }
        } else if self.live > 0 {
            output.mark_idle();
        }
        output
    }
}

#[cfg(test)]
mod tests;
