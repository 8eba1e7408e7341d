//! Barrier alignment: a channel that delivered the barrier is not read past it until every
//! channel has, so the snapshot holds exactly the records before the barrier.

use std::sync::{Arc, Mutex};

use weir_dataplane::{CheckpointBarrier, Element, InputGate, local_channel};

use super::*;
use crate::checkpoint::storage::CheckpointStorage;
use crate::checkpoint::{CheckpointIo, OperatorState};
use crate::job::JobId;
use crate::time::TokioClock;

/// Per snapshot: the checkpoint and the records seen before it.
type Snapshots = Arc<Mutex<Vec<(u64, Vec<u32>)>>>;

/// A chain that records what reaches it, and what it had seen when each snapshot was taken.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<u32>>>,
    snapshots: Snapshots,
}

impl Link<u32> for Recorder {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, value: u32, _ts: Timestamp, _io: &mut TaskIo) {
        self.seen.lock().unwrap().push(value);
    }
    fn watermark(&mut self, _wm: Timestamp, _io: &mut TaskIo) {}
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, barrier: CheckpointBarrier, _io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        let seen = self.seen.lock().unwrap().clone();
        self.snapshots.lock().unwrap().push((barrier.checkpoint_id, seen));
        out.push(OperatorState { node: 0, ..Default::default() });
    }
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

fn info() -> Arc<SubtaskInfo> {
    Arc::new(SubtaskInfo {
        job_id: JobId(3),
        job_name: "align".into(),
        vertex: "v".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        attempt: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_a_barrier_wait_for_the_slower_input() {
    let barrier = CheckpointBarrier { checkpoint_id: 1, timestamp_ms: 0 };
    let (fast_tx, fast_rx) = local_channel::<u32>(8);
    let (slow_tx, slow_rx) = local_channel::<u32>(8);
    let gate = InputGate::new(vec![fast_rx, slow_rx]);
    let recorder = Recorder::default();
    let dir = std::env::temp_dir().join(format!("weir-align-{}", std::process::id()));
    let (acks, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut io = TaskIo::new(info(), Arc::new(TokioClock::new()), Arc::new(TaskMetrics::default()));
    io.checkpoints = Some(CheckpointIo { storage: CheckpointStorage::new(&dir, JobId(3)), vertex: 0, acks });
    let (_control_tx, control) = tokio::sync::mpsc::unbounded_channel();
    let parts = TaskParts { io, outputs: Vec::new(), control };
    let task = tokio::spawn(run_input(gate, Box::new(recorder.clone()), parts, BatchConfig::default()));

    // The fast input delivers its barrier, then more records, well before the slow one.
    fast_tx.send(vec![Element::Record(1, 0), Element::Barrier(barrier), Element::Record(3, 0)]).await.unwrap();
    fast_tx.send(vec![Element::Record(5, 0), Element::EndOfData]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !recorder.seen.lock().unwrap().contains(&1) {
        assert!(tokio::time::Instant::now() < deadline, "record 1 never arrived");
        tokio::task::yield_now().await;
    }
    assert_eq!(*recorder.seen.lock().unwrap(), vec![1], "nothing after the fast input's barrier is read");
    slow_tx.send(vec![Element::Record(2, 0), Element::Record(4, 0), Element::Barrier(barrier)]).await.unwrap();
    slow_tx.send(vec![Element::Record(6, 0), Element::EndOfData]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();

    let snapshots = recorder.snapshots.lock().unwrap().clone();
    assert_eq!(snapshots.len(), 1);
    let (id, mut in_snapshot) = snapshots[0].clone();
    in_snapshot.sort();
    assert_eq!((id, in_snapshot), (1, vec![1, 2, 4]), "exactly the records before the barrier on each input");
    let mut all = recorder.seen.lock().unwrap().clone();
    all.sort();
    assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
    let ack = tokio::time::timeout(Duration::from_secs(10), ack_rx.recv()).await.unwrap().unwrap();
    assert_eq!(ack.checkpoint, 1);
    assert!(ack.handle.is_ok(), "{:?}", ack.handle);
    let _ = std::fs::remove_dir_all(&dir);
}
