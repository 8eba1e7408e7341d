use std::time::Duration;

use super::*;
use crate::Element;

fn records(range: std::ops::Range<u32>) -> Batch<u32> {
    range.map(|i| Element::Record(i, i64::from(i))).collect()
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}

#[tokio::test]
async fn sender_waits_while_the_channel_is_full() {
    let (tx, mut rx) = local_channel::<u32>(2);
    tx.send(records(0..3)).await.unwrap();
    tx.send(records(3..5)).await.unwrap();
    assert_eq!(tx.metrics().queued_records(), 5);

    // A third batch does not fit: the send stays pending.
    let blocked = tokio::time::timeout(Duration::from_millis(50), tx.send(records(5..6))).await;
    assert!(blocked.is_err(), "send should wait while two batches are queued");

    // Receiving one batch makes room.
    assert_eq!(rx.recv().await.unwrap(), records(0..3));
    tokio::time::timeout(Duration::from_secs(5), tx.send(records(5..6)))
        .await
        .expect("send should complete once there is room")
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), records(3..5));
    assert_eq!(rx.recv().await.unwrap(), records(5..6));
}

#[tokio::test]
async fn a_send_cancelled_while_waiting_is_not_counted() {
    let (tx, _rx) = local_channel::<u32>(1);
    tx.send(records(0..3)).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(20), tx.send(records(3..5))).await;
    assert!(blocked.is_err());
    let m = tx.metrics();
    assert_eq!((m.queued_records(), m.peak_queued_records(), m.records_sent(), m.batches_sent()), (3, 3, 3, 1));
}

#[tokio::test]
async fn metrics_track_queued_and_peak() {
    let (tx, mut rx) = local_channel::<u32>(4);
    let mut batch = records(0..3);
    batch.push(Element::Watermark(2));
    tx.send(batch).await.unwrap();
    tx.send(records(3..5)).await.unwrap();
    let m = rx.metrics().clone();
    assert!(Arc::ptr_eq(&m, tx.metrics()));
    assert_eq!(m.queued_records(), 5);
    assert_eq!(m.peak_queued_records(), 5);
    assert_eq!(m.records_sent(), 5);
    assert_eq!(m.batches_sent(), 2);
    rx.recv().await.unwrap();
    assert_eq!(m.queued_records(), 2);
    tx.send(records(5..6)).await.unwrap();
    assert_eq!(m.queued_records(), 3);
    assert_eq!(m.peak_queued_records(), 5);
    rx.recv().await.unwrap();
    rx.recv().await.unwrap();
    assert_eq!(m.queued_records(), 0);
    assert_eq!(m.records_sent(), 6);
    assert_eq!(m.batches_sent(), 3);
}

#[tokio::test]
async fn send_fails_when_the_receiver_is_gone() {
    let (tx, rx) = local_channel::<u32>(1);
    drop(rx);
    assert!(tx.is_closed());
    assert!(matches!(tx.send(records(0..2)).await, Err(DataplaneError::ChannelClosed)));
    assert_eq!(tx.metrics().queued_records(), 0);
    assert_eq!(tx.metrics().records_sent(), 0);
}

/// A waker that remembers it was woken.
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Flag {
    fn new() -> (std::sync::Arc<Flag>, std::task::Waker) {
        let flag = std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), std::task::Waker::from(flag))
    }

    fn woken(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn blocked_send_fails_when_the_receiver_goes_away() {
    let (tx, rx) = local_channel::<u32>(1);
    tx.send(records(0..1)).await.unwrap();
    let (flag, waker) = Flag::new();
    let mut send = std::pin::pin!(tx.send(records(1..2)));
    assert!(send.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "the channel is full");
    drop(rx);
    assert!(flag.woken(), "the blocked sender is woken when the receiver goes");
    let result = tokio::time::timeout(Duration::from_secs(5), send).await.unwrap();
    assert!(matches!(result, Err(DataplaneError::ChannelClosed)));
}

#[tokio::test]
async fn receiver_drains_before_reporting_the_end() {
    let (tx, mut rx) = local_channel::<u32>(2);
    tx.send(records(0..1)).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv().await, Some(records(0..1)));
    assert_eq!(rx.recv().await, None);
}

