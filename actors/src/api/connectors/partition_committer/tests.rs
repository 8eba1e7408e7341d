use super::*;
use crate::base::subtask::SubtaskInfo;

fn info() -> SubtaskInfo {
    SubtaskInfo {
        job_id: JobId(1),
        job_name: "j".into(),
        vertex: "committer".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        attempt: 0,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-committer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn committer(dir: &std::path::Path) -> PartitionCommitter {
    let mut c = PartitionCommitter::new(dir, PartitionTime::pattern("$dt $hm:00"), Duration::from_secs(60));
    c.open(&OpenContext { info: &info(), checkpointing: true, lists: Default::default() }).unwrap();
    c
}

fn report(checkpoint: u64, subtask: usize, watermark: Timestamp, partitions: &[&str]) -> PartitionCommitInfo {
    PartitionCommitInfo {
        checkpoint,
        subtask,
        parallelism: 2,
        watermark,
        partitions: partitions.iter().map(|p| (*p).to_owned()).collect(),
        uncommitted: Vec::new(),
    }
}

/// 2024-01-01 00:01:00 UTC.
const MINUTE_1: Timestamp = 1_704_067_260_000;
const P1: &str = "dt=2024-01-01/hm=00%3A01";
const P2: &str = "dt=2024-01-01/hm=00%3A02";

#[test]
fn partition_paths_are_escaped_as_flink_escapes_them() {
    assert_eq!(escape_path_name("12:01").unwrap(), "12%3A01");
    assert_eq!(escape_path_name("2024-01-01").unwrap(), "2024-01-01");
    assert_eq!(escape_path_name("a=b/c d%\u{1}\u{7f}{x}").unwrap(), "a%3Db%2Fc d%25%01%7F%7Bx}");
    assert_eq!(escape_path_name("\"#'*?\\[]^").unwrap(), "%22%23%27%2A%3F%5C%5B%5D%5E");
    assert_eq!(escape_path_name("é").unwrap(), "é", "only ASCII is escaped");
    assert!(escape_path_name("").is_err(), "Flink refuses an empty value");
    assert_eq!(partition_path(&[("dt", "2024-01-01"), ("hm", "00:01")]).unwrap(), P1);
    assert_eq!(unescape_path_name("a%3Db%2Fc%2"), "a=b/c%2", "a % without two hex digits stays");
    assert_eq!(
        partition_spec(P1),
        vec![("dt".to_owned(), "2024-01-01".to_owned()), ("hm".to_owned(), "00:01".to_owned())]
    );
}

#[test]
fn a_partition_commits_once_the_watermark_is_past_its_time_plus_the_delay() {
    let time = PartitionTime::pattern("$dt $hm:00");
    assert_eq!(time.extract(P1).unwrap(), MINUTE_1);
    assert_eq!(PartitionTime::pattern("$dt").extract("dt=1969-12-31").unwrap(), -86_400_000);
    assert_eq!(PartitionTime::pattern("$dt $hm:00").extract("dt=2024-2-29/hm=1%3A5").unwrap(), 1_709_168_700_000);
    assert!(time.extract("dt=2024-01-01").is_err(), "no $hm: not a timestamp");
    let delay = Duration::from_secs(60);
    // Strictly greater, as Flink's `watermark > partition time + delay`.
    assert!(!partition_committable(MINUTE_1 + 60_000, MINUTE_1, delay));
    assert!(partition_committable(MINUTE_1 + 60_001, MINUTE_1, delay));
    assert!(!partition_committable(Timestamp::MIN, MINUTE_1, delay));
    assert!(partition_committable(Timestamp::MAX, Timestamp::MAX - 1, Duration::ZERO), "the final watermark");
}

#[test]
fn partitions_commit_once_every_writer_reported_with_the_least_watermark() {
    let dir = temp_dir("rounds");
    let mut c = committer(&dir);
    let success = |p: &str| dir.join(p).join(SUCCESS_FILE).exists();
    c.write(report(1, 0, MINUTE_1 + 200_000, &[P1, P2]), None).unwrap();
    assert!(!success(P1), "subtask 1 has not reported checkpoint 1");
    // Subtask 1's watermark passed P1 (00:01 + 1 min), not P2.
    c.write(report(1, 1, MINUTE_1 + 60_001, &[]), None).unwrap();
    assert!(success(P1) && !success(P2));
    assert_eq!(c.pending().collect::<Vec<_>>(), vec![P2]);
    std::fs::remove_file(dir.join(P1).join(SUCCESS_FILE)).unwrap();
    c.write(report(2, 0, MINUTE_1 + 120_001, &[]), None).unwrap();
    c.write(report(2, 1, MINUTE_1 + 120_001, &[]), None).unwrap();
    assert!(success(P2));
    assert!(!success(P1), "committed once: not again at a later checkpoint");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_restored_committer_keeps_its_pending_partitions_and_commits_the_end() {
    let dir = temp_dir("restore");
    let success = |p: &str| dir.join(p).join(SUCCESS_FILE).exists();
    let mut c = committer(&dir);
    c.write(report(1, 0, MINUTE_1, &[P1]), None).unwrap();
    c.write(report(1, 1, MINUTE_1, &[P2]), None).unwrap();
    let state2 = c.snapshot_state(2).unwrap().unwrap();
    // A writer's last file, pre-committed by the checkpoint after its end.
    std::fs::create_dir_all(dir.join(P2)).unwrap();
    std::fs::write(dir.join(P2).join(".part-1-7.a0.pending"), "last\n").unwrap();
    let mut end = report(PartitionCommitInfo::END, 0, Timestamp::MAX, &[]);
    c.write(end.clone(), None).unwrap();
    end.subtask = 1;
    end.uncommitted = vec![(format!("{P2}/.part-1-7.a0.pending"), format!("{P2}/part-1-7"))];
    c.write(end, None).unwrap();
    assert!(!success(P1) && !success(P2), "with checkpoints the end waits for the next one to complete");
    let state3 = c.snapshot_state(3).unwrap().unwrap();
    drop(c);

    // Restored from checkpoint 2: the partitions wait, nothing is committed by the restore.
    let mut restored = committer(&dir);
    restored.restore_state(vec![state2]).unwrap();
    assert_eq!(restored.pending().collect::<Vec<_>>(), vec![P1, P2]);
    assert!(!success(P1) && !success(P2));
    restored.write(report(4, 0, MINUTE_1 + 60_001, &[]), None).unwrap();
    restored.write(report(4, 1, MINUTE_1 + 60_001, &[]), None).unwrap();
    assert!(success(P1) && !success(P2), "restored pending partitions commit when the watermark passes them");

    // Restored from checkpoint 3, taken after every end: the end is committed at once, the
    // writer's last file with it.
    let mut ended = committer(&dir);
    ended.restore_state(vec![state3]).unwrap();
    assert!(success(P1) && success(P2));
    assert_eq!(std::fs::read_to_string(dir.join(P2).join("part-1-7")).unwrap(), "last\n");
    assert!(!dir.join(P2).join(".part-1-7.a0.pending").exists());
    assert_eq!(ended.pending().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
