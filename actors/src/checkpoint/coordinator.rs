//! The CheckpointCoordinator: one per job, child of its JobMaster. It triggers checkpoints
//! at the sources on a timer, collects every running subtask's acknowledgement, completes a
//! checkpoint by writing its `_metadata` last, keeps the retained count, and tells the
//! subtasks (two-phase sinks commit then). A checkpoint that times out or that a subtask
//! cannot store is aborted and deleted; it never becomes a restore point.
//!
//! At most one checkpoint is in flight. Finished subtasks take no part (their channels count
//! as aligned downstream); failover suspends the coordinator until the job is redeployed.

use std::collections::{BTreeMap, HashSet};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use weir_dataplane::CheckpointBarrier;

use crate::checkpoint::storage::CheckpointStorage;
use crate::checkpoint::{CheckpointAck, CheckpointConfig, CheckpointMetadata, TaskControl, TaskStateHandle};
use crate::cluster::ExecutionId;
use crate::cluster::task_executor::TaskExecutorMessage;
use crate::job::JobId;

/// A deployed subtask, as the coordinator addresses it.
#[derive(Clone)]
pub struct CoordinatedTask {
    /// The execution.
    pub execution: ExecutionId,
    /// Its TaskExecutor.
    pub executor: ActorRef<TaskExecutorMessage>,
    /// Whether its chain starts at a source (barriers are injected there).
    pub source: bool,
}

/// Messages of the coordinator.
pub enum CoordinatorMessage {
    /// The job (re)deployed: these are its subtasks now.
    Deployed(Vec<CoordinatedTask>),
    /// Failover: abort what is in flight and trigger nothing until redeployed.
    Suspend,
    /// A subtask finished (it takes part in no further checkpoint).
    Finished(ExecutionId),
    /// A subtask's acknowledgement.
    Ack(ExecutionId, CheckpointAck),
    /// Timer: trigger the next checkpoint (generation-stamped).
    Trigger(u64),
    /// Timer: checkpoint `n` took too long.
    Timeout(u64),
    /// Statistics for the REST API and tests.
    Stats(RpcReplyPort<CheckpointStats>),
}

/// One checkpoint as the statistics show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// `COMPLETED` or `FAILED`.
    pub status: String,
    /// From trigger to completion (or abort).
    pub duration_ms: u64,
    /// Bytes of state.
    pub bytes: u64,
    /// The longest barrier alignment of any subtask.
    pub alignment_ms: u64,
    /// Why it failed.
    pub failure: Option<String>,
}

/// Checkpoint statistics of a job.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CheckpointStats {
    /// Completed checkpoints.
    pub completed: u64,
    /// Aborted checkpoints.
    pub failed: u64,
    /// The one in flight.
    pub in_progress: Option<u64>,
    /// The latest completed.
    pub latest_completed: Option<CheckpointRecord>,
    /// Recent checkpoints, newest last.
    pub history: Vec<CheckpointRecord>,
    /// The checkpoint the job last restored from.
    pub restored_from: Option<u64>,
}

/// What the coordinator starts with.
pub struct CoordinatorArgs {
    /// The job.
    pub job: JobId,
    /// Its plan's fingerprint (recorded in every checkpoint).
    pub fingerprint: u64,
    /// How to checkpoint.
    pub config: CheckpointConfig,
    /// Where.
    pub storage: CheckpointStorage,
    /// The checkpoint the job restored from, if any.
    pub restored_from: Option<u64>,
}

struct Pending {
    id: u64,
    triggered_ms: i64,
    started: Instant,
    handles: BTreeMap<(usize, usize), TaskStateHandle>,
    alignment_ms: u64,
}

/// The coordinator's state.
pub struct CoordinatorState {
    args: CoordinatorArgs,
    tasks: Vec<CoordinatedTask>,
    finished: HashSet<ExecutionId>,
    next_id: u64,
    pending: Option<Pending>,
    generation: u64,
    last_trigger: Option<Instant>,
    stats: CheckpointStats,
}

/// The CheckpointCoordinator actor.
pub struct CheckpointCoordinator;

impl CoordinatorState {
    fn send(&self, control: TaskControl, only_sources: bool) {
        for task in &self.tasks {
            if (!only_sources || task.source) && !self.finished.contains(&task.execution) {
                let _ = task.executor.cast(TaskExecutorMessage::Control(task.execution, control));
            }
        }
    }

