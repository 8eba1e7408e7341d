//! A chaos run's fault schedule: drawn whole from the seed before the run starts, printed,
//! and the same for the same seed, so a failing run replays with `--seed`.
//!
//! A schedule has two parts:
//! - strikes at moments: after a delay (from the previous strike) an actor is killed, a
//!   process killed, a connection cut, or a savepoint taken;
//! - failpoints ([`weir_actors::base::failpoint`]): a crash at the `n`-th time a protocol step runs
//!   (after a trigger, between a snapshot and its ack, between completion and commit, ...),
//!   in the MiniCluster's process, or in the JobManager or one TaskManager process.
//!
//! What the run makes of it still depends on timing (a subtask may be between attempts when
//! its strike comes, a failpoint's step may run fewer times than its hit): the report counts
//! what happened, by kind and by step.

use std::fmt;

use weir_actors::base::failpoint::{Failpoint, Step};

use super::{Rng, Target};

/// Something struck at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    /// A subtask's actor killed.
    Subtask { vertex: usize, index: usize },
    /// A TaskExecutor actor killed (of the `task_manager`-th running TaskManager).
    TaskExecutor { task_manager: usize },
    /// A TaskManager process SIGKILLed and replaced (processes).
    TaskManagerProcess { task_manager: usize },
    /// The JobManager process SIGKILLed and started again (processes).
    JobManagerProcess,
    /// A TaskManager's control connection cut (processes).
    ControlCut { task_manager: usize },
    /// A TaskManager's data connections cut (processes).
    DataCut { task_manager: usize },
    /// The job's JobMaster killed.
    JobMaster,
    /// The job's CheckpointCoordinator killed.
    Coordinator,
    /// The ResourceManager killed.
    ResourceManager,
    /// The Dispatcher killed.
    Dispatcher,
    /// A savepoint taken (the job runs on), so that savepoint steps run under faults too.
    Savepoint,
    /// A TaskManager's host partitioned from the JobManager's, healed after `hold_ms` (hosts).
    PartitionFromJobManager { task_manager: usize, hold_ms: u64 },
    /// Two TaskManagers' hosts partitioned from each other, healed after `hold_ms` (hosts).
    PartitionPeers { a: usize, b: usize, hold_ms: u64 },
    /// The JobManager's host cut off from every other host, rejoined after `hold_ms` (hosts).
    IsolateJobManager { hold_ms: u64 },
    /// A TaskManager's host sends `delay_ms` late and loses `loss_permille` ‰ of what it
    /// receives, for `hold_ms` (hosts).
    Impair { task_manager: usize, delay_ms: u64, loss_permille: u64, hold_ms: u64 },
    /// A TaskManager's host vanishes (link down, processes killed); a new host replaces it
    /// (hosts).
    VanishHost { task_manager: usize },
}

impl Strike {
    /// The kind, as reports count it.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Strike::Subtask { .. } => "subtask killed",
            Strike::TaskExecutor { .. } => "task-executor killed",
            Strike::TaskManagerProcess { .. } => "task-manager process killed and replaced",
            Strike::JobManagerProcess => "job-manager process restarted",
            Strike::ControlCut { .. } => "control connection cut",
            Strike::DataCut { .. } => "data connections cut",
            Strike::JobMaster => "job-master killed",
            Strike::Coordinator => "coordinator killed",
            Strike::ResourceManager => "resource-manager killed",
            Strike::Dispatcher => "dispatcher killed",
            Strike::Savepoint => "savepoint taken",
            Strike::PartitionFromJobManager { .. } => "task manager partitioned from the job manager",
            Strike::PartitionPeers { .. } => "task managers partitioned from each other",
            Strike::IsolateJobManager { .. } => "job manager cut off from every host",
            Strike::Impair { .. } => "task manager host delayed and lossy",
            Strike::VanishHost { .. } => "task manager host vanished and replaced",
        }
    }
}

impl fmt::Display for Strike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match self {
            Strike::Subtask { vertex, index } => write!(f, " (vertex {vertex}, subtask {index})"),
            Strike::TaskExecutor { task_manager }
            | Strike::TaskManagerProcess { task_manager }
            | Strike::ControlCut { task_manager }
            | Strike::DataCut { task_manager }
            | Strike::VanishHost { task_manager } => write!(f, " (task manager #{task_manager})"),
            Strike::PartitionFromJobManager { task_manager, hold_ms } => {
                write!(f, " (task manager #{task_manager}, {hold_ms} ms)")
            }
            Strike::PartitionPeers { a, b, hold_ms } => write!(f, " (task managers #{a} and #{b}, {hold_ms} ms)"),
            Strike::IsolateJobManager { hold_ms } => write!(f, " ({hold_ms} ms)"),
            Strike::Impair { task_manager, delay_ms, loss_permille, hold_ms } => {
                write!(f, " (task manager #{task_manager}: {delay_ms} ms, {loss_permille}‰ lost, for {hold_ms} ms)")
            }
            _ => Ok(()),
        }
    }
}

