//! Jobs: their arguments (`--key value`, as Flink's ParameterTool), ids, and the registry of
//! named job builders every node of a cluster carries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::api::job_args::JobArgs;
use crate::api::stream::StreamEnv;
use crate::base::error::{Result, WeirError};
use crate::base::state::StateBackend;
use crate::runtime::stream_graph::{ExecutableGraph, plan};

/// A job builder: makes the dataflow of a job on a [`StreamEnv`] from its arguments.
pub type JobFn = Arc<dyn Fn(&mut StreamEnv, &JobArgs) -> Result<()> + Send + Sync>;

/// A registered job.
#[derive(Clone)]
pub struct JobEntry {
    /// The name jobs are submitted by.
    pub name: String,
    /// One line on what the job does.
    pub description: String,
    /// The builder.
    pub builder: JobFn,
}

impl fmt::Debug for JobEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobEntry").field("name", &self.name).field("description", &self.description).finish()
    }
}

/// The named job builders a binary carries. Every node of a cluster runs a binary with the same
/// registry and rebuilds a job's dataflow from it: closures cannot travel, names can.
#[derive(Clone, Default, Debug)]
pub struct JobRegistry {
    jobs: BTreeMap<String, JobEntry>,
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        JobRegistry::default()
    }

    /// Registers a job builder under `name` with a one-line description.
    pub fn job<F>(mut self, name: &str, description: &str, builder: F) -> Self
    where
        F: Fn(&mut StreamEnv, &JobArgs) -> Result<()> + Send + Sync + 'static,
    {
        self.jobs.insert(
            name.to_owned(),
            JobEntry { name: name.to_owned(), description: description.to_owned(), builder: Arc::new(builder) },
        );
        self
    }

    /// The job registered under `name`.
    pub fn get(&self, name: &str) -> Result<&JobEntry> {
        self.jobs.get(name).ok_or_else(|| WeirError::UnknownJob {
            name: name.to_owned(),
            known: self.jobs.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// A fingerprint of the jobs this registry carries (names and descriptions) and of
    /// Weir's version: nodes of one cluster must agree on it.
    pub fn fingerprint(&self) -> u64 {
        let mut text = format!("weir {}\n", env!("CARGO_PKG_VERSION"));
        for job in self.jobs.values() {
            text.push_str(&job.name);
            text.push('\0');
            text.push_str(&job.description);
            text.push('\n');
        }
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }

    /// All registered jobs, by name.
    pub fn iter(&self) -> impl Iterator<Item = &JobEntry> {
        self.jobs.values()
    }
}

#[cfg(test)]
mod tests;

/// After this long without a failure, an exponential backoff starts again from its first delay
/// (Flink's `restart-strategy.exponential-delay.reset-backoff-threshold`).
pub const BACKOFF_RESET: std::time::Duration = std::time::Duration::from_secs(3600);

impl std::fmt::Display for RestartStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attempts = |n: u32| if n == u32::MAX { "unlimited".to_owned() } else { n.to_string() };
        match self {
            RestartStrategy::None => f.write_str("none (a failure fails the job)"),
            RestartStrategy::FixedDelay { attempts: n, delay } => {
                write!(f, "fixed delay of {delay:?}, {} restarts", attempts(*n))
            }
            RestartStrategy::ExponentialBackoff { attempts: n, initial, max } => write!(
                f,
                "exponential backoff from {initial:?} to {max:?} (reset after {:?} without a failure), {} restarts",
                BACKOFF_RESET,
                attempts(*n)
            ),
            RestartStrategy::FailureRate { failures, interval, delay } => {
                write!(f, "failure rate: at most {failures} failures per {interval:?}, {delay:?} before each restart")
            }
        }
    }
}

/// How a job reacts to a failure (as Flink's restart strategies).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub enum RestartStrategy {
    /// Fail the job at the first failure.
    #[default]
    None,
    /// Restart up to `attempts` times, `delay` after each failure.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each.
        delay: std::time::Duration,
    },
    /// Restart up to `attempts` times, the delay doubling from `initial` up to `max` with each
    /// failure of the last [`BACKOFF_RESET`] (as Flink's `exponential-delay`, its default with
    /// checkpoints since 2.0: a job that ran an hour without failing starts again from
    /// `initial`).
    ExponentialBackoff {
        /// Restarts allowed.
        attempts: u32,
        /// The first delay.
        initial: std::time::Duration,
        /// The longest delay.
        max: std::time::Duration,
    },
    /// Restart after `delay` unless more than `failures` happened within `interval`.
    FailureRate {
        /// Failures tolerated per interval.
        failures: u32,
        /// The interval.
        interval: std::time::Duration,
        /// Wait before each restart.
        delay: std::time::Duration,
    },
}

impl RestartStrategy {
    /// The delay before the next restart, given the restarts so far and how long ago each
    /// failure happened; `None` when the strategy is exhausted.
    pub fn next_delay(&self, restarts: u32, failures_ago: &[std::time::Duration]) -> Option<std::time::Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => (restarts < attempts).then_some(delay),
            RestartStrategy::ExponentialBackoff { attempts, initial, max } => {
                let recent = failures_ago.iter().filter(|ago| **ago <= BACKOFF_RESET).count().max(1) as u32;
                (restarts < attempts).then(|| initial.saturating_mul(1u32 << (recent - 1).min(20)).min(max))
            }
            RestartStrategy::FailureRate { failures, interval, delay } => {
                let recent = failures_ago.iter().filter(|ago| **ago <= interval).count();
                (recent <= failures as usize).then_some(delay)
            }
        }
    }
}

/// How a job runs: checkpoints, restarts, and the savepoint it starts from.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct JobConfig {
    /// Periodic checkpoints, if the job takes them (savepoints need none).
    pub checkpoints: Option<crate::runtime::checkpoint::CheckpointConfig>,
    /// What a failure does.
    pub restart: RestartStrategy,
    /// The savepoint the job's first deployment restores (later failovers restore the job's
    /// own latest checkpoint, or this savepoint while the job has none).
    pub savepoint: Option<crate::runtime::checkpoint::savepoint::SavepointRestore>,
    /// Where keyed state lives.
    pub state_backend: StateBackend,
}

/// Runs a job builder and derives its plan. With `client`, runs the client-side checks
/// (inputs exist, output directories are usable) that must not run again on every node.
pub(crate) fn build_job(
    name: &str,
    builder: &JobFn,
    args: &JobArgs,
    parallelism: usize,
    client: Option<&crate::runtime::nodes::ValidateContext>,
) -> Result<ExecutableGraph> {
    let args = args.clone();
    let mut env = StreamEnv::new(parallelism);
    builder(&mut env, &args)?;
    args.check_all_read(name)?;
    let stream = env.finish()?;
    if let Some(ctx) = client {
        for node in &stream.nodes {
            node.factory.validate(ctx)?;
        }
    }
    plan(name, stream)
}
