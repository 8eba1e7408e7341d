//! Checkpoints and savepoints: what a subtask's state looks like at a barrier, where it is
//! stored, the coordinator that triggers, collects and completes them, and how a subtask
//! finds its state again when a job restores.
//!
//! Layout (as Flink's): `<dir>/<job>/chk-<n>/<vertex>-<subtask>` holds one subtask's state,
//! and `<dir>/<job>/chk-<n>/_metadata` (JSON) is written last, through a temporary file, fsync
//! and rename: a checkpoint exists if and only if its `_metadata` does. A savepoint has the
//! same files in a directory of the user's choice (see [`savepoint`]).
//!
//! The metadata lists the plan's operators (uid, name, types, vertex, parallelism) beside the
//! subtasks' files, so a savepoint can be restored into another version of the job or at
//! another parallelism: its state is matched to the new plan operator by operator
//! ([`RestoreFrom::nodes`]), then redistributed (`RestoredState`).

pub mod savepoint;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::KeyGroupRange;
use weir_state::storage::Location;

use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::base::state::{EventClock, NodeStates, OperatorState, RestoredState};
use crate::runtime::job_graph::{JobGraph, JobVertex, NodeKind};
pub use weir_dataplane::{BarrierKind, CheckpointBarrier, StopMode};

/// How a job checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointConfig {
    /// Between the start of one checkpoint and the next.
    pub interval: Duration,
    /// A checkpoint not complete by then is aborted.
    pub timeout: Duration,
    /// At least this long between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// Completed checkpoints kept (older ones are deleted).
    pub retained: usize,
    /// Checkpoints that may fail in a row (timed out, or a subtask or the coordinator could not
    /// store its part) before the job fails over, as Flink's
    /// `execution.checkpointing.tolerable-failed-checkpoints` (default 0: the first such
    /// failure fails the job over to its latest checkpoint). Checkpoints aborted because the
    /// job is failing over anyway, and savepoints, are not counted.
    #[serde(default)]
    pub tolerable_failures: u32,
    /// The checkpoint directory (its job subdirectories are created): a local path or an
    /// object store prefix.
    pub dir: Location,
    /// Where checkpoint files are written and synced: the local file system, or in tests a
    /// [`CrashFs`](crate::base::fs::CrashFs) to crash a machine under the job. Not sent between
    /// processes (each writes to its own).
    #[serde(skip, default = "crate::base::fs::local")]
    pub file_system: Arc<dyn crate::base::fs::FileSystem>,
}

impl PartialEq for CheckpointConfig {
    fn eq(&self, other: &Self) -> bool {
        let key = |c: &Self| (c.interval, c.timeout, c.min_pause, c.retained, c.tolerable_failures, c.dir.clone());
        key(self) == key(other)
    }
}

impl Eq for CheckpointConfig {}

impl CheckpointConfig {
    /// Checkpoints every `interval` into `dir`, with Flink's defaults otherwise (10 min
    /// timeout, no pause, one retained).
    pub fn every(interval: Duration, dir: impl Into<Location>) -> Self {
        CheckpointConfig {
            interval,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            retained: 1,
            tolerable_failures: 0,
            dir: dir.into(),
            file_system: crate::base::fs::local(),
        }
    }
}

/// Everything one subtask stored for a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskSnapshot {
    /// The checkpoint.
    pub checkpoint: u64,
    /// The subtask's vertex.
    pub vertex: usize,
    /// The subtask's index.
    pub subtask: usize,
    /// Its input had ended and its operators had finished when it took the snapshot: a
    /// subtask restored from it does not finish them a second time (Flink's "finished on
    /// restore").
    pub finished: bool,
    /// Its operators' states.
    pub operators: Vec<OperatorState>,
    /// Its event time at the barrier: the watermark its operators had seen (a source: had
    /// emitted), and for a source the highest timestamp it had read. A restored subtask starts
    /// from them, not from the minimum, so a record on time (or late) in a run without failures
    /// is on time (or late) after a failover too. Flink restarts watermarks from the minimum.
    pub clock: EventClock,
}

