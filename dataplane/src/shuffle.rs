//! A process-local registry where producer and consumer subtasks, deployed independently,
//! find the two ends of the channels between them.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::{BatchReceiver, BatchSender, DataplaneError, Result, local_channel};

/// Names one channel: from subtask `producer` to subtask `consumer` over edge `edge` of one
/// attempt of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChannelId {
    /// The job.
    pub job: u128,
    /// The execution attempt of the job; a restart uses fresh channels.
    pub attempt: u32,
    /// The edge of the job graph.
    pub edge: u32,
    /// The producing subtask index.
    pub producer: u32,
    /// The consuming subtask index.
    pub consumer: u32,
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {:032x}/attempt {}/edge {}/{}->{}",
            self.job, self.attempt, self.edge, self.producer, self.consumer
        )
    }
}

/// Which end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Sender,
    Receiver,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Sender => "sender",
            End::Receiver => "receiver",
        }
    }
}

/// The state of a channel in the registry.
enum Slot {
    /// One end was taken; the other waits here, type-erased, for its subtask.
    Parked { end: Box<dyn Any + Send>, which: End },
    /// Both ends were taken. Kept until the job is released so that asking for an end again
    /// is an error rather than a fresh channel nobody will ever read.
    Connected,
}

/// The process-local registry of channel ends.
#[derive(Default)]
pub struct LocalShuffle {
    slots: Mutex<HashMap<ChannelId, Slot>>,
}

impl std::fmt::Debug for LocalShuffle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalShuffle").field("parked", &self.parked()).finish_non_exhaustive()
    }
}

impl LocalShuffle {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sending end of channel `id`.
    ///
    /// If the receiver was not asked for yet, this creates the channel with room for
    /// `capacity_batches` and parks the receiver; otherwise it takes the parked sender (and
    /// `capacity_batches` is that of the first call).
    ///
    /// Fails with [`DataplaneError::ChannelTypeMismatch`] if the receiver was asked for with
    /// another element type, and [`DataplaneError::ChannelAlreadyTaken`] if the sender was.
    pub fn sender<T: Send + 'static>(&self, id: ChannelId, capacity_batches: usize) -> Result<BatchSender<T>> {
        self.take(id, End::Sender, || {
            let (tx, rx) = local_channel::<T>(capacity_batches);
            (tx, Box::new(rx))
        })
    }

    /// The receiving end of channel `id`; as [`LocalShuffle::sender`], the other way round.
    pub fn receiver<T: Send + 'static>(&self, id: ChannelId, capacity_batches: usize) -> Result<BatchReceiver<T>> {
        self.take(id, End::Receiver, || {
            let (tx, rx) = local_channel::<T>(capacity_batches);
            (rx, Box::new(tx))
        })
    }

    /// Drops every parked end and every record of job `job`'s attempts up to `last_attempt`
    /// (after the job ended, or before it restarts); returns how many parked ends were dropped.
    /// Channels of later attempts, which another executor of this process may be wiring
    /// already, are kept.
    ///
    /// A dropped receiver fails its producer's next send with
    /// [`DataplaneError::ChannelClosed`]; a dropped sender ends its consumer's input.
    pub fn release_job(&self, job: u128, last_attempt: u32) -> usize {
        let mut parked = 0;
        self.lock().retain(|id, slot| {
            if id.job != job || id.attempt > last_attempt {
                return true;
            }
            if matches!(slot, Slot::Parked { .. }) {
                parked += 1;
            }
            false
        });
        parked
    }

    /// How many ends are waiting to be taken.
    pub fn parked(&self) -> usize {
        self.lock().values().filter(|s| matches!(s, Slot::Parked { .. })).count()
    }

    /// Takes end `which` of channel `id`; `create` makes a new channel as (wanted end, other
    /// end) when neither end was asked for yet.
    fn take<Wanted: Send + 'static>(
        &self,
        id: ChannelId,
        which: End,
        create: impl FnOnce() -> (Wanted, Box<dyn Any + Send>),
    ) -> Result<Wanted> {
        let mut slots = self.lock();
        let taken = || DataplaneError::ChannelAlreadyTaken { channel: id.to_string(), end: which.name() };
        match slots.remove(&id) {
            None => {
                let (wanted, other) = create();
                let other_end = if which == End::Sender { End::Receiver } else { End::Sender };
                slots.insert(id, Slot::Parked { end: other, which: other_end });
                Ok(wanted)
            }
            Some(Slot::Parked { end, which: parked }) if parked == which => match end.downcast::<Wanted>() {
                Ok(wanted) => {
                    slots.insert(id, Slot::Connected);
                    Ok(*wanted)
                }
                Err(end) => {
                    slots.insert(id, Slot::Parked { end, which: parked });
                    Err(DataplaneError::ChannelTypeMismatch { channel: id.to_string() })
                }
            },
            Some(slot) => {
                // The parked end is the other one (so this one was handed out), or both were.
                slots.insert(id, slot);
                Err(taken())
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelId, Slot>> {
        // The map is consistent after every operation, so a panic elsewhere cannot leave it
        // half-updated: poisoning carries no information here.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
