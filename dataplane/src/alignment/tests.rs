use super::*;

fn barrier(id: u64) -> CheckpointBarrier {
    CheckpointBarrier::checkpoint(id, 0)
}

fn outcome(alignment: Alignment) -> BarrierOutcome {
    BarrierOutcome { abandoned: None, alignment }
}

#[test]
fn one_channel_aligns_at_once() {
    let mut a = BarrierAligner::new(1);
    assert_eq!(a.on_barrier(0, barrier(1)), outcome(Alignment::Aligned(barrier(1))));
    assert_eq!(a.aligning(), None);
}

#[test]
fn the_first_barrier_blocks_until_every_channel_delivered_it() {
    let mut a = BarrierAligner::new(3);
    assert_eq!(a.on_barrier(1, barrier(4)), outcome(Alignment::Block));
    assert_eq!(a.on_barrier(0, barrier(4)), outcome(Alignment::Block));
    assert_eq!(a.aligning(), Some(4));
    assert_eq!(a.on_barrier(2, barrier(4)), outcome(Alignment::Aligned(barrier(4))));
    // Taken: a late copy of it is stale.
    assert_eq!(a.on_barrier(1, barrier(4)), outcome(Alignment::Ignore));
}

#[test]
fn a_channel_that_ends_counts_as_aligned_and_its_late_barrier_is_stale() {
    let mut a = BarrierAligner::new(2);
    assert_eq!(a.on_barrier(0, barrier(2)), outcome(Alignment::Block));
    assert_eq!(a.on_end_of_data(1), EndOfData::Now(Some(barrier(2))));
    assert_eq!(a.on_end_of_data(1), EndOfData::Again);
    assert_eq!((a.open_channels(), a.has_ended(1)), (1, true));
    assert_eq!(a.on_barrier(1, barrier(2)), outcome(Alignment::Ignore));
    // With only channel 0 open, its next barrier aligns at once.
    assert_eq!(a.on_barrier(0, barrier(3)), outcome(Alignment::Aligned(barrier(3))));
    assert_eq!(a.on_end_of_data(0), EndOfData::Now(None));
    assert_eq!(a.open_channels(), 0);
}

#[test]
fn a_newer_barrier_abandons_the_alignment_it_overtook() {
    let mut a = BarrierAligner::new(2);
    assert_eq!(a.on_barrier(0, barrier(5)), outcome(Alignment::Block));
    // Checkpoint 5 was given up upstream; channel 1 already carries 6.
    assert_eq!(a.on_barrier(1, barrier(6)), BarrierOutcome { abandoned: Some(5), alignment: Alignment::Block });
    assert_eq!(a.on_barrier(1, barrier(5)), outcome(Alignment::Ignore), "older than the one aligning");
    assert_eq!(a.on_barrier(0, barrier(6)), outcome(Alignment::Aligned(barrier(6))));
}

/// Defect 3 of #10, at the unit: the barriers of an aborted checkpoint still on their way must
/// not start an alignment again (blocking their channel until the next checkpoint).
#[test]
fn an_aborted_checkpoints_barriers_are_stale() {
    let mut a = BarrierAligner::new(2);
    assert_eq!(a.on_barrier(0, barrier(7)), outcome(Alignment::Block));
    assert!(a.on_abort(7), "its alignment was under way: unblock");
    assert_eq!(a.on_barrier(1, barrier(7)), outcome(Alignment::Ignore));
    assert_eq!(a.aligning(), None);
    // Aborted before any barrier of it arrived here: all of them are stale.
    assert!(!a.on_abort(8));
    assert_eq!(a.on_barrier(0, barrier(8)), outcome(Alignment::Ignore));
    assert_eq!(a.on_barrier(1, barrier(8)), outcome(Alignment::Ignore));
    assert_eq!(a.on_barrier(0, barrier(9)), outcome(Alignment::Block));
    assert_eq!(a.on_barrier(1, barrier(9)), outcome(Alignment::Aligned(barrier(9))));
}
