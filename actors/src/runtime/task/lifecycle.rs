//! Where a subtask stands on its way to its end: a state machine without I/O.
//!
//! As Flink's FLIP-147: when the job checkpoints, a subtask whose input ended has its
//! operators finish and sends end of data, then stays, taking part in checkpoints (a source
//! snapshots its position "at the end", a task aligns, snapshots and forwards barriers),
//! until the job's last checkpoint completed: the final checkpoint, which the coordinator
//! triggers once every source has ended, or a stop-with-savepoint. Two-phase sinks commit
//! their last transaction there, exactly once. Without periodic checkpoints a subtask ends
//! with its input, unless it still awaits a savepoint it took part in after that.
//!
//! Every subtask of the job stays until that last checkpoint, including those that ended
//! early, so every checkpoint holds every subtask's state. Flink instead lets such subtasks
//! end and marks finished operators in its checkpoints; Weir keeps them (their slots and
//! state) a little longer, and a restore never lacks a subtask's state.
//!
//! A subtask ends only once every input channel closed (its producers ended): a producer
//! never sends to a consumer that is gone. That part is the processing loop's.
//!
//! ```text
//!            stop barrier              abort
//!  Running ─────────────────▶ Stopping ─────▶ Running
//!     │ input ends               │ input ends (the savepoint is then awaited)
//!     ▼                          ▼
//!  Ended { awaiting } ◀──────────┘
//!     │ the job's last checkpoint (or the stop-with-savepoint) completes
//!     ▼
//!  Released { ended }   (from Running or Stopping too: the chain then ends without draining)
//! ```

use weir_dataplane::CheckpointBarrier;

/// The phase of a subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Records, watermarks and timers are processed.
    Running,
    /// It took stop-with-savepoint `savepoint`'s barrier: time stands still (no records, no
    /// timers) until the savepoint completes (the job ends) or is aborted (back to running).
    Stopping { savepoint: u64 },
    /// Its input ended and its chain was ended (drained or not). It takes part in checkpoints
    /// until the job's last one; `awaiting` are those whose barrier it took since, neither
    /// complete nor aborted.
    Ended { awaiting: Vec<u64> },
    /// The job's last checkpoint completed: the chain ends (without draining if `!ended`),
    /// and the subtask ends once its inputs closed.
    Released { ended: bool },
}

/// A subtask's lifecycle: its phase and the two facts it starts with.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// The job takes periodic checkpoints: an ended subtask waits for the job's last one.
    periodic: bool,
    /// Restored from a snapshot taken after its input had ended: its operators finished
    /// already, and must not finish (nor fire timers) again.
    finished_before: bool,
    phase: Phase,
}

