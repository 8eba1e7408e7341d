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

    /// Whether this element closes the batch it is pushed to: a barrier must not wait behind a
    /// flush timer, and nothing follows the end of data.
    pub fn closes_batch(&self) -> bool {
        matches!(self, Element::Barrier(_) | Element::EndOfData)
    }
}

/// Marks the point in a stream that a checkpoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub checkpoint_id: u64,
    /// When the coordinator triggered the checkpoint (wall-clock milliseconds).
    pub timestamp_ms: i64,
}

/// The unit of transfer on a channel.
pub type Batch<T> = Vec<Element<T>>;

/// The number of [`Element::Record`]s in a batch.
pub fn count_records<T>(batch: &[Element<T>]) -> usize {
    batch.iter().filter(|e| e.is_record()).count()
}

#[cfg(test)]
mod tests;
