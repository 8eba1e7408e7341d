//! Async I/O on the operator harness: order, capacity, timeouts, and the in-flight inputs kept
//! by a checkpoint and started again on restore.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::prelude::*;

/// Answers `n` with `[n, n * 10]` after `delay(n)` ms, counting the requests running at once.
#[derive(Clone)]
struct Delayed {
    delay: fn(u64) -> u64,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Delayed {
    fn new(delay: fn(u64) -> u64) -> Self {
        Delayed { delay, running: Arc::default(), most: Arc::default() }
    }
}

impl AsyncFunction for Delayed {
    type In = u64;
    type Out = u64;
    fn invoke(&self, n: u64) -> impl Future<Output = Result<Vec<u64>>> + Send + 'static {
        let (running, most, delay) = (self.running.clone(), self.most.clone(), (self.delay)(n));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![n, n * 10])
        }
    }
}

#[test]
fn ordered_results_keep_the_input_order_and_timestamps_and_the_capacity_bounds_requests() {
    let f = Delayed::new(|n| 40 - 4 * n);
    let most = f.most.clone();
    let mut h = HarnessConfig::new()
        .build(move |input: DataStream<u64>| input.async_wait_ordered("lookup", f.clone(), Duration::from_secs(10), 3))
        .unwrap();
    for n in 0..8 {
        h.process_at(n, 100 + n as i64).unwrap();
    }
    h.end_input().unwrap();
    let expected: Vec<(u64, Option<i64>)> =
        (0..8).flat_map(|n| [(n, Some(100 + n as i64)), (n * 10, Some(100 + n as i64))]).collect();
    assert_eq!(h.output_with_timestamps(), expected);
    assert_eq!(most.load(Ordering::SeqCst), 3, "3 requests at once, never more");
}

/// Unordered: a result goes as soon as its request completes, but not past a watermark: the
/// fast request after the watermark waits for the slow one before it.
#[test]
fn unordered_results_go_as_they_complete_but_never_across_a_watermark() {
    let f = Delayed::new(|n| if n == 0 { 80 } else { 1 });
    let mut h = HarnessConfig::new()
        .build(move |input: DataStream<u64>| {
            input.async_wait_unordered("lookup", f.clone(), Duration::from_secs(10), 5)
        })
        .unwrap();
    h.process_at(0, 10).unwrap();
    h.process_at(1, 20).unwrap();
    h.process_watermark(500).unwrap();
    h.process_at(2, 600).unwrap();
    h.end_input().unwrap();
    assert_eq!(h.output(), [1, 10, 0, 0, 2, 20]);
}

/// Answers after 10 s, or from its fallback on timeout.
struct Stuck {
    fallback: bool,
}

impl AsyncFunction for Stuck {
    type In = u64;
    type Out = u64;
    #[allow(clippy::manual_async_fn, reason = "the request must not borrow the function ('static)")]
    fn invoke(&self, n: u64) -> impl Future<Output = Result<Vec<u64>>> + Send + 'static {
        async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(vec![n])
        }
    }
    fn timeout(&self, n: &u64) -> Result<Vec<u64>> {
        if self.fallback { Ok(vec![n + 1000]) } else { Err(WeirError::user(format!("lookup of {n} timed out"))) }
    }
}

#[test]
fn a_request_past_its_timeout_fails_the_job_or_gives_the_fallback() {
    let run = |fallback| {
        let mut h = HarnessConfig::new()
            .build(move |input: DataStream<u64>| {
                input.async_wait_ordered("lookup", Stuck { fallback }, Duration::from_millis(20), 2)
            })
            .unwrap();
        h.process(7).unwrap();
        h.end_input().map(|()| h.output())
    };
    assert_eq!(run(true).unwrap(), [1007]);
    let err = run(false).unwrap_err().to_string();
    assert!(err.contains("operator 'lookup' failed") && err.contains("lookup of 7 timed out"), "{err}");
}

/// The inputs in flight at a checkpoint are kept (a split list) and their requests started
/// again on restore, at the same or another parallelism: every input's results come out once.
#[test]
fn in_flight_inputs_are_checkpointed_and_requested_again_on_restore() {
    let stuck = |input: DataStream<u64>| {
        input.async_wait_ordered("lookup", Stuck { fallback: false }, Duration::from_secs(60), 10)
    };
    let mut snapshots = Vec::new();
    for (index, inputs) in [vec![1, 2, 3], vec![4, 5]].into_iter().enumerate() {
        let mut h = HarnessConfig::new().subtask(index, 2).build(stuck).unwrap();
        for n in inputs {
            h.process_at(n, n as i64).unwrap();
        }
        h.process_watermark(3).unwrap();
        snapshots.push(h.snapshot().unwrap());
        assert!(h.output().is_empty());
    }
    let fast = |input: DataStream<u64>| {
        input.async_wait_ordered("lookup", Delayed::new(|_| 1), Duration::from_secs(10), 10).map("first", |n: u64| n)
    };
    let mut all = Vec::new();
    for index in 0..3 {
        let mut h = HarnessConfig::new().subtask(index, 3).restore(snapshots.clone()).build(fast).unwrap();
        h.end_input().unwrap();
        all.extend(h.output_with_timestamps());
    }
    all.sort();
    let expected: Vec<(u64, Option<i64>)> = [1, 2, 3, 4, 5]
        .iter()
        .flat_map(|&n| [(n, Some(n as i64)), (n * 10, Some(n as i64))])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(all, expected);
}
