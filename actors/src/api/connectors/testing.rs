//! Running a source by hand in unit tests: open it as one subtask, restore it, poll it.

use std::sync::Arc;

use weir_dataplane::{CheckpointBarrier, Timestamp};

use crate::api::operator::OpenContext;
use crate::api::source::{Source, SourceContext};
use crate::base::data::Data;
use crate::base::ids::JobId;
use crate::base::link::Link;
use crate::base::metrics::TaskMetrics;
use crate::base::state::OperatorState;
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::TokioClock;
use crate::runtime::source_head::SourcePoll;

/// A chain end that keeps the records it gets.
struct Collect<T>(Vec<T>);

impl<T: Data> Link<T> for Collect<T> {
    fn open(&mut self, _io: &mut TaskIo) {}
    fn record(&mut self, value: T, _ts: Timestamp, _io: &mut TaskIo) {
        self.0.push(value);
    }
    fn watermark(&mut self, _wm: Timestamp, _io: &mut TaskIo) {}
    fn idle(&mut self, _idle: bool, _io: &mut TaskIo) {}
    fn processing_time(&mut self, _now: Timestamp, _io: &mut TaskIo) {}
    fn flush(&mut self, _io: &mut TaskIo) {}
    fn end_input(&mut self, _drain: bool, _io: &mut TaskIo) {}
    fn close(&mut self, _io: &mut TaskIo) {}
    fn checkpoint(&mut self, _barrier: &CheckpointBarrier, _io: &mut TaskIo, _out: &mut Vec<OperatorState>) {}
    fn checkpoint_complete(&mut self, _id: u64, _io: &mut TaskIo) {}
}

/// Subtask `index` of `parallelism`.
pub(crate) fn subtask(index: usize, parallelism: usize) -> SubtaskInfo {
    SubtaskInfo {
        job_id: JobId(1),
        job_name: "test".into(),
        vertex: "source".into(),
        index,
        parallelism,
        max_parallelism: 128,
        attempt: 0,
    }
}

/// Opens `source` as subtask `index` of `parallelism`, restores `states` (unless empty),
/// polls it (`batch` records a poll at most) until it emitted `limit` records or ended, and
/// returns what it emitted and its snapshot then.
pub(crate) fn run_source<S: Source>(
    mut source: S,
    (index, parallelism): (usize, usize),
    states: Vec<Vec<u8>>,
    limit: usize,
    batch: usize,
) -> (Vec<S::Out>, Vec<u8>) {
    let info = subtask(index, parallelism);
    source.open(&OpenContext { info: &info, checkpointing: true }).unwrap();
    if !states.is_empty() {
        source.restore_state(states).unwrap();
    }
    let mut io = TaskIo::new(Arc::new(info), Arc::new(TokioClock::new()), Arc::new(TaskMetrics::default()));
    let mut out = Collect(Vec::new());
    let (mut max_timestamp, mut idle) = (Timestamp::MIN, false);
    while out.0.len() < limit {
        let batch_size = batch.min(limit - out.0.len());
        let mut ctx = SourceContext {
            out: &mut out,
            io: &mut io,
            max_timestamp: &mut max_timestamp,
            idle: &mut idle,
            emitted: 0,
            batch_size,
        };
        match source.poll_next(&mut ctx).unwrap() {
            SourcePoll::Finished => break,
            SourcePoll::Ready => {}
            SourcePoll::Pending(wait) => std::thread::sleep(wait),
        }
    }
    let snapshot = source.snapshot_state().unwrap();
    (out.0, snapshot)
}
