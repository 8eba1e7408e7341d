use super::*;
use crate::Element;

fn id(job: u128, producer: u32, consumer: u32) -> ChannelId {
    ChannelId { job, attempt: 0, edge: 2, producer, consumer }
}

#[test]
fn display_names_every_part() {
    let shown = id(0x0123, 0, 1).to_string();
    assert_eq!(shown, "job 00000000000000000000000000000123/attempt 0/edge 2/0->1");
}

#[tokio::test]
async fn sender_first_then_receiver() {
    let shuffle = LocalShuffle::new();
    let tx = shuffle.sender::<u32>(id(1, 0, 0), 4).unwrap();
    assert_eq!(shuffle.parked(), 1);
    let mut rx = shuffle.receiver::<u32>(id(1, 0, 0), 4).unwrap();
    assert_eq!(shuffle.parked(), 0);
    tx.send(vec![Element::Record(5, 0)]).await.unwrap();
    assert_eq!(rx.recv().await, Some(vec![Element::Record(5, 0)]));
}

#[tokio::test]
async fn receiver_first_then_sender() {
    let shuffle = LocalShuffle::default();
    let mut rx = shuffle.receiver::<String>(id(1, 3, 4), 4).unwrap();
    let tx = shuffle.sender::<String>(id(1, 3, 4), 4).unwrap();
    tx.send(vec![Element::EndOfData]).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv().await, Some(vec![Element::EndOfData]));
    assert_eq!(rx.recv().await, None);
}

#[test]
fn channels_are_independent() {
    let shuffle = LocalShuffle::new();
    shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap();
    shuffle.sender::<u32>(id(1, 0, 1), 1).unwrap();
    shuffle.receiver::<u32>(id(2, 0, 0), 1).unwrap();
    assert_eq!(shuffle.parked(), 3);
}

#[test]
fn type_mismatch_is_an_error_and_keeps_the_parked_end() {
    let shuffle = LocalShuffle::new();
    let _tx = shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap();
    let err = shuffle.receiver::<String>(id(1, 0, 0), 1).unwrap_err();
    assert!(matches!(&err, DataplaneError::ChannelTypeMismatch { channel } if channel.contains("0->0")));
    assert!(err.to_string().contains("different types"));
    assert_eq!(shuffle.parked(), 1);
    assert!(shuffle.receiver::<u32>(id(1, 0, 0), 1).is_ok());
}

#[test]
fn an_end_cannot_be_taken_twice() {
    let shuffle = LocalShuffle::new();
    let _tx = shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap();
    let err = shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap_err();
    assert!(matches!(err, DataplaneError::ChannelAlreadyTaken { end: "sender", .. }));

    let _rx = shuffle.receiver::<u32>(id(1, 5, 5), 1).unwrap();
    let err = shuffle.receiver::<u32>(id(1, 5, 5), 1).unwrap_err();
    assert!(matches!(err, DataplaneError::ChannelAlreadyTaken { end: "receiver", .. }));

    // Once both ends are connected, neither can be asked for again.
    let _rx = shuffle.receiver::<u32>(id(1, 0, 0), 1).unwrap();
    let err = shuffle.receiver::<u32>(id(1, 0, 0), 1).unwrap_err();
    assert!(matches!(err, DataplaneError::ChannelAlreadyTaken { end: "receiver", .. }));
    let err = shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap_err();
    assert!(matches!(err, DataplaneError::ChannelAlreadyTaken { end: "sender", .. }));
}

#[tokio::test]
async fn release_job_drops_only_that_jobs_ends() {
    let shuffle = LocalShuffle::new();
    let tx = shuffle.sender::<u32>(id(1, 0, 0), 1).unwrap();
    let _rx = shuffle.receiver::<u32>(id(1, 0, 1), 1).unwrap();
    let _ = shuffle.sender::<u32>(id(1, 0, 2), 1).unwrap();
    let _ = shuffle.receiver::<u32>(id(1, 0, 2), 1).unwrap();
    let _other = shuffle.sender::<u32>(id(2, 0, 0), 1).unwrap();
    assert_eq!(shuffle.parked(), 3);
    assert_eq!(shuffle.release_job(1, u32::MAX), 2);
    assert_eq!(shuffle.parked(), 1);
    // The parked receiver is gone, so the producer learns its consumer will never come.
    assert!(matches!(tx.send(Vec::new()).await, Err(DataplaneError::ChannelClosed)));
    // The ids of a released job can be used again.
    assert!(shuffle.sender::<u32>(id(1, 0, 2), 1).is_ok());
    assert_eq!(shuffle.release_job(3, u32::MAX), 0);
}

#[tokio::test]
async fn release_job_keeps_the_channels_of_later_attempts() {
    let shuffle = LocalShuffle::new();
    let old = ChannelId { attempt: 1, ..id(1, 0, 0) };
    let new = ChannelId { attempt: 2, ..id(1, 0, 0) };
    let _ = shuffle.sender::<u32>(old, 1).unwrap();
    let _ = shuffle.sender::<u32>(new, 1).unwrap();
    assert_eq!(shuffle.release_job(1, 1), 1);
    assert_eq!(shuffle.parked(), 1);
    assert!(shuffle.receiver::<u32>(new, 1).is_ok(), "the later attempt's channel is still there");
}
