//! The CheckpointCoordinator: one per job, child of its JobMaster. It triggers checkpoints
//! at the sources on a timer and savepoints on request, collects every running subtask's
//! acknowledgement, completes a checkpoint by writing its `_metadata` last, keeps the
//! retained count, and tells the subtasks (two-phase sinks commit then). A checkpoint that
//! times out or that a subtask cannot store is aborted and deleted; it never becomes a
//! restore point.
//!
//! At most one checkpoint or savepoint is in flight; a savepoint requested meanwhile waits
//! for it (one at a time). Every job has a coordinator: without periodic checkpoints it only
//! takes savepoints. Failover suspends the coordinator until the job is redeployed.
//!
//! ## The end of a job (Flink's FLIP-147)
//!
//! Subtasks whose input ended stay and take part in checkpoints (see the runtime's task
//! loop). Once every source reported the end of its input, the next checkpoint is triggered
//! at once (after the minimum pause), not an interval later. A checkpoint whose every
//! source snapshot was taken after that source's input ended is the job's final one (every
//! subtask ended before its own snapshot, so it holds all the output): its completion tells
//! every subtask to commit and end. A stop-with-savepoint ends the job the same way. After
//! that nothing more is triggered. Finality is read from the acknowledgements, not from the
//! end-of-input reports, so a coordinator restarted meanwhile still ends the job.
//!
//! ## Savepoints
//!
//! A savepoint goes through the same barriers into `<dir>/savepoint-<job>-<n>`, is never
//! pruned, and does not commit two-phase sinks' transactions unless it ends the job (as in
//! Flink since 1.15: failovers restore checkpoints, not savepoints, so a savepoint's commits
//! could be replayed). Stop-with-savepoint: sources emit the barrier and pause; when the
//! savepoint completes, the JobMaster hears of it first, then every subtask commits and
//! ends (without draining, unless asked to drain); if it fails, the sources resume and the
//! job runs on.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::base::error::{Result, WeirError};
use crate::base::failpoint::{self, Step};
use crate::base::ids::JobId;
use crate::cluster::ExecutionId;
use crate::cluster::checkpoint_ids::CheckpointIds;
use crate::cluster::messages::{
    CheckpointRecord, CheckpointStats, CoordinatedTask, CoordinatorMessage, TaskExecutorMessage,
};
use weir_state::storage::Location;

use crate::runtime::checkpoint::savepoint::savepoint_dir;
use crate::runtime::checkpoint::storage::{CheckpointStorage, write_metadata_in};
use crate::runtime::checkpoint::{
    BarrierKind, CheckpointBarrier, CheckpointConfig, CheckpointEvent, CheckpointMetadata, OperatorMetadata, StopMode,
    TaskControl, TaskStateHandle,
};
use crate::runtime::job_graph::JobGraph;

/// How long a savepoint may take when the job has no checkpoint configuration (Flink's
/// default checkpoint timeout).
const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(600);

/// Called with a stop-with-savepoint's directory when it completed, before any subtask
/// hears of it.
pub type OnStopped = Box<dyn Fn(Location) + Send + Sync>;

/// Called with the cause when more checkpoints failed in a row than the job tolerates.
pub type OnFailures = Box<dyn Fn(String) + Send + Sync>;

/// What the coordinator starts with.
pub struct CoordinatorArgs {
    /// The job.
    pub job: JobId,
    /// Its plan (its fingerprint and operators go into every checkpoint's metadata).
    pub plan: JobGraph,
    /// Periodic checkpoints; `None`: savepoints only.
    pub config: Option<CheckpointConfig>,
    /// Where periodic checkpoints go.
    pub storage: Option<CheckpointStorage>,
    /// The checkpoint the job restored from, if any.
    pub restored_from: Option<u64>,
    /// The job's checkpoint ids, shared with its JobMaster, so that a coordinator started
    /// again goes on with them.
    pub ids: CheckpointIds,
    /// Told when a stop-with-savepoint completed.
    pub on_stopped: Option<OnStopped>,
    /// Told when more checkpoints failed in a row than
    /// [`CheckpointConfig::tolerable_failures`]; the job should fail over.
    pub on_failures: Option<OnFailures>,
}

