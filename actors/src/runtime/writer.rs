//! The plumbing of one subtask: links of an operator chain, and the writer at its end that
//! batches records per output channel.
//!
//! A chain is a tree of [`Link`]s called directly, record by record; only the writer touches
//! channels, and only whole batches leave it. Errors raised inside a link are parked in the
//! [`TaskIo`] (the first one wins) and the processing loop fails the subtask after the call,
//! so `Context::emit` stays infallible for users.

use std::any::Any;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use weir_dataplane::{
    BatchSender, ChannelMetrics, CheckpointBarrier, Element, KeyGroup, OutputBuffer, Partitioning, Timestamp,
    subtask_for_key_group,
};

use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::link::Link;
use crate::base::state::OperatorState;
use crate::base::task_io::{ReadyBatch, TaskIo};
use crate::base::time::TimeDomain;

/// A boxed future that sends one batch.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// The senders of one output edge, with the batch type erased so the loop can drive them all.
pub(crate) trait ErasedOutput: Send {
    /// Sends a batch (a boxed `Batch<T>` of this output's type) on one channel.
    fn send(&mut self, channel: usize, batch: Box<dyn Any + Send>) -> SendFuture<'_>;
    /// The channels' metrics.
    fn metrics(&self) -> Vec<Arc<ChannelMetrics>>;
}

/// The typed senders of one output edge.
pub(crate) struct OutputChannels<T> {
    pub(crate) senders: Vec<BatchSender<T>>,
}

impl<T: Data> ErasedOutput for OutputChannels<T> {
    fn send(&mut self, channel: usize, batch: Box<dyn Any + Send>) -> SendFuture<'_> {
        Box::pin(async move {
            let batch = batch
                .downcast::<Vec<Element<T>>>()
                .map_err(|_| WeirError::runtime("batch of the wrong type on an output channel"))?;
            self.senders[channel].send(*batch).await.map_err(WeirError::from)
        })
    }

    fn metrics(&self) -> Vec<Arc<ChannelMetrics>> {
        self.senders.iter().map(|s| s.metrics().clone()).collect()
    }
}

/// Computes the key group of a record (the key selector and the stable hash).
pub(crate) type KeyGroupFn<T> = Arc<dyn Fn(&T, u16) -> KeyGroup + Send + Sync>;

/// How one output edge picks channels.
pub(crate) struct EdgeWriter<T> {
    pub(crate) output: usize,
    pub(crate) partitioning: Partitioning,
    pub(crate) key_group: Option<KeyGroupFn<T>>,
    pub(crate) max_parallelism: u16,
    pub(crate) consumer_parallelism: usize,
    pub(crate) consumers: Range<usize>,
    pub(crate) buffer: OutputBuffer<T>,
    pub(crate) next: usize,
}

impl<T: Data> EdgeWriter<T> {
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        match self.partitioning {
            Partitioning::Forward => self.buffer.push_record(0, value, ts),
            Partitioning::Rebalance | Partitioning::Rescale => {
                let channel = self.next;
                self.next += 1;
                if self.next == self.buffer.num_channels() {
                    self.next = 0;
                }
                self.buffer.push_record(channel, value, ts)
            }
            // A single consumer takes every key group: no key to hash for it (the keyed
            // operator hashes it again anyway, for its state).
            Partitioning::Hash if self.consumer_parallelism == 1 => self.buffer.push_record(0, value, ts),
            Partitioning::Hash => {
                let kg = (self.key_group.as_ref().expect("hash edge has a key selector"))(&value, self.max_parallelism);
                let target = subtask_for_key_group(self.max_parallelism, self.consumer_parallelism, kg);
                self.buffer.push_record(target - self.consumers.start, value, ts)
            }
            Partitioning::Broadcast => self.buffer.broadcast(Element::Record(value, ts)),
        }
        if self.buffer.has_ready() {
            self.move_ready(io);
        }
    }

    fn move_ready(&mut self, io: &mut TaskIo) {
        while let Some((channel, batch)) = self.buffer.pop_ready() {
            io.ready.push_back(ReadyBatch { output: self.output, channel, batch: Box::new(batch) });
        }
    }
}

/// The end of a chain that has network outputs: batches records per channel.
pub(crate) struct Writer<T> {
    pub(crate) edges: Vec<EdgeWriter<T>>,
}

impl<T: Data> Writer<T> {
    fn broadcast(&mut self, element: Element<T>, io: &mut TaskIo) {
        for edge in &mut self.edges {
            edge.buffer.broadcast(element.clone());
            edge.move_ready(io);
        }
    }
}

impl<T: Data> Link<T> for Writer<T> {
    fn open(&mut self, _io: &mut TaskIo) {}

    #[inline]
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        io.records_out += 1;
        io.unflushed = true;
        if let [edge] = self.edges.as_mut_slice() {
            edge.push(value, ts, io);
        } else if let Some((last, rest)) = self.edges.split_last_mut() {
            for edge in rest {
                edge.push(value.clone(), ts, io);
            }
            last.push(value, ts, io);
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        io.unflushed = true;
        io.metrics.output_watermark.store(wm, std::sync::atomic::Ordering::Relaxed);
        self.broadcast(Element::Watermark(wm), io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        io.unflushed = true;
        self.broadcast(Element::Idle(idle), io);
    }

    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}

    fn flush(&mut self, io: &mut TaskIo) {
        for edge in &mut self.edges {
            edge.buffer.flush();
            edge.move_ready(io);
        }
    }

    fn end_input(&mut self, _drain: bool, io: &mut TaskIo) {
        self.broadcast(Element::EndOfData, io);
        self.flush(io);
    }

    fn close(&mut self, _io: &mut TaskIo) {}

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, _out: &mut Vec<OperatorState>) {
        // Broadcasting a barrier closes every channel's batch: it leaves at once.
        self.broadcast(Element::Barrier(barrier.clone()), io);
    }

    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// The end of a chain with no outputs (after a sink).
pub(crate) struct NullLink;

impl<T: Send> Link<T> for NullLink {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, _value: T, _ts: Timestamp, _io: &mut TaskIo) {}
    fn watermark(&mut self, _wm: Timestamp, _io: &mut TaskIo) {}
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, _drain: bool, _io: &mut TaskIo) {}
    fn close(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, _barrier: &CheckpointBarrier, _io: &mut TaskIo, _out: &mut Vec<OperatorState>) {}
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// Several chained successors (and maybe a writer) fed the same records.
pub(crate) struct FanOut<T> {
    pub(crate) outs: Vec<Box<dyn Link<T>>>,
}

impl<T: Data> Link<T> for FanOut<T> {
    fn open(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.open(io));
    }
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo) {
        if let Some((last, rest)) = self.outs.split_last_mut() {
            for out in rest {
                out.record(value.clone(), ts, io);
            }
            last.record(value, ts, io);
        }
    }
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.watermark(wm, io));
    }
    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.idle(idle, io));
    }
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.processing_time(now, io));
    }
    fn flush(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.flush(io));
    }
    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.end_input(drain, io));
    }
    fn close(&mut self, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.close(io));
    }
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.outs.iter_mut().for_each(|o| o.checkpoint(barrier, io, out));
    }
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.outs.iter_mut().for_each(|o| o.checkpoint_complete(id, io));
    }
    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.outs.iter().for_each(|o| o.timers(out));
    }
}
