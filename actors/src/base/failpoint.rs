//! Failpoints: faults placed at named steps of the checkpoint and commit protocol.
//!
//! Faults timed by the wall clock (a process killed at some moment) rarely land in the short
//! windows where exactly-once is hardest: between a checkpoint's trigger and its completion,
//! between a subtask's snapshot and its acknowledgement, between a sink's pre-commit and its
//! commit. A failpoint is a call at such a [`Step`]; armed, its `n`-th hit crashes whatever
//! runs the step, right there. Tests and `weir chaos` arm them; a seed decides which step and
//! which hit, so a failing run replays exactly.
//!
//! What a hit does is an [`Action`]:
//! - [`Action::Abort`]: the process aborts, as a machine or process crash would. Cluster
//!   processes are armed from `WEIR_FAILPOINTS` (with `WEIR_FAULT_INJECTION=1`), e.g.
//!   `WEIR_FAILPOINTS=after-completion@3,before-ack@12`.
//! - [`Action::Panic`]: the thread panics with an [`InjectedCrash`] payload. In a MiniCluster
//!   the actor or subtask loop running the step fails and its supervisor restarts it (a
//!   subtask crashed this way fails as Weir's own failure, not as the job's code); a snapshot
//!   write that panics declines its checkpoint, which fails the job over as any failed
//!   checkpoint does (no tolerable failures by default).
//!
//! A failpoint that is not armed costs one relaxed atomic load; they sit on per-checkpoint
//! paths, never per record. Armed failpoints can be scoped to one job, so tests running side
//! by side in one process do not trip over each other's.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::base::ids::JobId;

/// A step of the checkpoint and commit protocol where a failpoint sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// The coordinator sent a checkpoint's barriers to the sources; nothing is acknowledged
    /// yet (JobManager).
    AfterTrigger,
    /// A subtask's asynchronous snapshot part: its keyed state is stored, its own file not
    /// written (TaskManager).
    DuringUpload,
    /// A subtask stored its snapshot and has not acknowledged it (TaskManager).
    BeforeAck,
    /// The coordinator wrote a checkpoint's `_metadata` (the checkpoint is complete) and has
    /// told no subtask: every sink pre-committed, none committed (JobManager).
    AfterCompletion,
    /// As [`Step::AfterCompletion`], for a savepoint (JobManager).
    AfterSavepoint,
    /// A sink heard its checkpoint completed and has not committed (TaskManager).
    BeforeCommit,
    /// The file sink gave a committed file its final name and has not synced the directory
    /// (TaskManager).
    BeforeDirSync,
    /// The coordinator deleted an aborted checkpoint's directory and has not told the
    /// subtasks, whose snapshots may still be on their way (JobManager).
    WhileAborting,
}

impl Step {
    /// Every step, in protocol order.
    pub const ALL: [Step; 8] = [
        Step::AfterTrigger,
        Step::DuringUpload,
        Step::BeforeAck,
        Step::AfterCompletion,
        Step::AfterSavepoint,
        Step::BeforeCommit,
        Step::BeforeDirSync,
        Step::WhileAborting,
    ];

    /// Its name, e.g. `before-ack`.
    pub fn name(self) -> &'static str {
        match self {
            Step::AfterTrigger => "after-trigger",
            Step::DuringUpload => "during-upload",
            Step::BeforeAck => "before-ack",
            Step::AfterCompletion => "after-completion",
            Step::AfterSavepoint => "after-savepoint",
            Step::BeforeCommit => "before-commit",
            Step::BeforeDirSync => "before-dir-sync",
            Step::WhileAborting => "while-aborting",
        }
    }

    /// Whether the step runs in the JobManager (the coordinator) rather than on a
    /// TaskManager (a subtask).
    pub fn in_job_manager(self) -> bool {
        matches!(self, Step::AfterTrigger | Step::AfterCompletion | Step::AfterSavepoint | Step::WhileAborting)
    }

    fn index(self) -> usize {
        Step::ALL.iter().position(|s| *s == self).expect("listed")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Step::ALL.into_iter().find(|step| step.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
            format!("unknown failpoint step '{s}' (steps: {})", names.join(", "))
        })
    }
}

/// A failpoint: the `hit`-th time (from 1) its step runs, it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Failpoint {
    /// Where.
    pub step: Step,
    /// On which hit of the step, counted from 1 in the scope it is armed for.
    pub hit: u32,
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.step, self.hit)
    }
}

impl FromStr for Failpoint {
    type Err = String;

