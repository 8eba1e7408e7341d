//! The operator API: the one extension point users implement, and the context the runtime
//! hands each hook.
//!
//! An operator runs inside its subtask actor's processing task; chained operators call each
//! other directly (no channel, no serialization). Hooks are synchronous and must not block for
//! long: a subtask shares its tokio worker with others. Errors returned from a hook fail the
//! subtask, and with it the job, naming the operator.

use std::hash::Hash;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weir_dataplane::{CheckpointBarrier, NO_TIMESTAMP, Timestamp};

use crate::api::side_output::{OutputTag, emit_side};
use crate::base::data::{Data, Key};
use crate::base::error::Result;
use crate::base::error::WeirError;
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::{NamedList, OperatorState, RestoredLists};
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Data for T {}

impl<T: Data + Hash + Eq + Sync> Key for T {}

/// An operator: one input type, one output type, and hooks the runtime calls.
///
/// # Examples
///
/// An operator that numbers its records:
///
/// ```
/// use weir_actors::prelude::*;
///
/// struct Numbered { next: u64 }
///
/// impl Operator for Numbered {
///     type In = String;
///     type Out = (u64, String);
///     fn process(&mut self, value: String, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
///         self.next += 1;
///         ctx.emit((self.next, value));
///         Ok(())
///     }
/// }
///
/// let out = MiniCluster::collect(|env| {
///     env.from_vec("lines", vec!["a".to_owned(), "b".to_owned()])
///         .operator("number", || Numbered { next: 0 })
/// }).unwrap();
/// assert_eq!(out, vec![(1, "a".to_owned()), (2, "b".to_owned())]);
/// ```
pub trait Operator: Send + 'static {
    /// The input record type.
    type In: Data;
    /// The output record type.
    type Out: Data;

    /// Called once before the first record, after downstream operators were opened.
    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called for every input record.
    fn process(&mut self, value: Self::In, ctx: &mut Context<'_, Self::Out>) -> Result<()>;

    /// Called when the input watermark advances; the runtime forwards the watermark after it.
    fn on_watermark(&mut self, watermark: Timestamp, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        let _ = (watermark, ctx);
        Ok(())
    }

    /// Called when all input has ended (a bounded job is finishing): emit what is left.
    fn end_input(&mut self, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the subtask ends normally: after `end_input` and, when the job
    /// checkpoints, after the job's final checkpoint (state may be snapshotted between the
    /// two, so release resources here, not in `end_input`).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// Called at a checkpoint barrier, between records: the operator's own (non-keyed)
    /// state, if it has any. Keyed state is snapshotted by the runtime.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        let _ = checkpoint_id;
        Ok(None)
    }

    /// Called after `open` when the job restores from a checkpoint: this subtask's state
    /// at the same parallelism, every subtask's state at another (union redistribution).
    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let _ = states;
        Ok(())
    }

    /// Called at a checkpoint barrier, between records: the operator's list states (Flink's
    /// operator `ListState` and union `ListState`), which are redistributed when the
    /// parallelism changes; read them back in [`open`](Self::open) with
    /// [`OpenContext::list_state`] and [`OpenContext::union_list_state`].
    ///
    /// ```
    /// use weir_actors::prelude::*;
    ///
    /// /// Emits records in pairs; an odd one out waits in split list state, so that after a
    /// /// rescale each waiting record is with exactly one subtask.
    /// #[derive(Default)]
    /// struct Pairs { waiting: Vec<u32> }
    ///
    /// impl Operator for Pairs {
    ///     type In = u32;
    ///     type Out = (u32, u32);
    ///     fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
    ///         self.waiting = ctx.list_state("waiting")?;
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, v: u32, ctx: &mut Context<'_, (u32, u32)>) -> Result<()> {
    ///         match self.waiting.pop() {
    ///             Some(w) => ctx.emit((w, v)),
    ///             None => self.waiting.push(v),
    ///         }
    ///         Ok(())
    ///     }
    ///     fn snapshot_lists(&mut self, _: u64, lists: &mut OperatorLists) -> Result<()> {
    ///         lists.split("waiting", &self.waiting)
    ///     }
    /// }
    ///
    /// let mut h = OperatorHarness::new(|s: DataStream<u32>| s.operator("pairs", Pairs::default)).unwrap();
    /// for v in [1, 2, 3] {
    ///     h.process(v).unwrap();
    /// }
    /// let snapshot = h.snapshot().unwrap();
    /// let mut restored = HarnessConfig::new().restore(vec![snapshot]).build(|s: DataStream<u32>| s.operator("pairs", Pairs::default)).unwrap();
    /// restored.process(4).unwrap();
    /// assert_eq!(restored.output(), [(3, 4)]);
    /// ```
    fn snapshot_lists(&mut self, checkpoint_id: u64, lists: &mut OperatorLists) -> Result<()> {
        let _ = (checkpoint_id, lists);
        Ok(())
    }

    /// Called when checkpoint `checkpoint_id` completed everywhere (two-phase sinks commit
    /// here).
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Called right after [`notify_checkpoint_complete`](Self::notify_checkpoint_complete),
    /// with a context to emit records: an operator that commits when a checkpoint completes
    /// tells the operators downstream what it committed (as Flink's streaming file writer
    /// sends the partitions it committed to the partition committer). Not called once the
    /// input ended: end of data went downstream, nothing may follow it.
    ///
    /// Records emitted here follow checkpoint `checkpoint_id`'s barrier (and perhaps later
    /// ones), so the checkpoint that completed does not hold them downstream, and a restore
    /// from it loses them. An operator that emits here keeps, in its own state at each
    /// barrier, what it has not emitted yet, and emits that again after a restore.
    fn after_checkpoint_complete(&mut self, checkpoint_id: u64, ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        let _ = (checkpoint_id, ctx);
        Ok(())
    }
}