/// A savepoint someone waits for.
struct SavepointRequest {
    dir: Location,
    stop: Option<StopMode>,
    reply: RpcReplyPort<Result<Location>>,
}

/// A savepoint in flight.
struct PendingSavepoint {
    target: Location,
    stop: Option<StopMode>,
    reply: RpcReplyPort<Result<Location>>,
}

struct Pending {
    id: u64,
    triggered_ms: i64,
    started: Instant,
    handles: BTreeMap<(usize, usize), TaskStateHandle>,
    alignment_ms: u64,
    sync_us: u64,
    async_us: u64,
    /// The subtasks whose input had ended when they took their snapshot.
    finished: HashSet<(usize, usize)>,
    savepoint: Option<PendingSavepoint>,
}

impl Pending {
    /// Every source's input had ended before its barrier, so every subtask's before its
    /// snapshot: this checkpoint holds the job's final state, and is its last.
    fn is_final(&self, sources: &[&CoordinatedTask]) -> bool {
        !sources.is_empty() && sources.iter().all(|t| self.finished.contains(&(t.execution.vertex, t.execution.index)))
    }
}

/// The coordinator's state.
pub struct CoordinatorState {
    args: CoordinatorArgs,
    operators: Vec<OperatorMetadata>,
    tasks: Vec<CoordinatedTask>,
    finished: HashSet<ExecutionId>,
    input_ended: HashSet<ExecutionId>,
    pending: Option<Pending>,
    queued: Option<SavepointRequest>,
    generation: u64,
    last_trigger: Option<Instant>,
    /// The previous checkpoint failed: the next waits a whole interval, even at the end.
    last_failed: bool,
    /// Periodic checkpoints failed in a row, of the kinds that count against
    /// [`CheckpointConfig::tolerable_failures`].
    consecutive_failures: u32,
    /// The job's last checkpoint completed: nothing more is triggered.
    ending: bool,
    stats: CheckpointStats,
}

/// The CheckpointCoordinator actor.
pub struct CheckpointCoordinator;

/// Whether a failed checkpoint counts against the tolerable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// It timed out, or its state or metadata could not be stored.
    Yes,
    /// It could not complete for a reason that is no fault of checkpointing (the job is
    /// failing over anyway, a subtask ended first).
    No,
}

impl CoordinatorState {
    fn send(&self, control: TaskControl, only_sources: bool) {
        for task in &self.tasks {
            if (!only_sources || task.source) && !self.finished.contains(&task.execution) {
                let _ = task.executor.cast(TaskExecutorMessage::Control(task.execution, control.clone()));
            }
        }
    }

    fn running_sources(&self) -> impl Iterator<Item = &CoordinatedTask> {
        self.tasks.iter().filter(|t| t.source && !self.finished.contains(&t.execution))
    }

    /// Every source reported the end of its input.
    fn sources_ended(&self) -> bool {
        let mut sources = self.tasks.iter().filter(|t| t.source).peekable();
        sources.peek().is_some() && sources.all(|t| self.input_ended.contains(&t.execution))
    }

