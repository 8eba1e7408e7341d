//! The ResourceManager: registered TaskExecutors, their slots, and slot requests.
//!
//! Slots are granted spread over TaskManagers (the one with the most free slots first).
//! A new job's request the cluster can never satisfy (more slots than it has in total) fails
//! at once with a message naming both numbers; one that must wait for other jobs' slots waits
//! up to the slot-request timeout, then fails. A recovering job's request (after a failover,
//! or from a JobMaster started again, e.g. in a restarted JobManager) always waits up to the
//! timeout: the TaskManagers it lost may be reconnecting. A TaskExecutor that registers again under the same
//! TaskManager id (it was restarted) replaces the old one: jobs with slots there are told the
//! TaskManager was lost.
//!
//! ## Restarts
//!
//! The ResourceManager keeps nothing durable: its supervisor restarts it empty and rebuilds it
//! from the other components, as Flink's does after a leader change. Every TaskExecutor
//! registers again, with a slot report naming the jobs its slots serve (so slots in use stay
//! in use), and every JobMaster reconnects so that it hears of lost TaskManagers again. A slot
//! request in flight when it died is made again to its successor by the JobMaster.
//!
//! A restarted ResourceManager settles for [`SETTLE`] first (Flink's standalone
//! ResourceManager has a start-up period for the same reason): until the TaskManagers have
//! registered again it does not know the cluster, so a request for more slots than it knows of
//! waits instead of being refused. When it has settled, slots that a slot report names for a
//! job no JobMaster reconnected for are freed (that job ended while it was being restarted, and
//! its release went to its predecessor or came before the report), and requests the cluster can
//! never satisfy are refused.

use std::collections::BTreeMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{info, warn};

use crate::base::error::WeirError;
use crate::base::ids::JobId;
use crate::cluster::TaskManagerInfo;
use crate::cluster::messages::{JobMasterMessage, ResourceManagerMessage, SlotGrant, TaskExecutorMessage};

/// How long a restarted ResourceManager settles before it trusts what it knows of the cluster.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Configuration of the ResourceManager.
#[derive(Debug, Clone)]
pub struct ResourceManagerArgs {
    /// How long a slot request may wait for slots held by other jobs.
    pub slot_request_timeout: Duration,
    /// Started again by its supervisor (it settles first; see the module docs).
    pub restarted: bool,
}

struct Registered {
    executor: ActorRef<TaskExecutorMessage>,
    data_addr: Option<std::net::SocketAddr>,
    slots: usize,
    /// Per slot: the job holding it.
    allocated: Vec<Option<JobId>>,
    /// Its process's figures, as its latest heartbeat reported them.
    process: Option<crate::cluster::process_metrics::ProcessMetrics>,
}

struct Pending {
    id: u64,
    job: JobId,
    slots: usize,
    /// A new job's request: refused once the cluster is known to be too small for it.
    strict: bool,
    job_master: ActorRef<JobMasterMessage>,
    reply: RpcReplyPort<Result<Vec<SlotGrant>, WeirError>>,
}

/// The ResourceManager's state.
pub struct ResourceManagerState {
    args: ResourceManagerArgs,
    task_managers: BTreeMap<String, Registered>,
    job_masters: BTreeMap<JobId, ActorRef<JobMasterMessage>>,
    pending: Vec<Pending>,
    next_request: u64,
    /// Restarted, and not settled yet.
    settling: bool,
}

impl ResourceManagerState {
    fn total(&self) -> usize {
        self.task_managers.values().map(|t| t.slots).sum()
    }

    fn free(&self) -> usize {
        self.task_managers.values().map(|t| t.allocated.iter().filter(|a| a.is_none()).count()).sum()
    }

