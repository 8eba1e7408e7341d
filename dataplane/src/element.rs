//! The elements a channel carries, in order: records and the control elements between them.

use crate::Timestamp;

/// One element of a stream on a channel.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Element<T> {
    /// A record with its event timestamp ([`crate::NO_TIMESTAMP`] if it has none).
    Record(T, Timestamp),
    /// No record with a timestamp at or below this one will follow on this channel.
    Watermark(Timestamp),
    /// The producer's watermark status changed: `true` = became idle, `false` = active again.
    Idle(bool),
    /// A checkpoint barrier, carried in order with the records.
    Barrier(CheckpointBarrier),
    /// The producer will send nothing more on this channel.
    EndOfData,
}

impl<T> Element<T> {
    /// Whether this is a [`Element::Record`].
    pub fn is_record(&self) -> bool {
        matches!(self, Element::Record(..))
    }

    /// The same element with its record, if it is one, turned into a `U` by `f`.
    #[inline]
    pub fn map_record<U>(self, f: impl FnOnce(T) -> U) -> Element<U> {
        match self {
            Element::Record(value, ts) => Element::Record(f(value), ts),
            Element::Watermark(wm) => Element::Watermark(wm),
            Element::Idle(idle) => Element::Idle(idle),
            Element::Barrier(barrier) => Element::Barrier(barrier),
            Element::EndOfData => Element::EndOfData,
        }
    }

    /// Whether this element closes the batch it is pushed to: a barrier must not wait behind a
    /// flush timer, and nothing follows the end of data.
    pub fn closes_batch(&self) -> bool {
        matches!(self, Element::Barrier(_) | Element::EndOfData)
    }
}

/// Marks the point in a stream that a checkpoint covers.
///
/// As Flink's barrier carries its `CheckpointOptions`, a barrier says what its checkpoint is
/// for: every subtask learns where a savepoint's state goes, and that a stop-with-savepoint
/// ends the job, from the barrier itself, in order with the records it follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub checkpoint_id: u64,
    /// When the coordinator triggered the checkpoint (wall-clock milliseconds).
    pub timestamp_ms: i64,
    /// A periodic checkpoint or a savepoint.
    pub kind: BarrierKind,
}

impl CheckpointBarrier {
    /// The barrier of periodic checkpoint `checkpoint_id`.
    pub fn checkpoint(checkpoint_id: u64, timestamp_ms: i64) -> Self {
        CheckpointBarrier { checkpoint_id, timestamp_ms, kind: BarrierKind::Checkpoint }
    }

    /// Whether this is a savepoint's barrier.
    pub fn is_savepoint(&self) -> bool {
        matches!(self.kind, BarrierKind::Savepoint { .. })
    }

    /// How the job stops after this barrier's savepoint, if it does.
    pub fn stop(&self) -> Option<StopMode> {
        match self.kind {
            BarrierKind::Savepoint { stop, .. } => stop,
            BarrierKind::Checkpoint => None,
        }
    }
}

/// What a barrier's checkpoint is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BarrierKind {
    /// A periodic checkpoint, stored in the job's checkpoint storage.
    Checkpoint,
    /// A savepoint triggered by the user.
    Savepoint {
        /// The directory the savepoint's state goes to (every node must reach it).
        target: String,
        /// `Some`: stop the job once the savepoint completed (Flink's stop-with-savepoint).
        stop: Option<StopMode>,
    },
}

/// How a stop-with-savepoint ends the job (Flink's `--drain` or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StopMode {
    /// Sources stop after the savepoint's barrier; nothing is flushed: open windows and
    /// timers stay in the savepoint, for a job resumed from it.
    NoDrain,
    /// Sources end their input first, as a bounded source does: the final watermark fires
    /// every event-time timer and operators flush; then the savepoint is taken.
    Drain,
}

/// The unit of transfer on a channel.
pub type Batch<T> = Vec<Element<T>>;

/// The number of [`Element::Record`]s in a batch.
pub fn count_records<T>(batch: &[Element<T>]) -> usize {
    batch.iter().filter(|e| e.is_record()).count()
}

#[cfg(test)]
mod tests;
