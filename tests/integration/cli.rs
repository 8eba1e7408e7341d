//! The real `weir` binary, as a user runs it.

use std::time::Duration;

use crate::support::{TempDir, read_output, repo_root, weir};

const TIMEOUT: Duration = Duration::from_secs(60);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn jobs_lists_every_example_with_a_description() {
    let out = weir(&["jobs"], TIMEOUT);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for job in ["word-count", "window-agg", "sessions", "alerts"] {
        let line = stdout.lines().find(|l| l.starts_with(job)).unwrap_or_else(|| panic!("{job} missing:\n{stdout}"));
        assert!(line.len() > job.len() + 10, "no description: {line}");
    }
}

#[test]
fn run_local_word_count_writes_the_counts() {
    let dir = TempDir::new("cli-wc");
    let output = dir.join("out");
    let out = weir(
        &[
            "run",
            "word-count",
            "--local",
            "--parallelism",
            "3",
            "--",
            "--input",
            "data/words.txt",
            "--output",
            output.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("FINISHED"), "{}", stderr(&out));
    let lines = read_output(&output);
    assert!(lines.contains(&"was\t12".to_owned()), "{lines:?}");
    let text = std::fs::read_to_string(repo_root().join("data/words.txt")).unwrap();
    let total: u64 = lines.iter().map(|l| l.rsplit('\t').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, text.split_whitespace().count() as u64);
    // Part files of the earlier run are never mixed with new ones: without --overwrite the
    // directory is refused and left as it is; with it they are replaced.
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "word-count", "--local", "--", "--input", "data/words.txt"];
        args.extend(["--output", output.to_str().unwrap()]);
        args.extend(extra);
        weir(&args, TIMEOUT)
    };
    let refused = run(&[]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("holds the output of an earlier run"), "{}", stderr(&refused));
    assert_eq!(read_output(&output), lines);
    let again = run(&["--overwrite"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(read_output(&output), lines);
}

/// Defect: the file sink deleted the earlier output while the job was being prepared, so a job
/// then refused (too few slots) left the directory empty.
#[test]
fn a_refused_job_leaves_the_earlier_output_alone() {
    let dir = TempDir::new("cli-refused");
    let output = dir.join("out");
    let output = output.to_str().unwrap();
    let words = ["--", "--input", "data/words.txt", "--output", output];
    let first = weir(&[&["run", "word-count", "--local"][..], &words].concat(), TIMEOUT);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = read_output(std::path::Path::new(output));
    assert!(!before.is_empty());

    let overwrite = [&words[..], &["--overwrite"]].concat();
    let refused =
        weir(&[&["run", "word-count", "--local", "-p", "2", "--slots", "1"][..], &overwrite].concat(), TIMEOUT);
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("slot"), "{}", stderr(&refused));
    assert_eq!(read_output(std::path::Path::new(output)), before, "the refused job deleted nothing");
}

#[test]
fn a_missing_input_file_is_named() {
    let dir = TempDir::new("cli-missing");
    let out = weir(
        &[
            "run",
            "word-count",
            "--local",
            "--",
            "--input",
            "no/such/file.txt",
            "--output",
            dir.join("o").to_str().unwrap(),
        ],
        TIMEOUT,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no/such/file.txt") && err.contains("No such file"), "{err}");
}

#[test]
fn an_unknown_job_lists_the_known_ones() {
    let out = weir(&["run", "nope", "--local"], TIMEOUT);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown job 'nope'") && err.contains("word-count"), "{err}");
}

#[test]
fn bad_arguments_are_refused_with_what_is_wrong() {
    let dir = TempDir::new("cli-bad");
    let o = dir.join("o");
    let o = o.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--events", "ten", "--output", o], "invalid value 'ten' for --events"),
        (&["--events", "10", "--window-msec", "5", "--output", o], "unknown argument --window-msec"),
        (&["--events", "10", "--window-ms", "0", "--output", o], "--window-ms must be at least 1"),
        (&["--events", "10"], "missing required argument --output"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["run", "window-agg", "--local", "--"];
        all.extend_from_slice(args);
        let out = weir(&all, TIMEOUT);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains(expected), "{args:?}: expected '{expected}' in:\n{}", stderr(&out));
    }
    let out = weir(&["run", "window-agg", "--local", "--parallelism", "0"], TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "clap refuses a zero parallelism: {}", stderr(&out));
}

