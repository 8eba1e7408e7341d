//! Sans-IO barrier alignment of a task with several input channels, as Flink's aligned
//! `CheckpointBarrierHandler`: a channel that delivered the barrier of checkpoint `n` is not
//! read further until every channel still open has delivered it (or ended), so the snapshot
//! holds exactly the records before the barrier on every channel.
//!
//! The aligner only decides; its caller blocks and unblocks channels, keeps the records behind
//! a blocked channel's barrier, times the alignment and takes the snapshot. Barriers that can no
//! longer lead to a snapshot are stale: those of a checkpoint taken already (a channel that
//! ended counted as aligned, and its barrier comes late), of one aborted (told by
//! [`BarrierAligner::on_abort`]: its barriers still on their way must neither block their
//! channel until the next checkpoint nor take a snapshot into a deleted directory), and of one
//! that a newer checkpoint's barrier overtook.

use crate::CheckpointBarrier;

/// What to do with a barrier that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alignment {
    /// It is stale: drop it and read on.
    Ignore,
    /// Block its channel until the alignment completes.
    Block,
    /// Every open channel delivered the barrier (or ended): snapshot now, then unblock every
    /// channel.
    Aligned(CheckpointBarrier),
}

/// [`BarrierAligner::on_barrier`]'s decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierOutcome {
    /// A newer checkpoint's barrier overtook this older checkpoint's alignment, which is given
    /// up: unblock every channel first.
    pub abandoned: Option<u64>,
    /// Then this.
    pub alignment: Alignment,
}

/// [`BarrierAligner::on_end_of_data`]'s decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOfData {
    /// The channel had ended already.
    Again,
    /// The channel ended now; if that completed an alignment, its barrier (snapshot, then
    /// unblock every channel).
    Now(Option<CheckpointBarrier>),
}

/// The alignment state of one task's input channels.
#[derive(Debug, Clone)]
pub struct BarrierAligner {
    ended: Vec<bool>,
    open: usize,
    /// The checkpoint being aligned, and which channels delivered its barrier.
    pending: Option<(CheckpointBarrier, Vec<bool>)>,
    /// The newest checkpoint taken or aborted here: its barriers, and older ones, are stale.
    last: u64,
}

impl BarrierAligner {
    /// An aligner over `channels` open channels.
    pub fn new(channels: usize) -> Self {
        BarrierAligner { ended: vec![false; channels], open: channels, pending: None, last: 0 }
    }

    /// The channels that have not ended.
    pub fn open_channels(&self) -> usize {
        self.open
    }

    /// Whether `channel` delivered end of data.
    pub fn has_ended(&self, channel: usize) -> bool {
        self.ended[channel]
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning(&self) -> Option<u64> {
        self.pending.as_ref().map(|(b, _)| b.checkpoint_id)
    }

    /// `barrier` arrived on `channel`.
    pub fn on_barrier(&mut self, channel: usize, barrier: CheckpointBarrier) -> BarrierOutcome {
        let id = barrier.checkpoint_id;
        let mut abandoned = None;
        match &self.pending {
            _ if id <= self.last => return BarrierOutcome { abandoned, alignment: Alignment::Ignore },
            Some((pending, _)) if pending.checkpoint_id > id => {
                return BarrierOutcome { abandoned, alignment: Alignment::Ignore };
            }
            Some((pending, _)) if pending.checkpoint_id < id => {
                // A newer checkpoint overtook one that never completed here: give it up.
                abandoned = Some(pending.checkpoint_id);
                self.last = pending.checkpoint_id;
                self.pending = None;
            }
            _ => {}
        }
        let channels = self.ended.len();
        let (_, arrived) = self.pending.get_or_insert_with(|| (barrier, vec![false; channels]));
        arrived[channel] = true;
        let alignment = match self.complete() {
            Some(barrier) => Alignment::Aligned(barrier),
            None => Alignment::Block,
        };
        BarrierOutcome { abandoned, alignment }
    }

    /// `channel` delivered end of data (it counts as aligned from now on).
    pub fn on_end_of_data(&mut self, channel: usize) -> EndOfData {
        if std::mem::replace(&mut self.ended[channel], true) {
            return EndOfData::Again;
        }
        self.open -= 1;
        EndOfData::Now(self.complete())
    }

    /// Checkpoint `id` was aborted: its barriers still to come are stale. Returns whether its
    /// alignment was under way (then unblock every channel).
    pub fn on_abort(&mut self, id: u64) -> bool {
        self.last = self.last.max(id);
        if self.aligning() == Some(id) {
            self.pending = None;
            return true;
        }
        false
    }

    /// The pending barrier, if every channel delivered it or ended.
    fn complete(&mut self) -> Option<CheckpointBarrier> {
        let (_, arrived) = self.pending.as_ref()?;
        if !arrived.iter().zip(&self.ended).all(|(arrived, ended)| *arrived || *ended) {
            return None;
        }
        let (barrier, _) = self.pending.take()?;
        self.last = barrier.checkpoint_id;
        Some(barrier)
    }
}

#[cfg(test)]
mod tests;