    fn allocate(&mut self, job: JobId, slots: usize) -> Vec<SlotGrant> {
        let mut grants = Vec::with_capacity(slots);
        for _ in 0..slots {
            let (id, tm) = self
                .task_managers
                .iter_mut()
                .max_by_key(|(_, t)| t.allocated.iter().filter(|a| a.is_none()).count())
                .expect("checked free slots");
            let slot = tm.allocated.iter().position(Option::is_none).expect("checked free slots");
            tm.allocated[slot] = Some(job);
            grants.push(SlotGrant { task_manager: id.clone(), data_addr: tm.data_addr, executor: tm.executor.clone() });
        }
        grants
    }

    /// Forgets a TaskManager; jobs with slots there are told.
    fn lose(&mut self, task_manager: &str) {
        let lost = || JobMasterMessage::TaskManagerLost(task_manager.to_owned());
        let Some(old) = self.task_managers.remove(task_manager) else {
            // Unknown here: it died while this ResourceManager was being restarted, so it
            // never registered again, and nothing here says which jobs had slots on it. Every
            // JobMaster is told; one without slots there ignores it.
            for jm in self.job_masters.values() {
                let _ = jm.cast(lost());
            }
            return;
        };
        let jobs: std::collections::BTreeSet<JobId> = old.allocated.iter().flatten().copied().collect();
        for job in jobs {
            if let Some(jm) = self.job_masters.get(&job) {
                let _ = jm.cast(lost());
            }
        }
    }

    /// Why a request for `slots` can never be granted.
    fn too_few(&self, slots: usize) -> WeirError {
        let total = self.total();
        WeirError::NoResources(format!(
            "job needs {slots} slot{} (its highest parallelism) but the cluster has {total} in total ({} task manager{}); lower --parallelism or add slots",
            if slots == 1 { "" } else { "s" },
            self.task_managers.len(),
            if self.task_managers.len() == 1 { "" } else { "s" },
        ))
    }

    /// The end of the settling period: slots of jobs nobody claimed are freed, and requests
    /// the cluster can never satisfy are refused.
    fn settled(&mut self) {
        self.settling = false;
        for (id, tm) in &mut self.task_managers {
            let orphans: std::collections::BTreeSet<JobId> =
                tm.allocated.iter().flatten().filter(|job| !self.job_masters.contains_key(job)).copied().collect();
            for job in orphans {
                warn!(job = %job, task_manager = %id, "freeing slots of a job no job master claimed after the restart");
                for slot in tm.allocated.iter_mut().filter(|s| **s == Some(job)) {
                    *slot = None;
                }
                let _ = tm.executor.cast(TaskExecutorMessage::ReleaseJob(job));
            }
        }
        let total = self.total();
        for p in self.pending.extract_if(.., |p| p.strict && p.slots > total).collect::<Vec<_>>() {
            let _ = p.reply.send(Err(self.too_few(p.slots)));
        }
        self.serve_pending();
    }

    fn serve_pending(&mut self) {
        while let Some(i) = self.pending.iter().position(|p| p.slots <= self.free()) {
            let p = self.pending.remove(i);
            let grants = self.allocate(p.job, p.slots);
            self.job_masters.insert(p.job, p.job_master);
            let _ = p.reply.send(Ok(grants));
        }
    }
}

/// The ResourceManager actor.
pub struct ResourceManagerActor;

