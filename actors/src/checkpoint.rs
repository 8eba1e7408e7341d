//! Checkpoints: what a subtask's state looks like at a barrier, where checkpoints are stored,
//! and the coordinator that triggers, collects and completes them.
//!
//! Layout (as Flink's): `<dir>/<job>/chk-<n>/<vertex>-<subtask>` holds one subtask's state,
//! and `<dir>/<job>/chk-<n>/_metadata` (JSON) is written last, through a temporary file, fsync
//! and rename: a checkpoint exists if and only if its `_metadata` does.

pub mod coordinator;
pub mod storage;

use std::path::PathBuf;
use std::time::Duration;

use weir_state::KeyedSnapshot;

use crate::job::JobId;

/// How a job checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointConfig {
    /// Between the start of one checkpoint and the next.
    pub interval: Duration,
    /// A checkpoint not complete by then is aborted.
    pub timeout: Duration,
    /// At least this long between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// Completed checkpoints kept (older ones are deleted).
    pub retained: usize,
    /// The checkpoint directory (its job subdirectories are created).
    pub dir: PathBuf,
}

impl CheckpointConfig {
    /// Checkpoints every `interval` into `dir`, with Flink's defaults otherwise (10 min
    /// timeout, no pause, one retained).
    pub fn every(interval: Duration, dir: impl Into<PathBuf>) -> Self {
        CheckpointConfig {
            interval,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            retained: 1,
            dir: dir.into(),
        }
    }
}

/// The state of one operator of a subtask at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperatorState {
    /// The operator's node in the stream graph.
    pub node: usize,
    /// Keyed state, per key group.
    pub keyed: Option<KeyedSnapshot>,
    /// Timers (event time, processing time), encoded by the operator.
    pub timers: Option<Vec<u8>>,
    /// The operator's own state (a source's position, a sink's pending files).
    pub operator: Option<Vec<u8>>,
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
    /// Its operators' states.
    pub operators: Vec<OperatorState>,
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
}

/// A completed checkpoint: the `_metadata` file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMetadata {
    /// Format version of this file.
    pub version: u32,
    /// The job.
    pub job: JobId,
    /// The checkpoint's id.
    pub checkpoint: u64,
    /// The job plan's fingerprint: a checkpoint restores only into the same plan.
    pub fingerprint: u64,
    /// When it was triggered (epoch ms).
    pub triggered_ms: i64,
    /// From trigger to completion.
    pub duration_ms: u64,
    /// Every subtask's state.
    pub tasks: Vec<TaskStateHandle>,
}

impl CheckpointMetadata {
    /// The current format version.
    pub const VERSION: u32 = 1;

    /// Total bytes of the subtasks' state.
    pub fn bytes(&self) -> u64 {
        self.tasks.iter().map(|t| t.bytes).sum()
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
}

/// What a job restores from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreFrom {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub metadata: CheckpointMetadata,
}

/// Control of a running subtask by its JobMaster and CheckpointCoordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskControl {
    /// (Sources) snapshot your position and emit this barrier.
    TriggerCheckpoint(weir_dataplane::CheckpointBarrier),
    /// Checkpoint `n` completed everywhere: two-phase sinks commit.
    CheckpointComplete(u64),
    /// Checkpoint `n` was aborted: stop aligning for it.
    CheckpointAborted(u64),
}

/// What a subtask needs to take part in checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointIo {
    pub(crate) storage: storage::CheckpointStorage,
    pub(crate) vertex: usize,
    pub(crate) acks: tokio::sync::mpsc::UnboundedSender<CheckpointAck>,
}

/// The state a subtask restores from, by operator node.
#[derive(Debug, Default)]
pub(crate) struct RestoredState {
    /// Per node: the states of every subtask of the vertex at the checkpoint, by old index.
    pub(crate) by_node: std::collections::HashMap<usize, Vec<OperatorState>>,
    /// The vertex ran at the same parallelism: operator state goes back to the same index.
    pub(crate) same_parallelism: bool,
    /// This subtask's index.
    pub(crate) index: usize,
}

impl RestoredState {
    /// The operator (non-keyed) states for `node`: this subtask's own at the same
    /// parallelism, every subtask's otherwise (union redistribution, as Flink's union list
    /// state).
    pub(crate) fn operator_states(&self, node: usize) -> Vec<Vec<u8>> {
        let Some(states) = self.by_node.get(&node) else { return Vec::new() };
        let pick = |s: &OperatorState| s.operator.clone();
        if self.same_parallelism {
            states.get(self.index).and_then(pick).into_iter().collect()
        } else {
            states.iter().filter_map(pick).collect()
        }
    }

    /// Every subtask's keyed state for `node`, merged (each subtask keeps its key groups).
    pub(crate) fn keyed(&self, node: usize) -> Option<KeyedSnapshot> {
        let states = self.by_node.get(&node)?;
        let mut merged: Option<KeyedSnapshot> = None;
        for keyed in states.iter().filter_map(|s| s.keyed.clone()) {
            match &mut merged {
                Some(m) => m.merge(keyed),
                None => merged = Some(keyed),
            }
        }
        merged
    }

    /// Every subtask's encoded timers for `node` (each subtask keeps its key groups').
    pub(crate) fn timers(&self, node: usize) -> Vec<Vec<u8>> {
        self.by_node.get(&node).map(|s| s.iter().filter_map(|s| s.timers.clone()).collect()).unwrap_or_default()
    }
}
