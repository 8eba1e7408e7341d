//! The input loop against hand-fed channels: barrier alignment (a channel that delivered the
//! barrier is not read past it until every channel has, so the snapshot holds exactly the
//! records before the barrier), and the end of a subtask (it stays after its input ended
//! until the job's last checkpoint; a stop-with-savepoint ends it without draining).

use std::sync::{Arc, Mutex};

use weir_dataplane::{BarrierKind, BatchSender, CheckpointBarrier, Element, InputGate, StopMode, local_channel};

use super::*;
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetrics;
use crate::base::state::{OperatorState, RestoredState};
use crate::base::subtask::SubtaskInfo;
use crate::base::time::TokioClock;
use crate::runtime::checkpoint::storage::CheckpointStorage;
use crate::runtime::checkpoint::{CheckpointEvent, CheckpointIo};

const DEADLINE: Duration = Duration::from_secs(10);

/// What reached a chain, and when.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Record(u32),
    Watermark(Timestamp),
    /// A snapshot, with the records seen before it.
    Snapshot(u64, Vec<u32>),
    Complete(u64),
    EndInput {
        drain: bool,
    },
    Close,
}

/// A chain that records what reaches it.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Each record with the subtask's watermark when it arrived (a late record is at or below).
    watermark_at: Arc<Mutex<Vec<(u32, Timestamp)>>>,
    /// The size of the state each snapshot holds (1 byte when 0).
    state_bytes: usize,
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<u32> {
        self.seen().iter().filter_map(|s| if let Seen::Record(r) = s { Some(*r) } else { None }).collect()
    }

    fn push(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }

    async fn wait_for(&self, what: &str, condition: impl Fn(&[Seen]) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !condition(&self.seen()) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {:?}", self.seen());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Link<u32> for Recorder {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, value: u32, _ts: Timestamp, io: &mut TaskIo) {
        self.push(Seen::Record(value));
        self.watermark_at.lock().unwrap().push((value, io.watermark));
    }
    fn watermark(&mut self, wm: Timestamp, _io: &mut TaskIo) {
        self.push(Seen::Watermark(wm));
    }
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, drain: bool, _io: &mut TaskIo) {
        self.push(Seen::EndInput { drain });
    }
    fn close(&mut self, _io: &mut TaskIo) {
        self.push(Seen::Close);
    }
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, _io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.push(Seen::Snapshot(barrier.checkpoint_id, self.records()));
        out.push(OperatorState { node: 0, operator: Some(vec![1; self.state_bytes.max(1)]), ..Default::default() });
    }
    fn checkpoint_complete(&mut self, id: u64, _io: &mut TaskIo) {
        self.push(Seen::Complete(id));
    }
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

/// A subtask reading `inputs` channels into a [`Recorder`], with periodic checkpoints into
/// `dir` if `periodic`.
struct Harness {
    recorder: Recorder,
    inputs: Vec<BatchSender<u32>>,
    control: tokio::sync::mpsc::UnboundedSender<TaskControl>,
    events: tokio::sync::mpsc::UnboundedReceiver<CheckpointEvent>,
    task: tokio::task::JoinHandle<Result<()>>,
    dir: std::path::PathBuf,
    /// It reported the end of its input.
    input_ended: bool,
}

impl Harness {
    fn start(label: &str, inputs: usize, periodic: bool) -> Harness {
        Harness::start_from(label, inputs, periodic, None)
    }

    /// As [`start`](Self::start), restored from `restored`.
    fn start_from(label: &str, inputs: usize, periodic: bool, restored: Option<RestoredState>) -> Harness {
        Harness::start_with(label, inputs, periodic, restored, Recorder::default())
    }

