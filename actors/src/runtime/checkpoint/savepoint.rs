//! Savepoints: checkpoints the user triggers (`weir savepoint`, `weir stop --savepoint`),
//! and restoring a job from one (`weir run --from-savepoint`).
//!
//! A savepoint has a checkpoint's format, self-contained in a directory of the user's choice:
//! `<dir>/savepoint-<first 6 hex digits of the job id>-<n>/` holds the subtasks' files and
//! `_metadata`, written last. It is never pruned, and its keyed state is always the
//! canonical per-key-group [`KeyedSnapshot`](weir_state::KeyedSnapshot) (never an
//! incremental backend format), so any backend and any parallelism can read it.
//!
//! Restoring matches the savepoint's operators to the new plan's, as Flink does: by `uid`
//! when the operator has one, otherwise by its node in the stream graph and its name (Weir's
//! stable id of an operator without a uid; Flink hashes the topology instead). The plan may
//! change otherwise: another parallelism (key groups and timers are reassigned, operator
//! state is redistributed), operators added, stateless operators removed. Refused, with the
//! operators named:
//! - state of an operator the new plan lacks, unless `allow_non_restored_state`;
//! - an operator with state whose record types changed (its state could not be read);
//! - an operator with state that declares another state version than the one it wrote the
//!   savepoint with ([`DataStream::state_version`](crate::api::stream::DataStream::state_version));
//! - another maximum parallelism (key groups cannot be remapped).
//!
//! The plan's fingerprint, which covers every vertex's parallelism, is only checked when a
//! job fails over to its own checkpoints; a savepoint is matched operator by operator.

use std::collections::{BTreeMap, BTreeSet};

use weir_state::storage::Location;

use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::runtime::checkpoint::storage::{METADATA, read_metadata_in};
use crate::runtime::checkpoint::{OperatorMetadata, RestoreFrom};
use crate::runtime::job_graph::JobGraph;

/// Where a job's first deployment takes its state from (Flink's `SavepointRestoreSettings`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavepointRestore {
    /// The savepoint's directory (the one holding `_metadata`): a local path or an object
    /// store prefix.
    pub path: Location,
    /// Skip state of operators the job no longer has instead of refusing to start.
    pub allow_non_restored_state: bool,
}

impl SavepointRestore {
    /// Restores from the savepoint in `path`, refusing state the job has no operator for.
    pub fn new(path: impl Into<Location>) -> Self {
        SavepointRestore { path: path.into(), allow_non_restored_state: false }
    }

    /// Skips state of operators the job no longer has.
    pub fn allow_non_restored_state(mut self) -> Self {
        self.allow_non_restored_state = true;
        self
    }
}

/// The directory of savepoint `n` of `job` under `dir`.
pub fn savepoint_dir(dir: &Location, job: JobId, n: u64) -> Location {
    let job = job.to_string();
    dir.join(&format!("savepoint-{}-{n}", &job[..6]))
}

fn refuse(message: String) -> WeirError {
    WeirError::Savepoint(message)
}

/// Whether `new` is `old` in another version of the plan.
fn same_operator(old: &OperatorMetadata, new: &OperatorMetadata) -> bool {
    match (&old.uid, &new.uid) {
        (Some(a), Some(b)) => a == b,
        (None, None) => old.node == new.node && old.name == new.name,
        _ => false,
    }
}

impl RestoreFrom {
    /// Reads the savepoint `settings` names and matches its operators to `plan`'s (see the
    /// module docs); every refusal names the savepoint and the operators concerned.
    pub fn savepoint(settings: &SavepointRestore, plan: &JobGraph) -> Result<RestoreFrom> {
        let dir = &settings.path;
        let cannot = |e: std::io::Error| refuse(format!("cannot read '{dir}': {e}"));
        if !dir.is_dir().map_err(cannot)? {
            return Err(refuse(format!("'{dir}' does not exist")));
        }
        if !dir.join(METADATA).is_file().map_err(cannot)? {
            return Err(refuse(format!(
                "'{dir}' has no {METADATA}: it is not a savepoint (or checkpoint) directory, or one that never completed"
            )));
        }
        let metadata = read_metadata_in(dir).map_err(|e| refuse(e.to_string()))?;
        if metadata.max_parallelism != plan.max_parallelism {
            return Err(refuse(format!(
                "'{dir}' was taken with max parallelism {} and the job has {}: its keyed state cannot be remapped",
                metadata.max_parallelism, plan.max_parallelism
            )));
        }
        let stateful: BTreeSet<usize> = metadata.tasks.iter().flat_map(|t| t.operators.iter().copied()).collect();
        let now = OperatorMetadata::of_plan(plan);
        let (mut nodes, mut lost, mut changed, mut versions) = (BTreeMap::new(), Vec::new(), Vec::new(), Vec::new());
        for old in &metadata.operators {
            match now.iter().find(|new| same_operator(old, new)) {
                Some(new) => {
                    let types = |op: &OperatorMetadata| format!("{:?} {} -> {}", op.kind, op.in_type, op.out_type);
                    if stateful.contains(&old.node) && types(old) != types(new) {
                        changed.push(format!("{} was {} and is {}", old.describe(), types(old), types(new)));
                    }
                    if stateful.contains(&old.node) && old.state_version != new.state_version {
                        versions.push(format!(
                            "{} wrote it with state version {} and the job declares version {}",
                            old.describe(),
                            old.state_version,
                            new.state_version
                        ));
                    }
                    nodes.insert(new.node, old.node);
                }
                None if stateful.contains(&old.node) => lost.push(old.describe()),
                None => {}
            }
        }
        if !changed.is_empty() {
            return Err(refuse(format!(
                "'{dir}' holds state of operators whose record types changed, which the job cannot read: {}",
                changed.join("; ")
            )));
        }
        if !versions.is_empty() {
            return Err(refuse(format!(
                "'{dir}' holds state in another layout than the job reads: {}; restore it with the job version that \
                 wrote it, or give the operator a new uid to start it without that state",
                versions.join("; ")
            )));
        }
        if !lost.is_empty() && !settings.allow_non_restored_state {
            return Err(refuse(format!(
                "'{dir}' holds state of operators the job no longer has: {}; to start without it, allow non-restored state (--allow-non-restored-state)",
                lost.join(", ")
            )));
        }
        for task in &metadata.tasks {
            let file = dir.join(&task.file);
            if !file.is_file().map_err(cannot)? {
                return Err(refuse(format!("savepoint file '{file}' is missing")));
            }
        }
        Ok(RestoreFrom { dir: dir.clone(), metadata, nodes })
    }
}

#[cfg(test)]
mod tests;
