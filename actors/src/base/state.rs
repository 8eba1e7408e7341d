//! Operator state as the runtime snapshots and restores it: one operator's state at a
//! checkpoint ([`OperatorState`]), the event clock a subtask resumes from ([`EventClock`]),
//! what a subtask restores from (`RestoredState`), and where keyed state lives
//! ([`StateBackend`]).

use std::collections::HashMap;

use weir_state::KeyedSnapshot;

use crate::base::error::{Result, WeirError};

/// The state of one operator of a subtask at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperatorState {
    /// The operator's node in the stream graph.
    pub node: usize,
    /// Keyed state, per key group (memory backend; every savepoint).
    pub keyed: Option<KeyedSnapshot>,
    /// Keyed state as a RocksDB checkpoint referencing the job's shared files (RocksDB
    /// backend, checkpoints only).
    pub incremental: Option<weir_state::IncrementalHandle>,
    /// Timers (event time, processing time), encoded by the operator.
    pub timers: Option<Vec<u8>>,
    /// The operator's own state (a source's position, a sink's pending files).
    pub operator: Option<Vec<u8>>,
    /// The operator's list states ([`NamedList`]s, postcard-encoded).
    pub lists: Option<Vec<u8>>,
}

impl OperatorState {
    /// Whether it holds any state at all.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_none()
            && self.incremental.is_none()
            && self.timers.is_none()
            && self.operator.is_none()
            && self.lists.is_none()
    }
}

/// One operator list state at a checkpoint: its elements, each encoded. When the parallelism
/// changes, a union list goes whole to every new subtask, a split list is cut into even
/// contiguous shares of all old subtasks' elements (Flink's `getUnionListState` and
/// `getListState`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NamedList {
    /// The state's name, unique in its operator.
    pub name: String,
    /// Union (every new subtask gets all) rather than split.
    pub union: bool,
    /// The elements.
    pub items: Vec<Vec<u8>>,
}

/// The list states an operator subtask restores, by name: whether each is a union, and the
/// elements it gets.
pub(crate) type RestoredLists = HashMap<String, (bool, Vec<Vec<u8>>)>;

/// The share of `total` elements that subtask `index` of `parallelism` takes: the first
/// `total % parallelism` subtasks one more than the others, in order.
fn share(total: usize, index: usize, parallelism: usize) -> std::ops::Range<usize> {
    let (base, extra) = (total / parallelism, total % parallelism);
    let start = index * base + index.min(extra);
    start..start + base + usize::from(index < extra)
}

/// A subtask's event time at a checkpoint (see `TaskSnapshot::clock` in `runtime::checkpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventClock {
    /// The current watermark.
    pub watermark: weir_dataplane::Timestamp,
    /// A source's highest timestamp so far (the minimum for other subtasks).
    pub max_timestamp: weir_dataplane::Timestamp,
}

impl Default for EventClock {
    fn default() -> Self {
        EventClock { watermark: weir_dataplane::MIN_WATERMARK, max_timestamp: weir_dataplane::Timestamp::MIN }
    }
}

impl EventClock {
    /// The clock a subtask restores from several old subtasks' (another parallelism): the
    /// earliest, which never makes a record late that was not late before.
    pub(crate) fn earliest(clocks: impl Iterator<Item = EventClock>) -> EventClock {
        clocks
            .reduce(|a, b| EventClock {
                watermark: a.watermark.min(b.watermark),
                max_timestamp: a.max_timestamp.min(b.max_timestamp),
            })
            .unwrap_or_default()
    }
}

/// The states of one node at a checkpoint, by the old subtask index.
#[derive(Debug, Default)]
pub(crate) struct NodeStates {
    /// The parallelism the node had.
    pub(crate) parallelism: usize,
    /// Each old subtask's state of the node (empty where it had none).
    pub(crate) states: Vec<OperatorState>,
}

/// The state a subtask restores from, by operator node.
#[derive(Debug, Default)]
pub(crate) struct RestoredState {
    pub(crate) by_node: HashMap<usize, NodeStates>,
    /// This subtask's index and its vertex's parallelism now.
    pub(crate) index: usize,
    pub(crate) parallelism: usize,
    /// The subtask had finished: it ends its chain without finishing its operators again.
    pub(crate) finished: bool,
    /// Its event time at the checkpoint.
    pub(crate) clock: EventClock,
    /// The job's shared directory at the checkpoint (incremental RocksDB files).
    pub(crate) shared_dir: weir_state::storage::Location,
}

