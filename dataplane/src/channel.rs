//! Local exchange between subtasks of one process: bounded channels of typed batches, with no
//! serialization, and the input gate that reads a subtask's channels fairly.
//!
//! The bound is in batches: a sender waits while `capacity_batches` are queued, which is how a
//! slow consumer slows its producers.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::{Batch, DataplaneError, Result, count_records};

/// Counters of one channel, shared by both ends and readable from anywhere.
#[derive(Debug, Default)]
pub struct ChannelMetrics {
    queued_records: AtomicU64,
    peak_queued_records: AtomicU64,
    records_sent: AtomicU64,
    batches_sent: AtomicU64,
    send_blocked_nanos: AtomicU64,
    queued_batches: AtomicU64,
    capacity_batches: u64,
    bytes: AtomicU64,
}

impl ChannelMetrics {
    /// Records sent and not yet received.
    pub fn queued_records(&self) -> u64 {
        self.queued_records.load(Ordering::Relaxed)
    }

    /// The highest [`ChannelMetrics::queued_records`] seen.
    pub fn peak_queued_records(&self) -> u64 {
        self.peak_queued_records.load(Ordering::Relaxed)
    }

    /// Records sent in total.
    pub fn records_sent(&self) -> u64 {
        self.records_sent.load(Ordering::Relaxed)
    }

    /// Batches sent in total.
    pub fn batches_sent(&self) -> u64 {
        self.batches_sent.load(Ordering::Relaxed)
    }

    /// Total time the sender waited for room, in nanoseconds: the backpressure this channel
    /// put on its producer.
    pub fn send_blocked_nanos(&self) -> u64 {
        self.send_blocked_nanos.load(Ordering::Relaxed)
    }

    /// Batches sent and not yet received.
    pub fn queued_batches(&self) -> u64 {
        self.queued_batches.load(Ordering::Relaxed)
    }

    /// How many batches the channel holds before its sender waits.
    pub fn capacity_batches(&self) -> u64 {
        self.capacity_batches
    }

    /// Bytes this channel's batches took on the network (encoded frames): counted by the
    /// task that writes them to a stream, or reads them from one; 0 for a channel within a
    /// process, whose batches are never serialized.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes of frames written or read for this channel.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// A batch in flight, with its record count so the receiver need not count again.
type Carried<T> = (Batch<T>, u64);

/// A bounded channel of batches within one process, holding at most `capacity_batches`
/// (taken as 1 if 0) before the sender waits.
pub fn local_channel<T>(capacity_batches: usize) -> (BatchSender<T>, BatchReceiver<T>) {
    let capacity_batches = capacity_batches.max(1);
    let (tx, rx) = mpsc::channel(capacity_batches);
    let metrics = Arc::new(ChannelMetrics { capacity_batches: capacity_batches as u64, ..ChannelMetrics::default() });
    (BatchSender { inner: tx, metrics: metrics.clone() }, BatchReceiver { inner: rx, metrics })
}

/// The sending end of a local channel.
#[derive(Debug)]
pub struct BatchSender<T> {
    inner: mpsc::Sender<Carried<T>>,
    metrics: Arc<ChannelMetrics>,
}

impl<T> BatchSender<T> {
    /// Sends a batch, waiting while the channel is full (this is the backpressure).
    ///
    /// Fails with [`DataplaneError::ChannelClosed`] if the receiver is gone.
    pub async fn send(&self, batch: Batch<T>) -> Result<()> {
        let permit = match self.inner.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => {
                let started = tokio::time::Instant::now();
                let permit = self.inner.reserve().await;
                let waited = started.elapsed().as_nanos().try_into().unwrap_or(u64::MAX);
                self.metrics.send_blocked_nanos.fetch_add(waited, Ordering::Relaxed);
                permit.map_err(|_| DataplaneError::ChannelClosed)?
            }
            Err(mpsc::error::TrySendError::Closed(())) => return Err(DataplaneError::ChannelClosed),
        };
        // Counted once there is room and before the batch is visible to the receiver, which
        // subtracts on receipt: the queued count never goes below zero, and a send cancelled
        // while waiting leaves no trace.
        let records = count_records(&batch) as u64;
        let queued = self.metrics.queued_records.fetch_add(records, Ordering::Relaxed) + records;
        self.metrics.peak_queued_records.fetch_max(queued, Ordering::Relaxed);
        self.metrics.queued_batches.fetch_add(1, Ordering::Relaxed);
        permit.send((batch, records));
        self.metrics.records_sent.fetch_add(records, Ordering::Relaxed);
        self.metrics.batches_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The channel's counters.
    pub fn metrics(&self) -> &Arc<ChannelMetrics> {
        &self.metrics
    }
}

/// The receiving end of a local channel.
#[derive(Debug)]
pub struct BatchReceiver<T> {
    inner: mpsc::Receiver<Carried<T>>,
    metrics: Arc<ChannelMetrics>,
}

impl<T> BatchReceiver<T> {
    /// Polls for the next batch; `Ready(None)` once the sender is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        self.inner.poll_recv(cx).map(|carried| {
            carried.map(|(batch, records)| {
                self.metrics.queued_records.fetch_sub(records, Ordering::Relaxed);
                self.metrics.queued_batches.fetch_sub(1, Ordering::Relaxed);
                batch
            })
        })
    }

    /// The next batch; `None` once the sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Batch<T>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The channel's counters.
    pub fn metrics(&self) -> &Arc<ChannelMetrics> {
        &self.metrics
    }
}

