//! What a processing loop reads: the input gate of a one-input chain, or the two gates of a
//! two-input operator (Flink's `StreamTwoInputProcessor`) read as one.
//!
//! A two-input operator's channels are numbered first input first, so the loop aligns barriers
//! and combines watermarks over all of them at once: a checkpoint waits for its barrier on every
//! channel of both inputs, and the operator's watermark is the minimum over both inputs'
//! channels (idle ones left out), which is Flink's `min(input1, input2)`. Records of each input
//! reach the operator as [`TwoInput::First`] or [`TwoInput::Second`], mapped as the batch is
//! iterated: no copy of a batch, no allocation.

use std::future::poll_fn;
use std::task::{Context, Poll};

use weir_dataplane::{Batch, Element, InputGate, count_records};

use crate::base::data::Data;

/// A record of a two-input operator's first or second input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TwoInput<A, B> {
    /// A record of the first input.
    First(A),
    /// A record of the second input.
    Second(B),
}

/// The input channels a processing loop reads.
pub(crate) trait TaskInput: Send {
    /// What the chain's head takes.
    type Item: Data;
    /// One batch of one channel.
    type Batch: IntoIterator<Item = Element<Self::Item>> + Send;
    /// The number of channels, closed ones included.
    fn num_channels(&self) -> usize;
    /// The number of channels not yet closed.
    fn num_open(&self) -> usize;
    fn is_blocked(&self, channel: usize) -> bool;
    fn is_closed(&self, channel: usize) -> bool;
    /// Stops reading `channel` until [`unblock_all`](Self::unblock_all) (barrier alignment).
    fn block(&mut self, channel: usize);
    fn unblock_all(&mut self);
    /// The next batch of an open, unblocked channel, with the channel; `None` once every
    /// channel closed.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Self::Batch)>>;
    /// The records in `batch`.
    fn records(batch: &Self::Batch) -> u64;
}

/// The next batch of `input` (see [`TaskInput::poll_next`]), or `None` as soon as a channel
/// closes, so that the loop checks at once whether it had ended first. (Otherwise a channel
/// that fails while the others are blocked for an alignment would go unnoticed: nothing else
/// wakes the loop, and its producers wait on its full inputs.)
pub(crate) async fn next<I: TaskInput>(input: &mut I) -> Option<(usize, I::Batch)> {
    let open = input.num_open();
    poll_fn(|cx| match input.poll_next(cx) {
        Poll::Pending if input.num_open() < open => Poll::Ready(None),
        polled => polled,
    })
    .await
}

impl<T: Data> TaskInput for InputGate<T> {
    type Item = T;
    type Batch = Batch<T>;
    fn num_channels(&self) -> usize {
        InputGate::num_channels(self)
    }
    fn num_open(&self) -> usize {
        InputGate::num_open(self)
    }
    fn is_blocked(&self, channel: usize) -> bool {
        InputGate::is_blocked(self, channel)
    }
    fn is_closed(&self, channel: usize) -> bool {
        InputGate::is_closed(self, channel)
    }
    fn block(&mut self, channel: usize) {
        InputGate::block(self, channel)
    }
    fn unblock_all(&mut self) {
        InputGate::unblock_all(self)
    }
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Batch<T>)>> {
        InputGate::poll_next(self, cx)
    }
    fn records(batch: &Batch<T>) -> u64 {
        count_records(batch) as u64
    }
}

/// The two gates of a two-input operator, read as one: channels `0..n` are the first input's,
/// `n..` the second's. Neither input starves the other: each poll starts with the input the
/// previous batch did not come from.
pub(crate) struct TwoInputGate<A, B> {
    first: InputGate<A>,
    second: InputGate<B>,
    second_first: bool,
}

impl<A, B> TwoInputGate<A, B> {
    pub(crate) fn new(first: InputGate<A>, second: InputGate<B>) -> Self {
        TwoInputGate { first, second, second_first: false }
    }

    /// The input `channel` belongs to, and its index there.
    fn locate(&self, channel: usize) -> (bool, usize) {
        let n = self.first.num_channels();
        if channel < n { (false, channel) } else { (true, channel - n) }
    }
}

/// A batch of either input.
pub(crate) enum TwoInputBatch<A, B> {
    First(Batch<A>),
    Second(Batch<B>),
}

/// The elements of a [`TwoInputBatch`], with its records as [`TwoInput`]s.
pub(crate) enum TwoInputIter<A, B> {
    First(std::vec::IntoIter<Element<A>>),
    Second(std::vec::IntoIter<Element<B>>),
}

impl<A, B> Iterator for TwoInputIter<A, B> {
    type Item = Element<TwoInput<A, B>>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            TwoInputIter::First(it) => it.next().map(|e| e.map_record(TwoInput::First)),
            TwoInputIter::Second(it) => it.next().map(|e| e.map_record(TwoInput::Second)),
        }
    }
}

impl<A, B> IntoIterator for TwoInputBatch<A, B> {
    type Item = Element<TwoInput<A, B>>;
    type IntoIter = TwoInputIter<A, B>;
    fn into_iter(self) -> Self::IntoIter {
        match self {
            TwoInputBatch::First(batch) => TwoInputIter::First(batch.into_iter()),
            TwoInputBatch::Second(batch) => TwoInputIter::Second(batch.into_iter()),
        }
    }
}

impl<A: Data, B: Data> TaskInput for TwoInputGate<A, B> {
    type Item = TwoInput<A, B>;
    type Batch = TwoInputBatch<A, B>;
    fn num_channels(&self) -> usize {
        self.first.num_channels() + self.second.num_channels()
    }
    fn num_open(&self) -> usize {
        self.first.num_open() + self.second.num_open()
    }
    fn is_blocked(&self, channel: usize) -> bool {
        match self.locate(channel) {
            (false, c) => self.first.is_blocked(c),
            (true, c) => self.second.is_blocked(c),
        }
    }
    fn is_closed(&self, channel: usize) -> bool {
        match self.locate(channel) {
            (false, c) => self.first.is_closed(c),
            (true, c) => self.second.is_closed(c),
        }
    }
    fn block(&mut self, channel: usize) {
        match self.locate(channel) {
            (false, c) => self.first.block(c),
            (true, c) => self.second.block(c),
        }
    }
    fn unblock_all(&mut self) {
        self.first.unblock_all();
        self.second.unblock_all();
    }
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Self::Batch)>> {
        let offset = self.first.num_channels();
        // Both are polled before returning Pending, so both registered the waker.
        let mut ended = 0;
        for turn in [self.second_first, !self.second_first] {
            let polled = if turn {
                self.second.poll_next(cx).map(|o| o.map(|(c, batch)| (offset + c, TwoInputBatch::Second(batch))))
            } else {
                self.first.poll_next(cx).map(|o| o.map(|(c, batch)| (c, TwoInputBatch::First(batch))))
            };
            match polled {
                Poll::Ready(Some(ready)) => {
                    self.second_first = !turn;
                    return Poll::Ready(Some(ready));
                }
                Poll::Ready(None) => ended += 1,
                Poll::Pending => {}
            }
        }
        if ended == 2 { Poll::Ready(None) } else { Poll::Pending }
    }
    fn records(batch: &Self::Batch) -> u64 {
        match batch {
            TwoInputBatch::First(b) => count_records(b) as u64,
            TwoInputBatch::Second(b) => count_records(b) as u64,
        }
    }
}

#[cfg(test)]
mod tests;
