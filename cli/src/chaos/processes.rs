//! `weir chaos --cluster`: the faulty run on a cluster of real processes.
//!
//! A JobManager and three TaskManagers of one slot each (the job needs two) start from this
//! binary with `WEIR_FAULT_INJECTION=1` and short heartbeats (200 ms, lost after 2 s), in a
//! temporary cluster directory. At moments drawn from the seed one of these strikes:
//!
//! | fault | how |
//! |---|---|
//! | subtask killed | its actor, on its TaskManager (`ClientRequest::Kill`) |
//! | task-executor killed | a TaskManager's TaskExecutor actor (`ClientRequest::Kill`) |
//! | job-master / coordinator / resource-manager / dispatcher killed | in the JobManager (`ClientRequest::Kill`) |
//! | task-manager process killed | SIGKILL, and a replacement started under a new id |
//! | job-manager process restarted | SIGKILL, and a new JobManager on the same directory |
//! | control connection cut | a TaskManager's connection to the JobManager (`weir cut-connections control`) |
//! | data connections cut | a TaskManager's connections to its peers (`weir cut-connections data`) |
//!
//! A fault that finds nothing to strike (a job between JobMasters, a subtask not placed yet)
//! is counted as "nothing to kill". Every process is started and killed by this run, by its
//! own id, and killed and reaped at the end whatever happened; the cluster directory (with
//! every process's log) is kept when the run fails, and its path printed.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use weir_actors::cluster::fault_injection::{ControlActor, Kill};
use weir_actors::remote::client::ClusterClient;
use weir_actors::remote::protocol::{ConnectionKind, CutConnections};
use weir_actors::{JobDetails, JobId, JobStatus};

use weir_actors::job::JobConfig;

use super::{ChaosPlan, FaultCounts, Rng, lines, submission};
use crate::cluster::{StartArgs, job_manager_args, spawn, start, task_manager_args};
use crate::config::ClusterDir;

/// TaskManagers kept running (one more than the job's two slots, so that a killed one's
/// subtasks can move at once while its replacement starts).
const TASK_MANAGERS: usize = 3;
/// How long the job may take, faults included.
const JOB_DEADLINE: Duration = Duration::from_secs(240);
/// How long a request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the JobManager may be unreachable (a restart) before the run gives up.
const UNREACHABLE: Duration = Duration::from_secs(60);