/// A failpoint and the process it is armed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) point: Failpoint,
    /// On processes: the JobManager (`None`) or the `n`-th TaskManager started first. In a
    /// MiniCluster every failpoint is armed in its one process.
    pub(crate) task_manager: Option<usize>,
}

/// A run's faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Each after the given delay (ms) from the one before.
    pub(crate) strikes: Vec<(u64, Strike)>,
    pub(crate) failpoints: Vec<Placed>,
}

/// What a schedule is drawn for.
pub(crate) struct Shape<'a> {
    pub(crate) target: Target,
    /// Parallelism of each of the job's vertices.
    pub(crate) vertices: &'a [usize],
    /// TaskManagers running.
    pub(crate) task_managers: usize,
    /// Strikes at moments.
    pub(crate) strikes: u32,
    /// Failpoints drawn (unless `explicit` gives them).
    pub(crate) failpoints: u32,
    pub(crate) explicit: Option<&'a [Failpoint]>,
}

/// The highest hit drawn for a failpoint at `step`: about how often the step runs in a chaos
/// run (checkpoints every 100 ms; subtasks and sinks take part in each).
fn hits(step: Step) -> u64 {
    match step {
        Step::AfterTrigger | Step::AfterCompletion => 12,
        Step::DuringUpload | Step::BeforeAck => 40,
        Step::BeforeCommit | Step::BeforeDirSync => 16,
        Step::WhileAborting => 2,
        Step::AfterSavepoint => 1,
    }
}

impl Strike {
    /// A fault of the network between hosts: partitions and impairments held 0.5–4 s.
    fn network(rng: &mut Rng, task_managers: usize) -> Strike {
        let tm = |rng: &mut Rng| rng.below(task_managers as u64) as usize;
        let hold_ms = 500 + rng.below(3_500);
        match rng.below(10) {
            0..=2 => Strike::PartitionFromJobManager { task_manager: tm(rng), hold_ms },
            3..=4 => {
                let a = tm(rng);
                let b = (a + 1 + rng.below(task_managers.saturating_sub(1).max(1) as u64) as usize) % task_managers;
                Strike::PartitionPeers { a, b, hold_ms }
            }
            5..=6 => Strike::Impair {
                task_manager: tm(rng),
                delay_ms: 5 + rng.below(26),
                loss_permille: rng.below(51),
                hold_ms,
            },
            7..=8 => Strike::VanishHost { task_manager: tm(rng) },
            _ => Strike::IsolateJobManager { hold_ms },
        }
    }
}

impl Schedule {
    pub(crate) fn draw(rng: &mut Rng, shape: &Shape<'_>) -> Schedule {
        let processes = shape.target != Target::MiniCluster;
        let tm = |rng: &mut Rng| rng.below(shape.task_managers as u64) as usize;
        let mut strikes = Vec::new();
        for _ in 0..shape.strikes {
            if shape.target == Target::Hosts {
                strikes.push((300 + rng.below(700), Strike::network(rng, shape.task_managers)));
                continue;
            }
            let delay = if processes { 150 + rng.below(450) } else { 100 + rng.below(300) };
            let strike = match (processes, rng.below(20)) {
                (false, 0..=8) | (true, 0..=3) => {
                    let vertex = rng.below(shape.vertices.len() as u64) as usize;
                    Strike::Subtask { vertex, index: rng.below(shape.vertices[vertex] as u64) as usize }
                }
                (false, 9..=11) | (true, 4..=5) => Strike::TaskExecutor { task_manager: tm(rng) },
                (true, 6..=8) => Strike::TaskManagerProcess { task_manager: tm(rng) },
                (true, 9..=10) => Strike::JobManagerProcess,
                (true, 11..=12) => Strike::ControlCut { task_manager: tm(rng) },
                (true, 13..=14) => Strike::DataCut { task_manager: tm(rng) },
                (false, 12..=13) | (true, 15) => Strike::JobMaster,
                (false, 14..=15) | (true, 16) => Strike::Coordinator,
                (false, 16) | (true, 17) => Strike::ResourceManager,
                (false, 17) | (true, 18) => Strike::Dispatcher,
                _ => Strike::Savepoint,
            };
            strikes.push((delay, strike));
        }
        let points: Vec<Failpoint> = match shape.explicit {
            Some(points) => points.to_vec(),
            None => (0..shape.failpoints)
                .map(|_| {
                    let step = Step::ALL[rng.below(Step::ALL.len() as u64) as usize];
                    Failpoint { step, hit: 1 + rng.below(hits(step)) as u32 }
                })
                .collect(),
        };
        let mut failpoints = Vec::new();
        for point in points {
            // Where the step runs: the JobManager, or one of the TaskManagers.
            let task_manager = (processes && !point.step.in_job_manager()).then(|| tm(rng));
            failpoints.push(Placed { point, task_manager });
            if point.step == Step::AfterSavepoint && !strikes.iter().any(|(_, s)| *s == Strike::Savepoint) {
                let at = rng.below(strikes.len() as u64 + 1) as usize;
                strikes.insert(at, (100 + rng.below(300), Strike::Savepoint));
            }
        }
        Schedule { strikes, failpoints }
    }

