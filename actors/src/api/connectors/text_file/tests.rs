use super::*;
use crate::api::harness::HarnessConfig;
use crate::base::ids::JobId;
use crate::base::subtask::SubtaskInfo;

fn read_all(path: &Path, p: usize, chunk: u64) -> Vec<String> {
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
        let mut source = TextFile::new(path).chunk_bytes(chunk);
        source.open(&OpenContext { info: &info, checkpointing: false, lists: Default::default() }).unwrap();
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
        for chunk in [1, 7, 64, 1 << 20] {
            assert_eq!(read_all(&file, p, chunk), expected, "parallelism {p}, chunks of {chunk}");
        }
    }
    // No trailing newline, and an empty line.
    std::fs::write(&file, "a\n\nb").unwrap();
    for p in 1..=4 {
        for chunk in [1, 2, 3, 1 << 20] {
            assert_eq!(read_all(&file, p, chunk), vec!["", "a", "b"], "parallelism {p}, chunks of {chunk}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_input_names_the_path() {
    let err = TextFile::new("/no/such/weir-input.txt").validate(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("/no/such/weir-input.txt"), "{err}");
}

/// Reads `path` at each parallelism of `legs` in turn, each subtask stopping after the
/// lines its entry says (`usize::MAX`: to the end), restoring each leg from the last.
fn read_in_legs(path: &Path, legs: &[&[usize]]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut states = Vec::new();
    for limits in legs {
        let p = limits.len();
        states = (0..p)
            .map(|i| {
                let harness = HarnessConfig::new().subtask(i, p).batch_size(3).restore(states.clone());
                let mut h = harness.build_source(TextFile::new(path).chunk_bytes(100)).unwrap();
                h.run(limits[i]).unwrap();
                lines.extend(h.output());
                h.snapshot().unwrap()
            })
            .collect();
    }
    lines.sort();
    lines
}

#[test]
fn rescaling_reads_every_line_once() {
    let dir = std::env::temp_dir().join(format!("weir-text-rescale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in 0..3 {
        let content: String = (0..70).map(|i| format!("file {f} line {i}\n")).collect();
        std::fs::write(dir.join(format!("in-{f}.txt")), content).unwrap();
    }
    let mut expected: Vec<String> = (0..3).flat_map(|f| (0..70).map(move |i| format!("file {f} line {i}"))).collect();
    expected.sort();
    // 2 -> 3 -> 1, stopped part of the way each time; and 1 -> 3 (one old position shared out).
    assert_eq!(read_in_legs(&dir, &[&[20, 35], &[5, 0, 12], &[usize::MAX]]), expected);
    assert_eq!(read_in_legs(&dir, &[&[50], &[usize::MAX; 3]]), expected);
    assert_eq!(read_in_legs(&dir, &[&[7, 9], &[usize::MAX, usize::MAX]]), expected, "the same parallelism");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_line_is_numbered_from_the_start_of_its_file_whichever_subtask_reads_it() {
    let dir = std::env::temp_dir().join(format!("weir-text-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("numbers.csv");
    let bad = [7u64, 500, 501, 999];
    let content: String =
        (1..=1_000u64).map(|n| if bad.contains(&n) { format!("x{n}\n") } else { format!("{n}\n") }).collect();
    std::fs::write(&file, content).unwrap();
    let parse = |line: &str| line.parse::<u64>().map_err(|_| format!("'{line}' is not a number"));
    for p in [1, 3, 4] {
        let (mut good, mut bad_lines) = (Vec::new(), Vec::new());
        for i in 0..p {
            let mut h = HarnessConfig::new()
                .subtask(i, p)
                .build_source(TextFile::new(&file).chunk_bytes(500).parse(parse))
                .unwrap();
            h.run(usize::MAX).unwrap();
            for record in h.output() {
                match record {
                    Ok(n) => good.push(n),
                    Err(bad) => bad_lines.push(bad),
                }
            }
        }
        good.sort();
        bad_lines.sort_by_key(|b| b.line);
        assert_eq!(good, (1..=1_000).filter(|n| !bad.contains(n)).collect::<Vec<_>>(), "parallelism {p}");
        assert_eq!(bad_lines.iter().map(|b| b.line).collect::<Vec<_>>(), bad, "parallelism {p}");
        let first = &bad_lines[0];
        assert_eq!((first.text.as_str(), first.reason.as_str()), ("x7", "'x7' is not a number"));
        assert_eq!(first.to_string(), format!("'{}' line 7: 'x7' is not a number", file.display()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
