//! What a source subtask's loop drives ([`SourceHead`]): the start of a chain that produces
//! its own input, polled between control messages, with the [`SourceContext`] it emits into.
//! The API's `Source` is one (`crate::api::source`); the runtime knows only this trait.

use std::time::Duration;

use weir_dataplane::{NO_TIMESTAMP, Timestamp};

use crate::base::data::Data;
use crate::base::error::Result;
use crate::base::link::Link;
use crate::base::task_io::TaskIo;
use crate::runtime::watermark::{EventTime, WatermarkStrategy};

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
pub struct SourceContext<'a, O> {
    pub(crate) out: &'a mut dyn Link<O>,
    pub(crate) io: &'a mut TaskIo,
    pub(crate) max_timestamp: &'a mut Timestamp,
    /// The source's event time, when it must see each record (an assigner or a generator of
    /// the user's); `None` keeps the record path as short as it was.
    pub(crate) time: Option<&'a mut EventTime<O>>,
    pub(crate) idle: &'a mut bool,
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
        if *self.idle {
            *self.idle = false;
            self.out.idle(false, self.io);
        }
        let timestamp = match &mut self.time {
            None => timestamp,
            Some(time) => see(time, &value, timestamp),
        };
        if timestamp > *self.max_timestamp {
            *self.max_timestamp = timestamp;
        }
        self.emitted += 1;
        self.out.record(value, timestamp, self.io);
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
}

/// A record shown to a source's event time: kept out of line, so that `emit_at` stays small
/// enough to be inlined into the source's loop.
#[inline(never)]
fn see<O>(time: &mut EventTime<O>, value: &O, timestamp: Timestamp) -> Timestamp {
    time.on_event(value, timestamp)
}