/// Where one subtask's state of a checkpoint is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskStateHandle {
    /// The vertex.
    pub vertex: usize,
    /// The subtask.
    pub subtask: usize,
    /// The file, relative to the checkpoint's directory.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// The nodes whose state the file holds (operators without state are left out).
    pub operators: Vec<usize>,
    /// The files of the job's shared directory its state references (incremental RocksDB
    /// checkpoints), for the coordinator's reference counts.
    pub shared: Vec<String>,
    /// Its operators keep operator (non-keyed) state, which a restore at another parallelism
    /// gives every new subtask (union), or operator list state (each new subtask takes its
    /// share of all of it): they all read this file. Files with keyed state only
    /// are read by the new subtasks whose key groups they hold.
    #[serde(default)]
    pub union_state: bool,
    /// The subtask had finished ([`TaskSnapshot::finished`]).
    #[serde(default)]
    pub finished: bool,
    /// Its event clock ([`TaskSnapshot::clock`]).
    #[serde(default)]
    pub clock: EventClock,
}

/// One operator of the plan a checkpoint was taken by: what a restore matches state by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorMetadata {
    /// Its node in the stream graph.
    pub node: usize,
    /// Its stable id, if the job set one.
    pub uid: Option<String>,
    /// The version of its state's layout (metadata written before versions were declared
    /// reads as 1).
    #[serde(default = "first_state_version")]
    pub state_version: u32,
    /// Its name.
    pub name: String,
    /// Source, operator or sink.
    pub kind: NodeKind,
    /// Its input record type.
    pub in_type: String,
    /// Its output record type.
    pub out_type: String,
    /// The vertex (operator chain) it ran in.
    pub vertex: usize,
    /// That vertex's parallelism.
    pub parallelism: usize,
}

fn first_state_version() -> u32 {
    1
}

impl OperatorMetadata {
    /// Every operator of `plan`, by node.
    pub fn of_plan(plan: &JobGraph) -> Vec<OperatorMetadata> {
        let mut operators: Vec<OperatorMetadata> = plan
            .vertices
            .iter()
            .flat_map(|v| {
                v.operators.iter().map(|op| OperatorMetadata {
                    node: op.node,
                    uid: op.uid.clone(),
                    state_version: op.state_version,
                    name: op.name.clone(),
                    kind: op.kind,
                    in_type: op.in_type.clone(),
                    out_type: op.out_type.clone(),
                    vertex: v.id,
                    parallelism: v.parallelism,
                })
            })
            .collect();
        operators.sort_by_key(|op| op.node);
        operators
    }

    /// How messages name it: `'count' (uid "c-v1")` or `'count' (node 3)`.
    pub fn describe(&self) -> String {
        match &self.uid {
            Some(uid) => format!("'{}' (uid \"{uid}\")", self.name),
            None => format!("'{}' (node {})", self.name, self.node),
        }
    }
}

/// A completed checkpoint or savepoint: the `_metadata` file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMetadata {
    /// Format version of this file.
    pub version: u32,
    /// The job.
    pub job: JobId,
    /// The checkpoint's id.
    pub checkpoint: u64,
    /// A savepoint (triggered by the user), not a periodic checkpoint.
    pub savepoint: bool,
    /// The job plan's fingerprint: a failover restores a checkpoint only into the same plan.
    pub fingerprint: u64,
    /// The number of key groups of the job's keyed state.
    pub max_parallelism: u16,
    /// When it was triggered (epoch ms).
    pub triggered_ms: i64,
    /// From trigger to completion.
    pub duration_ms: u64,
    /// The plan's operators, by node.
    pub operators: Vec<OperatorMetadata>,
    /// Every subtask's state.
    pub tasks: Vec<TaskStateHandle>,
}

impl CheckpointMetadata {
    /// The current format version (6: operator list state, split or union, beside an
    /// operator's own state; 5: every subtask's event clock is in its state; 4: the file
    /// sink's state names the attempt of each pre-committed file).
    pub const VERSION: u32 = 6;

    /// Total bytes of the subtasks' state.
    pub fn bytes(&self) -> u64 {
        self.tasks.iter().map(|t| t.bytes).sum()
    }

    /// The operator of node `node`.
    pub fn operator(&self, node: usize) -> Option<&OperatorMetadata> {
        self.operators.iter().find(|op| op.node == node)
    }