    /// `<step>@<hit>`, e.g. `before-ack@3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (step, hit) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("failpoint '{s}' is not <step>@<hit>, e.g. before-ack@3"))?;
        let hit = hit
            .parse::<u32>()
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| format!("failpoint '{s}': the hit '{hit}' is not a whole number from 1"))?;
        Ok(Failpoint { step: step.parse()?, hit })
    }
}

/// Parses a comma-separated list of failpoints (`WEIR_FAILPOINTS`, `weir chaos --failpoints`).
pub fn parse_list(s: &str) -> Result<Vec<Failpoint>, String> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(str::parse).collect()
}

/// What a failpoint's hit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The process aborts (a crash).
    Abort,
    /// The thread panics with an [`InjectedCrash`] (the actor or loop running the step fails).
    Panic,
}

/// The payload of a failpoint's panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedCrash(pub Failpoint);

impl fmt::Display for InjectedCrash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crashed at failpoint {} (fault injection)", self.0)
    }
}

impl InjectedCrash {
    /// The crash a panic's payload carries, if a failpoint caused it.
    pub fn of(payload: &(dyn std::any::Any + Send)) -> Option<InjectedCrash> {
        payload.downcast_ref::<InjectedCrash>().copied()
    }
}

/// Failpoints armed together, for one job or for every job of the process.
struct Armed {
    token: u64,
    job: Option<JobId>,
    points: Vec<Failpoint>,
    action: Action,
    hits: [u32; Step::ALL.len()],
    fired: Vec<Failpoint>,
}

/// How many sets are armed (the fast path reads only this).
static ARMED: AtomicUsize = AtomicUsize::new(0);
static SETS: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

fn sets() -> std::sync::MutexGuard<'static, Vec<Armed>> {
    // A failpoint's panic never happens with the lock held; recover from any other.
    SETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Failpoints armed until this is dropped.
#[must_use = "the failpoints are disarmed when this is dropped"]
pub struct ArmedFailpoints {
    token: u64,
}

impl ArmedFailpoints {
    /// The failpoints that fired so far.
    pub fn fired(&self) -> Vec<Failpoint> {
        sets().iter().find(|a| a.token == self.token).map(|a| a.fired.clone()).unwrap_or_default()
    }

    /// How many times each step ran so far (whether or not a failpoint fired there).
    pub fn hits(&self) -> Vec<(Step, u32)> {
        sets()
            .iter()
            .find(|a| a.token == self.token)
            .map(|a| Step::ALL.iter().map(|&s| (s, a.hits[s.index()])).collect())
            .unwrap_or_default()
    }

    /// Keeps them armed for the life of the process.
    pub fn forever(self) {
        std::mem::forget(self);
    }
}

impl Drop for ArmedFailpoints {
    fn drop(&mut self) {
        let mut sets = sets();
        sets.retain(|a| a.token != self.token);
        ARMED.store(sets.len(), Ordering::Release);
    }
}

/// Arms `points` for `job` (every job of the process with `None`): each fails by `action` on
/// its hit of its step, counted from now.
pub fn arm(job: Option<JobId>, points: Vec<Failpoint>, action: Action) -> ArmedFailpoints {
    static TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let mut sets = sets();
    sets.push(Armed { token, job, points, action, hits: [0; Step::ALL.len()], fired: Vec::new() });
    ARMED.store(sets.len(), Ordering::Release);
    ArmedFailpoints { token }
}

/// A step of `job` runs: crashes here if an armed failpoint says so.
#[inline]
pub fn hit(step: Step, job: JobId) {
    if ARMED.load(Ordering::Relaxed) != 0 {
        hit_armed(step, job);
    }
}

#[cold]
fn hit_armed(step: Step, job: JobId) {
    let mut crash = None;
    for armed in sets().iter_mut().filter(|a| a.job.is_none_or(|j| j == job)) {
        let hits = &mut armed.hits[step.index()];
        *hits += 1;
        let point = Failpoint { step, hit: *hits };
        if crash.is_none() && armed.points.contains(&point) {
            armed.fired.push(point);
            crash = Some((point, armed.action));
        }
    }
    // The lock is released before crashing.
    match crash {
        None => {}
        Some((point, Action::Abort)) => {
            // Unbuffered, so the line is in the log whatever the abort leaves behind.
            eprintln!("weir: {} of job {job}: aborting the process", InjectedCrash(point));
            std::process::abort();
        }
        Some((point, Action::Panic)) => {
            tracing::warn!(%job, "{}", InjectedCrash(point));
            std::panic::panic_any(InjectedCrash(point));
        }
    }
}

/// What a panic's payload says: its message, or the failpoint that crashed it.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(crash) = InjectedCrash::of(payload) {
        crash.to_string()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests;
