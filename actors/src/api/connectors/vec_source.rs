//! A source over an in-memory vector (tests, examples); it runs with parallelism 1.
//!
//! With timestamps it emits one record per poll, so a watermark follows every record and
//! which records are late is exact (sources generate watermarks per poll).

use weir_dataplane::{NO_TIMESTAMP, Timestamp};

use crate::api::operator::OpenContext;
use crate::api::source::{Source, SourceContext};
use crate::base::data::Data;
use crate::base::error::Result;
use crate::runtime::source_head::SourcePoll;
use crate::runtime::watermark::WatermarkStrategy;

/// Emits the given records in order (with timestamps, if given), then ends.
#[derive(Debug, Clone)]
pub struct VecSource<T> {
    items: std::sync::Arc<Vec<(T, Timestamp)>>,
    strategy: WatermarkStrategy<T>,
    next: usize,
    index: usize,
}

impl<T: Data + Sync> VecSource<T> {
    /// Records without timestamps.
    pub fn new(items: Vec<T>) -> Self {
        VecSource {
            items: std::sync::Arc::new(items.into_iter().map(|t| (t, NO_TIMESTAMP)).collect()),
            strategy: WatermarkStrategy::none(),
            next: 0,
            index: 0,
        }
    }

    /// Records with event timestamps; watermarks follow `strategy`.
    pub fn timestamped(items: Vec<(T, Timestamp)>, strategy: WatermarkStrategy<T>) -> Self {
        VecSource { items: std::sync::Arc::new(items), strategy, next: 0, index: 0 }
    }
}

impl<T: Data + Sync> Source for VecSource<T> {
    type Out = T;

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        // Only the first subtask emits: a collection is not split.
        self.index = ctx.subtask().index;
        if self.index != 0 {
            self.next = self.items.len();
        }
        Ok(())
    }

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, T>) -> Result<SourcePoll> {
        let per_poll = if self.strategy.emits_watermarks() { 1 } else { ctx.batch_size() };
        let end = (self.next + per_poll).min(self.items.len());
        for (value, ts) in &self.items[self.next..end] {
            ctx.emit_at(value.clone(), *ts);
        }
        self.next = end;
        Ok(if self.next == self.items.len() { SourcePoll::Finished } else { SourcePoll::Ready })
    }

    fn watermark_strategy(&self) -> WatermarkStrategy<T> {
        self.strategy.clone()
    }

    /// (subtask index, next record): only subtask 0's position matters.
    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        postcard::to_allocvec(&(self.index as u64, self.next as u64))
            .map_err(|e| crate::WeirError::runtime(format!("cannot encode the vector source's position: {e}")))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        if self.index != 0 {
            return Ok(()); // it emits nothing at any parallelism
        }
        for bytes in &states {
            let (index, next): (u64, u64) = postcard::from_bytes(bytes).map_err(|e| {
                crate::WeirError::runtime(format!("the vector source's checkpointed position is corrupt: {e}"))
            })?;
            if index == 0 {
                self.next = (next as usize).min(self.items.len());
            }
        }
        Ok(())
    }
}
