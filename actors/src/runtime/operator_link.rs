//! The link that runs a user [`Operator`] inside a chain.

use weir_dataplane::{CheckpointBarrier, Timestamp};

use crate::checkpoint::OperatorState;

use crate::operator::{Context, OpenContext, Operator};
use crate::runtime::io::{Link, LinkInfo, TaskIo};

/// Runs one operator and passes its output to the next link.
pub(crate) struct OperatorLink<O: Operator> {
    pub(crate) op: O,
    pub(crate) down: Box<dyn Link<O::Out>>,
    pub(crate) name: LinkInfo,
}

impl<O: Operator> Link<O::In> for OperatorLink<O> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        if io.has_failed() {
            return;
        }
        if let Err(e) = self.op.open(&mut OpenContext::new(io)) {
            io.fail(e.in_operator(&self.name));
            return;
        }
        let states = io.restored.as_ref().map(|r| r.operator_states(self.name.node)).unwrap_or_default();
        if !states.is_empty()
            && let Err(e) = self.op.restore_state(states)
        {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        match self.op.snapshot_state(barrier.checkpoint_id) {
            Ok(Some(state)) => {
                out.push(OperatorState { node: self.name.node, operator: Some(state), ..Default::default() })
            }
            Ok(None) => {}
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
        self.down.checkpoint(barrier, io, out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        if let Err(e) = self.op.notify_checkpoint_complete(id) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.checkpoint_complete(id, io);
    }

    #[inline]
    fn record(&mut self, value: O::In, ts: Timestamp, io: &mut TaskIo) {
        let mut ctx = Context::new(&mut *self.down, io, ts);
        if let Err(e) = self.op.process(value, &mut ctx) {
            io.fail(e.in_operator(&self.name));
        }
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        let mut ctx = Context::new(&mut *self.down, io, wm);
        if let Err(e) = self.op.on_watermark(wm, &mut ctx) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.watermark(wm, io);
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        if drain {
            let wm = io.watermark;
            let mut ctx = Context::new(&mut *self.down, io, wm);
            if let Err(e) = self.op.end_input(&mut ctx) {
                io.fail(e.in_operator(&self.name));
            }
        }
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        if let Err(e) = self.op.close() {
            io.fail(e.in_operator(&self.name));
        }
        self.down.close(io);
    }
}