impl Lifecycle {
    pub(crate) fn new(periodic: bool, finished_before: bool) -> Self {
        Lifecycle { periodic, finished_before, phase: Phase::Running }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Restored from a snapshot taken after its input had ended.
    pub(crate) fn finished_before(&self) -> bool {
        self.finished_before
    }

    /// Whether records, watermarks and timers are processed; also whether the operators
    /// finish (drain) when the input ends now (not after a stop, nor a second time).
    pub(crate) fn active(&self) -> bool {
        self.phase == Phase::Running && !self.finished_before
    }

    /// Whether the chain was ended.
    pub(crate) fn ended(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. } | Phase::Released { ended: true })
    }

    /// Whether the job's last checkpoint completed.
    pub(crate) fn released(&self) -> bool {
        matches!(self.phase, Phase::Released { .. })
    }

    /// The chain was ended.
    pub(crate) fn end(&mut self) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Running) {
            Phase::Running => Phase::Ended { awaiting: Vec::new() },
            // The stop-with-savepoint it took part in is still to complete.
            Phase::Stopping { savepoint } => Phase::Ended { awaiting: vec![savepoint] },
            Phase::Released { .. } => Phase::Released { ended: true },
            ended @ Phase::Ended { .. } => ended,
        };
    }

    /// It took `barrier`'s snapshot.
    pub(crate) fn took(&mut self, barrier: &CheckpointBarrier) {
        match &mut self.phase {
            Phase::Running if barrier.stop().is_some() => {
                self.phase = Phase::Stopping { savepoint: barrier.checkpoint_id }
            }
            Phase::Ended { awaiting } => awaiting.push(barrier.checkpoint_id),
            Phase::Running | Phase::Stopping { .. } | Phase::Released { .. } => {}
        }
    }

    /// Checkpoint `checkpoint` completed; `end`: it was the job's last.
    pub(crate) fn completed(&mut self, checkpoint: u64, end: bool) {
        if let Phase::Ended { awaiting } = &mut self.phase {
            awaiting.retain(|&c| c != checkpoint);
        }
        if end && !self.released() {
            self.phase = Phase::Released { ended: self.ended() };
        }
    }

    /// Checkpoint `checkpoint` was aborted.
    pub(crate) fn aborted(&mut self, checkpoint: u64) {
        match &mut self.phase {
            Phase::Ended { awaiting } => awaiting.retain(|&c| c != checkpoint),
            // A failed stop-with-savepoint: the job runs on.
            Phase::Stopping { savepoint } if *savepoint == checkpoint => self.phase = Phase::Running,
            Phase::Running | Phase::Stopping { .. } | Phase::Released { .. } => {}
        }
    }

    /// Whether the subtask may end (once its inputs closed).
    pub(crate) fn may_end(&self) -> bool {
        match &self.phase {
            Phase::Released { .. } => true,
            Phase::Ended { awaiting } => !self.periodic && awaiting.is_empty(),
            Phase::Running | Phase::Stopping { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_dataplane::{BarrierKind, StopMode};

    use super::*;

    fn checkpoint(id: u64) -> CheckpointBarrier {
        CheckpointBarrier { checkpoint_id: id, timestamp_ms: 0, kind: BarrierKind::Checkpoint }
    }

    fn stop(id: u64) -> CheckpointBarrier {
        let kind = BarrierKind::Savepoint { target: "sp".into(), stop: Some(StopMode::NoDrain) };
        CheckpointBarrier { checkpoint_id: id, timestamp_ms: 0, kind }
    }

    #[test]
    fn with_periodic_checkpoints_an_ended_subtask_waits_for_the_last_checkpoint() {
        let mut life = Lifecycle::new(true, false);
        assert!(life.active() && !life.may_end());
        life.took(&checkpoint(1));
        life.end();
        assert_eq!(life.phase(), &Phase::Ended { awaiting: vec![] });
        assert!(!life.active() && life.ended() && !life.may_end());
        life.took(&checkpoint(2));
        life.completed(2, false);
        assert!(!life.may_end(), "not the job's last");
        life.took(&checkpoint(3));
        life.completed(3, true);
        assert_eq!(life.phase(), &Phase::Released { ended: true });
        assert!(life.may_end());
    }

    #[test]
    fn without_periodic_checkpoints_it_ends_with_its_input_unless_a_savepoint_is_awaited() {
        let mut life = Lifecycle::new(false, false);
        life.end();
        assert!(life.may_end());
        let mut life = Lifecycle::new(false, false);
        life.end();
        life.took(&checkpoint(4));
        assert!(!life.may_end());
        life.aborted(4);
        assert!(life.may_end());
    }

    #[test]
    fn a_stop_stands_time_still_and_ends_without_draining_or_resumes_when_aborted() {
        let mut life = Lifecycle::new(true, false);
        life.took(&stop(5));
        assert_eq!(life.phase(), &Phase::Stopping { savepoint: 5 });
        assert!(!life.active() && !life.ended() && !life.may_end());
        life.aborted(4);
        assert_eq!(life.phase(), &Phase::Stopping { savepoint: 5 }, "another checkpoint's abort");
        life.aborted(5);
        assert!(life.active(), "a failed stop: the job runs on");

        life.took(&stop(6));
        life.completed(6, true);
        assert_eq!(life.phase(), &Phase::Released { ended: false });
        assert!(life.may_end() && !life.ended() && !life.active(), "the chain ends without draining");
        life.end();
        assert_eq!(life.phase(), &Phase::Released { ended: true });
    }

    #[test]
    fn a_stopping_subtask_whose_input_ends_still_awaits_its_savepoint() {
        let mut life = Lifecycle::new(false, false);
        life.took(&stop(7));
        life.end();
        assert_eq!(life.phase(), &Phase::Ended { awaiting: vec![7] });
        assert!(!life.may_end());
        life.completed(7, true);
        assert!(life.may_end() && life.ended());
    }

    #[test]
    fn restored_finished_it_never_runs_its_operators_again() {
        let life = Lifecycle::new(true, true);
        assert!(!life.active() && life.finished_before() && !life.ended());
    }
}