    /// Schedules the next periodic checkpoint: after the interval (from the last trigger) and
    /// the minimum pause (from now); right after the minimum pause once every source ended
    /// (the final checkpoint), unless the previous one failed.
    fn schedule(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        let Some(config) = &self.args.config else { return };
        if self.ending {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let wait = if self.sources_ended() && !self.last_failed {
            config.min_pause
        } else {
            let since_trigger = self.last_trigger.map(|t| t.elapsed()).unwrap_or_default();
            config.interval.saturating_sub(since_trigger).max(config.min_pause)
        };
        myself.send_after(wait, move || CoordinatorMessage::Trigger(generation));
    }

    fn record(&mut self, record: CheckpointRecord) {
        if record.status == "COMPLETED" {
            self.stats.completed += 1;
            self.stats.latest_completed = Some(record.clone());
        } else {
            self.stats.failed += 1;
        }
        self.stats.history.push(record);
        let excess = self.stats.history.len().saturating_sub(20);
        self.stats.history.drain(..excess);
    }

    /// Why a savepoint cannot be taken now, if it cannot.
    fn refuse_savepoint(&self) -> Option<String> {
        if self.tasks.is_empty() {
            return Some("the job is not running (it is being deployed or restarting)".into());
        }
        if self.ending {
            return Some("the job is ending: its last checkpoint completed".into());
        }
        if let Some(done) = self.tasks.iter().find(|t| self.finished.contains(&t.execution)) {
            return Some(format!(
                "subtask {} of vertex {} has ended, and its state with it (without periodic checkpoints, a subtask \
                 does not wait for the job's end); run the job with --checkpoint-interval to take savepoints until it ends",
                done.execution.index, done.execution.vertex
            ));
        }
        if self.pending.as_ref().is_some_and(|p| p.savepoint.is_some()) || self.queued.is_some() {
            return Some("another savepoint is in progress".into());
        }
        None
    }

    /// Triggers a checkpoint, or the savepoint `request` asks for.
    fn trigger(&mut self, myself: &ActorRef<CoordinatorMessage>, request: Option<SavepointRequest>) {
        let id = match self.args.ids.next() {
            Ok(id) => id,
            Err(e) => {
                let reason = format!("cannot reserve a checkpoint id: {e}");
                warn!(job = %self.args.job, %reason, "checkpoint not triggered");
                self.last_failed = true;
                match request {
                    Some(request) => {
                        let _ = request.reply.send(Err(WeirError::Savepoint(reason)));
                    }
                    None => self.count_failure(self.args.ids.peek(), &reason),
                }
                return self.schedule(myself);
            }
        };
        let triggered_ms = crate::base::time::wall_clock_ms();
        let (kind, savepoint) = match request {
            None => (BarrierKind::Checkpoint, None),
            Some(SavepointRequest { dir, stop, reply }) => {
                let target = savepoint_dir(&dir, self.args.job, id);
                let refused = match target.is_dir() {
                    Ok(true) => Some(format!("'{target}' exists already")),
                    Ok(false) if target.as_local().is_some_and(|t| t.to_str().is_none()) => {
                        Some(format!("the directory '{target}' is not valid UTF-8"))
                    }
                    Ok(false) => None,
                    Err(e) => Some(format!("cannot tell whether '{target}' exists: {e}")),
                };
                if let Some(reason) = refused {
                    let _ = reply.send(Err(WeirError::Savepoint(reason)));
                    return self.schedule(myself);
                }
                let kind = BarrierKind::Savepoint { target: target.to_string(), stop };
                (kind, Some(PendingSavepoint { target, stop, reply }))
            }
        };
        self.pending = Some(Pending {
            id,
            triggered_ms,
            started: Instant::now(),
            handles: BTreeMap::new(),
            alignment_ms: 0,
            sync_us: 0,
            async_us: 0,
            finished: HashSet::new(),
            savepoint,
        });
        self.stats.in_progress = Some(id);
        self.last_trigger = Some(Instant::now());
        // Its directory exists before any barrier goes out, and only until it is aborted: a
        // subtask never makes it (again).
        let made = match &kind {
            BarrierKind::Checkpoint => match &self.args.storage {
                Some(storage) => storage.begin(id).map(drop),
                None => Err(WeirError::runtime("a checkpoint without checkpoint storage")),
            },
            BarrierKind::Savepoint { .. } => match self.pending.as_ref().and_then(|p| p.savepoint.as_ref()) {
                Some(s) => s
                    .target
                    .create_dir_durably(&crate::base::fs::LocalFs)
                    .map_err(|e| WeirError::io(format!("cannot create the savepoint directory '{}'", s.target), e)),
                None => Err(WeirError::runtime("a savepoint barrier without its savepoint")),
            },
        };
        if let Err(e) = made {
            return self.abort(myself, e.to_string(), Counts::Yes);
        }
        debug!(job = %self.args.job, checkpoint = id, ?kind, "triggering");
        self.send(
            TaskControl::TriggerCheckpoint(CheckpointBarrier { checkpoint_id: id, timestamp_ms: triggered_ms, kind }),
            true,
        );
        failpoint::hit(Step::AfterTrigger, self.args.job);
        let timeout = self.args.config.as_ref().map_or(SAVEPOINT_TIMEOUT, |c| c.timeout);
        myself.send_after(timeout, move || CoordinatorMessage::Timeout(id));
    }

    /// Aborts the checkpoint in flight, if any, and goes on with the next one.
    fn abort(&mut self, myself: &ActorRef<CoordinatorMessage>, reason: String, counts: Counts) {
        if let Some(p) = self.pending.take() {
            self.discard(p, reason, counts);
        }
        self.next(myself);
    }

    /// Deletes a failed checkpoint, tells the subtasks and whoever waits, and records it; a
    /// failure that `counts` and is one too many fails the job over.
    fn discard(&mut self, p: Pending, reason: String, counts: Counts) {
        warn!(job = %self.args.job, checkpoint = p.id, %reason, "checkpoint aborted");
        self.last_failed = true;
        if counts == Counts::Yes && p.savepoint.is_none() {
            self.count_failure(p.id, &reason);
        }
        let savepoint = p.savepoint.map(|s| {
            if let Err(e) = s.target.remove_dir_all() {
                warn!(checkpoint = p.id, "cannot delete '{}': {e}", s.target);
            }
            let _ = s.reply.send(Err(WeirError::Savepoint(format!("savepoint {} failed: {reason}", p.id))));
            s.target
        });
        if savepoint.is_none()
            && let Some(storage) = &self.args.storage
        {
            storage.discard(p.id);
        }
        failpoint::hit(Step::WhileAborting, self.args.job);
        self.send(TaskControl::CheckpointAborted(p.id), false);
        self.stats.in_progress = None;
        self.record(CheckpointRecord {
            id: p.id,
            status: "FAILED".into(),
            duration_ms: p.started.elapsed().as_millis() as u64,
            bytes: 0,
            alignment_ms: p.alignment_ms,
            sync_us: p.sync_us,
            async_us: p.async_us,
            failure: Some(reason),
            savepoint,
        });
    }

    /// Counts a failed periodic checkpoint against the tolerable failures; one too many fails
    /// the job over.
    fn count_failure(&mut self, id: u64, reason: &str) {
        self.consecutive_failures += 1;
        let tolerated = self.args.config.as_ref().map_or(0, |c| c.tolerable_failures);
        if self.consecutive_failures > tolerated {
            self.consecutive_failures = 0;
            if let Some(on_failures) = &self.args.on_failures {
                on_failures(format!(
                    "exceeded the tolerable checkpoint failures ({tolerated} in a row): checkpoint {id} failed: {reason}"
                ));
            }
        }
    }

    /// After a checkpoint: the savepoint waiting for it, or the next periodic one.
    fn next(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        match self.queued.take() {
            Some(request) => match self.refuse_savepoint() {
                Some(reason) => {
                    let _ = request.reply.send(Err(WeirError::Savepoint(reason)));
                    self.schedule(myself);
                }
                None => self.trigger(myself, Some(request)),
            },
            None => self.schedule(myself),
        }
    }

    async fn complete(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        let Some(p) = self.pending.take() else { return };
        let metadata = CheckpointMetadata {
            version: CheckpointMetadata::VERSION,
            job: self.args.job,
            checkpoint: p.id,
            savepoint: p.savepoint.is_some(),
            fingerprint: self.args.plan.fingerprint,
            max_parallelism: self.args.plan.max_parallelism,
            triggered_ms: p.triggered_ms,
            duration_ms: p.started.elapsed().as_millis() as u64,
            operators: self.operators.clone(),
            tasks: p.handles.values().cloned().collect(),
        };
        let target = p.savepoint.as_ref().map(|s| s.target.clone());
        let (storage, retained, meta) =
            (self.args.storage.clone(), self.args.config.as_ref().map(|c| c.retained), metadata.clone());
        let written: std::result::Result<Result<()>, _> =
            tokio::task::spawn_blocking(move || match (&target, storage) {
                // A savepoint is the user's: never pruned.
                (Some(target), _) => write_metadata_in(&crate::base::fs::LocalFs, target, &meta),
                (None, Some(storage)) => {
                    storage.write_metadata(&meta)?;
                    storage.prune(retained.unwrap_or(1));
                    Ok(())
                }
                (None, None) => Err(WeirError::runtime("a checkpoint without checkpoint storage")),
            })
            .await;
        self.stats.in_progress = None;
        let failure = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("cannot write its metadata: {e}")),
            Err(e) => Some(format!("the metadata task failed: {e}")),
        };
        if let Some(reason) = failure {
            self.discard(p, reason, Counts::Yes);
            return self.next(myself);
        }
        failpoint::hit(if p.savepoint.is_some() { Step::AfterSavepoint } else { Step::AfterCompletion }, self.args.job);
        self.last_failed = false;
        self.consecutive_failures = 0;
        let stop = p.savepoint.as_ref().and_then(|s| s.stop);
        let sources: Vec<&CoordinatedTask> = self.running_sources().collect();
        let end = p.is_final(&sources) || stop.is_some();
        info!(job = %self.args.job, checkpoint = p.id, bytes = metadata.bytes(), ms = metadata.duration_ms, sync_us = p.sync_us, async_us = p.async_us, savepoint = p.savepoint.is_some(), end, "checkpoint completed");
        if let (Some(s), Some(_), Some(on_stopped)) = (&p.savepoint, stop, &self.args.on_stopped) {
            on_stopped(s.target.clone());
        }
        self.ending |= end;
        let commit = p.savepoint.is_none() || end;
        self.send(TaskControl::CheckpointComplete { checkpoint: p.id, commit, end }, false);
        self.record(CheckpointRecord {
            id: p.id,
            status: "COMPLETED".into(),
            duration_ms: metadata.duration_ms,
            bytes: metadata.bytes(),
            alignment_ms: p.alignment_ms,
            sync_us: p.sync_us,
            async_us: p.async_us,
            failure: None,
            savepoint: p.savepoint.as_ref().map(|s| s.target.clone()),
        });
        if let Some(s) = p.savepoint {
            let _ = s.reply.send(Ok(s.target));
        }
        self.next(myself);
    }

    fn expected(&self) -> usize {
        self.tasks.iter().filter(|t| !self.finished.contains(&t.execution)).count()
    }
}

