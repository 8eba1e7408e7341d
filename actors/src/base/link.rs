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

/// Where a link's output goes: its main output, and the side outputs its stream graph node
/// has consumers for (Flink's `Output` with `OutputTag`s). A link calls `main` record by
/// record; everything else (watermarks, barriers, the end of input) goes to every output, the
/// main one first, so each side output sees the same progress as the main one.
pub(crate) struct Outputs<O> {
    pub(crate) main: Box<dyn Link<O>>,
    pub(crate) sides: SideLinks,
}

impl<O: 'static> Outputs<O> {
    /// The one link standing for all outputs: the main output itself when there are no side
    /// outputs (no extra call per record).
    pub(crate) fn into_link(self) -> Box<dyn Link<O>> {
        if self.sides.0.is_empty() { self.main } else { Box::new(self) }
    }

    /// The side output `tag`, if its node has one of type `X` that anything consumes.
    #[inline]
    pub(crate) fn side<X: 'static>(&mut self, tag: &str) -> Option<&mut dyn Link<X>> {
        let side = self.sides.0.iter_mut().find(|s| &*s.tag == tag)?;
        let typed = side.link.as_any().downcast_mut::<TypedSide<X>>()?;
        Some(&mut *typed.0)
    }
}

/// The side outputs of one link, by tag.
#[derive(Default)]
pub(crate) struct SideLinks(Vec<SideLink>);

impl SideLinks {
    /// Adds the side output `tag`.
    pub(crate) fn push<X: 'static>(&mut self, tag: Arc<str>, link: Box<dyn Link<X>>) {
        self.0.push(SideLink { tag, link: Box::new(TypedSide(link)) });
    }
}

struct SideLink {
    tag: Arc<str>,
    link: Box<dyn ErasedLink>,
}

/// A side output's link, typed by its record type (what `Outputs::side` downcasts to).
struct TypedSide<X>(Box<dyn Link<X>>);

/// Everything of a link but its records, whatever their type.
trait ErasedLink: Send {
    fn as_any(&mut self) -> &mut dyn std::any::Any;
    fn open(&mut self, io: &mut TaskIo);
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo);
    fn idle(&mut self, idle: bool, io: &mut TaskIo);
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo);
    fn flush(&mut self, io: &mut TaskIo);
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>);
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo);
    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>);
    fn end_input(&mut self, drain: bool, io: &mut TaskIo);
    fn close(&mut self, io: &mut TaskIo);
}

impl<X: 'static> ErasedLink for TypedSide<X> {
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn open(&mut self, io: &mut TaskIo) {
        self.0.open(io)
    }
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        self.0.watermark(wm, io)
    }
    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.0.idle(idle, io)
    }
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.0.processing_time(now, io)
    }
    fn flush(&mut self, io: &mut TaskIo) {
        self.0.flush(io)
    }
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.0.checkpoint(barrier, io, out)
    }
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.0.checkpoint_complete(id, io)
    }
    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.0.timers(out)
    }
    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.0.end_input(drain, io)
    }
    fn close(&mut self, io: &mut TaskIo) {
        self.0.close(io)
    }
}

impl<O: 'static> Link<O> for Outputs<O> {
    fn open(&mut self, io: &mut TaskIo) {
        self.main.open(io);
        self.sides.0.iter_mut().for_each(|s| s.link.open(io));
    }
    #[inline]
    fn record(&mut self, value: O, ts: Timestamp, io: &mut TaskIo) {
        self.main.record(value, ts, io);
    }
    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        self.main.watermark(wm, io);
        self.sides.0.iter_mut().for_each(|s| s.link.watermark(wm, io));
    }
    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.main.idle(idle, io);
        self.sides.0.iter_mut().for_each(|s| s.link.idle(idle, io));
    }
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.main.processing_time(now, io);
        self.sides.0.iter_mut().for_each(|s| s.link.processing_time(now, io));
    }
    fn flush(&mut self, io: &mut TaskIo) {
        self.main.flush(io);
        self.sides.0.iter_mut().for_each(|s| s.link.flush(io));
    }
    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        self.main.checkpoint(barrier, io, out);
        self.sides.0.iter_mut().for_each(|s| s.link.checkpoint(barrier, io, out));
    }
    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.main.checkpoint_complete(id, io);
        self.sides.0.iter_mut().for_each(|s| s.link.checkpoint_complete(id, io));
    }
    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.main.timers(out);
        self.sides.0.iter().for_each(|s| s.link.timers(out));
    }
    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.main.end_input(drain, io);
        self.sides.0.iter_mut().for_each(|s| s.link.end_input(drain, io));
    }
    fn close(&mut self, io: &mut TaskIo) {
        self.main.close(io);
        self.sides.0.iter_mut().for_each(|s| s.link.close(io));
    }
}