    /// Checks what a restore sizes allocations and opens files by, so that a corrupt or
    /// hand-edited `_metadata` is an error naming the field, not a huge allocation, a panic or
    /// a read outside the checkpoint's directory.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let upper = usize::from(weir_dataplane::UPPER_MAX_PARALLELISM);
        if self.max_parallelism == 0 {
            return Err("max_parallelism is 0".into());
        }
        for op in &self.operators {
            if op.parallelism == 0 || op.parallelism > upper {
                return Err(format!(
                    "operator {} has parallelism {} (it must be 1 to {upper})",
                    op.describe(),
                    op.parallelism
                ));
            }
        }
        for task in &self.tasks {
            let file = std::path::Path::new(&task.file);
            let plain = matches!(file.components().collect::<Vec<_>>().as_slice(), [std::path::Component::Normal(_)]);
            if !plain {
                return Err(format!("tasks[].file {:?} is not a file name in the checkpoint's directory", task.file));
            }
            if let Some(op) = self.operators.iter().find(|op| op.vertex == task.vertex)
                && task.subtask >= op.parallelism
            {
                return Err(format!(
                    "tasks[] has subtask {} of vertex {}, whose parallelism is {}",
                    task.subtask, task.vertex, op.parallelism
                ));
            }
        }
        Ok(())
    }
}

/// A subtask's acknowledgement of a checkpoint: its state is stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointAck {
    /// The checkpoint.
    pub checkpoint: u64,
    /// Where the state is (or why it could not be stored).
    pub handle: Result<TaskStateHandle, String>,
    /// Time the subtask spent aligning its inputs' barriers.
    pub alignment_ms: u64,
    /// Time the synchronous part of its snapshot took, on its processing loop (µs).
    pub sync_us: u64,
    /// Time the asynchronous part took, off the loop: serializing or uploading keyed state and
    /// writing the subtask's file (µs).
    pub async_us: u64,
    /// Its input had ended when it took the snapshot. Once every source's has, every
    /// subtask ended before its snapshot: the checkpoint is the job's last.
    pub finished: bool,
}

/// What a subtask tells its job's CheckpointCoordinator.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum CheckpointEvent {
    /// Its state for a checkpoint is stored (or could not be).
    Ack(CheckpointAck),
    /// Its input ended: a source is exhausted (or stopped), or every input channel delivered
    /// end of data. Once every source has said so, the coordinator triggers the job's final
    /// checkpoint at once.
    InputEnded,
}

/// A job's directory of files shared by incremental checkpoints: `<root>/<job>/shared`.
pub(crate) fn shared_dir(job_dir: &Location) -> Location {
    job_dir.join("shared")
}

/// What a job restores from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreFrom {
    /// The checkpoint's (or savepoint's) directory.
    pub dir: Location,
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// For each node of the restoring plan that takes state: the node of the checkpoint's
    /// plan whose state it takes.
    pub nodes: BTreeMap<usize, usize>,
}

impl RestoreFrom {
    /// A checkpoint the same plan took: every node takes its own state back.
    pub fn same_plan(dir: Location, metadata: CheckpointMetadata) -> Self {
        let nodes = metadata.operators.iter().map(|op| (op.node, op.node)).collect();
        RestoreFrom { dir, metadata, nodes }
    }

    /// The checkpoint's id.
    pub fn checkpoint(&self) -> u64 {
        self.metadata.checkpoint
    }
}

/// Control of a running subtask by its JobMaster and CheckpointCoordinator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskControl {
    /// (Sources) snapshot your position and emit this barrier.
    TriggerCheckpoint(CheckpointBarrier),
    /// A checkpoint or savepoint completed everywhere.
    CheckpointComplete {
        /// Which.
        checkpoint: u64,
        /// Two-phase sinks commit its transactions (not for an intermediate savepoint: as
        /// in Flink since 1.15, a savepoint the job runs on after commits nothing, since
        /// failovers restore checkpoints, not savepoints).
        commit: bool,
        /// It was the job's last: the job's final checkpoint (taken after every source
        /// ended) or a stop-with-savepoint. Every subtask ends after committing.
        end: bool,
    },
    /// Checkpoint `n` was aborted: stop aligning for it (and resume, after a stop).
    CheckpointAborted(u64),
}

