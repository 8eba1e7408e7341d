use std::time::Duration;

use super::*;
use crate::net::ClusterCa;
use crate::net::NetConfig;
use crate::net::testing::{Pair, eventually, node, pair, within};
use crate::{Batch, Element, MAX_WATERMARK, encode_frame};

type Record = (u64, String);

const RECORDS_PER_BATCH: u64 = 100;

fn id(job: u128, producer: u32) -> ChannelId {
    ChannelId { job, attempt: 1, edge: 2, producer, consumer: 0 }
}

/// Batch `n` of a test stream: records `n * 100 ..`, each timestamped with its number.
fn batch(n: u64) -> Batch<Record> {
    (n * RECORDS_PER_BATCH..(n + 1) * RECORDS_PER_BATCH)
        .map(|i| Element::Record((i, format!("record {i}")), i as i64))
        .collect()
}

/// Two connected nodes, `b` serving the data streams `a` opens.
async fn shuffles(config: NetConfig) -> (Pair, Arc<NetShuffle>, Arc<NetShuffle>) {
    let nodes = pair(config).await;
    let (a, b) = (NetShuffle::new(nodes.a.clone()), NetShuffle::new(nodes.b.clone()));
    b.serve_connection(nodes.b_from_a.clone());
    (nodes, a, b)
}

