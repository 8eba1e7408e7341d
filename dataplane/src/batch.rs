//! Sans-IO output buffering: one pending batch per output channel, moved to a ready queue
//! when full, at a barrier or end of data, or when the caller's flush timer fires.
//!
//! The buffer has no clock: the task driving it owns the [`BatchConfig::flush_interval`] timer
//! and calls [`OutputBuffer::flush`], so the logic stays deterministic under test.

use std::collections::VecDeque;
use std::time::Duration;

use crate::{Batch, Element, Timestamp};

/// How output is batched and how much of it a channel may hold.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct BatchConfig {
    /// A pending batch is sent once it holds this many elements.
    pub max_records: usize,
    /// A non-empty pending batch is sent at the latest this long after it was started: the
    /// latency bound of the stream.
    pub flush_interval: Duration,
    /// How many batches a channel holds before its sender waits (the backpressure bound).
    pub channel_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_records: 1024, flush_interval: Duration::from_millis(5), channel_capacity: 8 }
    }
}

/// Batches the output of one subtask per output channel.
///
/// Elements reach a channel's batches in the order they were pushed; batches leave through
/// [`OutputBuffer::pop_ready`] in the order they were closed.
#[derive(Debug)]
pub struct OutputBuffer<T> {
    /// The batch being filled, per channel. A channel that has sent nothing yet, or whose
    /// batch just left, holds an unallocated Vec, so idle channels cost no memory.
    pending: Vec<Batch<T>>,
    /// Records in each pending batch.
    pending_records: Vec<usize>,
    /// Closed batches in the order they were closed: (channel, batch, records in it).
    ready: VecDeque<(usize, Batch<T>, usize)>,
    /// Records in `pending` and `ready`.
    buffered_records: usize,
    /// Elements per batch (at least 1).
    max_records: usize,
}

impl<T: Clone> OutputBuffer<T> {
    /// A buffer for `channels` output channels whose batches close at `max_records` elements
    /// (records and control elements alike, so a pending batch never reallocates).
    pub fn new(channels: usize, max_records: usize) -> Self {
        Self {
            pending: (0..channels).map(|_| Vec::new()).collect(),
            pending_records: vec![0; channels],
            ready: VecDeque::new(),
            buffered_records: 0,
            max_records: max_records.max(1),
        }
    }

    /// The number of output channels.
    pub fn num_channels(&self) -> usize {
        self.pending.len()
    }

    /// Appends a record to `channel`'s pending batch, closing the batch if it is full.
    ///
    /// # Panics
    /// If `channel` is out of range.
    #[inline]
    pub fn push_record(&mut self, channel: usize, value: T, ts: Timestamp) {
        self.pending_records[channel] += 1;
        self.buffered_records += 1;
        self.append(channel, Element::Record(value, ts));
    }

    /// Appends any element to `channel`'s pending batch; a barrier or end of data also closes
    /// the batch, so it is not held back by the flush timer.
    ///
    /// # Panics
    /// If `channel` is out of range.
    pub fn push(&mut self, channel: usize, element: Element<T>) {
        let closes = element.closes_batch();
        if element.is_record() {
            self.pending_records[channel] += 1;
            self.buffered_records += 1;
        }
        self.append(channel, element);
        if closes {
            self.close(channel);
        }
    }

    /// Appends `element` to every channel; for a barrier or end of data every channel's batch
    /// is then closed, in channel order.
    pub fn broadcast(&mut self, element: Element<T>) {
        let n = self.num_channels();
        if n == 0 {
            return;
        }
        let closes = element.closes_batch();
        if element.is_record() {
            for count in &mut self.pending_records {
                *count += 1;
            }
            self.buffered_records += n;
        }
        for channel in 0..n - 1 {
            self.append(channel, element.clone());
        }
        self.append(n - 1, element);
        if closes {
            for channel in 0..n {
                self.close(channel);
            }
        }
    }

    /// Closes every non-empty pending batch, in channel order.
    pub fn flush(&mut self) {
        for channel in 0..self.num_channels() {
            self.close(channel);
        }
    }

    /// Whether any channel has a non-empty pending (not yet closed) batch.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|b| !b.is_empty())
    }

    /// The oldest closed batch and its channel.
    pub fn pop_ready(&mut self) -> Option<(usize, Batch<T>)> {
        let (channel, batch, records) = self.ready.pop_front()?;
        self.buffered_records -= records;
        Some((channel, batch))
    }

    /// Whether a closed batch is waiting.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Records in pending and closed batches.
    pub fn buffered_records(&self) -> usize {
        self.buffered_records
    }

    #[inline]
    fn append(&mut self, channel: usize, element: Element<T>) {
        let batch = &mut self.pending[channel];
        if batch.capacity() == 0 {
            batch.reserve_exact(self.max_records);
        }
        batch.push(element);
        if batch.len() >= self.max_records {
            self.close(channel);
        }
    }

    /// Moves `channel`'s pending batch to the ready queue if it is not empty.
    fn close(&mut self, channel: usize) {
        if self.pending[channel].is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending[channel]);
        let records = std::mem::take(&mut self.pending_records[channel]);
        self.ready.push_back((channel, batch, records));
    }
}

#[cfg(test)]
mod tests;