/// What a subtask needs to take part in checkpoints and savepoints.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointIo {
    /// Where periodic checkpoints go; `None` when the job takes only savepoints.
    pub(crate) storage: Option<storage::CheckpointStorage>,
    pub(crate) vertex: usize,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<CheckpointEvent>,
}

/// What a subtask restores, read by the subtask itself when its loop starts: off its
/// TaskExecutor (which deploys the job's other subtasks meanwhile, and answers cancellations)
/// and off the loop's worker thread (the read blocks for up to the subtask's whole share of
/// the state, ~0.6 s for 256 MiB).
pub(crate) struct PendingRestore {
    pub(crate) from: Arc<RestoreFrom>,
    pub(crate) vertex: JobVertex,
    pub(crate) index: usize,
}

impl PendingRestore {
    /// Reads it (see [`read_restored`]) on a blocking thread.
    pub(crate) async fn read(self) -> Result<RestoredState> {
        let PendingRestore { from, vertex, index } = self;
        tokio::task::spawn_blocking(move || read_restored(&from, &vertex, index))
            .await
            .map_err(|e| WeirError::runtime(format!("reading the restored state failed: {e}")))?
    }
}

/// Reads what subtask `index` of `vertex` restores from `from`: for each of the
/// vertex's operators the state of its node in the checkpoint's plan. At the parallelism
/// the checkpoint was taken at (every failover), only the subtask's own file is read: its
/// key groups are exactly its old ones, and its operator state is its own. At another
/// parallelism, every old subtask's (keyed state is redistributed by key group, operator
/// state by union).
pub(crate) fn read_restored(from: &RestoreFrom, vertex: &JobVertex, index: usize) -> Result<RestoredState> {
    let mut snapshots: HashMap<usize, Vec<TaskSnapshot>> = HashMap::new();
    let mut restored = RestoredState { index, parallelism: vertex.parallelism, ..Default::default() };
    restored.shared_dir = shared_dir(&from.dir.parent().unwrap_or_else(|| from.dir.clone()));
    for op in &vertex.operators {
        let Some(old) = from.nodes.get(&op.node).and_then(|&n| from.metadata.operator(n)) else { continue };
        let same = old.parallelism == vertex.parallelism;
        let old_vertex = match snapshots.entry(old.vertex) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let max = from.metadata.max_parallelism;
                let mine = KeyGroupRange::for_subtask(max, vertex.parallelism, index);
                let needed = |t: &TaskStateHandle| {
                    if same {
                        return t.subtask == index;
                    }
                    let theirs = KeyGroupRange::for_subtask(max, old.parallelism, t.subtask);
                    t.union_state || (theirs.start < mine.end && mine.start < theirs.end)
                };
                let mut handles: Vec<_> =
                    from.metadata.tasks.iter().filter(|t| t.vertex == old.vertex && needed(t)).collect();
                handles.sort_by_key(|t| t.subtask);
                let read = handles
                    .into_iter()
                    .map(|h| storage::read_task_in(&from.dir, from.metadata.checkpoint, h))
                    .collect::<Result<Vec<_>>>()?;
                e.insert(read)
            }
        };
        let mut states = vec![OperatorState::default(); old.parallelism];
        for snapshot in old_vertex.iter() {
            if let Some(state) = snapshot.operators.iter().find(|s| s.node == old.node)
                && let Some(slot) = states.get_mut(snapshot.subtask)
            {
                *slot = OperatorState { node: op.node, ..state.clone() };
            }
        }
        if op.node == vertex.head {
            // From the metadata: at another parallelism, over every old subtask (not only
            // those whose files this one reads).
            let olds: Vec<&TaskStateHandle> = from
                .metadata
                .tasks
                .iter()
                .filter(|t| t.vertex == old.vertex && (!same || t.subtask == index))
                .collect();
            restored.finished = !olds.is_empty() && olds.iter().all(|t| t.finished);
            restored.clock = EventClock::earliest(olds.iter().map(|t| t.clock));
        }
        restored.by_node.insert(op.node, NodeStates { parallelism: old.parallelism, states });
    }
    Ok(restored)
}