    /// As [`start_from`](Self::start_from), with this recorder as the chain.
    fn start_with(
        label: &str,
        inputs: usize,
        periodic: bool,
        restored: Option<RestoredState>,
        recorder: Recorder,
    ) -> Harness {
        let dir = std::env::temp_dir().join(format!("weir-task-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..inputs).map(|_| local_channel::<u32>(8)).unzip();
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut io = TaskIo::new(info(), Arc::new(TokioClock::new()), Arc::new(TaskMetrics::default()));
        let storage = periodic.then(|| CheckpointStorage::new(&dir, JobId(3)));
        io.checkpointing = storage.is_some();
        let checkpoints = Some(CheckpointIo { storage, vertex: 0, events: events_tx });
        io.restored = restored.map(Arc::new);
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let parts = TaskParts { io, outputs: Vec::new(), control: control_rx, restore: None, checkpoints };
        let gate = InputGate::new(receivers);
        let task = tokio::spawn(run_input(gate, Box::new(recorder.clone()), parts, BatchConfig::default()));
        Harness { recorder, inputs: senders, control, events, task, dir, input_ended: false }
    }

    async fn send(&self, input: usize, batch: Vec<Element<u32>>) {
        self.inputs[input].send(batch).await.unwrap();
    }

    fn control(&self, control: TaskControl) {
        self.control.send(control).unwrap();
    }

    async fn event(&mut self) -> CheckpointEvent {
        let event =
            tokio::time::timeout(DEADLINE, self.events.recv()).await.expect("an event in time").expect("an event");
        self.input_ended |= matches!(event, CheckpointEvent::InputEnded);
        event
    }

    /// The snapshot the subtask stored for `checkpoint`.
    async fn ack(&mut self, checkpoint: u64) -> TaskSnapshot {
        loop {
            if let CheckpointEvent::Ack(ack) = self.event().await {
                assert_eq!(ack.checkpoint, checkpoint);
                let handle = ack.handle.expect("stored");
                let dir = match self.savepoint(checkpoint) {
                    BarrierKind::Savepoint { target, .. } => weir_state::storage::Location::parse(&target).unwrap(),
                    BarrierKind::Checkpoint => CheckpointStorage::new(&self.dir, JobId(3)).checkpoint_dir(checkpoint),
                };
                return crate::runtime::checkpoint::storage::read_task_in(&dir, checkpoint, &handle).unwrap();
            }
        }
    }

    /// Checkpoints from 100 on are savepoints (into the harness's directory).
    fn savepoint(&self, checkpoint: u64) -> BarrierKind {
        if checkpoint < 100 {
            return BarrierKind::Checkpoint;
        }
        let target = self.dir.join(format!("savepoint-{checkpoint}")).to_str().unwrap().to_owned();
        BarrierKind::Savepoint { target, stop: None }
    }

    /// Checkpoint `checkpoint`'s barrier; its directory is made, as the coordinator makes it
    /// when it triggers.
    fn barrier(&self, checkpoint: u64, stop: Option<StopMode>) -> Element<u32> {
        let kind = match self.savepoint(checkpoint) {
            BarrierKind::Savepoint { target, .. } => {
                std::fs::create_dir_all(&target).unwrap();
                BarrierKind::Savepoint { target, stop }
            }
            kind => {
                CheckpointStorage::new(&self.dir, JobId(3)).begin(checkpoint).unwrap();
                kind
            }
        };
        Element::Barrier(CheckpointBarrier { checkpoint_id: checkpoint, timestamp_ms: 0, kind })
    }

    /// Closes the inputs and waits for the subtask to end.
    async fn end(mut self) -> Recorder {
        self.inputs.clear();
        tokio::time::timeout(DEADLINE, self.task).await.expect("the subtask ended").unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.recorder
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_after_a_barrier_wait_for_the_slower_input() {
    let mut h = Harness::start("align", 2, false);
    // The fast input delivers its barrier, then more records, well before the slow one.
    h.send(0, vec![Element::Record(1, 0), h.barrier(100, None), Element::Record(3, 0)]).await;
    h.send(0, vec![Element::Record(5, 0), Element::EndOfData]).await;
    // (The snapshot below holds exactly the records before the barrier on each input: what
    // follows input 0's barrier was not read before input 1's arrived.)
    h.recorder.wait_for("record 1", |s| s.contains(&Seen::Record(1))).await;
    h.send(1, vec![Element::Record(2, 0), Element::Record(4, 0), h.barrier(100, None)]).await;
    h.send(1, vec![Element::Record(6, 0), Element::EndOfData]).await;
    let snapshot = h.ack(100).await;
    assert!(!snapshot.finished);
    let recorder = h.end().await;

    let seen = recorder.seen();
    let snapshots: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Snapshot(..))).collect();
    assert_eq!(snapshots.len(), 1);
    let Seen::Snapshot(id, mut in_snapshot) = snapshots[0].clone() else { unreachable!() };
    in_snapshot.sort();
    assert_eq!((id, in_snapshot), (100, vec![1, 2, 4]), "exactly the records before the barrier on each input");
    let mut all = recorder.records();
    all.sort();
    assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
    // Without periodic checkpoints it ends with its input, after draining.
    assert_eq!(&seen[seen.len() - 2..], &[Seen::EndInput { drain: true }, Seen::Close]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_subtask_takes_part_in_checkpoints_until_the_last_one() {
    let mut h = Harness::start("linger", 2, true);
    h.send(0, vec![Element::Record(1, 0), Element::EndOfData]).await;
    h.send(1, vec![Element::Record(2, 0), h.barrier(1, None), Element::EndOfData]).await;
    // Input 0 ended, so checkpoint 1 needs no barrier from it.
    assert!(!h.ack(1).await.finished);
    h.recorder.wait_for("the end of input", |s| s.contains(&Seen::EndInput { drain: true })).await;
    // Input 0's barrier of checkpoint 1 comes late: taken already.
    h.send(0, vec![h.barrier(1, None)]).await;

    h.control(TaskControl::CheckpointComplete { checkpoint: 1, commit: true, end: false });
    h.send(0, vec![h.barrier(2, None)]).await;
    h.send(1, vec![h.barrier(2, None)]).await;
    assert!(h.ack(2).await.finished, "taken after the input ended");
    assert!(h.input_ended, "the coordinator heard that the input ended");
    h.control(TaskControl::CheckpointComplete { checkpoint: 2, commit: true, end: false });
    h.recorder.wait_for("checkpoint 2's completion", |s| s.contains(&Seen::Complete(2))).await;

    // An intermediate checkpoint does not end it: it takes part in the next, the final one,
    // where the barrier of a channel that ended counts as aligned.
    h.send(1, vec![h.barrier(3, None)]).await;
    assert!(h.ack(3).await.finished);
    h.control(TaskControl::CheckpointComplete { checkpoint: 3, commit: true, end: true });
    h.recorder.wait_for("checkpoint 3's completion", |s| s.contains(&Seen::Complete(3))).await;
    h.send(0, vec![h.barrier(3, None)]).await;
    let recorder = h.end().await;
    let seen = recorder.seen();
    let snapshots = seen.iter().filter(|s| matches!(s, Seen::Snapshot(..))).count();
    assert_eq!(snapshots, 3, "each checkpoint once: {seen:?}");
    assert_eq!(seen.iter().filter(|s| **s == Seen::EndInput { drain: true }).count(), 1);
    assert_eq!(seen.last(), Some(&Seen::Close));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_savepoint_ends_without_draining_and_a_failed_one_resumes() {
    let mut h = Harness::start("stop", 2, true);
    h.send(0, vec![Element::Record(1, 0), Element::Watermark(10), h.barrier(100, Some(StopMode::NoDrain))]).await;
    h.send(1, vec![Element::Watermark(50), h.barrier(100, Some(StopMode::NoDrain))]).await;
    h.ack(100).await;
    // The savepoint failed: the subtask runs on.
    h.control(TaskControl::CheckpointAborted(100));
    h.send(0, vec![Element::Record(2, 0), h.barrier(101, Some(StopMode::NoDrain))]).await;
    h.send(1, vec![h.barrier(101, Some(StopMode::NoDrain))]).await;
    assert_eq!(h.ack(101).await.operators.len(), 1);
    assert_eq!(h.recorder.records(), vec![1, 2]);
    // One producer stops first: that its input ended does not move the watermark to 50
    // (which would fire windows the savepoint holds).
    h.send(0, vec![Element::EndOfData]).await;
    h.control(TaskControl::CheckpointComplete { checkpoint: 101, commit: true, end: true });
    h.recorder.wait_for("the end without draining", |s| s.contains(&Seen::EndInput { drain: false })).await;
    h.send(1, vec![Element::EndOfData]).await;
    let seen = h.end().await.seen();
    let watermarks: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Watermark(_))).collect();
    assert_eq!(watermarks, vec![&Seen::Watermark(10)], "{seen:?}");
    assert_eq!(
        &seen[seen.len() - 3..],
        &[Seen::Complete(101), Seen::EndInput { drain: false }, Seen::Close],
        "committed, ended without finishing its operators"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_behind_every_inputs_end_is_taken_after_the_chain_ended() {
    let mut h = Harness::start("final", 2, true);
    // Input 0's barrier arrives first; input 1's end completes the alignment.
    h.send(0, vec![Element::Record(1, 0), Element::EndOfData, h.barrier(1, None)]).await;
    h.recorder.wait_for("record 1", |s| s.contains(&Seen::Record(1))).await;
    h.send(1, vec![Element::Record(2, 0), Element::EndOfData, h.barrier(1, None)]).await;
    assert!(h.ack(1).await.finished, "the snapshot holds the state after the end of input");
    let seen = h.recorder.seen();
    let end = seen.iter().position(|s| *s == Seen::EndInput { drain: true }).expect("ended");
    let snapshot = seen.iter().position(|s| matches!(s, Seen::Snapshot(1, _))).expect("snapshot");
    assert!(end < snapshot, "what ending the chain emits precedes the barrier: {seen:?}");
    h.control(TaskControl::CheckpointComplete { checkpoint: 1, commit: true, end: true });
    h.end().await;
}

/// Defect: an abort cleared the alignment but not the newest checkpoint seen, so the aborted
/// checkpoint's barrier arriving later on another channel started a new alignment and blocked
/// that channel until the next checkpoint (exactly when backpressure made it time out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_barriers_of_an_aborted_checkpoint_block_nothing() {
    let mut h = Harness::start("aborted", 2, true);
    h.send(0, vec![Element::Record(1, 0), h.barrier(1, None)]).await;
    h.recorder.wait_for("record 1", |s| s.contains(&Seen::Record(1))).await;
    h.control(TaskControl::CheckpointAborted(1));
    // The abort unblocks input 0.
    h.send(0, vec![Element::Record(2, 0)]).await;
    h.recorder.wait_for("record 2", |s| s.contains(&Seen::Record(2))).await;
    // Input 1's barrier of checkpoint 1 comes late: the records behind it flow on.
    h.send(1, vec![Element::Record(3, 0), h.barrier(1, None), Element::Record(4, 0)]).await;
    h.recorder.wait_for("record 4, behind the stale barrier", |s| s.contains(&Seen::Record(4))).await;

    // The next checkpoint aligns as usual and holds every record.
    h.send(0, vec![h.barrier(2, None)]).await;
    h.send(1, vec![h.barrier(2, None)]).await;
    let snapshot = h.ack(2).await;
    assert_eq!(snapshot.checkpoint, 2);
    h.send(0, vec![Element::EndOfData]).await;
    h.send(1, vec![Element::EndOfData]).await;
    h.control(TaskControl::CheckpointComplete { checkpoint: 2, commit: true, end: true });
    let seen = h.end().await.seen();
    let snapshots: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Snapshot(..))).cloned().collect();
    assert_eq!(snapshots, vec![Seen::Snapshot(2, vec![1, 2, 3, 4])], "none for the aborted checkpoint: {seen:?}");
}

/// Defect: after a restore, event time started again from the minimum, so a record that was
/// late in a run without failures was on time after a failover (and its window's output
/// differed). The watermark at the barrier is in the snapshot, and a restored subtask goes on
/// from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_subtask_goes_on_from_the_watermark_at_its_checkpoint() {
    let mut h = Harness::start("clock", 2, true);
    h.send(0, vec![Element::Record(1, 100), Element::Watermark(50), h.barrier(1, None)]).await;
    h.send(1, vec![Element::Watermark(70), h.barrier(1, None)]).await;
    let snapshot = h.ack(1).await;
    assert_eq!(snapshot.clock.watermark, 50, "the minimum of the inputs' watermarks");
    h.send(0, vec![Element::EndOfData]).await;
    h.send(1, vec![Element::EndOfData]).await;
    h.control(TaskControl::CheckpointComplete { checkpoint: 1, commit: true, end: true });
    h.end().await;

    // A failover restores checkpoint 1: the replayed record at 40 is as late as it was.
    let restored = RestoredState::with_clock(snapshot.clock);
    let h = Harness::start_from("clock-restored", 2, false, Some(restored));
    h.send(0, vec![Element::Record(2, 40), Element::Watermark(30), Element::Record(3, 60), Element::EndOfData]).await;
    h.send(1, vec![Element::Watermark(60), Element::EndOfData]).await;
    let recorder = h.end().await;
    let at = recorder.watermark_at.lock().unwrap().clone();
    assert_eq!(at, vec![(2, 50), (3, 50)], "event time went on from the checkpoint's watermark");
    let watermarks: Vec<_> = recorder.seen().into_iter().filter(|s| matches!(s, Seen::Watermark(_))).collect();
    assert!(
        watermarks.iter().all(|w| matches!(w, Seen::Watermark(t) if *t > 50)),
        "nothing at or below 50 again: {watermarks:?}"
    );
}

/// Defect 2 of #10 (its rest): a snapshot's write ran detached from its subtask, which could
/// end, and report its end, before the acknowledgement was out. A subtask that ends now waits
/// for its writes (here: a 64 MiB savepoint state, taken right before the input ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtask_that_ends_waits_for_its_snapshot_writes() {
    let recorder = Recorder { state_bytes: 64 << 20, ..Recorder::default() };
    let h = Harness::start_with("writes", 1, false, None, recorder);
    h.send(0, vec![Element::Record(1, 0), h.barrier(100, None), Element::EndOfData]).await;
    let Harness { inputs, task, mut events, dir, .. } = h;
    drop(inputs);
    tokio::time::timeout(DEADLINE, task).await.expect("the subtask ended").unwrap().unwrap();
    let mut acked = false;
    while let Ok(event) = events.try_recv() {
        acked |= matches!(event, CheckpointEvent::Ack(ack) if ack.checkpoint == 100 && ack.handle.is_ok());
    }
    let _ = std::fs::remove_dir_all(dir);
    assert!(acked, "the savepoint's acknowledgement was out when the subtask ended");
}

/// Found by the multi-host tests (#16): two TaskManagers partitioned from each other until
/// their data connection timed out, and the job never failed over. The subtask had a barrier
/// on its local input and waited for it on the remote one; when the remote channel closed
/// (without end-of-data) the gate noted it and went on waiting on the blocked local input, so
/// nothing woke the subtask to fail, and its producers stayed blocked on its full local input.
/// A channel closing now wakes the subtask, which fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closing_without_end_of_data_during_an_alignment_fails_the_subtask() {
    let h = Harness::start("closed-aligning", 2, true);
    h.send(0, vec![Element::Record(1, 0), h.barrier(1, None), Element::Record(2, 0)]).await;
    h.recorder.wait_for("record 1", |s| s.contains(&Seen::Record(1))).await;
    let Harness { mut inputs, task, dir, .. } = h;
    // Input 1's producer is gone (its connection failed) before its barrier came.
    inputs.truncate(1);
    let ended = tokio::time::timeout(DEADLINE, task).await.expect("the subtask failed in time").unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let error = ended.expect_err("a channel closed without end-of-data");
    assert!(error.to_string().contains("closed without end-of-data"), "{error}");
    drop(inputs);
}
