//! The `event-windows` example job through the `weir` binary: per-user totals in tumbling,
//! sliding and session windows equal a direct computation over the file, at any parallelism.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::support::{TempDir, read_output, weir};

const TIMEOUT: Duration = Duration::from_secs(120);

/// `rows` purchases of 30 users at rising times (with up to 50 ms of disorder, and pauses that
/// close sessions), as `(user, ts, amount)`.
fn purchases(rows: u64) -> Vec<(String, i64, i64)> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |below: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % below
    };
    let mut t = 0i64;
    (0..rows)
        .map(|_| {
            t += if next(50) == 0 { 900 } else { next(20) as i64 };
            let ts = t + next(50) as i64;
            (format!("u{}", next(30)), ts, next(10_000) as i64 - 1_000)
        })
        .collect()
}

/// `user<TAB>start<TAB>end<TAB>count<TAB>sum<TAB>max` of every window, computed directly.
fn expected(rows: &[(String, i64, i64)], window: &str) -> Vec<String> {
    let mut windows: BTreeMap<(String, i64, i64), Vec<i64>> = BTreeMap::new();
    match window {
        "tumbling" | "sliding" => {
            let (size, slide) = if window == "tumbling" { (1000, 1000) } else { (1000, 250) };
            for (user, ts, amount) in rows {
                let last = ts - ts.rem_euclid(slide);
                let mut start = last;
                while start > ts - size {
                    windows.entry((user.clone(), start, start + size)).or_default().push(*amount);
                    start -= slide;
                }
            }
        }
        _ => {
            let gap = 300;
            let mut by_user: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
            for (user, ts, amount) in rows {
                by_user.entry(user).or_default().push((*ts, *amount));
            }
            for (user, mut events) in by_user {
                events.sort();
                let mut session: Vec<(i64, i64)> = Vec::new();
                for (ts, amount) in events {
                    if let Some(&(last, _)) = session.last()
                        && ts > last + gap
                    {
                        let (start, end) = (session[0].0, last + gap);
                        windows.insert((user.to_owned(), start, end), session.drain(..).map(|e| e.1).collect());
                    }
                    session.push((ts, amount));
                }
                let (start, end) = (session[0].0, session.last().unwrap().0 + gap);
                windows.insert((user.to_owned(), start, end), session.into_iter().map(|e| e.1).collect());
            }
        }
    }
    let mut lines: Vec<String> = windows
        .into_iter()
        .map(|((user, start, end), amounts)| {
            let (sum, max): (i64, i64) = (amounts.iter().sum(), *amounts.iter().max().unwrap());
            format!("{user}\t{start}\t{end}\t{}\t{sum}\t{max}", amounts.len())
        })
        .collect();
    lines.sort();
    lines
}

fn run(input: &Path, output: &Path, p: &str, window_args: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "event-windows", "--local", "-p", p, "--", "--input", input.to_str().unwrap()];
    args.extend_from_slice(window_args);
    args.extend_from_slice(&["--out-of-order-ms", "60", "--chunk-bytes", "4096", "--output", output.to_str().unwrap()]);
    weir(&args, TIMEOUT)
}

#[test]
fn event_windows_equal_a_direct_computation_at_any_parallelism() {
    let dir = TempDir::new("event-windows");
    let rows = purchases(20_000);
    let mut text = String::from("user,ts_ms,amount\n");
    for (user, ts, amount) in &rows {
        writeln!(text, "{user},{ts},{amount}").unwrap();
    }
    let input = dir.join("purchases.csv");
    std::fs::write(&input, text).unwrap();
    let cases: [(&str, &[&str]); 3] = [
        ("tumbling", &["--window", "tumbling", "--size-ms", "1000"]),
        ("sliding", &["--window", "sliding", "--size-ms", "1000", "--slide-ms", "250"]),
        ("session", &["--window", "session", "--gap-ms", "300"]),
    ];
    for (window, args) in cases {
        let expected = expected(&rows, window);
        for p in ["1", "2"] {
            let output = dir.join(&format!("{window}-{p}"));
            let run = run(&input, &output, p, args);
            assert!(run.status.success(), "{window} p={p}: {}", String::from_utf8_lossy(&run.stderr));
            let mut lines = read_output(&output);
            lines.sort();
            assert_eq!(lines.len(), expected.len(), "{window} p={p}");
            assert!(lines == expected, "{window} p={p}: the windows differ from a direct computation");
        }
    }
}

#[test]
fn bad_window_arguments_are_named() {
    let dir = TempDir::new("event-windows-args");
    let input = dir.join("in.csv");
    std::fs::write(&input, "u1,5,10\n").unwrap();
    for (args, message) in [
        (
            &["--window", "tumbling", "--size-ms", "-5"][..],
            "--size-ms must be a positive number of milliseconds, not -5",
        ),
        (
            &["--window", "hopping", "--size-ms", "5"][..],
            "--window must be tumbling, sliding or session, not 'hopping'",
        ),
        (&["--window", "sliding", "--size-ms", "5"][..], "slide-ms"),
    ] {
        let run = run(&input, &dir.join("out"), "1", args);
        assert!(!run.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
