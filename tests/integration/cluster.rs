//! A standalone cluster of real `weir` processes on 127.0.0.1: jobs across TaskManagers,
//! certificates of another cluster refused, the REST token, cancellation, a killed
//! TaskManager, backpressure across processes. Every test stops its own processes.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{RESCALE_ARGS, TempDir, read_output, weir_with_env};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(90);

pub(crate) fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// An HTTP/1.1 request to `addr` with `headers` (lines ending in CRLF) besides the usual:
/// (status, response headers, body).
pub(crate) fn http(addr: &str, method: &str, path: &str, headers: &str, body: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A cluster started with `weir cluster start`, stopped (and its pids killed) when dropped.
pub(crate) struct Cluster {
    dir: PathBuf,
    /// `None`: [`attached`](Cluster::attach), not started (nor stopped) by this value.
    _tmp: Option<TempDir>,
}

impl Cluster {
    pub(crate) fn start(task_managers: usize, slots: usize) -> Cluster {
        Cluster::start_with_env(task_managers, slots, &[])
    }

    /// A cluster whose processes run with `env` on top of the tests' heartbeat settings.
    pub(crate) fn start_with_env(task_managers: usize, slots: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_configured(task_managers, slots, env, None)
    }

    /// As [`start_with_env`](Self::start_with_env), with `weir_toml` as the cluster's
    /// configuration file (written after `weir cluster init`, before any process starts).
    pub(crate) fn start_configured(
        task_managers: usize,
        slots: usize,
        env: &[(&str, &str)],
        weir_toml: Option<&str>,
    ) -> Cluster {
        let tmp = TempDir::new("cluster");
        let dir = tmp.join("cluster");
        if let Some(weir_toml) = weir_toml {
            let out = weir_env(&["cluster", "init", "--dir", dir.to_str().unwrap()]);
            assert!(out.status.success(), "cluster init failed:\n{}", text(&out));
            std::fs::write(dir.join("weir.toml"), weir_toml).unwrap();
        }
        let out = weir_env_with(
            &[
                "cluster",
                "start",
                "--dir",
                dir.to_str().unwrap(),
                "--taskmanagers",
                &task_managers.to_string(),
                "--slots",
                &slots.to_string(),
            ],
            env,
        );
        assert!(out.status.success(), "cluster start failed:\n{}", text(&out));
        Cluster { dir, _tmp: Some(tmp) }
    }

    /// The cluster whose JobManager publishes itself in `dir`, its processes started by the
    /// caller (who stops them): the REST helpers, for a JobManager on a host of its own.
    pub(crate) fn attach(dir: PathBuf) -> Cluster {
        Cluster { dir, _tmp: None }
    }

    pub(crate) fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn pid(&self, name: &str) -> u32 {
        std::fs::read_to_string(self.file("pids").join(format!("{name}.pid"))).unwrap().trim().parse().unwrap()
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.file("pids")) else { return Vec::new() };
        entries.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok()).collect()
    }

    /// The REST API's address, `127.0.0.1:PORT`.
    pub(crate) fn rest_addr(&self) -> String {
        let published = std::fs::read_to_string(self.file("jobmanager.addr")).unwrap();
        let line = published.lines().find(|l| l.starts_with("rest")).unwrap();
        line.split('"').nth(1).unwrap().to_owned()
    }

    /// The REST token mutating calls need.
    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.file("token")).unwrap().trim().to_owned()
    }

    /// An HTTP request to the REST API: (status, JSON body).
    pub(crate) fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let (status, _, text) = self.http(method, path, &auth, body);
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// An HTTP request to the REST API with `headers` (lines ending in CRLF) besides the usual:
    /// (status, response headers, body).
    fn http(&self, method: &str, path: &str, headers: &str, body: Option<&str>) -> (u16, String, String) {
        http(&self.rest_addr(), method, path, headers, body)
    }

    pub(crate) fn job(&self, id: &str) -> serde_json::Value {
        let (status, job) = self.rest("GET", &format!("/jobs/{id}"), None, None);
        assert_eq!(status, 200, "{job}");
        job
    }

    pub(crate) fn wait_for(&self, what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self._tmp.is_none() {
            // Attached: its processes are the caller's to stop.
            return;
        }
        let pids = self.pids();
        let _ = weir_env(&["cluster", "stop", "--dir", self.dir()]);
        // A safety net by the processes' own ids, should `cluster stop` have failed.
        for pid in pids {
            if alive(pid) {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

pub(crate) fn alive(pid: u32) -> bool {
    // A zombie is gone as far as the cluster is concerned.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split(' ').nth(2).is_none_or(|st| st != "Z"))
}

/// Short heartbeats (every 200 ms, a peer lost after 2 s of silence) for the tests' processes.
pub(crate) const HEARTBEATS: [(&str, &str); 2] =
    [("WEIR_HEARTBEAT_INTERVAL_MS", "200"), ("WEIR_HEARTBEAT_TIMEOUT_MS", "2000")];

/// The binary, with short [`HEARTBEATS`] for it and the processes it starts.
pub(crate) fn weir_env(args: &[&str]) -> std::process::Output {
    weir_env_with(args, &[])
}

/// As [`weir_env`], with `env` on top.
pub(crate) fn weir_env_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = HEARTBEATS.iter().chain(env).copied().collect();
    weir_with_env(args, &env, TIMEOUT)
}

pub(crate) fn job_id(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

pub(crate) fn task_managers_of(job: &serde_json::Value) -> BTreeSet<String> {
    job["vertices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["subtasks"].as_array().unwrap().iter())
        .filter_map(|s| s["taskmanager-id"].as_str().map(str::to_owned))
        .collect()
}

fn records(job: &serde_json::Value, vertex: usize, field: &str) -> u64 {
    job["vertices"][vertex]["subtasks"].as_array().unwrap().iter().map(|s| s[field].as_u64().unwrap_or(0)).sum()
}

#[test]
fn a_job_spans_both_task_managers_and_matches_the_local_run() {
    let cluster = Cluster::start(2, 2);
    let out_dir = TempDir::new("cluster-out");
    let args = ["--events", "20000", "--keys", "50", "--seed", "3", "--out-of-order-ms", "200"];
    let remote = out_dir.join("remote");
    let mut cmd = vec!["run", "window-agg", "-p", "4", "--dir", cluster.dir(), "--"];
    cmd.extend(args);
    cmd.extend(["--output", remote.to_str().unwrap()]);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    let local = out_dir.join("local");
    let mut cmd = vec!["run", "window-agg", "--local", "-p", "4", "--"];
    cmd.extend(args);
    cmd.extend(["--output", local.to_str().unwrap()]);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    let (remote_lines, local_lines) = (read_output(&remote), read_output(&local));
    assert!(!remote_lines.is_empty());
    assert_eq!(remote_lines, local_lines, "the cluster's output differs from the local run's");

    let (status, jobs) = cluster.rest("GET", "/jobs", None, None);
    assert_eq!(status, 200);
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let job = cluster.job(&id);
    assert_eq!(job["state"], "FINISHED");
    assert_eq!(task_managers_of(&job).len(), 2, "subtasks on both task managers: {job}");

    let status = weir_env(&["cluster", "status", "--dir", cluster.dir()]);
    assert!(status.status.success(), "{}", text(&status));
    let status_text = text(&status);
    assert!(status_text.contains("2 registered") && status_text.contains("taskmanager-1"), "{status_text}");

    let pids = cluster.pids();
    assert_eq!(pids.len(), 3);
    let stop = weir_env(&["cluster", "stop", "--dir", cluster.dir()]);
    assert!(stop.status.success(), "{}", text(&stop));
    let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn another_clusters_certificates_and_missing_tokens_are_refused() {
    let cluster = Cluster::start(1, 1);
    // A TaskManager with certificates of another cluster.
    let other = TempDir::new("other-cluster");
    let other_dir = other.join("c");
    let out = weir_env(&["cluster", "init", "--dir", other_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let published = std::fs::read_to_string(cluster.file("jobmanager.addr")).unwrap();
    let quic = published.lines().find(|l| l.starts_with("quic")).unwrap().split('"').nth(1).unwrap().to_owned();
    let out =
        weir_env(&["taskmanager", "--dir", other_dir.to_str().unwrap(), "--jobmanager", &quic, "--id", "intruder"]);
    assert!(!out.status.success(), "the intruder joined:\n{}", text(&out));
    let log = text(&out);
    assert!(log.contains("refused") || log.contains("certificate"), "no refusal in its log:\n{log}");
    let status = text(&weir_env(&["cluster", "status", "--dir", cluster.dir()]));
    assert!(status.contains("1 registered") && !status.contains("intruder"), "{status}");
    assert!(status.contains("refused connections"), "the refusal is not in cluster status:\n{status}");

    // REST mutations need the cluster's token.
    let fake = "0123456789abcdef0123456789abcdef";
    let (code, _) = cluster.rest("PATCH", &format!("/jobs/{fake}?mode=cancel"), None, None);
    assert_eq!(code, 401);
    let body = r#"{"job":"window-agg","args":["--events","10","--output","/tmp/x"],"parallelism":1}"#;
    let (code, _) = cluster.rest("POST", "/jobs", None, Some(body));
    assert_eq!(code, 401);
    let (code, _) = cluster.rest("POST", "/jobs", Some("wrong"), Some(body));
    assert_eq!(code, 403);
    let (code, _) = cluster.rest("GET", "/overview", None, None);
    assert_eq!(code, 200, "reads need no token");
    let _ = cluster.token();

    // Fault injection is off unless the cluster was started with it.
    let out = weir_env(&["cut-connections", "control", "--dir", cluster.dir()]);
    assert!(!out.status.success(), "a cut without fault injection was obeyed:\n{}", text(&out));
    assert!(text(&out).contains("fault injection is off"), "{}", text(&out));
}

fn submit_unbounded(cluster: &Cluster, job: &str, parallelism: usize, extra: &[&str], output: &Path) -> String {
    submit_with(cluster, job, parallelism, &[], extra, output)
}

pub(crate) fn submit_with(
    cluster: &Cluster,
    job: &str,
    parallelism: usize,
    flags: &[&str],
    extra: &[&str],
    output: &Path,
) -> String {
    let p = parallelism.to_string();
    let mut cmd = vec!["run", job, "-p", &p, "--detached", "--dir", cluster.dir()];
    cmd.extend(flags);
    cmd.extend(["--", "--keys", "100"]);
    cmd.extend(extra);
    cmd.extend(["--output", output.to_str().unwrap()]);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    job_id(&out)
}

#[test]
fn cancel_stops_an_unbounded_job_everywhere_and_frees_its_slots() {
    let cluster = Cluster::start(2, 2);
    let out = TempDir::new("cancel-out");
    // It checkpoints across processes meanwhile: acknowledgements travel back over QUIC.
    let id = submit_with(
        &cluster,
        "window-agg",
        4,
        &["--checkpoint-interval", "200ms"],
        &["--rate", "20000"],
        &out.join("o"),
    );
    cluster.wait_for("the job to run with records flowing", TIMEOUT, || {
        let job = cluster.job(&id);
        job["state"] == "RUNNING" && records(&job, 0, "read-records") > 0
    });
    cluster.wait_for("a completed checkpoint", TIMEOUT, || {
        let (status, checkpoints) = cluster.rest("GET", &format!("/jobs/{id}/checkpoints"), None, None);
        status == 200 && checkpoints["counts"]["completed"].as_u64().unwrap_or(0) >= 1
    });
    let (status, exceptions) = cluster.rest("GET", &format!("/jobs/{id}/exceptions"), None, None);
    assert_eq!((status, &exceptions["restarts"]), (200, &serde_json::json!(0)), "{exceptions}");
    let (_, overview) = cluster.rest("GET", "/overview", None, None);
    assert_eq!(overview["slots-available"], 0);
    let out = weir_env(&["cancel", &id, "--dir", cluster.dir()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(cluster.job(&id)["state"], "CANCELED");
    let (_, overview) = cluster.rest("GET", "/overview", None, None);
    assert_eq!(overview["slots-available"], 4, "{overview}");
}

#[test]
fn a_killed_task_manager_fails_its_job_naming_it() {
    let cluster = Cluster::start(2, 2);
    let out = TempDir::new("kill-out");
    let id = submit_unbounded(&cluster, "window-agg", 4, &["--rate", "20000"], &out.join("o"));
    cluster.wait_for("the job to run", TIMEOUT, || cluster.job(&id)["state"] == "RUNNING");
    let victim = cluster.pid("taskmanager-1");
    std::process::Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap();
    let killed = Instant::now();
    cluster.wait_for("the job to fail", Duration::from_secs(20), || cluster.job(&id)["state"] == "FAILED");
    let elapsed = killed.elapsed();
    let job = cluster.job(&id);
    let cause = job["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("taskmanager-1"), "the cause does not name the lost task manager: {cause}");
    // Heartbeat timeout 2 s in these tests; allow for a slow machine, but not a hang.
    assert!(elapsed < Duration::from_secs(15), "noticed after {elapsed:?}");
    let (_, tms) = cluster.rest("GET", "/taskmanagers", None, None);
    let ids: Vec<&str> = tms["taskmanagers"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["taskmanager-0"], "the lost task manager's slots are gone");
}

#[test]
fn a_slow_sink_on_one_task_manager_bounds_the_other_ones_queues() {
    let cluster = Cluster::start(2, 1);
    let out = TempDir::new("slow-out");
    // Two subtasks per vertex: source 0 on one task manager sends half its records to the
    // sink on the other, which takes 2000 records/s.
    let id = submit_unbounded(&cluster, "slow-sink", 2, &["--sink-rate", "2000"], &out.join("o"));
    cluster.wait_for("the sinks to take 10,000 records", TIMEOUT, || {
        let job = cluster.job(&id);
        job["state"] == "RUNNING" && records(&job, 1, "read-records") >= 10_000
    });
    let job = cluster.job(&id);
    let produced = records(&job, 0, "read-records");
    let consumed = records(&job, 1, "read-records");
    // What may sit between them, per channel (4 channels): the sender's bounded queue (9
    // batches of 1024), QUIC's stream window (512 KiB, a few thousand records) and the
    // receiver's queue (8 batches); plus the heartbeat staleness of the counters.
    let bound = 4 * (9 * 1024 + 20_000 + 8 * 1024) + 2 * 2000;
    assert!(
        produced <= consumed + bound,
        "the sources ran ahead of the slow sinks: produced {produced}, consumed {consumed}, bound {bound}"
    );
    for s in job["vertices"][0]["subtasks"].as_array().unwrap() {
        let peak = s["peak-queued-out"].as_u64().unwrap();
        assert!(peak <= 2 * 9 * 1024, "a source's output queues grew to {peak} records");
    }
    let out = weir_env(&["cancel", &id, "--dir", cluster.dir()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The last line of a command's standard output.
fn last_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_owned()
}

#[test]
fn rescaling_2_3_1_through_savepoints_across_processes_keeps_the_output_exactly_once() {
    let cluster = Cluster::start(2, 2);
    let work = TempDir::new("rescale-processes");
    let args = RESCALE_ARGS;
    let reference = work.join("reference");
    let mut cmd = vec!["run", "window-agg", "--local", "-p", "2", "--"];
    cmd.extend(args);
    cmd.extend(["--output", reference.to_str().unwrap()]);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    let expected = read_output(&reference);

    let (output, savepoints) = (work.join("out"), work.join("savepoints"));
    let local_checkpoints = work.join("local-checkpoints");
    let (output, savepoints) = (output.to_str().unwrap(), savepoints.to_str().unwrap());
    let checkpoints = local_checkpoints.to_str().unwrap();
    // One leg: from a savepoint (or afresh) at `p`, checkpointing, stopped with a savepoint
    // once its sources read a quarter of the input; the last runs to the end, in this
    // process (`--local`) from the cluster's savepoint.
    let leg = |p: &str, from: Option<&str>, stop: bool| -> Option<String> {
        let mut cmd = vec!["run", "window-agg", "-p", p, "--dir", cluster.dir(), "--checkpoint-interval", "200ms"];
        if !stop {
            cmd.extend(["--local", "--checkpoint-dir", checkpoints]);
        }
        if let Some(from) = from {
            cmd.extend(["--from-savepoint", from]);
        }
        if stop {
            cmd.push("--detached");
        }
        cmd.push("--");
        cmd.extend(args);
        cmd.extend(["--output", output]);
        let out = weir_env(&cmd);
        assert!(out.status.success(), "{}", text(&out));
        if !stop {
            assert!(text(&out).contains("FINISHED"), "{}", text(&out));
            return None;
        }
        let id = job_id(&out);
        cluster.wait_for("a quarter of the input read", TIMEOUT, || {
            let job = cluster.job(&id);
            assert_eq!(job["state"], "RUNNING", "{job}");
            records(&job, 0, "read-records") >= 15_000
        });
        if from.is_some() {
            // A savepoint of the running job, into the cluster's default directory.
            let out = weir_env(&["savepoint", &id, "--dir", cluster.dir()]);
            assert!(out.status.success(), "{}", text(&out));
            let path = PathBuf::from(last_line(&out));
            assert!(path.starts_with(cluster.file("savepoints")) && path.join("_metadata").is_file(), "{path:?}");
        }
        let out = weir_env(&["stop", &id, "--savepoint", savepoints, "--dir", cluster.dir()]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(cluster.job(&id)["state"], "FINISHED", "a stopped job ends FINISHED");
        let path = last_line(&out);
        assert!(Path::new(&path).join("_metadata").is_file(), "{path}: {}", text(&out));
        Some(path)
    };
    let first = leg("2", None, true).unwrap();
    let partial = read_output(Path::new(output));
    assert!(!partial.is_empty() && partial.len() < expected.len(), "{} of {} lines", partial.len(), expected.len());
    let second = leg("3", Some(&first), true).unwrap();
    leg("1", Some(&second), false);
    let lines = read_output(Path::new(output));
    assert_eq!(lines.len(), expected.len(), "records lost or duplicated");
    assert_eq!(lines, expected, "the output differs from one fault-free run's");
}

/// `GET /metrics` as `curl` or `promtool` asks for it (no Accept header): its headers and text,
/// after checking the status.
fn scrape(cluster: &Cluster) -> (String, String) {
    scrape_with(cluster, "")
}

fn scrape_with(cluster: &Cluster, headers: &str) -> (String, String) {
    let (status, head, text) = cluster.http("GET", "/metrics", headers, None);
    assert_eq!(status, 200, "{head}\n{text}");
    (head, text)
}

/// The sum of the samples of `metric` whose labels include every one of `labels` (`k="v"`).
fn sample_sum(text: &str, metric: &str, labels: &[String]) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once("} "))
        .filter(|(set, _)| labels.iter().all(|l| set.split(',').any(|kv| kv == l)))
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Checks `text` with Prometheus' own parser, `promtool check metrics` (Debian's `prometheus`
/// package, which `scripts/setup.sh --tests` installs).
fn promtool_check(text: &str) {
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run promtool ({e}): run scripts/setup.sh --tests, which installs it"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the text:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// slow-sink at p2 with checkpoints every 200 ms, writing into `out`: the sinks take 2000
/// records/s each, so the sources wait for room.
pub(crate) fn submit_backpressured(cluster: &Cluster, out: &TempDir) -> String {
    submit_with(cluster, "slow-sink", 2, &["--checkpoint-interval", "200ms"], &["--sink-rate", "2000"], &out.join("o"))
}

#[test]
fn metrics_are_prometheus_text_whose_counters_move_and_show_the_backpressure() {
    let cluster = Cluster::start(2, 1);
    let out = TempDir::new("metrics-out");
    let id = submit_backpressured(&cluster, &out);
    let job = format!("job=\"{id}\"");
    let vertex = |v: usize| vec![job.clone(), format!("vertex=\"{v}\"")];
    cluster.wait_for("a completed checkpoint and records at the sinks", TIMEOUT, || {
        let (_, text) = scrape(&cluster);
        sample_sum(&text, "weir_job_checkpoints_completed_total", std::slice::from_ref(&job)) >= 1.0
            && sample_sum(&text, "weir_subtask_records_in_total", &vertex(1)) > 0.0
    });
    let (head, first) = scrape(&cluster);
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    promtool_check(&first);
    // What a Prometheus server asks for: OpenMetrics, the same samples.
    let (head, open) = scrape_with(&cluster, "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text; version=1.0.0"), "{head}");
    assert!(open.ends_with("# EOF\n") && open.contains("# TYPE weir_job_restarts counter\n"), "{open}");
    assert_eq!(sample_sum(&open, "weir_job_restarts_total", std::slice::from_ref(&job)), 0.0);
    assert!(first.contains("\nweir_taskmanagers 2\n") && first.contains("\nweir_slots 2\n"), "{first}");
    let status = format!("weir_job_status{{{job},name=\"slow-sink\",status=\"RUNNING\"}} 1\n");
    assert!(first.contains(&status), "no {status} in\n{first}");
    // A series per subtask of each vertex, with the TaskManager running it.
    let series: Vec<&str> = first.lines().filter(|l| l.starts_with("weir_subtask_records_out_total{")).collect();
    assert_eq!(series.len(), 4, "{first}");
    for (v, subtask) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let want = [format!("vertex=\"{v}\""), format!("subtask=\"{subtask}\"")];
        assert!(
            series.iter().any(|l| l.contains(&job)
                && want.iter().all(|w| l.contains(w))
                && l.contains("task_manager=\"taskmanager-")),
            "no series for vertex {v} subtask {subtask}:\n{first}"
        );
    }

    // The counters move while the job runs, and the sources show they wait on the sinks.
    let sunk = sample_sum(&first, "weir_subtask_records_in_total", &vertex(1));
    cluster.wait_for("more records at the sinks and backpressured sources", TIMEOUT, || {
        let (_, text) = scrape(&cluster);
        sample_sum(&text, "weir_subtask_records_in_total", &vertex(1)) > sunk
            && sample_sum(&text, "weir_subtask_backpressured_seconds_total", &vertex(0)) > 0.0
    });
    let (_, text) = scrape(&cluster);
    promtool_check(&text);
    let sources = sample_sum(&text, "weir_subtask_backpressured_seconds_total", &vertex(0));
    let sinks = sample_sum(&text, "weir_subtask_backpressured_seconds_total", &vertex(1));
    assert!(sources > sinks, "the sources ({sources} s) wait on the sinks ({sinks} s), not the other way");
    // The throttled sinks are the busy ones (Flink's busy time), the sources are not.
    let busy = |v| sample_sum(&text, "weir_subtask_busy_seconds_total", &vertex(v));
    assert!(busy(1) > busy(0), "sinks busy {} s, sources busy {} s:\n{text}", busy(1), busy(0));
    assert_eq!(text.lines().filter(|l| l.starts_with("weir_subtask_idle_seconds_total{")).count(), 4, "{text}");
    // The same over the last seconds, as ratios: the sources spend most of it waiting.
    let ratio = |name, v| sample_sum(&text, name, &vertex(v)) / 2.0;
    assert!(ratio("weir_subtask_backpressured_ratio", 0) > 0.5, "{text}");
    assert!(ratio("weir_subtask_busy_ratio", 1) > ratio("weir_subtask_busy_ratio", 0), "{text}");
    assert!(sample_sum(&text, "weir_subtask_records_in_per_second", &vertex(1)) > 0.0, "{text}");
    // The keyed edge crosses the two processes: frames and their bytes, full queues ahead of
    // the sinks.
    assert!(sample_sum(&text, "weir_subtask_network_out_bytes_total", &vertex(0)) > 0.0, "{text}");
    assert!(sample_sum(&text, "weir_subtask_network_in_bytes_total", &vertex(1)) > 0.0, "{text}");
    assert!(sample_sum(&text, "weir_subtask_output_queue_usage", &vertex(0)) > 0.0, "{text}");
    // Event time: the generator's watermarks leave the sources and reach the sinks (behind the
    // records queued ahead of them). A source's input watermark is the one it generates: a
    // lag for every subtask (large: the generator's event times start at the epoch).
    cluster.wait_for("watermarks at every subtask", TIMEOUT, || {
        let (_, text) = scrape(&cluster);
        let of = |metric: &str, v: usize| {
            let series = text.lines().filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&job));
            series.filter(|l| l.contains(&format!("vertex=\"{v}\""))).count()
        };
        of("weir_subtask_output_watermark_seconds", 0) == 2
            && of("weir_subtask_input_watermark_seconds", 1) == 2
            && of("weir_subtask_watermark_lag_seconds", 0) + of("weir_subtask_watermark_lag_seconds", 1) == 4
    });
    // Each subtask's part of its latest checkpoint: the job's first completed means each
    // subtask stored one, which its TaskManager's next heartbeat reports.
    let series = |text: &str, metric: &str| text.lines().filter(|l| l.starts_with(&format!("{metric}{{"))).count();
    cluster.wait_for("every subtask's latest checkpoint", TIMEOUT, || {
        let (_, text) = scrape(&cluster);
        series(&text, "weir_subtask_last_checkpoint_id") == 4
            && series(&text, "weir_subtask_checkpointed_state_size_bytes") == 4
    });

    // Every process's own figures: the JobManager's, and each TaskManager's from its heartbeat.
    cluster.wait_for("the figures of the three processes", TIMEOUT, || {
        let (_, text) = scrape(&cluster);
        series(&text, "weir_process_resident_memory_bytes") == 3 && series(&text, "weir_process_cpu_seconds_total") == 3
    });
    let (_, text) = scrape(&cluster);
    promtool_check(&text);
    assert!(sample_sum(&text, "weir_process_resident_memory_bytes", &["process=\"jobmanager\"".into()]) > 1e6);
    // The JobManager's connections: one per TaskManager at least, and bytes both ways.
    assert!(sample_sum(&text, "weir_process_quic_connections", &["process=\"jobmanager\"".into()]) >= 2.0, "{text}");
    assert!(sample_sum(&text, "weir_process_quic_received_bytes_total", &[]) > 0.0, "{text}");
    let (_, tms) = cluster.rest("GET", "/taskmanagers", None, None);
    for tm in tms["taskmanagers"].as_array().unwrap() {
        assert!(tm["metrics"]["rss-bytes"].as_u64() > Some(1 << 20), "{tm}");
        assert!(tm["metrics"]["quic-connections"].as_u64() >= Some(1), "{tm}");
    }

    // Each TaskManager serves its own /metrics, at the address it published: its process and
    // its two subtasks (slot sharing: one source and one sink each).
    let published: Vec<_> = std::fs::read_dir(cluster.file("metrics")).unwrap().flatten().collect();
    assert_eq!(published.len(), 2, "{published:?}");
    for entry in published {
        let tm = entry.file_name().into_string().unwrap();
        let url = std::fs::read_to_string(entry.path()).unwrap();
        let addr = url.trim().strip_prefix("http://").and_then(|u| u.strip_suffix("/metrics")).unwrap().to_owned();
        let (status, head, own) = http(&addr, "GET", "/metrics", "", None);
        assert_eq!(status, 200, "{head}");
        promtool_check(&own);
        let process = format!("weir_process_resident_memory_bytes{{process=\"{tm}\"}} ");
        assert!(own.contains(&process), "no {process} in\n{own}");
        let records: Vec<&str> = own.lines().filter(|l| l.starts_with("weir_subtask_records_in_total{")).collect();
        assert_eq!(records.len(), 2, "{own}");
        assert!(records.iter().all(|l| l.contains(&job) && l.contains(&format!("task_manager=\"{tm}\""))), "{own}");
    }

    // Flink's back-pressure endpoint says the same per vertex.
    let (status, sources) = cluster.rest("GET", &format!("/jobs/{id}/vertices/0/backpressure"), None, None);
    assert_eq!(status, 200, "{sources}");
    assert_eq!(sources["backpressureLevel"], "high", "{sources}");
    assert_eq!(sources["subtasks"].as_array().map(Vec::len), Some(2), "{sources}");
    let (_, sinks) = cluster.rest("GET", &format!("/jobs/{id}/vertices/1/backpressure"), None, None);
    assert_eq!(sinks["backpressureLevel"], "ok", "{sinks}");
    let (status, missing) = cluster.rest("GET", &format!("/jobs/{id}/vertices/2/backpressure"), None, None);
    assert_eq!(status, 404, "{missing}");
    // And GET /jobs/{id} per subtask.
    let job = cluster.job(&id);
    let sink = &job["vertices"][1]["subtasks"][0];
    for field in
        ["read-bytes", "in-queue-usage", "busy-ratio", "records-in-per-second", "input-watermark", "checkpoint"]
    {
        assert!(!sink[field].is_null(), "no {field} in {sink}");
    }
}
