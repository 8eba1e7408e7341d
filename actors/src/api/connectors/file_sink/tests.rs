use super::*;
use crate::base::ids::JobId;
use crate::base::subtask::SubtaskInfo;

fn info(index: usize) -> SubtaskInfo {
    SubtaskInfo {
        job_id: JobId(1),
        job_name: "j".into(),
        vertex: "v".into(),
        index,
        parallelism: 2,
        max_parallelism: 128,
        attempt: 0,
    }
}

fn visible(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .flat_map(|e| std::fs::read_to_string(e.path()).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

#[test]
fn output_appears_only_when_its_checkpoint_completes_and_a_restore_discards_the_rest() {
    let dir = std::env::temp_dir().join(format!("weir-sink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = FileSink::<String>::new(&dir);
    sink.open(&OpenContext { info: &info(1), checkpointing: false, lists: Default::default() }).unwrap();
    sink.write("a".into(), None).unwrap();
    let state1 = sink.snapshot_state(1).unwrap().unwrap();
    assert!(visible(&dir).is_empty(), "pre-committed, not committed");
    sink.write("b".into(), None).unwrap();
    sink.notify_checkpoint_complete(1).unwrap();
    assert_eq!(visible(&dir), vec!["a"]);
    let _state2 = sink.snapshot_state(2).unwrap().unwrap();
    sink.write("c".into(), None).unwrap();
    // The job fails here; checkpoint 2 never completed. Restore from checkpoint 1, which
    // commits what it had pre-committed again: that is fine (idempotent).
    drop(sink);
    let mut again = FileSink::<String>::new(&dir);
    again.open(&OpenContext { info: &info(1), checkpointing: false, lists: Default::default() }).unwrap();
    again.restore_state(vec![state1.clone()]).unwrap();
    drop(again);
    let mut restored = FileSink::<String>::new(&dir);
    restored.open(&OpenContext { info: &info(1), checkpointing: false, lists: Default::default() }).unwrap();
    restored.restore_state(vec![state1.clone()]).unwrap();
    restored.write("b2".into(), None).unwrap();
    restored.finish().unwrap();
    assert_eq!(visible(&dir), vec!["a", "b2"], "b and c were after checkpoint 1: discarded");
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "no in-progress or pending files are left");
    // Restoring checkpoint 1 again now would replay "b2", which the restored run committed
    // after it: refused (see a_restore_behind_committed_output_is_refused_…).
    let mut again = FileSink::<String>::new(&dir);
    again.open(&OpenContext { info: &info(1), checkpointing: false, lists: Default::default() }).unwrap();
    assert!(matches!(again.restore_state(vec![state1]), Err(WeirError::RestoredBehindOutput(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn hidden(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn with_checkpoints_the_last_file_waits_for_the_final_checkpoint() {
    let dir = std::env::temp_dir().join(format!("weir-sink-final-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = FileSink::<String>::new(&dir);
    sink.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
    sink.write("tail".into(), None).unwrap();
    sink.finish().unwrap();
    assert!(visible(&dir).is_empty(), "not committed at the end of input");
    // The final checkpoint, taken after the end of input, pre-commits and commits it.
    sink.snapshot_state(7).unwrap();
    assert!(visible(&dir).is_empty());
    sink.notify_checkpoint_complete(7).unwrap();
    assert_eq!(visible(&dir), vec!["tail"]);
    assert!(hidden(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn subtask_0_cleans_what_subtasks_gone_after_a_rescale_left() {
    let dir = std::env::temp_dir().join(format!("weir-sink-rescale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A run at parallelism 3 left uncommitted files of subtasks 1 and 2.
    for name in [".part-1-4.inprogress", ".part-2-3.inprogress", ".part-2-2.pending"] {
        std::fs::write(dir.join(name), "after the savepoint\n").unwrap();
    }
    // Now at parallelism 2 (`info` says 2): subtask 1 cleans its own, subtask 0 subtask 2's.
    let mut one = FileSink::<String>::new(&dir);
    one.open(&OpenContext { info: &info(1), checkpointing: true, lists: Default::default() }).unwrap();
    one.snapshot_state(1).unwrap();
    assert_eq!(hidden(&dir), vec![".part-2-2.pending", ".part-2-3.inprogress"]);
    let mut zero = FileSink::<String>::new(&dir);
    zero.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
    zero.snapshot_state(1).unwrap();
    assert!(hidden(&dir).is_empty(), "{:?}", hidden(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_old_attempt_still_running_cannot_touch_the_new_attempts_files() {
    let dir = std::env::temp_dir().join(format!("weir-sink-fence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let attempt = |attempt| SubtaskInfo { attempt, ..info(0) };
    let mut old = FileSink::<String>::new(&dir);
    old.open(&OpenContext { info: &attempt(1), checkpointing: true, lists: Default::default() }).unwrap();
    old.write("a".into(), None).unwrap();
    let state1 = old.snapshot_state(1).unwrap().unwrap();
    old.notify_checkpoint_complete(1).unwrap();
    // Attempt 1 goes on after checkpoint 1 (a zombie: its TaskManager was cut off) while
    // attempt 2 restores checkpoint 1 and numbers its files from the same sequence.
    old.write("zombie".into(), None).unwrap();
    let mut new = FileSink::<String>::new(&dir);
    new.open(&OpenContext { info: &attempt(2), checkpointing: true, lists: Default::default() }).unwrap();
    new.restore_state(vec![state1]).unwrap();
    new.write("b".into(), None).unwrap();
    // The zombie pre-commits after the new attempt opened its file: the names differ, so the
    // new attempt's file is neither truncated nor replaced.
    old.write("more zombie".into(), None).unwrap();
    let _ = old.snapshot_state(2);
    new.snapshot_state(2).unwrap();
    new.notify_checkpoint_complete(2).unwrap();
    assert_eq!(visible(&dir), vec!["a", "b"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Defect: restored from a checkpoint older than output it had committed (the newest
/// checkpoint was corrupt, and the job fell back to the one before), the sink numbered its
/// files from the old state and renamed them over the committed ones, with other records.
/// Now such a restore fails, naming the first later file, and a commit never replaces a
/// committed file.
#[test]
fn a_restore_behind_committed_output_is_refused_and_nothing_committed_is_replaced() {
    let dir = std::env::temp_dir().join(format!("weir-sink-behind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = FileSink::<String>::new(&dir);
    sink.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
    sink.write("a".into(), None).unwrap();
    let state1 = sink.snapshot_state(1).unwrap().unwrap();
    sink.notify_checkpoint_complete(1).unwrap();
    sink.write("b".into(), None).unwrap();
    let state2 = sink.snapshot_state(2).unwrap().unwrap();
    sink.notify_checkpoint_complete(2).unwrap();
    drop(sink);
    assert_eq!(visible(&dir), vec!["a", "b"]);

    let restore = |state: &Vec<u8>| {
        let mut restored = FileSink::<String>::new(&dir);
        restored.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
        restored.restore_state(vec![state.clone()]).map(|()| restored)
    };
    let err = restore(&state1).expect_err("restoring behind committed output fails");
    assert!(!err.is_recoverable());
    let err = err.to_string();
    assert!(err.contains("part-0-1") && err.contains("restored behind committed output"), "{err}");
    assert_eq!(visible(&dir), vec!["a", "b"], "nothing committed was touched");
    // The newest checkpoint restores, and commits again idempotently.
    restore(&state2).unwrap();

    // An older attempt's pending file under a committed name is never committed over it.
    std::fs::write(dir.join(".part-0-1.a7.pending"), "zombie\n").unwrap();
    let zombie = FileSink::<String> { attempt: 7, ..FileSink::new(&dir) };
    let err = zombie.commit("", 1, 7).unwrap_err().to_string();
    assert!(err.contains("committed already"), "{err}");
    assert_eq!(visible(&dir), vec!["a", "b"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A job restarted from the start (no checkpoint to restore: it takes none, or none completed)
/// writes its output again: its earlier attempt's committed files are replaced, not refused.
#[test]
fn an_attempt_that_restored_nothing_starts_the_output_over() {
    let dir = std::env::temp_dir().join(format!("weir-sink-over-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let attempt = |attempt| SubtaskInfo { attempt, ..info(0) };
    let mut first = FileSink::<String>::new(&dir);
    first.open(&OpenContext { info: &attempt(0), checkpointing: false, lists: Default::default() }).unwrap();
    first.write("a".into(), None).unwrap();
    first.finish().unwrap();
    assert_eq!(visible(&dir), vec!["a"]);
    // Another subtask failed; the job starts again from the beginning.
    let mut second = FileSink::<String>::new(&dir);
    second.open(&OpenContext { info: &attempt(1), checkpointing: false, lists: Default::default() }).unwrap();
    second.write("a".into(), None).unwrap();
    second.finish().unwrap();
    assert_eq!(visible(&dir), vec!["a"], "once");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An output directory on a [`CrashFs`] (a machine that can crash), and the layer.
fn on_crashing_machine(name: &str) -> (crate::base::fs::CrashFs, PathBuf) {
    let root = std::env::temp_dir().join(format!("weir-sink-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("out")).unwrap();
    (crate::base::fs::CrashFs::new(&root).unwrap(), root.join("out"))
}

fn sink_on(fs: &crate::base::fs::CrashFs, dir: &Path) -> FileSink<String> {
    let mut sink = FileSink::<String>::new(dir).with_file_system(Arc::new(fs.clone()));
    sink.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
    sink
}

/// A checkpoint that completed lists the sink's pending file: a machine crash after it must
/// not undo the rename to the pending name. It did (the directory was not synced after the
/// rename), and the restore then failed to commit a file that was not there.
#[test]
fn a_pre_commit_survives_a_machine_crash() {
    let (fs, dir) = on_crashing_machine("pre-commit");
    let mut sink = sink_on(&fs, &dir);
    sink.write("a".into(), None).unwrap();
    sink.write("b".into(), None).unwrap();
    let state1 = sink.snapshot_state(1).unwrap().unwrap();
    // Checkpoint 1 completes; the machine crashes before any sink heard of it.
    drop(sink);
    fs.crash().unwrap();
    let mut restored = sink_on(&fs, &dir);
    restored.restore_state(vec![state1]).unwrap();
    restored.finish().unwrap();
    assert_eq!(visible(&dir), ["a", "b"]);
    std::fs::remove_dir_all(fs.root()).unwrap();
}

/// A committed file must stay committed across a machine crash once a later checkpoint no
/// longer lists it as pending: restoring that checkpoint would otherwise delete the pending
/// name the crash brought back, and its records with it (the commit's directory sync).
#[test]
fn a_commit_survives_a_machine_crash() {
    let (fs, dir) = on_crashing_machine("commit");
    let mut sink = sink_on(&fs, &dir);
    sink.write("a".into(), None).unwrap();
    sink.snapshot_state(1).unwrap();
    sink.notify_checkpoint_complete(1).unwrap();
    // Nothing written since: checkpoint 2 pre-commits nothing, and completes.
    let state2 = sink.snapshot_state(2).unwrap().unwrap();
    drop(sink);
    fs.crash().unwrap();
    let mut restored = sink_on(&fs, &dir);
    restored.restore_state(vec![state2]).unwrap();
    restored.finish().unwrap();
    assert_eq!(visible(&dir), ["a"]);
    std::fs::remove_dir_all(fs.root()).unwrap();
}

#[test]
fn partitions_get_their_own_part_files_rolled_over_by_time_and_validation_knows_them() {
    let dir = std::env::temp_dir().join(format!("weir-sink-partitions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = FileSink::<String>::new(&dir)
        .partitioned(|line: &String| format!("k={}", &line[..1]))
        .rollover_interval(std::time::Duration::from_secs(60));
    sink.open(&OpenContext { info: &info(0), checkpointing: true, lists: Default::default() }).unwrap();
    sink.write_at("a1".into(), Some(0)).unwrap();
    sink.write_at("b1".into(), Some(0)).unwrap();
    // A minute later the file of k=a rolls over; k=b's stays open until the barrier.
    sink.write_at("a2".into(), Some(60_000)).unwrap();
    sink.snapshot_state(1).unwrap();
    sink.notify_checkpoint_complete(1).unwrap();
    let names = |p: &str| {
        let mut n: Vec<String> =
            std::fs::read_dir(dir.join(p)).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        n.sort();
        n
    };
    assert_eq!(names("k=a"), vec!["part-0-0", "part-0-2"]);
    assert_eq!(names("k=b"), vec!["part-0-1"]);
    assert_eq!(sink.unreported.iter().collect::<Vec<_>>(), vec!["k=a", "k=b"], "to report");

    let validate = |restoring| Sink::validate(&sink, &ValidateContext::new(restoring));
    std::fs::write(dir.join("k=a").join(SUCCESS_FILE), "").unwrap();
    let err = validate(false).unwrap_err().to_string();
    assert!(err.contains("output of an earlier run (k=a/_SUCCESS and 3 more)"), "{err}");
    assert!(validate(true).is_ok(), "a restored job's own output");
    std::fs::write(dir.join("stray"), "").unwrap();
    let err = validate(true).unwrap_err().to_string();
    assert!(err.contains("holds 'stray', which this sink did not write"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