/// The processes of the chaos cluster: killed (SIGKILL) and reaped when dropped.
struct Processes {
    dir: ClusterDir,
    env: Vec<(String, String)>,
    job_manager: Child,
    /// Running TaskManagers, by id.
    task_managers: Vec<(String, Child)>,
    /// TaskManagers started so far (the next one's id), and JobManager restarts.
    started: usize,
    restarts: usize,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.job_manager).chain(self.task_managers.iter_mut().map(|(_, c)| c)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    fn start(dir: &Path) -> anyhow::Result<Processes> {
        let env: Vec<(String, String)> = [
            ("WEIR_FAULT_INJECTION", "1"),
            ("WEIR_HEARTBEAT_INTERVAL_MS", "200"),
            ("WEIR_HEARTBEAT_TIMEOUT_MS", "2000"),
            // Logs name every fault and recovery; a failed run keeps them.
            ("RUST_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let started = start(StartArgs {
            dir: Some(dir.to_path_buf()),
            taskmanagers: TASK_MANAGERS,
            slots: Some(1),
            env: env.clone(),
        })?;
        let mut processes = started.processes.into_iter();
        let (_, job_manager) = processes.next().context("no job manager was started")?;
        Ok(Processes {
            dir: started.dir,
            env,
            job_manager,
            task_managers: processes.collect(),
            started: TASK_MANAGERS,
            restarts: 0,
        })
    }

    /// SIGKILLs TaskManager `index` and starts a replacement under a new id.
    fn replace_task_manager(&mut self, index: usize) -> anyhow::Result<String> {
        let (id, mut child) = self.task_managers.remove(index);
        child.kill().with_context(|| format!("cannot kill {id}"))?;
        child.wait()?;
        let name = format!("taskmanager-{}", self.started);
        self.started += 1;
        let child = spawn(&self.dir, &name, &task_manager_args(&self.dir, &name, Some(1)), &self.env)?;
        self.task_managers.push((name, child));
        Ok(id)
    }

    /// SIGKILLs the JobManager and starts a new one on the same directory; returns once the
    /// new one published its address.
    fn restart_job_manager(&mut self) -> anyhow::Result<()> {
        self.job_manager.kill().context("cannot kill the job manager")?;
        self.job_manager.wait()?;
        self.restarts += 1;
        let name = format!("jobmanager-{}", self.restarts);
        self.job_manager = spawn(&self.dir, &name, &job_manager_args(&self.dir), &self.env)?;
        let pid = self.job_manager.id();
        let deadline = Instant::now() + UNREACHABLE;
        while self.dir.published().ok().map(|p| p.pid) != Some(pid) {
            if let Some(status) = self.job_manager.try_wait()? {
                bail!("the restarted job manager exited ({status}); see {}", self.dir.file("logs").display());
            }
            anyhow::ensure!(Instant::now() < deadline, "the restarted job manager did not publish its address");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// A client of the cluster's current JobManager, connected again whenever a request fails (a
/// JobManager that was restarted has a new address).
struct Client {
    dir: ClusterDir,
    runtime: tokio::runtime::Runtime,
    client: Option<ClusterClient>,
}

impl Client {
    /// Runs `request` on a connected client; a failure drops the connection, so the next
    /// request connects again.
    fn request<R>(
        &mut self,
        request: impl AsyncFnOnce(&mut ClusterClient) -> weir_actors::Result<R>,
    ) -> anyhow::Result<R> {
        let Client { dir, runtime, client } = self;
        runtime.block_on(async {
            if client.is_none() {
                *client = Some(crate::cluster::client(dir).await?);
            }
            let result = tokio::time::timeout(REQUEST_TIMEOUT, request(client.as_mut().expect("connected"))).await;
            let failure = match result {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => anyhow::Error::from(e),
                Err(_) => anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}"),
            };
            client.take();
            Err(failure)
        })
    }

    /// The job's details, asking again until the JobManager answers (it may be restarting).
    fn details(&mut self, id: JobId) -> anyhow::Result<JobDetails> {
        let deadline = Instant::now() + UNREACHABLE;
        loop {
            match self.request(async |c| c.details(id).await) {
                Ok(details) => return Ok(details),
                Err(e) if Instant::now() > deadline => return Err(e.context("the job manager does not answer")),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The faulty run on processes (see the module doc): its committed output and the job's
/// details.
pub(super) fn faulty_run(
    work: &Path,
    plan: &ChaosPlan,
    config: JobConfig,
    rng: &mut Rng,
    kinds: &mut FaultCounts,
) -> anyhow::Result<(Vec<String>, JobDetails)> {
    let mut processes = Processes::start(&work.join("cluster"))?;
    let mut client = Client { dir: processes.dir.clone(), runtime: crate::runtime()?, client: None };
    let output = work.join("faulty");
    let job = submission(plan.job, plan.events, &output, config)?;
    let id = client.request(async |c| c.submit(&job).await)?;

    let deadline = Instant::now() + JOB_DEADLINE;
    for _ in 0..plan.faults {
        std::thread::sleep(Duration::from_millis(150 + rng.below(450)));
        let details = client.details(id)?;
        if details.status.is_terminal() {
            break;
        }
        let kind = strike(&mut processes, &mut client, &details, rng)?;
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    let details = loop {
        let details = client.details(id)?;
        if details.status.is_terminal() {
            break details;
        }
        anyhow::ensure!(Instant::now() < deadline, "the job did not end within {JOB_DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(c) = client.client.take() {
        client.runtime.block_on(c.close());
    }
    anyhow::ensure!(
        details.status == JobStatus::Finished,
        "the faulty run ended {}: {:?}",
        details.status,
        details.cause
    );
    Ok((lines(&output)?, details))
}

/// Injects one fault drawn from `rng`; returns its kind.
fn strike(
    processes: &mut Processes,
    client: &mut Client,
    details: &JobDetails,
    rng: &mut Rng,
) -> anyhow::Result<&'static str> {
    let running = details.status == JobStatus::Running;
    let task_manager = rng.below(processes.task_managers.len() as u64) as usize;
    let task_manager_id = processes.task_managers[task_manager].0.clone();
    let id = details.id;
    let (kill, kind) = match rng.below(20) {
        0..=4 if !running => return Ok("nothing to kill"),
        0..=4 => {
            let vertex = rng.below(details.vertices.len() as u64) as usize;
            let index = rng.below(details.vertices[vertex].parallelism as u64) as usize;
            (Kill::Subtask { job: id, vertex, index }, "subtask killed")
        }
        5..=6 => (Kill::TaskExecutor { task_manager: task_manager_id.clone() }, "task-executor killed"),
        7..=9 => {
            processes.replace_task_manager(task_manager)?;
            return Ok("task-manager process killed and replaced");
        }
        10..=11 => {
            processes.restart_job_manager()?;
            // The old JobManager's connection is dead, though QUIC notices only at its idle
            // timeout: connect to the new one.
            client.client = None;
            return Ok("job-manager process restarted");
        }
        kind @ 12..=15 => {
            let (kind, name) = if kind <= 13 {
                (ConnectionKind::Control, "control connection cut")
            } else {
                (ConnectionKind::Data, "data connections cut")
            };
            let cut = CutConnections { kind, task_manager: Some(task_manager_id) };
            return match client.request(async |c| c.cut_connections(cut).await) {
                Ok(_) => Ok(name),
                // A TaskManager that is reconnecting has no connection to cut.
                Err(e) if nothing_to_kill(&e) => Ok("nothing to cut"),
                Err(e) => Err(e),
            };
        }
        16 => (Kill::Control(ControlActor::JobMaster(id)), "job-master killed"),
        17 => (Kill::Control(ControlActor::Coordinator(id)), "coordinator killed"),
        18 => (Kill::Control(ControlActor::ResourceManager), "resource-manager killed"),
        _ => (Kill::Control(ControlActor::Dispatcher), "dispatcher killed"),
    };
    Ok(match client.request(async |c| c.kill(kill).await) {
        Ok(()) => kind,
        Err(e) if nothing_to_kill(&e) => "nothing to kill",
        Err(e) => return Err(e),
    })
}

/// A kill or cut that found nothing to strike: a job between JobMasters or coordinators, a
/// subtask not placed yet, a TaskManager that is reconnecting.
fn nothing_to_kill(e: &anyhow::Error) -> bool {
    let text = e.to_string();
    ["has no", "is not connected", "no placed subtask"].iter().any(|s| text.contains(s))
}
