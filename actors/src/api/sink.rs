//! Sinks: the operators at the end of a dataflow.

use weir_dataplane::Timestamp;

use crate::api::operator::{Context, OpenContext, Operator};
use crate::base::data::Data;
use crate::base::error::Result;
use crate::runtime::nodes::ValidateContext;

/// A sink: the end of a dataflow.
pub trait Sink: Send + 'static {
    /// The record type it takes.
    type In: Data;

    /// Checks the sink's configuration on the client, before the job is submitted.
    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called once in each subtask before the first record.
    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Writes one record.
    fn write(&mut self, value: Self::In, timestamp: Option<Timestamp>) -> Result<()>;

    /// The input ended: flush, and make the output visible unless the job checkpoints
    /// ([`OpenContext::checkpointing`]): a two-phase sink then pre-commits what is left at
    /// the job's final checkpoint, which follows, and commits it when that completes.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// At a checkpoint barrier: pre-commit what was written since the last one and return
    /// the sink's state (for a two-phase sink, the pending transactions).
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        let _ = checkpoint_id;
        Ok(None)
    }

    /// When restoring: commit what the checkpoint had pre-committed (idempotently) and
    /// discard what was written after it.
    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let _ = states;
        Ok(())
    }

    /// Checkpoint `checkpoint_id` completed everywhere: commit its transactions.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }
}

/// Runs a [`Sink`] as an operator with no output.
pub(crate) struct SinkOperator<S> {
    pub(crate) sink: S,
}

impl<S: Sink> Operator for SinkOperator<S> {
    type In = S::In;
    type Out = ();

    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        self.sink.open(ctx)
    }

    #[inline]
    fn process(&mut self, value: S::In, ctx: &mut Context<'_, ()>) -> Result<()> {
        self.sink.write(value, ctx.timestamp())
    }

    fn end_input(&mut self, _ctx: &mut Context<'_, ()>) -> Result<()> {
        self.sink.finish()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.sink.snapshot_state(checkpoint_id)
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.sink.restore_state(states)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        self.sink.notify_checkpoint_complete(checkpoint_id)
    }
}