impl RestoredState {
    /// A restored state holding only an event clock (tests of the processing loop).
    #[cfg(test)]
    pub(crate) fn with_clock(clock: EventClock) -> RestoredState {
        RestoredState { clock, ..Default::default() }
    }

    /// The operator (non-keyed) states for `node`: this subtask's own at the same
    /// parallelism, every subtask's otherwise (union redistribution, as Flink's union list
    /// state).
    pub(crate) fn operator_states(&self, node: usize) -> Vec<Vec<u8>> {
        let Some(node) = self.by_node.get(&node) else { return Vec::new() };
        let pick = |s: &OperatorState| s.operator.clone();
        if node.parallelism == self.parallelism {
            node.states.get(self.index).and_then(pick).into_iter().collect()
        } else {
            node.states.iter().filter_map(pick).collect()
        }
    }

    /// The list states of `node` this subtask restores: at the same parallelism its own; at
    /// another, every union list whole and its share of every split list (the old subtasks'
    /// elements in subtask order). A corrupt list, or one name both split and union, is an
    /// error naming it.
    pub(crate) fn operator_lists(&self, node: usize) -> Result<RestoredLists> {
        let mut lists = RestoredLists::new();
        let Some(states) = self.by_node.get(&node) else { return Ok(lists) };
        let same = states.parallelism == self.parallelism;
        for (old, state) in states.states.iter().enumerate() {
            let Some(bytes) = state.lists.as_ref().filter(|_| !same || old == self.index) else { continue };
            let named: Vec<NamedList> = postcard::from_bytes(bytes).map_err(|e| {
                WeirError::runtime(format!("the list states of operator node {node}, subtask {old} are corrupt: {e}"))
            })?;
            for list in named {
                let (union, items) = lists.entry(list.name.clone()).or_insert((list.union, Vec::new()));
                if *union != list.union {
                    return Err(WeirError::runtime(format!(
                        "operator node {node}: list state '{}' is both split and union in the checkpoint",
                        list.name
                    )));
                }
                items.extend(list.items);
            }
        }
        if !same {
            for (union, items) in lists.values_mut() {
                if !*union {
                    let mine = share(items.len(), self.index, self.parallelism);
                    *items = items.drain(mine).collect();
                }
            }
        }
        Ok(lists)
    }

    /// Every subtask's keyed state for `node`, merged (each subtask keeps its key groups).
    pub(crate) fn keyed(&self, node: usize) -> Option<KeyedSnapshot> {
        let states = &self.by_node.get(&node)?.states;
        let mut merged: Option<KeyedSnapshot> = None;
        for keyed in states.iter().filter_map(|s| s.keyed.clone()) {
            match &mut merged {
                Some(m) => m.merge(keyed),
                None => merged = Some(keyed),
            }
        }
        merged
    }

    /// Every subtask's incremental (RocksDB) keyed state for `node`.
    pub(crate) fn incremental(&self, node: usize) -> Vec<weir_state::IncrementalHandle> {
        self.by_node
            .get(&node)
            .map(|n| n.states.iter().filter_map(|s| s.incremental.clone()).collect())
            .unwrap_or_default()
    }

    /// Every subtask's encoded timers for `node` (each subtask keeps its key groups').
    pub(crate) fn timers(&self, node: usize) -> Vec<Vec<u8>> {
        self.by_node.get(&node).map(|n| n.states.iter().filter_map(|s| s.timers.clone()).collect()).unwrap_or_default()
    }
}

/// Where a job's keyed state lives (`--state-backend`), as Flink's `state.backend.type`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StateBackend {
    /// Hash maps per key group in the subtask's memory; a checkpoint is a full copy.
    #[default]
    Memory,
    /// A RocksDB database per stateful operator subtask on the TaskManager's disk; checkpoints
    /// are incremental (new SST files are uploaded, the others referenced).
    RocksDb {
        /// The local directory of the databases (`None`: the system's temporary directory,
        /// as Flink's `io.tmp.dirs`).
        dir: Option<std::path::PathBuf>,
    },
}

impl std::str::FromStr for StateBackend {
    type Err = WeirError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "memory" | "hashmap" => Ok(StateBackend::Memory),
            "rocksdb" => Ok(StateBackend::RocksDb { dir: None }),
            other => Err(WeirError::Argument(format!("unknown state backend '{other}' (expected memory or rocksdb)"))),
        }
    }
}
