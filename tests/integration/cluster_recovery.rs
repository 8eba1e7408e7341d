//! A cluster of real `weir` processes that loses its JobManager process, or some of its
//! connections, while a checkpointed job runs: the job resumes from its latest completed
//! checkpoint, the TaskManagers stay the same processes, and the committed output equals a
//! fault-free run's exactly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Cluster, HEARTBEATS, TIMEOUT, alive, job_id, submit_with, task_managers_of, text, weir_env};
use crate::support::{Etcd, S3, TempDir, read_output};

/// The generator of `window-agg` (`submit_with` adds `--keys 100`): 160,000 events at 20,000
/// per second, about 8 s of input, so every fault strikes well before the input ends.
pub(crate) const JOB_ARGS: [&str; 8] =
    ["--events", "160000", "--rate", "20000", "--seed", "5", "--out-of-order-ms", "150"];
/// Checkpoints every 200 ms and quick restarts.
pub(crate) const JOB_FLAGS: [&str; 4] = ["--checkpoint-interval", "200ms", "--restart-delay", "100ms"];

/// The same job on a MiniCluster without faults, in the background; its committed output.
pub(crate) fn reference_run(output: PathBuf) -> JoinHandle<Vec<String>> {
    reference_run_with(output, JOB_ARGS)
}

/// [`reference_run`] with other arguments of the generator.
fn reference_run_with(output: PathBuf, args: [&'static str; 8]) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let output_arg = output.to_str().unwrap().to_owned();
        let mut cmd = vec!["run", "window-agg", "--local", "-p", "2", "--", "--keys", "100"];
        cmd.extend(args);
        cmd.extend(["--output", &output_arg]);
        let out = weir_env(&cmd);
        assert!(out.status.success(), "the reference run failed:\n{}", text(&out));
        read_output(&output)
    })
}

/// The committed output in `output` equals the reference run's: nothing lost, nothing
/// duplicated.
pub(crate) fn assert_exactly_once(reference: JoinHandle<Vec<String>>, output: &Path) {
    let expected = reference.join().unwrap();
    let lines = read_output(output);
    assert!(!expected.is_empty());
    assert_eq!(lines.len(), expected.len(), "records lost or duplicated");
    assert_eq!(lines, expected, "the output differs from the fault-free run's");
}

/// A process this test started, killed (if still running) and reaped when dropped.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weir ARGS` as a process of the cluster, logging to `logs/<log>.log`.
fn start_process(cluster: &Cluster, log: &str, args: &[&str]) -> Process {
    start_process_with_env(cluster, log, args, &[])
}

