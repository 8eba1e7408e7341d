use super::*;
use crate::job::JobId;
use crate::operator::SubtaskInfo;

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
    sink.open(&OpenContext { info: &info(1), checkpointing: false }).unwrap();
    sink.write("a".into(), None).unwrap();
    let state1 = sink.snapshot_state(1).unwrap().unwrap();
    assert!(visible(&dir).is_empty(), "pre-committed, not committed");
    sink.write("b".into(), None).unwrap();
    sink.notify_checkpoint_complete(1).unwrap();
    assert_eq!(visible(&dir), vec!["a"]);
    let _state2 = sink.snapshot_state(2).unwrap().unwrap();
    sink.write("c".into(), None).unwrap();
    // The job fails here; checkpoint 2 never completed. Restore from checkpoint 1.
    drop(sink);
    let mut restored = FileSink::<String>::new(&dir);
    restored.open(&OpenContext { info: &info(1), checkpointing: false }).unwrap();
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
    // Committing what was committed already is fine (a restore after the commit).
    let mut again = FileSink::<String>::new(&dir);
    again.open(&OpenContext { info: &info(1), checkpointing: false }).unwrap();
    again.restore_state(vec![state1]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
