use super::*;
use crate::checkpoint::OperatorState;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn storage(label: &str) -> (Dir, CheckpointStorage) {
    let dir = std::env::temp_dir().join(format!("weir-chk-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let storage = CheckpointStorage::new(&dir, JobId(7));
    (Dir(dir), storage)
}

fn complete(storage: &CheckpointStorage, n: u64) {
    let snapshot = TaskSnapshot {
        checkpoint: n,
        vertex: 0,
        subtask: 0,
        finished: false,
        operators: vec![OperatorState { node: 0, operator: Some(vec![n as u8; 10]), ..Default::default() }],
        clock: Default::default(),
    };
    storage.begin(n).unwrap();
    let handle = storage.write_task(&snapshot, 0).unwrap();
    let metadata = CheckpointMetadata {
        version: CheckpointMetadata::VERSION,
        job: JobId(7),
        checkpoint: n,
        savepoint: false,
        fingerprint: 42,
        max_parallelism: 128,
        triggered_ms: 0,
        duration_ms: 1,
        operators: Vec::new(),
        tasks: vec![handle],
    };
    storage.write_metadata(&metadata).unwrap();
}

#[test]
fn a_checkpoint_without_metadata_does_not_exist() {
    let (_dir, storage) = storage("half");
    complete(&storage, 1);
    // Checkpoint 2 got as far as a subtask's file.
    let half = TaskSnapshot {
        checkpoint: 2,
        vertex: 0,
        subtask: 0,
        finished: false,
        operators: Vec::new(),
        clock: Default::default(),
    };
    storage.begin(2).unwrap();
    storage.write_task(&half, 0).unwrap();
    assert_eq!(storage.completed(), vec![1]);
    assert_eq!(storage.latest_valid(42).unwrap().metadata.checkpoint, 1);
}

#[test]
fn a_corrupt_file_is_named_and_the_previous_checkpoint_is_used() {
    let (_dir, storage) = storage("corrupt");
    complete(&storage, 1);
    complete(&storage, 2);
    let metadata = storage.read_metadata(2).unwrap();
    let task_file = storage.checkpoint_dir(2).join(&metadata.tasks[0].file);
    std::fs::write(&task_file, b"\xff\xff not a snapshot").unwrap();
    let err = storage.read_task(2, &metadata.tasks[0]).unwrap_err().to_string();
    assert!(err.contains(&task_file.display().to_string()) && err.contains("corrupt"), "{err}");
    assert_eq!(storage.latest_valid(42).unwrap().metadata.checkpoint, 1, "falls back to checkpoint 1");

    // A missing file too; and corrupt metadata.
    std::fs::remove_file(&task_file).unwrap();
    assert!(storage.read_task(2, &metadata.tasks[0]).unwrap_err().to_string().contains("0-0-a0"));
    std::fs::write(storage.checkpoint_dir(1).join("_metadata"), b"{").unwrap();
    let err = storage.read_metadata(1).unwrap_err().to_string();
    assert!(err.contains("chk-1/_metadata"), "{err}");
    assert!(storage.latest_valid(42).is_none());
}

#[test]
fn another_plans_checkpoint_is_not_restored() {
    let (_dir, storage) = storage("plan");
    complete(&storage, 1);
    assert!(storage.latest_valid(43).is_none());
}

#[test]
fn pruning_keeps_the_newest_and_drops_stale_incomplete_ones() {
    let (_dir, storage) = storage("prune");
    for n in 1..=4 {
        complete(&storage, n);
    }
    storage
        .write_task(
            &TaskSnapshot {
                checkpoint: 3,
                vertex: 1,
                subtask: 0,
                finished: false,
                operators: Vec::new(),
                clock: Default::default(),
            },
            0,
        )
        .unwrap();
    std::fs::create_dir_all(storage.checkpoint_dir(0)).unwrap();
    storage.prune(2);
    assert_eq!(storage.completed(), vec![3, 4]);
    assert!(!storage.checkpoint_dir(0).exists());
}

/// Defect: every attempt of a subtask wrote `<vertex>-<subtask>` through one temporary file, so
/// a cancelled attempt whose upload outlived it could replace the new attempt's state of the
/// same checkpoint; and a write after an abort made the deleted directory again.
#[test]
fn an_old_attempts_late_write_cannot_replace_the_new_attempts_state() {
    let (_dir, storage) = storage("attempts");
    let snapshot = |byte: u8| TaskSnapshot {
        checkpoint: 5,
        vertex: 0,
        subtask: 0,
        finished: false,
        operators: vec![OperatorState { node: 0, operator: Some(vec![byte]), ..Default::default() }],
        clock: Default::default(),
    };
    storage.begin(5).unwrap();
    let new = storage.write_task(&snapshot(2), 2).unwrap();
    // Attempt 1 was cancelled, but its write comes now.
    let old = storage.write_task(&snapshot(1), 1).unwrap();
    assert_ne!(old.file, new.file);
    assert_eq!(storage.read_task(5, &new).unwrap().operators[0].operator, Some(vec![2]));

    // Aborted: the directory is deleted, and a late write fails without making it again.
    storage.discard(5);
    let err = storage.write_task(&snapshot(1), 1).unwrap_err().to_string();
    assert!(err.contains("checkpoint 5 was aborted"), "{err}");
    assert!(!storage.checkpoint_dir(5).exists());
}