    /// Schedules the next trigger after the interval (from the last trigger) and the minimum
    /// pause (from now).
    fn schedule(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        self.generation += 1;
        let generation = self.generation;
        let since_trigger = self.last_trigger.map(|t| t.elapsed()).unwrap_or_default();
        let wait = self.args.config.interval.saturating_sub(since_trigger).max(self.args.config.min_pause);
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

    /// Aborts the checkpoint in flight, if any, and schedules the next one.
    fn abort(&mut self, myself: &ActorRef<CoordinatorMessage>, reason: String) {
        if let Some(p) = self.pending.take() {
            self.discard(p.id, p.started, p.alignment_ms, reason);
        }
        self.schedule(myself);
    }

    /// Deletes a failed checkpoint, tells the subtasks and records it.
    fn discard(&mut self, id: u64, started: Instant, alignment_ms: u64, reason: String) {
        warn!(job = %self.args.job, checkpoint = id, %reason, "checkpoint aborted");
        self.args.storage.discard(id);
        self.send(TaskControl::CheckpointAborted(id), false);
        self.stats.in_progress = None;
        self.record(CheckpointRecord {
            id,
            status: "FAILED".into(),
            duration_ms: started.elapsed().as_millis() as u64,
            bytes: 0,
            alignment_ms,
            failure: Some(reason),
        });
    }

    async fn complete(&mut self, myself: &ActorRef<CoordinatorMessage>) {
        let Some(p) = self.pending.take() else { return };
        let metadata = CheckpointMetadata {
            version: CheckpointMetadata::VERSION,
            job: self.args.job,
            checkpoint: p.id,
            fingerprint: self.args.fingerprint,
            triggered_ms: p.triggered_ms,
            duration_ms: p.started.elapsed().as_millis() as u64,
            tasks: p.handles.into_values().collect(),
        };
        let (storage, retained, meta) = (self.args.storage.clone(), self.args.config.retained, metadata.clone());
        let written: Result<crate::Result<()>, _> = tokio::task::spawn_blocking(move || {
            storage.write_metadata(&meta)?;
            storage.prune(retained);
            crate::Result::Ok(())
        })
        .await;
        self.stats.in_progress = None;
        match written {
            Ok(Ok(())) => {
                info!(job = %self.args.job, checkpoint = p.id, bytes = metadata.bytes(), ms = metadata.duration_ms, "checkpoint completed");
                self.send(TaskControl::CheckpointComplete(p.id), false);
                self.record(CheckpointRecord {
                    id: p.id,
                    status: "COMPLETED".into(),
                    duration_ms: metadata.duration_ms,
                    bytes: metadata.bytes(),
                    alignment_ms: p.alignment_ms,
                    failure: None,
                });
            }
            Ok(Err(e)) => self.discard(p.id, p.started, p.alignment_ms, format!("cannot write its metadata: {e}")),
            Err(e) => self.discard(p.id, p.started, p.alignment_ms, format!("the metadata task failed: {e}")),
        }
        self.schedule(myself);
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
        // Ids keep growing across restarts of the job and of this actor: never reuse one.
        let next_id = args.storage.completed().last().map_or(1, |n| n + 1).max(args.restored_from.map_or(1, |n| n + 1));
        let stats = CheckpointStats { restored_from: args.restored_from, ..Default::default() };
        Ok(CoordinatorState {
            args,
            tasks: Vec::new(),
            finished: HashSet::new(),
            next_id,
            pending: None,
            generation: 0,
            last_trigger: None,
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
                state.last_trigger = Some(Instant::now());
                state.schedule(&myself);
            }
            CoordinatorMessage::Suspend => {
                // No reschedule: triggers resume with the next deployment.
                state.generation += 1;
                if let Some(p) = state.pending.take() {
                    state.discard(p.id, p.started, p.alignment_ms, "the job is failing over".into());
                }
                state.tasks.clear();
            }
            CoordinatorMessage::Finished(execution) => {
                state.finished.insert(execution);
                // A pending checkpoint no longer waits for it.
                if let Some(p) = &state.pending
                    && p.handles.len() >= state.expected()
                {
                    state.complete(&myself).await;
                }
            }
            CoordinatorMessage::Trigger(generation) => {
                if generation != state.generation || state.pending.is_some() || state.tasks.is_empty() {
                    return Ok(());
                }
                if !state.tasks.iter().any(|t| t.source && !state.finished.contains(&t.execution)) {
                    debug!(job = %state.args.job, "every source finished: no more checkpoints");
                    return Ok(());
                }
                let id = state.next_id;
                state.next_id += 1;
                let triggered_ms = crate::time::wall_clock_ms();
                state.pending = Some(Pending {
                    id,
                    triggered_ms,
                    started: Instant::now(),
                    handles: BTreeMap::new(),
                    alignment_ms: 0,
                });
                state.stats.in_progress = Some(id);
                state.last_trigger = Some(Instant::now());
                debug!(job = %state.args.job, checkpoint = id, "triggering checkpoint");
                state.send(
                    TaskControl::TriggerCheckpoint(CheckpointBarrier { checkpoint_id: id, timestamp_ms: triggered_ms }),
                    true,
                );
                myself.send_after(state.args.config.timeout, move || CoordinatorMessage::Timeout(id));
            }
            CoordinatorMessage::Timeout(id) => {
                if state.pending.as_ref().is_some_and(|p| p.id == id) {
                    let timeout = state.args.config.timeout;
                    state.abort(&myself, format!("not complete within the timeout of {timeout:?}"));
                }
            }
            CoordinatorMessage::Ack(execution, ack) => {
                let current = state.tasks.iter().any(|t| t.execution == execution);
                let Some(p) = state.pending.as_mut().filter(|p| p.id == ack.checkpoint && current) else {
                    return Ok(()); // late or stale
                };
                match ack.handle {
                    Ok(handle) => {
                        p.alignment_ms = p.alignment_ms.max(ack.alignment_ms);
                        p.handles.insert((execution.vertex, execution.index), handle);
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
