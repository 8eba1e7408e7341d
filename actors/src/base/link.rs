//! The link: one step of an operator chain, typed by what flows into it. Operators, the
//! runtime's writer at a chain's end, and the test harness's collector are all links; a chain
//! is a tree of them called directly, record by record (no channel, no serialization).

use std::sync::Arc;

use weir_dataplane::{CheckpointBarrier, Timestamp};

use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;

/// Which operator a link runs: its name (for messages) and its node in the stream graph
/// (what its checkpointed state is filed under).
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) name: Arc<str>,
    pub(crate) node: usize,
}

impl std::ops::Deref for LinkInfo {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

/// One step of an operator chain, typed by what flows into it.
pub(crate) trait Link<T>: Send {
    /// Opens this link's operator and everything downstream of it (downstream first).
    fn open(&mut self, io: &mut TaskIo);
    /// One record.
    fn record(&mut self, value: T, ts: Timestamp, io: &mut TaskIo);
    /// The combined input watermark advanced.
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo);
    /// The input became idle (`true`) or active again.
    fn idle(&mut self, idle: bool, io: &mut TaskIo);
    /// Processing time reached `now`: fire due processing-time timers, report the next one.
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo);
    /// Move partial batches out (the latency bound).
    fn flush(&mut self, io: &mut TaskIo);
    /// Every input delivered `barrier`: snapshot this link's state into `out`, then pass the
    /// barrier on (the writer sends it on every output channel).
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>);
    /// Checkpoint `id` completed everywhere (two-phase sinks commit).
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo);
    /// The timers registered in this link and downstream of it, by domain and time (the
    /// operator test harness reads them). Links with timers add theirs; links with a
    /// downstream pass the call on.
    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        let _ = out;
    }
    /// All input ended. With `drain`, operators finish (they emit what they hold, as Flink's
    /// `finish()`); without (a stop-with-savepoint without drain, or a subtask restored
    /// after it had finished), they are left as they are. Then the end is passed on: the
    /// writer sends end of data on every channel.
    fn end_input(&mut self, drain: bool, io: &mut TaskIo);
    /// The subtask ends normally, after its input ended and its last checkpoint: operators
    /// release what they hold.
    fn close(&mut self, io: &mut TaskIo);
}
