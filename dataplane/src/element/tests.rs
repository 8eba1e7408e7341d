use super::*;

#[test]
fn count_records_ignores_control_elements() {
    let batch: Batch<u32> = vec![
        Element::Record(1, 10),
        Element::Watermark(5),
        Element::Record(2, crate::NO_TIMESTAMP),
        Element::Idle(true),
        Element::Barrier(CheckpointBarrier::checkpoint(1, 0)),
        Element::EndOfData,
    ];
    assert_eq!(count_records(&batch), 2);
    assert_eq!(count_records::<u32>(&[]), 0);
}

#[test]
fn elements_round_trip_through_postcard() {
    let batch: Batch<String> = vec![
        Element::Record("a".into(), 1),
        Element::Barrier(CheckpointBarrier {
            checkpoint_id: 7,
            timestamp_ms: -3,
            kind: BarrierKind::Savepoint { target: "/sp".into(), stop: Some(StopMode::Drain) },
        }),
        Element::EndOfData,
    ];
    let bytes = postcard::to_stdvec(&batch).unwrap();
    let back: Batch<String> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, batch);
}