impl Actor for ResourceManagerActor {
    type Msg = ResourceManagerMessage;
    type State = ResourceManagerState;
    type Arguments = ResourceManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        if args.restarted {
            myself.send_after(SETTLE, || ResourceManagerMessage::Settled);
        }
        Ok(ResourceManagerState {
            settling: args.restarted,
            args,
            task_managers: BTreeMap::new(),
            job_masters: BTreeMap::new(),
            pending: Vec::new(),
            next_request: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ResourceManagerMessage::Register { task_manager, slots, data_addr, executor, allocated, reply } => {
                if state.task_managers.contains_key(&task_manager) {
                    warn!(task_manager = %task_manager, "task executor registered again: the old one is lost");
                    state.lose(&task_manager);
                }
                let in_use: Vec<Option<JobId>> =
                    allocated.iter().flat_map(|&(job, n)| std::iter::repeat_n(Some(job), n)).collect();
                if in_use.len() > slots {
                    let _ = reply.send(Err(format!(
                        "its slot report names {} slots in use but it offers {slots}",
                        in_use.len()
                    )));
                    return Ok(());
                }
                info!(task_manager = %task_manager, slots, in_use = in_use.len(), "task executor registered");
                let mut slot_table = in_use;
                slot_table.resize(slots, None);
                state.task_managers.insert(
                    task_manager,
                    Registered { executor, data_addr, slots, allocated: slot_table, process: None },
                );
                let _ = reply.send(Ok(()));
                state.serve_pending();
            }
            ResourceManagerMessage::RequestSlots { job, slots, job_master, recovering, reply } => {
                let total = state.total();
                if slots > total && !recovering && !state.settling {
                    let _ = reply.send(Err(state.too_few(slots)));
                } else if slots <= state.free() {
                    let grants = state.allocate(job, slots);
                    state.job_masters.insert(job, job_master);
                    let _ = reply.send(Ok(grants));
                } else {
                    let id = state.next_request;
                    state.next_request += 1;
                    info!(job = %job, slots, free = state.free(), total, "slot request waits for free slots");
                    state.pending.push(Pending { id, job, slots, strict: !recovering, job_master, reply });
                    myself.send_after(state.args.slot_request_timeout, move || {
                        ResourceManagerMessage::RequestTimedOut(id)
                    });
                }
            }
            ResourceManagerMessage::Release(job) => {
                for tm in state.task_managers.values_mut() {
                    let mut held = false;
                    for slot in &mut tm.allocated {
                        if *slot == Some(job) {
                            *slot = None;
                            held = true;
                        }
                    }
                    if held {
                        // Freed slots must not keep running the job: after a JobMaster was
                        // restarted, its predecessor's subtasks may still run there.
                        let _ = tm.executor.cast(TaskExecutorMessage::ReleaseJob(job));
                    }
                }
                state.job_masters.remove(&job);
                // A request of the job still waiting is a predecessor's (a JobMaster releases
                // before it requests): it must not get slots nobody would use.
                for p in state.pending.extract_if(.., |p| p.job == job) {
                    let _ =
                        p.reply.send(Err(WeirError::runtime("the job released its slots while this request waited")));
                }
                state.serve_pending();
            }
            ResourceManagerMessage::Reconnect(job, job_master) => {
                state.job_masters.insert(job, job_master);
            }
            ResourceManagerMessage::TaskManagers(reply) => {
                let infos = state
                    .task_managers
                    .iter()
                    .map(|(id, t)| TaskManagerInfo {
                        id: id.clone(),
                        slots: t.slots,
                        free_slots: t.allocated.iter().filter(|a| a.is_none()).count(),
                        process: t.process,
                    })
                    .collect();
                let _ = reply.send(infos);
            }
            ResourceManagerMessage::TaskManagerProcess(task_manager, process) => {
                if let Some(t) = state.task_managers.get_mut(&task_manager) {
                    t.process = Some(process);
                }
            }
            ResourceManagerMessage::TaskManagerLost(task_manager) => {
                warn!(task_manager = %task_manager, "task manager lost");
                state.lose(&task_manager);
            }
            ResourceManagerMessage::Settled => state.settled(),
            ResourceManagerMessage::RequestTimedOut(id) => {
                if let Some(i) = state.pending.iter().position(|p| p.id == id) {
                    let p = state.pending.remove(i);
                    let _ = p.reply.send(Err(WeirError::NoResources(format!(
                        "job needs {} slots; {} of {} were free for {:?} (slot request timeout)",
                        p.slots,
                        state.free(),
                        state.total(),
                        state.args.slot_request_timeout
                    ))));
                }
            }
        }
        Ok(())
    }
}