/// Reads the input channels of one subtask, fairly.
#[derive(Debug)]
pub struct InputGate<T> {
    channels: Vec<BatchReceiver<T>>,
    closed: Vec<bool>,
    blocked: Vec<bool>,
    open: usize,
    /// Where the next round-robin scan starts: just after the channel last served.
    next: usize,
}

impl<T> InputGate<T> {
    /// A gate over `channels`; the index of a channel in the Vec is its index in the gate.
    pub fn new(channels: Vec<BatchReceiver<T>>) -> Self {
        let n = channels.len();
        Self { channels, closed: vec![false; n], blocked: vec![false; n], open: n, next: 0 }
    }

    /// The number of channels, closed ones included.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Polls for the next batch of any open, unblocked channel, with its channel index.
    ///
    /// Channels are served round-robin, starting after the one served last, so a busy
    /// channel cannot starve the others. A channel whose sender is gone (and whose queue is
    /// drained) is closed from then on. `Ready(None)` once every channel is closed.
    ///
    /// When only blocked channels have data this returns `Pending` without a waker on them:
    /// the task that blocked them must poll again after [`InputGate::unblock_all`].
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Batch<T>)>> {
        let n = self.channels.len();
        for offset in 0..n {
            let index = (self.next + offset) % n;
            if self.closed[index] || self.blocked[index] {
                continue;
            }
            // Every eligible channel is polled before returning Pending, so each one has
            // registered the waker.
            match self.channels[index].poll_recv(cx) {
                Poll::Ready(Some(batch)) => {
                    self.next = (index + 1) % n;
                    return Poll::Ready(Some((index, batch)));
                }
                Poll::Ready(None) => {
                    self.closed[index] = true;
                    self.open -= 1;
                }
                Poll::Pending => {}
            }
        }
        if self.open == 0 { Poll::Ready(None) } else { Poll::Pending }
    }

    /// The next batch of any open, unblocked channel, with its channel index; `None` once
    /// every channel is closed.
    pub async fn next(&mut self) -> Option<(usize, Batch<T>)> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Stops reading `channel` until [`InputGate::unblock_all`] (for barrier alignment).
    pub fn block(&mut self, channel: usize) {
        self.blocked[channel] = true;
    }

    /// Reads every channel again.
    pub fn unblock_all(&mut self) {
        self.blocked.fill(false);
    }

    /// Whether `channel` is blocked.
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.blocked[channel]
    }

    /// Whether `channel`'s sender is gone and everything it sent has been read.
    pub fn is_closed(&self, channel: usize) -> bool {
        self.closed[channel]
    }

    /// The number of channels not yet closed.
    pub fn num_open(&self) -> usize {
        self.open
    }

    /// The counters of every channel, in channel order.
    pub fn metrics(&self) -> Vec<Arc<ChannelMetrics>> {
        self.channels.iter().map(|c| c.metrics.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
