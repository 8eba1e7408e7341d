//! The input loop of a two-input operator against hand-fed channels of two types: the
//! watermark is the minimum of both inputs' (an idle one left out), and a barrier is aligned
//! across both, so a snapshot holds exactly the records before it on each input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_dataplane::{BatchConfig, CheckpointBarrier, Element, InputGate, Timestamp, local_channel};

use super::*;
use crate::base::ids::JobId;
use crate::base::link::Link;
use crate::base::metrics::TaskMetrics;
use crate::base::state::OperatorState;
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::TokioClock;
use crate::runtime::task::{TaskParts, run_input};

type Seen = Arc<Mutex<Vec<String>>>;

/// A two-input chain that writes down what reaches it.
struct Recorder(Seen);

impl Link<TwoInput<u32, String>> for Recorder {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, value: TwoInput<u32, String>, _ts: Timestamp, _io: &mut TaskIo) {
        let seen = match value {
            TwoInput::First(n) => format!("1:{n}"),
            TwoInput::Second(s) => format!("2:{s}"),
        };
        self.0.lock().unwrap().push(seen);
    }
    fn watermark(&mut self, wm: Timestamp, _io: &mut TaskIo) {
        self.0.lock().unwrap().push(format!("wm:{wm}"));
    }
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, _io: &mut TaskIo, _out: &mut Vec<OperatorState>) {
        self.0.lock().unwrap().push(format!("snapshot:{}", barrier.checkpoint_id));
    }
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
    fn end_input(&mut self, _drain: bool, _io: &mut TaskIo) {
        self.0.lock().unwrap().push("end".into());
    }
    fn close(&mut self, _io: &mut TaskIo) {}
}

async fn wait_for(seen: &Seen, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.lock().unwrap().iter().any(|s| s == what) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inputs_combine_watermarks_as_the_minimum_and_align_barriers_across_both() {
    let (first_tx, first_rx) = local_channel::<u32>(8);
    let (second_tx, second_rx) = local_channel::<String>(8);
    let gate = TwoInputGate::new(InputGate::new(vec![first_rx]), InputGate::new(vec![second_rx]));
    let info = SubtaskInfo {
        job_id: JobId(4),
        job_name: "two".into(),
        vertex: "co".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        attempt: 0,
    };
    let io = TaskIo::new(Arc::new(info), Arc::new(TokioClock::new()), Arc::new(TaskMetrics::default()));
    let (_control, control) = tokio::sync::mpsc::unbounded_channel();
    let parts = TaskParts { io, outputs: Vec::new(), control, restore: None, checkpoints: None };
    let seen: Seen = Arc::default();
    let task = tokio::spawn(run_input(gate, Box::new(Recorder(seen.clone())), parts, BatchConfig::default()));

    // The first input is ahead: the operator's watermark waits for the second.
    first_tx.send(vec![Element::Record(1, 10), Element::Watermark(100)]).await.unwrap();
    wait_for(&seen, "1:1").await;
    second_tx.send(vec![Element::Record("a".into(), 20), Element::Watermark(50)]).await.unwrap();
    wait_for(&seen, "wm:50").await;
    second_tx.send(vec![Element::Watermark(200)]).await.unwrap();
    wait_for(&seen, "wm:100").await;

    // A barrier on the first input holds back what follows it until the second's arrives.
    fn barrier<T>() -> Element<T> {
        Element::Barrier(CheckpointBarrier::checkpoint(7, 0))
    }
    first_tx.send(vec![Element::Record(2, 110), barrier(), Element::Record(3, 120)]).await.unwrap();
    wait_for(&seen, "1:2").await;
    second_tx.send(vec![Element::Record("b".into(), 210), barrier()]).await.unwrap();
    wait_for(&seen, "snapshot:7").await;
    wait_for(&seen, "1:3").await;

    // An idle second input leaves the watermark to the first (which may pass the second's 200
    // just before).
    second_tx.send(vec![Element::Idle(true)]).await.unwrap();
    first_tx.send(vec![Element::Watermark(300)]).await.unwrap();
    wait_for(&seen, "wm:300").await;

    first_tx.send(vec![Element::EndOfData]).await.unwrap();
    second_tx.send(vec![Element::Idle(false), Element::Record("c".into(), 310), Element::EndOfData]).await.unwrap();
    drop((first_tx, second_tx));
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the subtask ended").unwrap().unwrap();

    let seen = seen.lock().unwrap().clone();
    let position = |what: &str| seen.iter().position(|s| s == what).unwrap_or_else(|| panic!("{what}: {seen:?}"));
    // 200 (the second input's) may be emitted only once the first input passed it, just before
    // the second went idle.
    let above_first = seen.iter().position(|s| s == "wm:200").unwrap_or(usize::MAX);
    assert!(above_first > position("1:3"), "never above the first input's: {seen:?}");
    assert!(position("wm:50") < position("wm:100"));
    let snapshot = position("snapshot:7");
    for before in ["1:1", "2:a", "1:2", "2:b"] {
        assert!(position(before) < snapshot, "{before} is in the snapshot: {seen:?}");
    }
    assert!(position("1:3") > snapshot, "record 3 follows the barrier on its input: {seen:?}");
    assert!(position("2:c") < position("end"), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("end"));
}
