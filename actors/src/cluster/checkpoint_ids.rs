//! Checkpoint ids: unique for the life of a job.
//!
//! A checkpoint's id names its barriers, its acknowledgements, its directory and the
//! transactions of two-phase sinks, so an id issued twice can mix two checkpoints: a subtask
//! drops the second barrier as taken already and the checkpoint hangs, or a late
//! acknowledgement of the first completes the second with state from before it.
//!
//! Ids therefore come from one counter per job, which its JobMaster keeps and hands to every
//! CheckpointCoordinator it starts (a coordinator restarted in the same attempt goes on where
//! the crashed one stopped, in-flight checkpoints and savepoints included), and whose high
//! water mark is persisted in the job's checkpoint directory before any id under it is issued
//! (a restarted JobMaster or JobManager process goes on above every id issued before). As
//! Flink's `CheckpointIDCounter`, but reserved in blocks so that the file is written once
//! every [`RESERVED_AT_ONCE`] checkpoints, not at each.

use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::base::error::Result;
use crate::runtime::checkpoint::storage::CheckpointStorage;

/// Ids reserved by one write of the high water mark.
pub const RESERVED_AT_ONCE: u64 = 64;

/// The checkpoint id counter of one job (cheap to clone: clones share it).
#[derive(Debug, Clone)]
pub struct CheckpointIds {
    inner: Arc<Mutex<Counter>>,
}

#[derive(Debug)]
struct Counter {
    next: u64,
    /// Ids below this may be issued without writing the high water mark again.
    reserved: u64,
    storage: Option<CheckpointStorage>,
}

impl CheckpointIds {
    /// The counter of a job whose checkpoints go to `storage` (if it takes periodic ones) and
    /// which restored from `restored_from` (a checkpoint, or the savepoint it started from):
    /// the first id is above all of them and above the persisted high water mark. A mark that
    /// cannot be read is named in a warning, and every checkpoint directory found counts.
    pub fn new(storage: Option<&CheckpointStorage>, restored_from: Option<u64>) -> Self {
        let mut next = restored_from.map_or(1, |n| n + 1);
        if let Some(storage) = storage {
            next = next.max(storage.checkpoint_dirs().last().map_or(1, |n| n + 1));
            match storage.reserved_ids() {
                Ok(reserved) => next = next.max(reserved.unwrap_or(0)),
                Err(e) => warn!("{e}; taking the next checkpoint id from the checkpoint directories"),
            }
        }
        CheckpointIds { inner: Arc::new(Mutex::new(Counter { next, reserved: next, storage: storage.cloned() })) }
    }

    /// The next id; the high water mark is made durable first when it has to grow.
    pub fn next(&self) -> Result<u64> {
        let mut counter = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = counter.next;
        if id >= counter.reserved {
            let reserved = id + RESERVED_AT_ONCE;
            if let Some(storage) = &counter.storage {
                storage.reserve_ids(reserved)?;
            }
            counter.reserved = reserved;
        }
        counter.next = id + 1;
        Ok(id)
    }

    /// The id [`next`](Self::next) would issue (tests, statistics).
    pub fn peek(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::ids::JobId;

    fn storage(label: &str) -> (std::path::PathBuf, CheckpointStorage) {
        let root = std::env::temp_dir().join(format!("weir-ids-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let storage = CheckpointStorage::new(&root, JobId(9));
        (root, storage)
    }

    #[test]
    fn clones_share_the_counter() {
        let ids = CheckpointIds::new(None, None);
        let restarted = ids.clone();
        assert_eq!(ids.next().unwrap(), 1);
        assert_eq!(restarted.next().unwrap(), 2);
        assert_eq!(ids.next().unwrap(), 3);
    }

    #[test]
    fn a_new_counter_starts_above_every_id_issued_before() {
        let (root, storage) = storage("persist");
        let ids = CheckpointIds::new(Some(&storage), None);
        let issued: Vec<u64> = (0..3).map(|_| ids.next().unwrap()).collect();
        assert_eq!(issued, vec![1, 2, 3]);
        // None of them completed, and no directory was made: a new JobMaster still goes on
        // above them.
        let again = CheckpointIds::new(Some(&storage), None);
        assert!(again.peek() > 3, "{}", again.peek());
        // Past a reservation, the mark grows before the id is issued.
        for _ in 0..RESERVED_AT_ONCE * 2 {
            again.next().unwrap();
        }
        let last = again.peek() - 1;
        assert!(CheckpointIds::new(Some(&storage), None).peek() > last);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn restored_and_existing_checkpoints_are_never_issued_again() {
        let (root, storage) = storage("floor");
        assert_eq!(CheckpointIds::new(Some(&storage), Some(41)).peek(), 42);
        std::fs::create_dir_all(storage.local_dir(57)).unwrap();
        assert_eq!(CheckpointIds::new(Some(&storage), Some(41)).peek(), 58);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_corrupt_mark_falls_back_to_the_directories() {
        let (root, storage) = storage("corrupt");
        std::fs::create_dir_all(storage.local_dir(7)).unwrap();
        std::fs::write(
            storage.job_dir().as_local().unwrap().join(crate::runtime::checkpoint::storage::RESERVED_IDS),
            "seven",
        )
        .unwrap();
        let err = storage.reserved_ids().unwrap_err().to_string();
        assert!(err.contains("checkpoint-ids") && err.contains("seven"), "{err}");
        assert_eq!(CheckpointIds::new(Some(&storage), None).peek(), 8);
        let _ = std::fs::remove_dir_all(root);
    }
}