/// As [`start_process`], with `env` on top of the tests' heartbeats.
fn start_process_with_env(cluster: &Cluster, log: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
    let log = std::fs::File::create(cluster.file("logs").join(format!("{log}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .envs(HEARTBEATS)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start weir");
    Process(child)
}

/// Starts `weir jobmanager` on the cluster's directory, as an operator restarting it would.
fn start_job_manager(cluster: &Cluster) -> Process {
    let process = start_process(cluster, "jobmanager-restarted", &["jobmanager", "--dir", cluster.dir()]);
    // `weir cluster stop` then stops it as it would the first one.
    std::fs::write(cluster.file("pids").join("jobmanager.pid"), process.0.id().to_string()).unwrap();
    process
}

/// The pid in the cluster directory's `jobmanager.addr`.
pub(crate) fn published_pid(cluster: &Cluster) -> Option<u32> {
    let published = std::fs::read_to_string(cluster.file("jobmanager.addr")).ok()?;
    published.lines().find_map(|l| l.strip_prefix("pid = ")?.trim().parse().ok())
}

/// `GET /jobs/{id}`, or `None` while the JobManager cannot answer.
pub(crate) fn job(cluster: &Cluster, id: &str) -> Option<Value> {
    let (status, job) = cluster.rest("GET", &format!("/jobs/{id}"), None, None);
    (status == 200).then_some(job)
}

/// Running, with every subtask running.
pub(crate) fn running(job: &Value) -> bool {
    let mut subtasks = job["vertices"].as_array().unwrap().iter().flat_map(|v| v["subtasks"].as_array().unwrap());
    job["state"] == "RUNNING" && subtasks.all(|s| s["status"] == "RUNNING")
}

/// The id of the job's latest completed checkpoint (0: none yet).
pub(crate) fn latest_checkpoint(cluster: &Cluster, id: &str) -> u64 {
    let (status, checkpoints) = cluster.rest("GET", &format!("/jobs/{id}/checkpoints"), None, None);
    if status != 200 {
        return 0;
    }
    let latest = &checkpoints["latest"];
    latest["completed"]["id"].as_u64().or(latest["restored"].as_u64()).unwrap_or(0)
}

/// The job's restarts and the causes of its failures.
pub(crate) fn exceptions(cluster: &Cluster, id: &str) -> (u64, Vec<String>) {
    let (status, body) = cluster.rest("GET", &format!("/jobs/{id}/exceptions"), None, None);
    if status != 200 {
        return (0, Vec::new());
    }
    let causes = body["exceptions"].as_array().unwrap().iter().map(|e| e["cause"].as_str().unwrap().to_owned());
    (body["restarts"].as_u64().unwrap(), causes.collect())
}

pub(crate) fn wait_until_finished(cluster: &Cluster, id: &str) {
    cluster.wait_for("the job to finish", TIMEOUT, || {
        let Some(job) = job(cluster, id) else { return false };
        assert!(
            job["state"] != "FAILED" && job["state"] != "CANCELED",
            "the job ended {}: {}",
            job["state"],
            job["cause"]
        );
        job["state"] == "FINISHED"
    });
}

/// Waits until the job has restarted `restarts` times in all and runs again.
fn wait_for_failover(cluster: &Cluster, id: &str, restarts: u64) {
    cluster.wait_for("a failover", TIMEOUT, || exceptions(cluster, id).0 >= restarts);
    cluster.wait_for("the job to run again", TIMEOUT, || job(cluster, id).is_some_and(|j| running(&j)));
}

pub(crate) fn registered_task_managers(cluster: &Cluster) -> Vec<String> {
    let (_, body) = cluster.rest("GET", "/taskmanagers", None, None);
    let mut ids: Vec<String> =
        body["taskmanagers"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

/// When the JobManager comes back, relative to its TaskManagers noticing it is gone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Restart {
    /// At once: the TaskManagers see the new address at their next heartbeat.
    Immediately,
    /// Once both TaskManagers declared it lost (heartbeat timeout) and dial in vain.
    AfterTheTaskManagersLostIt,
}

fn lost_job_manager(cluster: &Cluster, task_manager: &str) -> bool {
    let log = std::fs::read_to_string(cluster.file("logs").join(format!("{task_manager}.log"))).unwrap_or_default();
    log.contains("lost the job manager")
}

#[test]
fn a_job_manager_restarted_at_once_resumes_its_job_exactly_once() {
    job_manager_restart(Restart::Immediately);
}

#[test]
fn a_job_manager_restarted_after_its_task_managers_lost_it_resumes_its_job_exactly_once() {
    job_manager_restart(Restart::AfterTheTaskManagersLostIt);
}

/// SIGKILLs the JobManager of a cluster running a checkpointed job and starts a new one on the
/// same directory: the job comes back (`weir list`), restores from its latest checkpoint, and
/// its output equals a fault-free run's.
fn job_manager_restart(when: Restart) {
    let cluster = Cluster::start(2, 2);
    let out = TempDir::new("jm-restart");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let id = submit_with(&cluster, "window-agg", 2, &JOB_FLAGS, &JOB_ARGS, &output);
    cluster.wait_for("a completed checkpoint", TIMEOUT, || latest_checkpoint(&cluster, &id) >= 1);
    let task_managers = [cluster.pid("taskmanager-0"), cluster.pid("taskmanager-1")];

    let old = cluster.pid("jobmanager");
    Command::new("kill").args(["-KILL", &old.to_string()]).status().unwrap();
    cluster.wait_for("the job manager to die", TIMEOUT, || !alive(old));
    if when == Restart::AfterTheTaskManagersLostIt {
        cluster.wait_for("the task managers to declare the job manager lost", TIMEOUT, || {
            lost_job_manager(&cluster, "taskmanager-0") && lost_job_manager(&cluster, "taskmanager-1")
        });
    }
    let restarted = Instant::now();
    let job_manager = start_job_manager(&cluster);
    cluster.wait_for("the new job manager's address", TIMEOUT, || published_pid(&cluster) == Some(job_manager.0.id()));
    cluster.wait_for("the job in `weir list` again", TIMEOUT, || {
        let list = weir_env(&["list", "--dir", cluster.dir()]);
        list.status.success() && String::from_utf8_lossy(&list.stdout).lines().any(|l| l.starts_with(id.as_str()))
    });
    cluster.wait_for("the job to run again", TIMEOUT, || job(&cluster, &id).is_some_and(|j| running(&j)));
    let resumed = restarted.elapsed();
    println!("{when:?}: the job ran again {:.2} s after the job manager was restarted", resumed.as_secs_f64());

    wait_until_finished(&cluster, &id);
    let (_, causes) = exceptions(&cluster, &id);
    assert!(causes.iter().any(|c| c.contains("recovered from the job store")), "{causes:?}");
    // (`/jobs/{id}/checkpoints` names only the checkpoint a coordinator started from, and the
    // new one starts before the JobMaster restores: the JobManager's log says it.)
    let log = std::fs::read_to_string(cluster.file("logs").join("jobmanager-restarted.log")).unwrap();
    assert!(log.contains("restoring from checkpoint"), "the job did not restore from a checkpoint:\n{log}");
    // The same TaskManager processes, registered with the new JobManager under their ids.
    assert!(task_managers.iter().all(|&pid| alive(pid)), "a task manager exited");
    assert_eq!(registered_task_managers(&cluster), ["taskmanager-0", "taskmanager-1"]);

    assert_exactly_once(reference, &output);
}

/// A cluster with JobManager high availability: the JobManager `weir cluster start` starts
/// and a standby, electing their leader in a real etcd, with the job store and the checkpoints
/// in a real S3 server (s3s-fs), where every JobManager reads them. TaskManagers and clients
/// find the leader in etcd. 2 s leases.
struct HaCluster {
    cluster: Cluster,
    standby: Process,
    _s3: S3,
    _etcd: Etcd,
}

impl HaCluster {
    fn start() -> HaCluster {
        let etcd = Etcd::start();
        let s3 = S3::start(&["weir"]);
        let env = s3.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let weir_toml = format!(
            "[jobmanager]\njob_store = \"s3://weir/jobs\"\n\n[taskmanager]\nslots = 1\n\n\
             [ha]\netcd = [\"{}\"]\nlease_ttl_ms = 2000\n",
            etcd.endpoint
        );
        let cluster = Cluster::start_configured(2, 1, &env, Some(&weir_toml));
        let standby =
            start_process_with_env(&cluster, "jobmanager-standby", &["jobmanager", "--dir", cluster.dir()], &env);
        let ha = HaCluster { cluster, standby, _s3: s3, _etcd: etcd };
        ha.cluster.wait_for("the standby to wait in the election", TIMEOUT, || {
            ha.log("jobmanager-standby").contains("waiting to lead the cluster")
        });
        ha
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.cluster.file("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Submits window-agg checkpointing into the bucket (`weir run` finds the leader in etcd).
    fn submit(&self, output: &Path) -> String {
        let mut flags = JOB_FLAGS.to_vec();
        flags.extend(["--checkpoint-dir", "s3://weir/checkpoints"]);
        submit_with(&self.cluster, "window-agg", 2, &flags, &JOB_ARGS, output)
    }

    /// Waits until the standby leads, publishes its address and runs the job again; returns
    /// how long after `since` the job ran again.
    fn wait_for_the_standby_to_take_over(&self, id: &str, since: Instant) -> Duration {
        let standby = self.standby.0.id();
        self.cluster.wait_for("the standby to lead", TIMEOUT, || published_pid(&self.cluster) == Some(standby));
        self.cluster.wait_for("the job to run again", TIMEOUT, || job(&self.cluster, id).is_some_and(|j| running(&j)));
        since.elapsed()
    }
}

/// The leading JobManager is SIGKILLed: the standby is elected once its lease runs out,
/// recovers the job from the job store in S3 and its latest checkpoint there, the TaskManagers
/// follow it, and the output equals a fault-free run's.
#[test]
fn a_killed_leader_is_replaced_by_the_standby_and_the_job_stays_exactly_once() {
    let ha = HaCluster::start();
    let out = TempDir::new("ha-kill");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let id = ha.submit(&output);
    ha.cluster.wait_for("a completed checkpoint", TIMEOUT, || latest_checkpoint(&ha.cluster, &id) >= 1);
    let task_managers = [ha.cluster.pid("taskmanager-0"), ha.cluster.pid("taskmanager-1")];

    let leader = ha.cluster.pid("jobmanager");
    Command::new("kill").args(["-KILL", &leader.to_string()]).status().unwrap();
    let killed = Instant::now();
    let took = ha.wait_for_the_standby_to_take_over(&id, killed);
    println!("leader killed: the job ran again on the standby after {:.2} s (2 s lease)", took.as_secs_f64());

    wait_until_finished(&ha.cluster, &id);
    let log = ha.log("jobmanager-standby");
    assert!(log.contains("restoring from checkpoint"), "the job did not restore from a checkpoint:\n{log}");
    assert!(task_managers.iter().all(|&pid| alive(pid)), "a task manager exited");
    assert_eq!(registered_task_managers(&ha.cluster), ["taskmanager-0", "taskmanager-1"]);
    assert_exactly_once(reference, &output);
}

/// The leader stops answering (SIGSTOP: its process, and so its lease's keep-alives, frozen)
/// for longer than its lease: the standby takes over and runs the job. When the old leader
/// runs again, it finds its lease long gone and ends itself before it drives anything, so two
/// leaders never run the job; the output equals a fault-free run's.
#[test]
fn a_leader_that_lost_its_lease_fences_itself_and_the_standby_runs_the_job_exactly_once() {
    let mut ha = HaCluster::start();
    let out = TempDir::new("ha-fence");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let id = ha.submit(&output);
    ha.cluster.wait_for("a completed checkpoint", TIMEOUT, || latest_checkpoint(&ha.cluster, &id) >= 1);

    let leader = ha.cluster.pid("jobmanager");
    Command::new("kill").args(["-STOP", &leader.to_string()]).status().unwrap();
    let stopped = Instant::now();
    let took = ha.wait_for_the_standby_to_take_over(&id, stopped);
    println!("leader frozen: the job ran again on the standby after {:.2} s (2 s lease)", took.as_secs_f64());
    Command::new("kill").args(["-CONT", &leader.to_string()]).status().unwrap();
    ha.cluster.wait_for("the old leader to end itself", TIMEOUT, || !alive(leader));
    let log = ha.log("jobmanager");
    assert!(log.contains("lost the leadership of the cluster"), "the old leader did not fence itself:\n{log}");
    assert_eq!(published_pid(&ha.cluster), Some(ha.standby.0.id()), "the standby still leads");

    wait_until_finished(&ha.cluster, &id);
    assert!(ha.standby.0.try_wait().unwrap().is_none(), "the new leader exited");
    assert_exactly_once(reference, &output);
}

#[test]
fn cut_connections_fail_the_job_over_and_the_output_stays_exactly_once() {
    let cluster = Cluster::start_with_env(2, 2, &[("WEIR_FAULT_INJECTION", "1")]);
    let out = TempDir::new("cut");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let id = submit_with(&cluster, "window-agg", 2, &JOB_FLAGS, &JOB_ARGS, &output);
    cluster.wait_for("a checkpoint, with subtasks on both task managers", TIMEOUT, || {
        job(&cluster, &id).is_some_and(|j| running(&j) && task_managers_of(&j).len() == 2)
            && latest_checkpoint(&cluster, &id) >= 1
    });

    // The data connections between the two TaskManagers: the channels on them fail.
    let cut = weir_env(&["cut-connections", "data", "--taskmanager", "taskmanager-0", "--dir", cluster.dir()]);
    assert!(cut.status.success() && text(&cut).contains("of 1 task manager"), "{}", text(&cut));
    let (cut_at, before) = (Instant::now(), latest_checkpoint(&cluster, &id));
    wait_for_failover(&cluster, &id, 1);
    println!("data connections cut: the job ran again after {:.2} s", cut_at.elapsed().as_secs_f64());
    cluster.wait_for("a checkpoint after the failover", TIMEOUT, || latest_checkpoint(&cluster, &id) > before);

    // A TaskManager's control connection: the JobManager loses it, it reconnects.
    let victim = cluster.pid("taskmanager-1");
    let cut = weir_env(&["cut-connections", "control", "--taskmanager", "taskmanager-1", "--dir", cluster.dir()]);
    assert!(cut.status.success(), "{}", text(&cut));
    let cut_at = Instant::now();
    wait_for_failover(&cluster, &id, 2);
    println!("control connection cut: the job ran again after {:.2} s", cut_at.elapsed().as_secs_f64());
    cluster.wait_for("taskmanager-1 registered again", TIMEOUT, || registered_task_managers(&cluster).len() == 2);
    println!("control connection cut: registered again after {:.2} s", cut_at.elapsed().as_secs_f64());
    assert!(alive(victim), "taskmanager-1 exited instead of reconnecting");

    wait_until_finished(&cluster, &id);
    let (restarts, causes) = exceptions(&cluster, &id);
    assert!(restarts >= 2, "{causes:?}");
    assert!(causes.iter().any(|c| c.contains("'taskmanager-1' was lost")), "{causes:?}");
    assert_exactly_once(reference, &output);
}

/// Starts `weir taskmanager` with id `id` (one slot) on the cluster's directory, as an operator
/// replacing a lost machine would.
fn start_task_manager(cluster: &Cluster, id: &str) -> Process {
    start_process(cluster, id, &["taskmanager", "--dir", cluster.dir(), "--id", id, "--slots", "1"])
}

/// Files the sink committed (in-progress and pending files are hidden).
fn committed_files(output: &Path) -> usize {
    let entries = std::fs::read_dir(output).into_iter().flatten().flatten();
    entries.filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()
}

/// A SIGKILLed TaskManager process: with a spare slot the job resumes at once on the remaining
/// ones; without, it waits for slots, answering for its status (`RESTARTING`), until a new
/// TaskManager brings some. Either way it restores its latest checkpoint and the output stays
/// exactly once. Prints the recovery times.
#[test]
fn a_killed_task_manager_process_fails_over_to_a_spare_slot_then_waits_for_a_new_one() {
    let cluster = Cluster::start(3, 1);
    let out = TempDir::new("tm-kill");
    // Twice the usual input: two failovers, one of them waiting for a new TaskManager.
    let mut args = JOB_ARGS;
    args[1] = "320000";
    let reference = reference_run_with(out.join("reference"), args);
    let output = out.join("cluster");
    let id = submit_with(&cluster, "window-agg", 2, &JOB_FLAGS, &args, &output);
    let placed = |j: &Value| running(j) && task_managers_of(j).len() == 2;
    cluster.wait_for("a checkpoint, on two task managers", TIMEOUT, || {
        job(&cluster, &id).is_some_and(|j| placed(&j)) && latest_checkpoint(&cluster, &id) >= 1
    });

    // 1. A spare slot: the job runs again on taskmanager-2 (or wherever is free).
    let used = task_managers_of(&job(&cluster, &id).unwrap());
    let victim = used.iter().next().unwrap().clone();
    let (restarts, _) = exceptions(&cluster, &id);
    let committed = committed_files(&output);
    Command::new("kill").args(["-KILL", &cluster.pid(&victim).to_string()]).status().unwrap();
    let killed = Instant::now();
    cluster.wait_for("the job to notice", TIMEOUT, || exceptions(&cluster, &id).0 > restarts);
    let noticed = killed.elapsed();
    cluster.wait_for("the job to run again", TIMEOUT, || job(&cluster, &id).is_some_and(|j| placed(&j)));
    let resumed = killed.elapsed();
    cluster.wait_for("newly committed output", TIMEOUT, || committed_files(&output) > committed);
    println!(
        "task manager killed, spare slot: restarting after {:.2} s, running after {:.2} s, new output committed after {:.2} s",
        noticed.as_secs_f64(),
        resumed.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );

    // 2. No spare slot: the job waits for one, and says so.
    let used = task_managers_of(&job(&cluster, &id).unwrap());
    let victim = used.iter().next().unwrap().clone();
    let (restarts, _) = exceptions(&cluster, &id);
    Command::new("kill").args(["-KILL", &cluster.pid(&victim).to_string()]).status().unwrap();
    cluster.wait_for("the job to notice", TIMEOUT, || exceptions(&cluster, &id).0 > restarts);
    // It stays RESTARTING, and its JobMaster keeps answering while it waits.
    for _ in 0..5 {
        let j = job(&cluster, &id).expect("the job answers while it waits for slots");
        assert_eq!(j["state"], "RESTARTING", "{j}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = weir_env(&["status", &id, "--dir", cluster.dir()]);
    assert!(status.status.success() && text(&status).contains("RESTARTING"), "{}", text(&status));
    let _replacement = start_task_manager(&cluster, "taskmanager-3");
    let started = Instant::now();
    cluster.wait_for("the job to run again", TIMEOUT, || job(&cluster, &id).is_some_and(|j| placed(&j)));
    println!(
        "task manager killed, no spare slot: running {:.2} s after a new task manager started",
        started.elapsed().as_secs_f64()
    );

    wait_until_finished(&cluster, &id);
    let (restarts, causes) = exceptions(&cluster, &id);
    assert!(restarts >= 2, "{causes:?}");
    assert!(causes.iter().any(|c| c.contains("was lost")), "{causes:?}");
    let (_, checkpoints) = cluster.rest("GET", &format!("/jobs/{id}/checkpoints"), None, None);
    assert!(checkpoints["restored"].as_array().is_some_and(|r| r.len() >= 2), "{checkpoints}");
    assert_exactly_once(reference, &output);
}

/// Checkpoints of RocksDB state in S3 (s3s-fs, a real S3 server on 127.0.0.1; the processes
/// reach it through the standard `AWS_*` variables) while a TaskManager process is SIGKILLed:
/// the job restores its latest incremental checkpoint from the bucket, downloading the shared
/// SST files, and the output stays exactly once.
#[test]
fn a_job_with_rocksdb_checkpoints_in_s3_survives_a_killed_task_manager_exactly_once() {
    let s3 = S3::start(&["weir"]);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = Cluster::start_with_env(3, 1, &env);
    let out = TempDir::new("s3-tm-kill");
    let reference = reference_run(out.join("reference"));
    let output = out.join("cluster");
    let mut flags = JOB_FLAGS.to_vec();
    flags.extend(["--checkpoint-dir", "s3://weir/checkpoints", "--state-backend", "rocksdb"]);
    let id = submit_with(&cluster, "window-agg", 2, &flags, &JOB_ARGS, &output);
    cluster.wait_for("two checkpoints", TIMEOUT, || {
        job(&cluster, &id).is_some_and(|j| running(&j)) && latest_checkpoint(&cluster, &id) >= 2
    });
    let victim = task_managers_of(&job(&cluster, &id).unwrap()).into_iter().next().unwrap();
    let (restarts, _) = exceptions(&cluster, &id);
    Command::new("kill").args(["-KILL", &cluster.pid(&victim).to_string()]).status().unwrap();
    wait_for_failover(&cluster, &id, restarts + 1);
    wait_until_finished(&cluster, &id);

    let (_, checkpoints) = cluster.rest("GET", &format!("/jobs/{id}/checkpoints"), None, None);
    assert!(checkpoints["restored"].as_array().is_some_and(|r| !r.is_empty()), "{checkpoints}");
    let job_dir = s3.file(&format!("weir/checkpoints/{id}"));
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        names(&job_dir).iter().any(|n| n.starts_with("chk-")),
        "no checkpoint in the bucket: {:?}",
        names(&job_dir)
    );
    let shared = names(&job_dir.join("shared"));
    assert!(shared.iter().any(|n| n.ends_with(".sst")), "no shared SST file in the bucket: {shared:?}");
    assert_exactly_once(reference, &output);
}

#[test]
fn a_task_manager_without_a_job_manager_gives_up_after_the_registration_timeout() {
    let cluster = Cluster::start_with_env(1, 1, &[("WEIR_TASKMANAGER_REGISTRATION_TIMEOUT_MS", "1500")]);
    let task_manager = cluster.pid("taskmanager-0");
    let job_manager = cluster.pid("jobmanager");
    Command::new("kill").args(["-KILL", &job_manager.to_string()]).status().unwrap();
    let killed = Instant::now();
    cluster.wait_for("the task manager to exit", TIMEOUT, || !alive(task_manager));
    // The heartbeat timeout (2 s) to notice, then the registration timeout (1.5 s).
    let waited = killed.elapsed();
    assert!(waited >= std::time::Duration::from_millis(1500), "it gave up after {waited:?}");
    let log = std::fs::read_to_string(cluster.file("logs").join("taskmanager-0.log")).unwrap();
    assert!(log.contains("lost the job manager"), "{log}");
    assert!(log.contains("gave up on the job manager: not registered again within 1.5s"), "{log}");

    // A bad switch is named, before anything starts.
    let out = crate::support::weir_with_env(
        &["jobmanager", "--dir", cluster.dir()],
        &[("WEIR_FAULT_INJECTION", "maybe")],
        TIMEOUT,
    );
    assert!(!out.status.success() && text(&out).contains("$WEIR_FAULT_INJECTION"), "{}", text(&out));
}

/// The chaos suite on processes, bounded for CI: at seeded moments TaskManager processes are
/// SIGKILLed and replaced, the JobManager process is restarted, connections are cut and
/// actors are killed, and the committed output equals a fault-free run's
/// (`weir chaos --cluster --runs N` soaks longer). Seed 9002 once hung: a TaskManager died
/// while the ResourceManager was being restarted, and the new one, which never knew it, told
/// no JobMaster of its loss.
#[test]
fn chaos_runs_on_processes_are_exactly_once() {
    let timeout = std::time::Duration::from_secs(420);
    let mut chaos = Command::new(env!("CARGO_BIN_EXE_weir"));
    chaos.args(["chaos", "--cluster", "--runs", "2", "--seed", "9001"]).env("RUST_LOG", "error");
    // Its cluster's processes run in their own process group: on a timeout, stop them by their ids.
    let out = crate::support::output_within_or(chaos, "weir chaos", timeout, kill_chaos_clusters);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("seed ") && l.contains(": faults [")).collect();
    assert_eq!(verdicts.len(), 2, "{stdout}");
    for line in &verdicts {
        assert!(line.ends_with("lost 0, duplicated 0, sequence violations 0: exactly once"), "{line}");
        // Faults struck (not only "nothing to kill"), and the job restored from checkpoints.
        assert!(["killed", "restarted", "cut"].iter().any(|k| line.contains(k)), "{line}");
        assert!(!line.contains("restored checkpoints []"), "{line}");
    }
    println!("{stdout}");
}

/// Crashes at protocol steps on processes: the JobManager aborts right after a checkpoint's
/// `_metadata` is written (before any sink commits), TaskManagers between a snapshot and its
/// acknowledgement and between a completion and the sink's commit; each crashed process is
/// started again, and the output equals a fault-free run's.
#[test]
fn chaos_crashes_processes_at_protocol_steps() {
    let timeout = std::time::Duration::from_secs(300);
    let mut chaos = Command::new(env!("CARGO_BIN_EXE_weir"));
    chaos
        .args(["chaos", "--cluster", "--runs", "1", "--seed", "9101", "--faults", "0"])
        .args(["--failpoint", "after-completion@3,before-ack@6,before-commit@4"])
        .env("RUST_LOG", "error");
    let out = crate::support::output_within_or(chaos, "weir chaos", timeout, kill_chaos_clusters);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let schedule = stdout.lines().find(|l| l.starts_with("seed 9101: schedule:")).expect("the schedule is printed");
    assert!(schedule.contains("after-completion@3,") || schedule.contains("after-completion@3]"), "{schedule}");
    let verdict = stdout.lines().find(|l| l.contains(": faults [")).expect("a verdict");
    assert!(verdict.contains("1 crashed at after-completion"), "{verdict}");
    assert!(verdict.ends_with("lost 0, duplicated 0, sequence violations 0: exactly once"), "{verdict}");
    println!("{stdout}");
}

/// SIGKILLs the processes of the clusters a `weir chaos --cluster` process `pid` started (their
/// pid files are under its temporary directories).
pub(crate) fn kill_chaos_clusters(pid: u32) {
    let prefix = format!("weir-chaos-{pid}-");
    for run in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if !run.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        for pid_file in std::fs::read_dir(run.path().join("cluster").join("pids")).into_iter().flatten().flatten() {
            let Some(pid) = std::fs::read_to_string(pid_file.path()).ok().and_then(|p| p.trim().parse::<u32>().ok())
            else {
                continue;
            };
            // Only if that pid is still one of the cluster's (its command line names the run).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(run.path().to_string_lossy().as_ref()) {
                Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
            }
        }
    }
}

/// `kafka-window-agg` on processes, Kafka to Kafka exactly once, while its TaskManager
/// processes are SIGKILLed: twice a TaskManager running it dies (the first time a spare slot
/// takes over, and a new TaskManager becomes the next spare) while the clicks arrive. What a
/// `read_committed` consumer gets from the output topic is each window's count once, the same
/// as the clicks give without failures.
#[test]
fn kafka_window_agg_on_processes_is_exactly_once_while_task_managers_are_killed() {
    use weir_actors::prelude::GeneratorConfig;
    use weir_kafka::ProducerRecord;
    const CLICKS: u64 = 30_000;
    let broker = crate::kafka::Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(weir_kafka::ensure_topic(&broker.addr, "clicks", 4)).unwrap();
    runtime.block_on(weir_kafka::ensure_topic(&broker.addr, "windows", 2)).unwrap();
    let config = GeneratorConfig {
        events: Some(CLICKS),
        keys: 100,
        seed: 7,
        base_time: crate::kafka::BASE_TIME,
        ..GeneratorConfig::default()
    };
    let expected = crate::kafka::window_counts(&config, CLICKS);

    let cluster = Cluster::start(3, 1);
    let args = ["--brokers", &broker.addr, "--input-topic", "clicks", "--output-topic", "windows"];
    let mut cmd = vec!["run", "kafka-window-agg", "-p", "2", "--detached", "--dir", cluster.dir()];
    cmd.extend(JOB_FLAGS);
    cmd.push("--");
    cmd.extend(args);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    let id = job_id(&out);
    cluster.wait_for("the job to run", TIMEOUT, || job(&cluster, &id).is_some_and(|j| running(&j)));

    // The clicks arrive in 30 parts; twice, right after a part arrived (its windows fire and
    // go into the open transactions), a TaskManager running the job dies. Then a click a day
    // later on each partition moves every partition's watermark past the clicks' windows (its
    // own never fires).
    let produce = |records: Vec<ProducerRecord>| {
        runtime.block_on(weir_kafka::produce(&broker.addr, "clicks", 4, 200, records)).unwrap();
    };
    let part = |part: u64| crate::kafka::click_part(&config, CLICKS, part, 30);
    let mut spare = None;
    for p in 0..30 {
        produce(part(p));
        if p == 10 || p == 20 {
            let victim = task_managers_of(&job(&cluster, &id).unwrap()).into_iter().next().unwrap();
            Command::new("kill").args(["-KILL", &cluster.pid(&victim).to_string()]).status().unwrap();
            wait_for_failover(&cluster, &id, p / 10);
            spare.get_or_insert_with(|| start_task_manager(&cluster, "taskmanager-9"));
        } else if p == 9 || p == 19 {
            let checkpoint = latest_checkpoint(&cluster, &id);
            cluster.wait_for("a new checkpoint", TIMEOUT, || latest_checkpoint(&cluster, &id) > checkpoint);
        }
    }
    produce(crate::kafka::clicks_a_day_later(CLICKS));

    let mut committed = Vec::new();
    cluster.wait_for("every window committed", TIMEOUT, || {
        let log = weir_kafka::read_committed(&broker.addr, "windows", Duration::from_secs(30)).unwrap();
        committed = log.committed.iter().map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()).collect();
        committed.sort();
        committed.len() >= expected.len()
    });
    let (restarts, causes) = exceptions(&cluster, &id);
    assert!(restarts >= 2 && causes.iter().any(|c| c.contains("was lost")), "{causes:?}");
    assert_eq!(committed.len(), expected.len(), "windows lost or committed twice");
    assert!(committed == expected, "the committed windows differ from the clicks' counts");
    let cancel = weir_env(&["cancel", &id, "--dir", cluster.dir()]);
    assert!(cancel.status.success(), "{}", text(&cancel));
}