/// What an operator sees when it opens.
pub struct OpenContext<'a> {
    pub(crate) info: &'a SubtaskInfo,
    pub(crate) checkpointing: bool,
    /// The list states restored (none on a fresh start).
    pub(crate) lists: RestoredLists,
}

impl<'a> OpenContext<'a> {
    pub(crate) fn new(io: &'a TaskIo) -> Self {
        OpenContext { info: &io.info, checkpointing: io.checkpointing(), lists: RestoredLists::new() }
    }

    /// The context of operator node `node`, with the list states it restores.
    pub(crate) fn with_lists(io: &'a TaskIo, node: usize) -> Result<Self> {
        let lists = match &io.restored {
            Some(restored) => restored.operator_lists(node)?,
            None => RestoredLists::new(),
        };
        Ok(OpenContext { lists, ..OpenContext::new(io) })
    }

    /// The elements of split list state `name` this subtask restores (empty on a fresh
    /// start): its own at the same parallelism, an even share of every subtask's at another.
    pub fn list_state<T: DeserializeOwned>(&mut self, name: &str) -> Result<Vec<T>> {
        self.restored_list(name, false)
    }

    /// The elements of union list state `name` this subtask restores: its own at the same
    /// parallelism, every subtask's at another.
    pub fn union_list_state<T: DeserializeOwned>(&mut self, name: &str) -> Result<Vec<T>> {
        self.restored_list(name, true)
    }

    fn restored_list<T: DeserializeOwned>(&mut self, name: &str, union: bool) -> Result<Vec<T>> {
        let Some((was_union, items)) = self.lists.remove(name) else { return Ok(Vec::new()) };
        let kind = |u: bool| if u { "a union" } else { "a split" };
        if was_union != union {
            return Err(WeirError::user(format!(
                "list state '{name}' was checkpointed as {} list and is read as {} one",
                kind(was_union),
                kind(union)
            )));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                postcard::from_bytes(bytes)
                    .map_err(|e| WeirError::user(format!("list state '{name}': element {i} does not decode: {e}")))
            })
            .collect()
    }

    /// The subtask this operator runs in.
    pub fn subtask(&self) -> &SubtaskInfo {
        self.info
    }

    /// Whether the job takes periodic checkpoints. A two-phase sink then commits only when
    /// a checkpoint completes, even at the end of input: the job's final checkpoint, taken
    /// after every source ended, commits the last transaction exactly once.
    pub fn checkpointing(&self) -> bool {
        self.checkpointing
    }
}

/// Where an operator puts its list states at a checkpoint (see
/// [`Operator::snapshot_lists`]).
#[derive(Debug, Default)]
pub struct OperatorLists {
    lists: Vec<NamedList>,
}

impl OperatorLists {
    /// Split list state `name`: after a rescale each new subtask gets an even share of all
    /// subtasks' elements.
    pub fn split<T: Serialize>(&mut self, name: &str, items: &[T]) -> Result<()> {
        self.put(name, items, false)
    }

    /// Union list state `name`: after a rescale every new subtask gets all subtasks' elements.
    pub fn union<T: Serialize>(&mut self, name: &str, items: &[T]) -> Result<()> {
        self.put(name, items, true)
    }

    fn put<T: Serialize>(&mut self, name: &str, items: &[T], union: bool) -> Result<()> {
        if self.lists.iter().any(|l| l.name == name) {
            return Err(WeirError::user(format!("list state '{name}' is snapshotted twice")));
        }
        let items = items
            .iter()
            .map(|item| postcard::to_allocvec(item))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| WeirError::user(format!("list state '{name}' does not encode: {e}")))?;
        self.lists.push(NamedList { name: name.to_owned(), union, items });
        Ok(())
    }

    /// The lists, encoded as a checkpoint holds them (`None`: there are none).
    pub(crate) fn encode(self) -> Result<Option<Vec<u8>>> {
        if self.lists.is_empty() {
            return Ok(None);
        }
        postcard::to_allocvec(&self.lists)
            .map(Some)
            .map_err(|e| WeirError::runtime(format!("list states do not encode: {e}")))
    }
}

