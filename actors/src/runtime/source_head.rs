//! What a source subtask's loop drives ([`SourceHead`]): the start of a chain that produces
//! its own input, polled between control messages, with the [`SourceContext`] it emits into.
//! The API's `Source` is one (`crate::api::source`); the runtime knows only this trait.

use std::time::Duration;

use weir_dataplane::{NO_TIMESTAMP, Timestamp};

use crate::base::data::Data;
use crate::base::error::Result;
use crate::base::link::Link;
use crate::base::state::EventClock;
use crate::base::task_io::TaskIo;
use crate::runtime::watermark::{EventTime, SplitId, SplitWatermarks, WatermarkStrategy};

/// The start of a source subtask's chain, as its processing loop drives it. Errors are
/// attributed to the source's operator by the loop.
pub(crate) trait SourceHead<T>: Send {
    /// Opens it, once, after its chain opened.
    fn open(&mut self, io: &TaskIo) -> Result<()>;
    /// Restores its position (after `open`, when the job restores).
    fn restore(&mut self, states: Vec<Vec<u8>>) -> Result<()>;
    /// How the loop derives watermarks from its timestamps.
    fn watermark_strategy(&self) -> WatermarkStrategy<T>;
    /// Emits up to a batch of records into `ctx`.
    fn poll(&mut self, ctx: &mut SourceContext<'_, T>) -> Result<SourcePoll>;
    /// Its position, between polls, at the barrier of checkpoint `checkpoint`.
    fn snapshot(&mut self, checkpoint: u64) -> Result<Vec<u8>>;
    /// Checkpoint `checkpoint` completed (every subtask stored its state).
    fn checkpoint_complete(&mut self, checkpoint: u64) -> Result<()>;
    /// Closes it when the subtask ends normally.
    fn close(&mut self) -> Result<()>;
}

/// What a poll of a source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// It emitted records, or may have more right away: poll again.
    Ready,
    /// Nothing now (e.g. rate limit): poll again after this long.
    Pending(Duration),
    /// The input is exhausted (bounded sources).
    Finished,
}

/// Where a source emits.
///
/// # Splits
///
/// A source that reads several splits (partitions, files) at their own paces emits each
/// record with its split ([`emit_at_split`](Self::emit_at_split)), so that the subtask's
/// watermark follows the slowest split rather than the fastest (Flink's per-split
/// watermarks): each split gets its own generator from the source's [`WatermarkStrategy`]
/// when it is added ([`add_split`](Self::add_split)), and the subtask's watermark is the
/// minimum of the splits' watermarks, leaving out splits that are idle (no record for the
/// strategy's idle timeout, [`WatermarkStrategy::with_idleness`]: without one a split without
/// records holds the watermark back) and splits that are finished
/// ([`finish_split`](Self::finish_split)). Every split idle makes the subtask idle. The
/// watermark never goes back, so a split added late with older timestamps cannot lower it.
///
/// Once a subtask added a split, its splits alone make its watermark (records emitted
/// without one drive none). A strategy without watermarks tracks no splits: their records
/// then go on as [`emit_at`](Self::emit_at)'s do.
pub struct SourceContext<'a, O> {
    pub(crate) out: &'a mut dyn Link<O>,
    pub(crate) io: &'a mut TaskIo,
    pub(crate) time: &'a mut SourceTime<O>,
    pub(crate) emitted: usize,
    pub(crate) batch_size: usize,
}

