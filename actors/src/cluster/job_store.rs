//! The job store: every submitted job, kept so that a restarted Dispatcher, or a restarted
//! JobManager process, runs its jobs again (Flink's `JobGraphStore` and `JobResultStore` in one).
//!
//! A record holds what rebuilds the job (its registered name, arguments, parallelism, plan and
//! configuration), the generation of its JobMaster, and its result once it has ended. The
//! builder itself is code: a store in a JobManager process finds it again in the binary's
//! [`JobRegistry`] by name; a store without a directory (a MiniCluster) keeps it in memory,
//! which outlives any actor of the process but not the process.
//!
//! On disk (`weir jobmanager` keeps it in `<cluster dir>/jobs/`, or where `[jobmanager]
//! job_store` of `weir.toml` says: a local directory or an `s3://` prefix), a job is one JSON
//! file, `<job id>.json`, replaced atomically (temporary file, fsync, rename; one `PUT` in an
//! object store) at every change. A
//! record that cannot be read is reported by name and skipped; it is not deleted, so a person
//! can look at it. Ended jobs are kept (the newest [`ENDED_KEPT`]) so that `weir list` still
//! shows them after a restart.
//!
//! Generations fence JobMasters: each start of a job's JobMaster (first or after a restart)
//! takes the next generation, persisted before the JobMaster runs, and attempt numbers start
//! at `generation << 16` (see [`first_attempt`]), so an attempt of a new JobMaster never equals
//! one of an old JobMaster whose subtasks may still be stopping.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::{error, warn};
use weir_state::storage::Location;

use crate::api::job::{JobConfig, JobFn, JobRegistry};
use crate::api::job_args::JobArgs;
use crate::base::error::{Result, WeirError};
use crate::base::ids::JobId;
use crate::cluster::messages::PreparedJob;
use crate::cluster::{ExceptionRecord, JobStatus};
use crate::runtime::job_graph::JobGraph;

/// Ended jobs kept in the store; older ones are forgotten.
pub const ENDED_KEPT: usize = 100;

/// The first attempt number of a job's JobMaster of `generation`.
pub fn first_attempt(generation: u32) -> u32 {
    generation << 16
}

/// A job as the store keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    /// Format version of the record.
    pub version: u32,
    /// The job.
    pub id: JobId,
    /// Its registered name.
    pub name: String,
    /// Its arguments.
    pub args: JobArgs,
    /// Its default parallelism.
    pub parallelism: usize,
    /// The plan it was submitted with.
    pub graph: JobGraph,
    /// Checkpoints and restarts.
    pub config: JobConfig,
    /// When it was submitted (epoch ms).
    pub submitted_ms: i64,
    /// Starts of its JobMaster so far.
    pub generation: u32,
    /// Its restarts, failures and restores, over all its JobMasters.
    #[serde(flatten)]
    pub history: JobHistory,
    /// How it ended, once it has.
    pub ended: Option<EndedJob>,
}

/// Failures kept per job, and restores.
pub const EXCEPTIONS_KEPT: usize = 50;

/// What a job went through, over all its JobMasters: a successor carries on with it, and so
/// do its restart strategy's counts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JobHistory {
    /// Restarts after failures so far.
    pub restarts: u32,
    /// Its failures, oldest first (the newest [`EXCEPTIONS_KEPT`]).
    pub exceptions: Vec<ExceptionRecord>,
    /// The checkpoints (or the savepoint) it restored from, oldest first (the newest
    /// [`EXCEPTIONS_KEPT`]); absent from records of earlier builds.
    #[serde(default)]
    pub restored: Vec<u64>,
}