impl Actor for CheckpointCoordinator {
    type Msg = CoordinatorMessage;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: CoordinatorArgs,
    ) -> Result<CoordinatorState, ActorProcessingErr> {
        let stats = CheckpointStats { restored_from: args.restored_from, ..Default::default() };
        Ok(CoordinatorState {
            operators: OperatorMetadata::of_plan(&args.plan),
            args,
            tasks: Vec::new(),
            finished: HashSet::new(),
            input_ended: HashSet::new(),
            pending: None,
            queued: None,
            generation: 0,
            last_trigger: None,
            last_failed: false,
            consecutive_failures: 0,
            ending: false,
            stats,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CoordinatorMessage::Deployed(tasks) => {
                state.tasks = tasks;
                state.finished.clear();
                state.input_ended.clear();
                state.ending = false;
                state.last_trigger = Some(Instant::now());
                state.schedule(&myself);
            }
            CoordinatorMessage::Suspend => {
                // No reschedule: triggers resume with the next deployment.
                state.generation += 1;
                if let Some(p) = state.pending.take() {
                    state.discard(p, "the job is failing over".into(), Counts::No);
                }
                if let Some(request) = state.queued.take() {
                    let _ = request.reply.send(Err(WeirError::Savepoint("the job is failing over".into())));
                }
                state.tasks.clear();
            }
            CoordinatorMessage::Finished(execution) => {
                state.finished.insert(execution);
                let Some(p) = &state.pending else { return Ok(()) };
                if !p.handles.contains_key(&(execution.vertex, execution.index)) {
                    // Its state would be missing (possible only without periodic checkpoints,
                    // where subtasks end with their input).
                    let reason =
                        format!("subtask {} of vertex {} ended before it took part", execution.index, execution.vertex);
                    state.abort(&myself, reason, Counts::No);
                } else if p.handles.len() >= state.expected() {
                    state.complete(&myself).await;
                }
            }
            CoordinatorMessage::Trigger(generation) => {
                let idle = generation != state.generation || state.pending.is_some() || state.ending;
                if idle || state.running_sources().next().is_none() {
                    return Ok(());
                }
                state.trigger(&myself, None);
            }
            CoordinatorMessage::TriggerSavepoint { dir, stop, reply } => {
                if let Some(reason) = state.refuse_savepoint() {
                    let _ = reply.send(Err(WeirError::Savepoint(reason)));
                    return Ok(());
                }
                let request = SavepointRequest { dir, stop, reply };
                if state.pending.is_some() {
                    state.queued = Some(request); // right after the checkpoint in flight
                } else {
                    state.generation += 1; // the periodic trigger is scheduled again after it
                    state.trigger(&myself, Some(request));
                }
            }
            CoordinatorMessage::Timeout(id) => {
                if state.pending.as_ref().is_some_and(|p| p.id == id) {
                    let timeout = state.args.config.as_ref().map_or(SAVEPOINT_TIMEOUT, |c| c.timeout);
                    state.abort(&myself, format!("not complete within the timeout of {timeout:?}"), Counts::Yes);
                }
            }
            CoordinatorMessage::Event(execution, event) => {
                if !state.tasks.iter().any(|t| t.execution == execution) {
                    return Ok(()); // stale
                }
                let ack = match event {
                    CheckpointEvent::Ack(ack) => ack,
                    CheckpointEvent::InputEnded => {
                        state.input_ended.insert(execution);
                        // The final checkpoint: right away, not an interval later.
                        if state.sources_ended() && state.pending.is_none() && state.queued.is_none() {
                            state.schedule(&myself);
                        }
                        return Ok(());
                    }
                };
                let Some(p) = state.pending.as_mut().filter(|p| p.id == ack.checkpoint) else {
                    return Ok(()); // late
                };
                match ack.handle {
                    Ok(handle) => {
                        p.alignment_ms = p.alignment_ms.max(ack.alignment_ms);
                        p.sync_us = p.sync_us.max(ack.sync_us);
                        p.async_us = p.async_us.max(ack.async_us);
                        p.handles.insert((execution.vertex, execution.index), handle);
                        if ack.finished {
                            p.finished.insert((execution.vertex, execution.index));
                            // Also known this way after this actor restarted.
                            state.input_ended.insert(execution);
                        }
                        if p.handles.len() >= state.expected() {
                            state.complete(&myself).await;
                        }
                    }
                    Err(reason) => {
                        state.abort(
                            &myself,
                            format!(
                                "subtask {} of vertex {} could not store its state: {reason}",
                                execution.index, execution.vertex
                            ),
                            Counts::Yes,
                        );
                    }
                }
            }
            CoordinatorMessage::Stats(reply) => {
                let _ = reply.send(state.stats.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
