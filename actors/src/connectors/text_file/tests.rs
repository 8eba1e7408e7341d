use super::*;
use crate::job::JobId;
use crate::operator::SubtaskInfo;

fn read_all(path: &Path, p: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for index in 0..p {
        let info = SubtaskInfo {
            job_id: JobId(1),
            job_name: "t".into(),
            vertex: "v".into(),
            index,
            parallelism: p,
            max_parallelism: 128,
            attempt: 0,
        };
        let mut source = TextFile::new(path);
        source.open(&OpenContext { info: &info, checkpointing: false }).unwrap();
        while let Some(split) = source.splits.pop() {
            let mut r = TextFile::open_split(&split).unwrap();
            loop {
                if r.position >= r.split.end {
                    break;
                }
                r.line.clear();
                let n = r.reader.read_until(b'\n', &mut r.line).unwrap();
                if n == 0 {
                    break;
                }
                r.position += n as u64;
                lines.push(String::from_utf8(r.line.clone()).unwrap().trim_end_matches('\n').to_owned());
            }
        }
    }
    lines.sort();
    lines
}

use std::path::Path;

#[test]
fn every_line_is_read_once_at_any_parallelism() {
    let dir = std::env::temp_dir().join(format!("weir-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.txt");
    let content: String = (0..200).map(|i| format!("line {i} {}\n", "x".repeat(i % 17))).collect();
    std::fs::write(&file, &content).unwrap();
    let mut expected: Vec<String> = content.lines().map(str::to_owned).collect();
    expected.sort();
    for p in 1..=9 {
        assert_eq!(read_all(&file, p), expected, "parallelism {p}");
    }
    // No trailing newline, and an empty line.
    std::fs::write(&file, "a\n\nb").unwrap();
    for p in 1..=4 {
        assert_eq!(read_all(&file, p), vec!["", "a", "b"], "parallelism {p}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_input_names_the_path() {
    let err = TextFile::new("/no/such/weir-input.txt").validate(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("/no/such/weir-input.txt"), "{err}");
}