impl JobHistory {
    /// Keeps the newest [`EXCEPTIONS_KEPT`] failures and restores.
    fn trimmed(&self) -> JobHistory {
        let newest = |n: usize| n.saturating_sub(EXCEPTIONS_KEPT);
        JobHistory {
            restarts: self.restarts,
            exceptions: self.exceptions[newest(self.exceptions.len())..].to_vec(),
            restored: self.restored[newest(self.restored.len())..].to_vec(),
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndedJob {
    /// Its final status.
    pub status: JobStatus,
    /// Why, if it did not finish.
    pub cause: Option<String>,
    /// When (epoch ms).
    pub ended_ms: i64,
}

impl JobRecord {
    /// The current format version.
    pub const VERSION: u32 = 1;
}

/// A job the store gives back to a starting Dispatcher.
pub struct RecoveredJob {
    /// The record.
    pub record: JobRecord,
    /// The job, ready to run again (`Err`: it cannot be, e.g. this binary lacks its builder).
    pub job: Result<PreparedJob>,
}

/// The job store (see the module doc).
pub struct JobStore {
    dir: Option<Location>,
    registry: Option<JobRegistry>,
    jobs: Mutex<BTreeMap<JobId, (JobRecord, Option<JobFn>)>>,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn io_error(what: &str, at: &Location, e: std::io::Error) -> WeirError {
    WeirError::io(format!("cannot {what} job store file '{at}'"), e)
}

impl JobStore {
    /// A store in this process's memory only.
    pub fn in_memory() -> Self {
        JobStore { dir: None, registry: None, jobs: Mutex::new(BTreeMap::new()) }
    }

    /// The store in `dir` (created if needed), with the jobs it holds; builders come from
    /// `registry`. Records that cannot be read are logged, naming the file, and skipped.
    pub fn open(dir: impl Into<Location>, registry: JobRegistry) -> Result<Self> {
        let dir = &dir.into();
        dir.create_dir_durably(&crate::base::fs::LocalFs).map_err(|e| io_error("create the directory of", dir, e))?;
        let mut jobs = BTreeMap::new();
        let mut names = dir.children().map_err(|e| io_error("list", dir, e))?;
        names.sort_unstable();
        for name in names {
            // (Temporary files of a write in progress start with a dot.)
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            match Self::read(&path) {
                Ok(record) => {
                    jobs.insert(record.id, (record, None));
                }
                Err(e) => error!("{e}; the job it holds is not recovered"),
            }
        }
        Ok(JobStore { dir: Some(dir.clone()), registry: Some(registry), jobs: Mutex::new(jobs) })
    }

    fn read(path: &Location) -> Result<JobRecord> {
        let bytes = path.read().map_err(|e| io_error("read", path, e))?;
        let record: JobRecord = serde_json::from_slice(&bytes)
            .map_err(|e| WeirError::runtime(format!("job store file '{path}' is corrupt: {e}")))?;
        if record.version != JobRecord::VERSION {
            return Err(WeirError::runtime(format!(
                "job store file '{path}' is in format {} (this build reads {})",
                record.version,
                JobRecord::VERSION
            )));
        }
        Ok(record)
    }

    fn path(&self, id: JobId) -> Option<Location> {
        self.dir.as_ref().map(|d| d.join(&format!("{id}.json")))
    }

    fn persist(&self, record: &JobRecord) -> Result<()> {
        let Some(path) = self.path(record.id) else { return Ok(()) };
        crate::base::fence::check("writing the job store")?;
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| WeirError::runtime(format!("cannot encode the record of job {}: {e}", record.id)))?;
        path.write_atomically(&crate::base::fs::LocalFs, &json).map_err(|(what, at, e)| io_error(what, &at, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobId, (JobRecord, Option<JobFn>)>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a newly submitted job (durably, before the submission is accepted).
    pub fn add(&self, job: &PreparedJob) -> Result<()> {
        let record = JobRecord {
            version: JobRecord::VERSION,
            id: job.id,
            name: job.name.clone(),
            args: job.args.clone(),
            parallelism: job.parallelism,
            graph: job.graph.clone(),
            config: job.config.clone(),
            submitted_ms: crate::base::time::wall_clock_ms(),
            generation: 0,
            history: JobHistory::default(),
            ended: None,
        };
        self.persist(&record)?;
        self.lock().insert(job.id, (record, Some(job.builder.clone())));
        Ok(())
    }

    /// Takes the next generation of job `id`'s JobMaster, durably.
    pub fn next_generation(&self, id: JobId) -> Result<u32> {
        let mut jobs = self.lock();
        let (record, _) = jobs.get_mut(&id).ok_or_else(|| WeirError::UnknownJobId(id.to_string()))?;
        let mut next = record.clone();
        next.generation += 1;
        self.persist(&next)?;
        *record = next;
        Ok(record.generation)
    }

    /// Job `id`'s history: restarts, failures and restores, over all its JobMasters.
    pub fn history(&self, id: JobId) -> JobHistory {
        self.lock().get(&id).map(|(r, _)| r.history.clone()).unwrap_or_default()
    }

    /// Records job `id`'s history (a JobMaster does at each failure, restart and restore, so
    /// that its successor carries on with it and its restart strategy's counts).
    pub fn record_history(&self, id: JobId, history: &JobHistory) {
        let mut jobs = self.lock();
        let Some((record, _)) = jobs.get_mut(&id) else { return };
        record.history = history.trimmed();
        if let Err(e) = self.persist(record) {
            // Only the history is at stake: the job runs on.
            warn!(job = %id, "{e}");
        }
    }

    /// Records how job `id` ended, and forgets the oldest ended jobs beyond [`ENDED_KEPT`].
    pub fn end(&self, id: JobId, status: JobStatus, cause: Option<String>) {
        let mut jobs = self.lock();
        let Some((record, builder)) = jobs.get_mut(&id) else { return };
        record.ended = Some(EndedJob { status, cause, ended_ms: crate::base::time::wall_clock_ms() });
        *builder = None;
        if let Err(e) = self.persist(record) {
            // The job ran to its end; at worst a restart runs it again from its last checkpoint.
            warn!(job = %id, "{e}");
        }
        let mut ended: Vec<(i64, JobId)> =
            jobs.values().filter_map(|(r, _)| Some((r.ended.as_ref()?.ended_ms, r.id))).collect();
        ended.sort_unstable();
        for (_, old) in &ended[..ended.len().saturating_sub(ENDED_KEPT)] {
            jobs.remove(old);
            if let Some(path) = self.path(*old)
                && let Err(e) = crate::base::fence::check("deleting from the job store")
                    .map_err(|e| e.to_string())
                    .and_then(|()| path.remove_file().map_err(|e| e.to_string()))
            {
                warn!("cannot delete job store file '{path}': {e}");
            }
        }
    }

    /// Every stored job, oldest submission first, with the jobs still to run rebuilt.
    pub fn recover(&self) -> Vec<RecoveredJob> {
        let jobs = self.lock();
        let mut recovered: Vec<RecoveredJob> = jobs
            .values()
            .map(|(record, builder)| RecoveredJob { record: record.clone(), job: self.rebuild(record, builder) })
            .collect();
        recovered.sort_by_key(|r| r.record.submitted_ms);
        recovered
    }

    fn rebuild(&self, record: &JobRecord, builder: &Option<JobFn>) -> Result<PreparedJob> {
        let builder = match (builder, &self.registry) {
            (Some(builder), _) => builder.clone(),
            (None, Some(registry)) => registry.get(&record.name)?.builder.clone(),
            (None, None) => return Err(WeirError::runtime("the job's builder is gone with the process that had it")),
        };
        Ok(PreparedJob {
            id: record.id,
            name: record.name.clone(),
            builder,
            args: record.args.clone(),
            parallelism: record.parallelism,
            graph: record.graph.clone(),
            config: record.config.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
