//! Keyed state of one operator subtask: its key groups, its state backend (memory, or a
//! RocksDB instance whose directory is chosen here), its event- and processing-time timers,
//! and how they are snapshotted and restored. The keyed process function, window and join
//! operators of the API all keep their state through it.

use weir_dataplane::{CheckpointBarrier, KeyGroup, KeyGroupRange, Timestamp, key_group_of};
use weir_state::{KeyedStateStore, MemoryBackend, RocksDbBackend, RocksDbConfig, StateKey, TimerService};

use crate::base::data::Key;
use crate::base::error::{Result, WeirError};
use crate::base::state::{OperatorState, RestoredState, StateBackend};
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;

/// Keyed state and timers of one keyed operator instance.
pub(crate) struct KeyedParts<K: StateKey, N> {
    pub(crate) store: KeyedStateStore<K>,
    pub(crate) event_timers: TimerService<K, N>,
    pub(crate) processing_timers: TimerService<K, N>,
    pub(crate) max_parallelism: u16,
    pub(crate) key_groups: KeyGroupRange,
}

/// Timers as a checkpoint stores them: event time, then processing time.
type TimerEntries<K, N> = (Vec<(Timestamp, K, N)>, Vec<(Timestamp, K, N)>);

impl<K: Key, N: std::hash::Hash + Eq + Clone> KeyedParts<K, N> {
    /// State for the key groups this subtask owns, in the job's state backend: memory, or a
    /// RocksDB database of its own (rebuilt from the incremental checkpoint being restored,
    /// if any, at this or another parallelism).
    pub(crate) fn open(io: &TaskIo, node: usize) -> Result<Self> {
        let info = &io.info;
        let key_groups = KeyGroupRange::for_subtask(info.max_parallelism, info.parallelism, info.index);
        let backend: Box<dyn weir_state::KeyedStateBackend> = match &io.state_backend {
            StateBackend::Memory => Box::new(MemoryBackend::new(key_groups.as_range())),
            StateBackend::RocksDb { dir } => {
                let base = dir.clone().unwrap_or_else(std::env::temp_dir);
                // One database per operator subtask and attempt: an old attempt's may still be
                // closing when a new one opens.
                let db_dir = base.join("weir-rocksdb").join(info.job_id.to_string()).join(format!(
                    "node{node}-{}-a{}-{}",
                    info.index,
                    info.attempt,
                    std::process::id()
                ));
                let (handles, shared) = match &io.restored {
                    Some(r) => (r.incremental(node), r.shared_dir.clone()),
                    None => (Vec::new(), weir_state::storage::Location::default()),
                };
                let range = key_groups.as_range();
                Box::new(RocksDbBackend::restore(db_dir, range, RocksDbConfig::default(), &handles, &shared)?)
            }
        };
        Ok(KeyedParts {
            store: KeyedStateStore::new(backend),
            event_timers: TimerService::new(),
            processing_timers: TimerService::new(),
            max_parallelism: info.max_parallelism,
            key_groups,
        })
    }

    /// The keyed state and timers of this operator at `barrier`. The keyed state only starts
    /// here, between two records; it is left in `io.pending_keyed` (at position `index` of the
    /// checkpoint's operator states) for the loop to materialize off the loop: the memory
    /// backend freezes its key groups copy-on-write and serializes them there, RocksDB takes a
    /// local checkpoint (hard links) and uploads it there. Savepoints are the canonical
    /// per-key-group [`KeyedSnapshot`](weir_state::KeyedSnapshot), whatever the backend (an
    /// incremental format is for checkpoints only): another backend or parallelism reads them.
    fn snapshot(
        &mut self,
        node: usize,
        barrier: &CheckpointBarrier,
        io: &mut TaskIo,
        index: usize,
    ) -> Result<OperatorState>
    where
        N: serde::Serialize,
    {
        let timers: TimerEntries<K, N> = (self.event_timers.entries(), self.processing_timers.entries());
        let timers =
            postcard::to_allocvec(&timers).map_err(|e| WeirError::runtime(format!("cannot encode timers: {e}")))?;
        let pending = match barrier.kind {
            weir_dataplane::BarrierKind::Checkpoint => self.store.checkpoint(barrier.checkpoint_id)?,
            weir_dataplane::BarrierKind::Savepoint { .. } => self.store.start_snapshot()?,
        };
        io.pending_keyed.push((index, pending));
        Ok(OperatorState { node, timers: Some(timers), ..Default::default() })
    }

    /// Adds this operator's snapshot to a checkpoint (or fails the subtask, naming it).
    pub(crate) fn snapshot_into(
        &mut self,
        name: &crate::base::link::LinkInfo,
        barrier: &CheckpointBarrier,
        io: &mut TaskIo,
        out: &mut Vec<OperatorState>,
    ) where
        N: serde::Serialize,
    {
        match self.snapshot(name.node, barrier, io, out.len()) {
            Ok(state) => out.push(state),
            Err(e) => io.fail(e.in_operator(name)),
        }
    }

    /// Checkpoint `id` completed: a RocksDB backend may reference its files from now on.
    pub(crate) fn checkpoint_complete(&mut self, id: u64) {
        self.store.notify_checkpoint_complete(id);
    }

    /// Loads what a checkpoint holds for this operator's key groups (all its states must be
    /// registered already).
    pub(crate) fn restore(&mut self, restored: &RestoredState, node: usize, io: &mut TaskIo) -> Result<()>
    where
        N: serde::de::DeserializeOwned,
    {
        if let Some(keyed) = restored.keyed(node) {
            self.store.restore(&keyed)?;
        }
        for bytes in restored.timers(node) {
            let (event, processing): TimerEntries<K, N> = postcard::from_bytes(&bytes)
                .map_err(|e| WeirError::runtime(format!("corrupt timers in the checkpoint: {e}")))?;
            let mine =
                |(_, key, _): &(Timestamp, K, N)| self.key_groups.contains(key_group_of(key, self.max_parallelism));
            let event: Vec<_> = event.into_iter().filter(mine).collect();
            let processing: Vec<_> = processing.into_iter().filter(mine).collect();
            self.event_timers.restore(event);
            self.processing_timers.restore(processing);
        }
        self.report_next_processing_timer(io);
        Ok(())
    }

    /// Tells the loop when this operator's next processing-time timer is due.
    /// Its registered timers, by domain and time.
    pub(crate) fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        out.extend(self.event_timers.entries().into_iter().map(|(ts, _, _)| (TimeDomain::EventTime, ts)));
        out.extend(self.processing_timers.entries().into_iter().map(|(ts, _, _)| (TimeDomain::ProcessingTime, ts)));
    }

    pub(crate) fn report_next_processing_timer(&self, io: &mut TaskIo) {
        if let Some(next) = self.processing_timers.peek() {
            io.request_processing_time(next);
        }
    }

    #[inline]
    pub(crate) fn key_group(&self, key: &K) -> KeyGroup {
        key_group_of(key, self.max_parallelism)
    }
}