    /// The failpoints to arm in the MiniCluster's process, or in one process of a cluster
    /// (`None`: the JobManager).
    pub(crate) fn failpoints_of(&self, task_manager: Option<usize>) -> Vec<Failpoint> {
        self.failpoints.iter().filter(|p| p.task_manager == task_manager).map(|p| p.point).collect()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strikes: Vec<String> = self.strikes.iter().map(|(ms, s)| format!("+{ms} ms {s}")).collect();
        let failpoints: Vec<String> = self
            .failpoints
            .iter()
            .map(|p| match p.task_manager {
                Some(tm) => format!("{} (task manager #{tm})", p.point),
                None => p.point.to_string(),
            })
            .collect();
        write!(f, "strikes [{}]; failpoints [{}]", strikes.join(", "), failpoints.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(target: Target) -> Shape<'static> {
        Shape { target, vertices: &[2, 2], task_managers: 3, strikes: 6, failpoints: 3, explicit: None }
    }

    #[test]
    fn a_seed_draws_the_same_schedule() {
        for target in [Target::MiniCluster, Target::Processes] {
            let a = Schedule::draw(&mut Rng(17), &shape(target));
            assert_eq!(a, Schedule::draw(&mut Rng(17), &shape(target)));
            assert_ne!(a, Schedule::draw(&mut Rng(18), &shape(target)));
        }
    }

    #[test]
    fn every_step_is_drawn_and_placed_where_it_runs() {
        let mut steps = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let schedule = Schedule::draw(&mut Rng(seed), &shape(Target::Processes));
            for placed in &schedule.failpoints {
                steps.insert(placed.point.step);
                assert_eq!(placed.task_manager.is_none(), placed.point.step.in_job_manager());
                assert!(placed.point.hit >= 1 && u64::from(placed.point.hit) <= hits(placed.point.step));
                if placed.point.step == Step::AfterSavepoint {
                    assert!(schedule.strikes.iter().any(|(_, s)| *s == Strike::Savepoint), "{schedule}");
                }
            }
            // A MiniCluster has no processes to kill or connections to cut.
            let mini = Schedule::draw(&mut Rng(seed), &shape(Target::MiniCluster));
            assert!(mini.failpoints.iter().all(|p| p.task_manager.is_none()));
            assert!(mini.strikes.iter().all(|(_, s)| !matches!(
                s,
                Strike::TaskManagerProcess { .. }
                    | Strike::JobManagerProcess
                    | Strike::ControlCut { .. }
                    | Strike::DataCut { .. }
            )));
        }
        assert_eq!(steps.len(), Step::ALL.len());
    }

    #[test]
    fn hosts_draw_network_faults_on_task_managers_that_exist() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let schedule = Schedule::draw(&mut Rng(seed), &shape(Target::Hosts));
            let network = schedule.strikes.iter().filter(|(_, s)| *s != Strike::Savepoint).count();
            assert_eq!(network, 6, "{schedule}");
            for (_, strike) in &schedule.strikes {
                if *strike == Strike::Savepoint {
                    // What an after-savepoint failpoint needs.
                    continue;
                }
                kinds.insert(strike.kind());
                match *strike {
                    Strike::PartitionPeers { a, b, hold_ms } => {
                        assert!(a != b && a < 3 && b < 3 && (500..4_000).contains(&hold_ms), "{strike}");
                    }
                    Strike::PartitionFromJobManager { task_manager, .. }
                    | Strike::VanishHost { task_manager }
                    | Strike::Impair { task_manager, .. } => assert!(task_manager < 3, "{strike}"),
                    Strike::IsolateJobManager { .. } => {}
                    _ => panic!("hosts draw faults of the network only: {strike}"),
                }
            }
        }
        assert_eq!(kinds.len(), 5, "{kinds:?}");
    }

    #[test]
    fn explicit_failpoints_replace_the_drawn_ones() {
        let explicit = [Failpoint { step: Step::BeforeDirSync, hit: 3 }];
        let schedule = Schedule::draw(&mut Rng(5), &Shape { explicit: Some(&explicit), ..shape(Target::MiniCluster) });
        assert_eq!(schedule.failpoints_of(None), explicit);
        assert!(schedule.to_string().contains("before-dir-sync@3"), "{schedule}");
    }
}