/// Reads `rx` to its end; checks the records are numbered 0, 1, 2, … and returns every
/// element that is not a record.
async fn read_in_order(mut rx: BatchReceiver<Record>) -> (u64, Vec<Element<Record>>) {
    let (mut records, mut others) = (0, Vec::new());
    while let Some(batch) = rx.recv().await {
        for element in batch {
            match element {
                Element::Record((i, text), ts) => {
                    assert_eq!((i, ts), (records, records as i64), "out of order");
                    assert_eq!(text, format!("record {i}"));
                    records += 1;
                }
                other => others.push(other),
            }
        }
    }
    (records, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_arrive_in_order_with_the_end_of_data() {
    let (nodes, a, b) = shuffles(NetConfig::default()).await;
    let channel = id(1, 0);
    let rx = b.remote_receiver::<Record>(channel, 8);
    let tx = a.remote_sender::<Record>(channel, nodes.b.local_addr(), 8);
    let producer = tokio::spawn(async move {
        for n in 0..2_000 {
            tx.send(batch(n)).await.unwrap();
        }
        tx.send(vec![Element::Watermark(MAX_WATERMARK), Element::EndOfData]).await.unwrap();
    });
    let (records, others) = within("all batches", read_in_order(rx)).await;
    assert_eq!(records, 2_000 * RECORDS_PER_BATCH);
    assert_eq!(others, [Element::Watermark(MAX_WATERMARK), Element::EndOfData]);
    producer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_arrives_first_waits_for_its_receiver() {
    let (nodes, a, b) = shuffles(NetConfig::default()).await;
    let channel = id(1, 3);
    let tx = a.remote_sender::<Record>(channel, nodes.b.local_addr(), 4);
    tx.send(batch(0)).await.unwrap();
    eventually("the stream is parked", || b.parked() == 1).await;

    let rx = b.remote_receiver::<Record>(channel, 4);
    assert_eq!(b.parked(), 0);
    tx.send(batch(1)).await.unwrap();
    tx.send(vec![Element::EndOfData]).await.unwrap();
    drop(tx);
    let (records, others) = within("all batches", read_in_order(rx)).await;
    assert_eq!((records, others), (2 * RECORDS_PER_BATCH, vec![Element::EndOfData]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_a_job_drops_its_parked_streams_and_waiting_receivers() {
    let (nodes, a, b) = shuffles(NetConfig::default()).await;
    let tx = a.remote_sender::<Record>(id(7, 0), nodes.b.local_addr(), 1);
    let mut waiting = b.remote_receiver::<Record>(id(7, 1), 1);
    let mut other_job = b.remote_receiver::<Record>(id(8, 0), 1);
    tx.send(batch(0)).await.unwrap();
    eventually("the stream is parked", || b.parked() == 1).await;

    b.release_job(7, u32::MAX);
    assert_eq!(b.parked(), 0);
    assert_eq!(within("waiting receiver", waiting.recv()).await, None);
    // The producer is told to stop: its channel closes.
    within("producer closed", async { while tx.send(batch(1)).await.is_ok() {} }).await;
    // Other jobs keep their registrations.
    let other_tx = a.remote_sender::<Record>(id(8, 0), nodes.b.local_addr(), 1);
    other_tx.send(batch(0)).await.unwrap();
    assert_eq!(within("other job", other_job.recv()).await, Some(batch(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_holds_the_producer_back() {
    const CAPACITY: usize = 2;
    const WINDOW: u64 = 64 * 1024;
    let config = NetConfig { stream_window_bytes: WINDOW, ..NetConfig::default() };
    let (nodes, a, b) = shuffles(config).await;
    let channel = id(1, 0);
    let rx = b.remote_receiver::<Record>(channel, CAPACITY);
    let tx = a.remote_sender::<Record>(channel, nodes.b.local_addr(), CAPACITY);

    // Nobody reads `rx`: sends succeed until the windows and queues on the way are full.
    let mut sent = 0;
    let mut blocked = loop {
        let mut send = Box::pin(tx.send(batch(sent)));
        match tokio::time::timeout(Duration::from_millis(500), &mut send).await {
            Ok(sent_ok) => {
                sent_ok.unwrap();
                sent += 1;
                assert!(sent < 1_000, "the producer was never held back");
            }
            Err(_) => break send,
        }
    };
    // What fits on the way: the stream window, plus whole batches in both local channels,
    // being decoded, being written, and one partial frame.
    let mut frame = Vec::new();
    encode_batch(&batch(sent), usize::MAX, &mut frame).unwrap();
    let in_flight = WINDOW as usize / frame.len() + 2 * CAPACITY + 3;
    assert!((sent as usize) <= in_flight, "{sent} batches of {} bytes were accepted", frame.len());
    let peak = tx.metrics().peak_queued_records();
    assert!(peak <= (CAPACITY as u64 + 1) * RECORDS_PER_BATCH, "{peak} records queued at the sender");

    let consumer = tokio::spawn(read_in_order(rx));
    within("the blocked send", &mut blocked).await.unwrap();
    drop(blocked);
    for n in sent + 1..sent + 50 {
        within("send", tx.send(batch(n))).await.unwrap();
    }
    drop(tx);
    let (records, others) = within("everything", consumer).await.unwrap();
    assert_eq!((records, others), ((sent + 50) * RECORDS_PER_BATCH, vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_frame_ends_the_channel() {
    let (nodes, _a, b) = shuffles(NetConfig::default()).await;
    let channel = id(1, 0);
    let mut rx = b.remote_receiver::<Record>(channel, 4);

    let mut raw = Vec::new();
    encode_message(&StreamHeader { channel }, 1024, &mut raw).unwrap();
    encode_batch(&batch(0), usize::MAX, &mut raw).unwrap();
    encode_frame(&[0xff; 40], 1024, &mut raw).unwrap();
    encode_batch(&batch(1), usize::MAX, &mut raw).unwrap();
    let mut stream = nodes.a_to_b.open_uni().await.unwrap();
    stream.write_all(&raw).await.unwrap();

    assert_eq!(within("the good batch", rx.recv()).await, Some(batch(0)));
    assert_eq!(within("the end", rx.recv()).await, None);
    assert_eq!(within("stopped", stream.stopped()).await, Ok(Some(STOP_FAILED)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_valid_header_is_stopped() {
    let (nodes, _a, b) = shuffles(NetConfig::default()).await;
    let mut raw = Vec::new();
    encode_message(&"not a header", 1024, &mut raw).unwrap();
    let mut stream = nodes.a_to_b.open_uni().await.unwrap();
    stream.write_all(&raw).await.unwrap();
    assert_eq!(within("stopped", stream.stopped()).await, Ok(Some(STOP_FAILED)));
    assert_eq!(b.parked(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_consumer_closes_the_producer() {
    let (nodes, a, b) = shuffles(NetConfig::default()).await;
    let channel = id(1, 0);
    drop(b.remote_receiver::<Record>(channel, 1));
    let tx = a.remote_sender::<Record>(channel, nodes.b.local_addr(), 1);
    within("producer closed", async { while tx.send(batch(0)).await.is_ok() {} }).await;
    assert!(matches!(tx.send(batch(0)).await, Err(DataplaneError::ChannelClosed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_closes_the_producer() {
    let (nodes, a, _b) = shuffles(NetConfig::default()).await;
    // A peer outside the cluster: the handshake fails.
    let impostor = node(&ClusterCa::generate("other").unwrap(), "impostor", NetConfig::default());
    let accepting = tokio::spawn({
        let impostor = impostor.clone();
        async move { while impostor.accept().await.is_some() {} }
    });
    let tx = a.remote_sender::<Record>(id(1, 0), impostor.local_addr(), 1);
    within("producer closed", async { while tx.send(batch(0)).await.is_ok() {} }).await;
    assert!(matches!(tx.send(batch(0)).await, Err(DataplaneError::ChannelClosed)));
    assert!(nodes.a.connect(impostor.local_addr()).await.is_err());
    accepting.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_fails_its_channels_and_the_next_channel_dials_again() {
    let (nodes, a, b) = shuffles(NetConfig::default()).await;
    // `b` serves whatever connections reach it after the cut.
    let accepting = tokio::spawn({
        let (endpoint, b) = (nodes.b.clone(), b.clone());
        async move {
            while let Some(incoming) = endpoint.accept().await {
                b.serve_connection(incoming.unwrap());
            }
        }
    });
    let mut rx = b.remote_receiver::<Record>(id(1, 0), 4);
    let tx = a.remote_sender::<Record>(id(1, 0), nodes.b.local_addr(), 4);
    tx.send(batch(0)).await.unwrap();
    assert_eq!(within("a batch before the cut", rx.recv()).await, Some(batch(0)));

    assert_eq!(a.cut_connections(), 1, "the one connection between the two");
    // Both ends fail: the consumer sees its input end without end-of-data, the producer's
    // channel closes.
    assert_eq!(within("the consumer's end", rx.recv()).await, None);
    within("producer closed", async { while tx.send(batch(1)).await.is_ok() {} }).await;
    let reason = within("closed", nodes.b_from_a.closed()).await;
    assert!(reason.to_string().contains("fault injection"), "{reason}");

    // A channel opened afterwards (the next attempt) gets a new connection.
    let next = ChannelId { attempt: 2, ..id(1, 0) };
    let mut rx = b.remote_receiver::<Record>(next, 4);
    let tx = a.remote_sender::<Record>(next, nodes.b.local_addr(), 4);
    tx.send(batch(0)).await.unwrap();
    tx.send(vec![Element::EndOfData]).await.unwrap();
    assert_eq!(within("a batch after the cut", rx.recv()).await, Some(batch(0)));
    assert_eq!(within("its end", rx.recv()).await, Some(vec![Element::EndOfData]));
    let now = within("the connection now", nodes.a.connect(nodes.b.local_addr())).await.unwrap();
    assert_ne!(now.stable_id(), nodes.a_to_b.stable_id(), "a new connection");
    accepting.abort();
}