impl<O: Data> SourceContext<'_, O> {
    /// Emits a record without a timestamp.
    #[inline]
    pub fn emit(&mut self, value: O) {
        self.emit_at(value, NO_TIMESTAMP);
    }

    /// Emits a record with its event timestamp.
    #[inline]
    pub fn emit_at(&mut self, value: O, timestamp: Timestamp) {
        let timestamp = if self.time.sees_records { see(&mut self.time.time, &value, timestamp) } else { timestamp };
        self.push(value, timestamp);
    }

    /// Adds a split this subtask now reads (Flink's `ReaderOutput.createOutputForSplit`): its
    /// records, emitted with the id answered, have a watermark generator of their own; see
    /// [Splits](Self#splits). A split holds the subtask's watermark back from now until its
    /// records give it a watermark, it is idle, or it is finished.
    pub fn add_split(&mut self) -> SplitId {
        self.time.splits.add(self.io.now_ms())
    }

    /// Emits a record of `split` without a timestamp (a timestamp assigner may give it one).
    #[inline]
    pub fn emit_split(&mut self, split: SplitId, value: O) {
        self.emit_at_split(split, value, NO_TIMESTAMP);
    }

    /// Emits a record of `split` with its event timestamp, which `split`'s generator sees. A
    /// split that is not tracked (finished, or the strategy emits no watermarks) emits as
    /// [`emit_at`](Self::emit_at) does.
    #[inline]
    pub fn emit_at_split(&mut self, split: SplitId, value: O, timestamp: Timestamp) {
        let timestamp = match self.time.splits.get_mut(split) {
            Some(time) => see(time, &value, timestamp),
            None => return self.emit_at(value, timestamp),
        };
        self.push(value, timestamp);
    }

    /// `split` is finished (Flink's `ReaderOutput.releaseOutputForSplit`): it no longer holds
    /// the watermark back, and its id may be given to a split added later.
    pub fn finish_split(&mut self, split: SplitId) {
        self.time.splits.finish(split);
    }

    /// How many records a poll should emit at most (the batch size).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Records emitted in this poll so far.
    pub fn emitted(&self) -> usize {
        self.emitted
    }

    /// The current processing time (ms since the epoch).
    pub fn processing_time(&self) -> Timestamp {
        self.io.now_ms()
    }

    /// A record with its final timestamp: it makes the stream active, and goes down the chain.
    #[inline]
    fn push(&mut self, value: O, timestamp: Timestamp) {
        if self.time.idle {
            self.time.idle = false;
            self.out.idle(false, self.io);
        }
        if timestamp > self.time.max_timestamp {
            self.time.max_timestamp = timestamp;
        }
        self.emitted += 1;
        self.out.record(value, timestamp, self.io);
    }
}

/// A record shown to a source's event time: kept out of line, so that `emit_at` stays small
/// enough to be inlined into the source's loop.
#[inline(never)]
fn see<O>(time: &mut EventTime<O>, value: &O, timestamp: Timestamp) -> Timestamp {
    time.on_event(value, timestamp)
}

/// A source subtask's event time, which its loop (and the source harness) keeps between
/// polls: the strategy's generator for the whole subtask, or one per split once the source
/// adds splits (see [`SourceContext`]); the highest timestamp read, the watermark emitted, and
/// whether the subtask is idle.
pub(crate) struct SourceTime<T> {
    time: EventTime<T>,
    /// Whether records must be shown to `time` (an assigner or a generator of the user's);
    /// otherwise the record path only tracks the highest timestamp.
    sees_records: bool,
    splits: SplitWatermarks<T>,
    /// The highest timestamp the source has read (its part of the event clock in a snapshot).
    pub(crate) max_timestamp: Timestamp,
    /// The last watermark emitted.
    watermark: Timestamp,
    /// Whether the subtask is marked idle downstream.
    idle: bool,
}

impl<T: Data> SourceTime<T> {
    /// A subtask's event time under `strategy`, going on from `clock` (a restored one, else
    /// the default: nothing read yet).
    pub(crate) fn new(strategy: &WatermarkStrategy<T>, clock: EventClock) -> Self {
        let mut time = strategy.start();
        // Restored: the generator goes on from the highest timestamp read before.
        time.resume(clock.max_timestamp);
        SourceTime {
            sees_records: time.sees_records(),
            time,
            splits: SplitWatermarks::new(strategy),
            max_timestamp: clock.max_timestamp,
            watermark: clock.watermark,
            idle: false,
        }
    }

    /// The context a poll emits into.
    pub(crate) fn context<'a>(
        &'a mut self,
        out: &'a mut dyn Link<T>,
        io: &'a mut TaskIo,
        batch_size: usize,
    ) -> SourceContext<'a, T> {
        SourceContext { out, io, time: self, emitted: 0, batch_size }
    }

    /// The periodic emission, after every poll: the subtask's generator's, or its splits'
    /// combined; a watermark above the last one goes down `head` (making the stream active
    /// first), else the stream may turn idle.
    pub(crate) fn after_poll(&mut self, head: &mut dyn Link<T>, io: &mut TaskIo) {
        let output = if self.splits.in_use() {
            self.splits.on_periodic_emit(io.now_ms())
        } else {
            self.time.resume(self.max_timestamp);
            self.time.on_periodic_emit();
            self.time.take()
        };
        if let Some(wm) = output.watermark()
            && wm > self.watermark
        {
            self.set_idle(false, head, io);
            self.watermark = wm;
            io.set_watermark(wm);
            head.watermark(wm, io);
        } else if output.idle() == Some(true) {
            self.set_idle(true, head, io);
        }
    }

    /// Marks the stream idle or active downstream, if it is not already.
    pub(crate) fn set_idle(&mut self, idle: bool, head: &mut dyn Link<T>, io: &mut TaskIo) {
        if self.idle != idle {
            self.idle = idle;
            head.idle(idle, io);
        }
    }
}