#[tokio::test]
async fn gate_alternates_between_full_channels() {
    let (tx0, rx0) = local_channel::<u32>(4);
    let (tx1, rx1) = local_channel::<u32>(4);
    for i in 0..4 {
        tx0.send(records(i..i + 1)).await.unwrap();
        tx1.send(records(100 + i..101 + i)).await.unwrap();
    }
    let mut gate = InputGate::new(vec![rx0, rx1]);
    assert_eq!(gate.num_channels(), 2);
    let order: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(gate.next().await.unwrap().0);
        }
        v
    };
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1]);
}

#[tokio::test]
async fn gate_keeps_per_channel_order() {
    let (tx0, rx0) = local_channel::<u32>(8);
    let (tx1, rx1) = local_channel::<u32>(8);
    for i in 0..5 {
        tx0.send(records(i..i + 1)).await.unwrap();
    }
    tx1.send(records(50..51)).await.unwrap();
    drop((tx0, tx1));
    let mut gate = InputGate::new(vec![rx0, rx1]);
    let mut from0 = Vec::new();
    while let Some((ch, batch)) = gate.next().await {
        if ch == 0 {
            from0.extend(batch);
        }
    }
    assert_eq!(from0, records(0..5));
}

#[tokio::test]
async fn gate_skips_closed_channels_and_ends_when_all_are_closed() {
    let (tx0, rx0) = local_channel::<u32>(2);
    let (tx1, rx1) = local_channel::<u32>(2);
    let mut gate = InputGate::new(vec![rx0, rx1]);
    drop(tx0);
    tx1.send(records(0..1)).await.unwrap();
    assert_eq!(gate.next().await, Some((1, records(0..1))));
    assert!(gate.is_closed(0));
    assert_eq!(gate.num_open(), 1);
    assert!(gate.poll_next(&mut noop_cx()).is_pending());
    tx1.send(records(1..2)).await.unwrap();
    assert_eq!(gate.next().await, Some((1, records(1..2))));
    drop(tx1);
    assert_eq!(gate.next().await, None);
    assert_eq!(gate.num_open(), 0);
    assert!(gate.poll_next(&mut noop_cx()).is_ready());
}

#[test]
fn gate_without_channels_is_finished() {
    let mut gate = InputGate::<u32>::new(Vec::new());
    assert_eq!(gate.poll_next(&mut noop_cx()), Poll::Ready(None));
}

#[tokio::test]
async fn gate_skips_blocked_channels() {
    let (tx0, rx0) = local_channel::<u32>(4);
    let (tx1, rx1) = local_channel::<u32>(4);
    tx0.send(records(0..1)).await.unwrap();
    tx0.send(records(1..2)).await.unwrap();
    tx1.send(records(10..11)).await.unwrap();
    let mut gate = InputGate::new(vec![rx0, rx1]);
    gate.block(0);
    assert!(gate.is_blocked(0) && !gate.is_blocked(1));
    assert_eq!(gate.next().await, Some((1, records(10..11))));
    // Only the blocked channel has data.
    assert!(gate.poll_next(&mut noop_cx()).is_pending());
    gate.unblock_all();
    assert!(!gate.is_blocked(0));
    assert_eq!(gate.next().await, Some((0, records(0..1))));
    assert_eq!(gate.next().await, Some((0, records(1..2))));
}

#[tokio::test]
async fn gate_wakes_when_a_later_channel_gets_data() {
    let (_tx0, rx0) = local_channel::<u32>(1);
    let (tx1, rx1) = local_channel::<u32>(1);
    let mut gate = InputGate::new(vec![rx0, rx1]);
    let (flag, waker) = Flag::new();
    let mut next = std::pin::pin!(gate.next());
    assert!(next.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "no channel has data");
    tx1.send(records(7..8)).await.unwrap();
    assert!(flag.woken(), "data on channel 1 wakes the reader waiting on the gate");
    let got = tokio::time::timeout(Duration::from_secs(5), next).await.unwrap();
    assert_eq!(got, Some((1, records(7..8))));
}

#[tokio::test]
async fn gate_exposes_metrics_per_channel() {
    let (tx0, rx0) = local_channel::<u32>(2);
    let (_tx1, rx1) = local_channel::<u32>(2);
    tx0.send(records(0..3)).await.unwrap();
    let gate = InputGate::new(vec![rx0, rx1]);
    let m = gate.metrics();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].queued_records(), 3);
    assert_eq!(m[1].queued_records(), 0);
}