#[test]
fn a_job_needing_more_slots_than_given_fails_clearly() {
    let dir = TempDir::new("cli-slots");
    let o = dir.join("o");
    let out = weir(
        &[
            "run",
            "window-agg",
            "--local",
            "-p",
            "4",
            "--slots",
            "2",
            "--",
            "--events",
            "100",
            "--output",
            o.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("needs 4 slots") && err.contains("2 in total"), "{err}");
}

#[test]
fn help_is_there_everywhere() {
    for args in [&["--help"][..], &["run", "--help"], &["jobs", "--help"], &["bench", "--help"]] {
        let out = weir(args, TIMEOUT);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn a_missing_savepoint_is_named_and_its_options_checked() {
    let dir = TempDir::new("cli-savepoint");
    let (missing, output) = (dir.join("no-such-savepoint"), dir.join("out"));
    let (missing, output) = (missing.to_str().unwrap(), output.to_str().unwrap());
    let out = weir(
        &["run", "window-agg", "--local", "--from-savepoint", missing, "--", "--events", "10", "--output", output],
        TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains(missing) && stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = weir(
        &["run", "window-agg", "--local", "--allow-non-restored-state", "--", "--events", "10", "--output", output],
        TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--from-savepoint"), "{}", stderr(&out));
    let out =
        weir(&["stop", "0123456789abcdef0123456789abcdef", "--dir", dir.join("no-cluster").to_str().unwrap()], TIMEOUT);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no job manager is running"), "{}", stderr(&out));
}

/// A `weir` process killed (by its own id) when the test ends, whatever happened.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_local_serves_the_rest_api_and_metrics_and_a_cancel_through_it_ends_the_run() {
    use std::io::BufRead as _;
    // Parallelism 1: the throttled sink sleeps its worker thread, and the MiniCluster's actors
    // and REST server share the process's workers with it.
    let dir = TempDir::new("local-rest");
    let output = dir.join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "slow-sink", "--local", "--rest-bind", "127.0.0.1:0", "--"])
        .args(["--output", output.to_str().unwrap(), "--sink-rate", "500", "--events", "10000000"])
        .current_dir(repo_root())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start weir run --local");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut run = Running(child);
    // Its first line names the address and the token; the rest is read on so it never blocks.
    let (lines, rest_line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let line = rest_line.recv_timeout(Duration::from_secs(60)).expect("the REST address on stderr");
    let (addr, token) = line
        .strip_prefix("REST API and web UI: http://")
        .and_then(|l| l.split_once("/ (token for actions: "))
        .map(|(addr, token)| (addr.to_owned(), token.trim_end_matches(')').to_owned()))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{addr}");

    let get = |path: &str| crate::cluster::http(&addr, "GET", path, "", None);
    let start = std::time::Instant::now();
    let id = loop {
        let (status, _, body) = get("/jobs");
        assert_eq!(status, 200, "{body}");
        let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(id) = jobs["jobs"][0]["id"].as_str().filter(|_| jobs["jobs"][0]["status"] == "RUNNING") {
            break id.to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no running job: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Counters move, as on a cluster.
    let records = || {
        let (_, _, text) = get("/metrics");
        text.lines()
            .filter(|l| l.starts_with("weir_subtask_records_in_total{") && l.contains("vertex=\"1\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let first = records();
    while records() <= first {
        assert!(start.elapsed() < Duration::from_secs(60), "the sinks' records do not move");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Actions need the token it printed.
    let cancel = format!("/jobs/{id}?mode=cancel");
    let (status, _, body) = crate::cluster::http(&addr, "PATCH", &cancel, "", None);
    assert_eq!(status, 401, "{body}");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, _, body) = crate::cluster::http(&addr, "PATCH", &cancel, &auth, None);
    assert_eq!(status, 202, "{body}");
    // The run ends, saying the job was cancelled.
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "weir run still running after the cancel");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let said: Vec<String> = rest_line.try_iter().collect();
    assert!(said.iter().any(|l| l.contains("CANCELED")), "{said:?}");
}

/// `weir cluster issue` makes a node's directory (the CA's certificate, not its key; a key of
/// the node's own), and refuses a directory without the CA's key, an existing node directory
/// and a bad address.
#[test]
fn cluster_issue_makes_a_node_directory_without_the_ca_key_and_refuses_bad_input() {
    let tmp = TempDir::new("issue");
    let (ca, node) = (tmp.join("ca"), tmp.join("node"));
    let (ca, node) = (ca.to_str().unwrap(), node.to_str().unwrap());
    let t = TIMEOUT;
    assert!(weir(&["cluster", "init", "--dir", ca], t).status.success());
    let issue = |dir: &str, address: &str, out: &str| {
        weir(&["cluster", "issue", "--dir", dir, "--node", "tm-7", "--address", address, "--out", out], t)
    };
    let out = issue(ca, "10.200.0.7", node);
    assert!(out.status.success(), "{}", stderr(&out));
    let files: std::collections::BTreeSet<String> =
        std::fs::read_dir(node).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(["ca.pem", "node.pem", "node.key", "token", "weir.toml"].iter().all(|f| files.contains(*f)), "{files:?}");
    assert!(!files.contains("ca.key"), "a node's directory holds no CA key");
    let read = |dir: &str, f: &str| std::fs::read_to_string(std::path::Path::new(dir).join(f)).unwrap();
    assert_ne!(read(node, "node.key"), read(ca, "node.key"), "the node's key is its own");
    assert_eq!(read(node, "token"), read(ca, "token"));

    let out = issue(ca, "10.200.0.7", node);
    assert!(!out.status.success() && stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let out = issue(node, "10.200.0.8", tmp.join("other").to_str().unwrap());
    assert!(!out.status.success() && stderr(&out).contains("CA's key"), "{}", stderr(&out));
    let out = issue(ca, "10.200.0.300", tmp.join("other").to_str().unwrap());
    assert!(!out.status.success() && stderr(&out).contains("--address"), "{}", stderr(&out));
}