/// What an operator sees while it processes: where to emit, the record's timestamp, time.
pub struct Context<'a, O> {
    pub(crate) out: &'a mut Outputs<O>,
    pub(crate) io: &'a mut TaskIo,
    pub(crate) timestamp: Timestamp,
}

impl<'a, O: Data> Context<'a, O> {
    pub(crate) fn new(out: &'a mut Outputs<O>, io: &'a mut TaskIo, timestamp: Timestamp) -> Self {
        Context { out, io, timestamp }
    }

    /// Emits a record to the side output `tag`, with the current record's timestamp (read it
    /// with [`DataStream::get_side_output`](crate::api::stream::DataStream::get_side_output);
    /// dropped if nothing reads it).
    pub fn output<X: Data>(&mut self, tag: &OutputTag<X>, value: X) {
        emit_side(self.out, tag, value, self.timestamp, self.io);
    }

    /// Emits a record downstream with the current record's timestamp.
    #[inline]
    pub fn emit(&mut self, value: O) {
        self.out.record(value, self.timestamp, self.io);
    }

    /// Emits a record downstream with the given timestamp.
    #[inline]
    pub fn emit_at(&mut self, value: O, timestamp: Timestamp) {
        self.out.record(value, timestamp, self.io);
    }

    /// The current record's timestamp, if it has one.
    pub fn timestamp(&self) -> Option<Timestamp> {
        (self.timestamp != NO_TIMESTAMP).then_some(self.timestamp)
    }

    /// The current input watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.io.watermark
    }

    /// The current processing time (ms since the epoch) from the runtime's clock.
    pub fn processing_time(&self) -> Timestamp {
        self.io.now_ms()
    }

    /// The subtask this operator runs in.
    pub fn subtask(&self) -> &SubtaskInfo {
        &self.io.info
    }
}

/// Builds the operator instance of one subtask; called on every node that runs the operator.
pub type OperatorFactory<O> = Arc<dyn Fn() -> O + Send + Sync>;

/// Runs one operator and passes its output to the next link.
pub(crate) struct OperatorLink<O: Operator> {
    pub(crate) op: O,
    pub(crate) down: Outputs<O::Out>,
    pub(crate) name: LinkInfo,
    /// The input ended: end of data went downstream, so `after_checkpoint_complete` is not
    /// called any more.
    ended: bool,
}

impl<O: Operator> OperatorLink<O> {
    pub(crate) fn new(op: O, down: Outputs<O::Out>, name: LinkInfo) -> Self {
        OperatorLink { op, down, name, ended: false }
    }
}

impl<O: Operator> Link<O::In> for OperatorLink<O> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        if io.has_failed() {
            return;
        }
        let opened = OpenContext::with_lists(io, self.name.node).and_then(|mut ctx| self.op.open(&mut ctx));
        if let Err(e) = opened {
            io.fail(e.in_operator(&self.name));
            return;
        }
        let states = io.restored.as_ref().map(|r| r.operator_states(self.name.node)).unwrap_or_default();
        if !states.is_empty()
            && let Err(e) = self.op.restore_state(states)
        {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        let id = barrier.checkpoint_id;
        let mut lists = OperatorLists::default();
        let snapshot = self.op.snapshot_state(id).and_then(|operator| {
            self.op.snapshot_lists(id, &mut lists)?;
            Ok((operator, lists.encode()?))
        });
        match snapshot {
            Ok((None, None)) => {}
            Ok((operator, lists)) => {
                out.push(OperatorState { node: self.name.node, operator, lists, ..Default::default() })
            }
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
        self.down.checkpoint(barrier, io, out);
    }

    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.down.timers(out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        if let Err(e) = self.op.notify_checkpoint_complete(id) {
            io.fail(e.in_operator(&self.name));
        } else if !self.ended {
            let mut ctx = Context::new(&mut self.down, io, NO_TIMESTAMP);
            if let Err(e) = self.op.after_checkpoint_complete(id, &mut ctx) {
                io.fail(e.in_operator(&self.name));
            }
        }
        self.down.checkpoint_complete(id, io);
    }

    #[inline]
    fn record(&mut self, value: O::In, ts: Timestamp, io: &mut TaskIo) {
        let mut ctx = Context::new(&mut self.down, io, ts);
        if let Err(e) = self.op.process(value, &mut ctx) {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        let mut ctx = Context::new(&mut self.down, io, wm);
        if let Err(e) = self.op.on_watermark(wm, &mut ctx) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.watermark(wm, io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        self.ended = true;
        if drain {
            let wm = io.watermark;
            let mut ctx = Context::new(&mut self.down, io, wm);
            if let Err(e) = self.op.end_input(&mut ctx) {
                io.fail(e.in_operator(&self.name));
            }
        }
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        if let Err(e) = self.op.close() {
            io.fail(e.in_operator(&self.name));
        }
        self.down.close(io);
    }
}
