//! Side outputs (Flink's `OutputTag`): an operator sends records of another type, or records
//! it sets aside, to a named output besides its main one; `get_side_output` reads it as a
//! stream of its own. Late records of a window are one such output.
//!
//! A side output is a real output of its operator's node: its consumers chain to it or read
//! it over channels like the main output's, and it carries the same watermarks, barriers and
//! end of input. What an operator sends to a side output nothing reads is dropped.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_dataplane::Timestamp;

use crate::base::data::Data;
use crate::base::link::Outputs;
use crate::base::task_io::TaskIo;

/// Names a side output of records of type `T`. Two tags with the same id name the same side
/// output; a job that uses one id with two types is refused.
///
/// ```
/// use weir_actors::prelude::*;
///
/// let odd = OutputTag::<u32>::new("odd");
/// let (odd_sink, odd_records) = CollectSink::new();
/// let evens = MiniCluster::collect(move |env| {
///     let tag = odd.clone();
///     let evens = env.from_vec("n", vec![1u32, 2, 3, 4]).process("split", move |n: u32, ctx: &mut Context<'_, u32>| {
///         if n.is_multiple_of(2) { ctx.emit(n) } else { ctx.output(&tag, n) }
///         Ok(())
///     });
///     evens.get_side_output(&odd).sink("odd", odd_sink.clone());
///     evens
/// }).unwrap();
/// assert_eq!(evens, vec![2, 4]);
/// assert_eq!(odd_records.take(), vec![1, 3]);
/// ```
pub struct OutputTag<T> {
    id: Arc<str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag { id: self.id.clone(), _type: PhantomData }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({:?})", self.id)
    }
}

impl<T: Data> OutputTag<T> {
    /// A tag named `id`.
    pub fn new(id: &str) -> Self {
        OutputTag { id: Arc::from(id), _type: PhantomData }
    }

    /// Its name.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }
}

/// Sends `value` to the side output `tag` of `out`, if anything reads it.
#[inline]
pub(crate) fn emit_side<O: 'static, X: Data>(
    out: &mut Outputs<O>,
    tag: &OutputTag<X>,
    value: X,
    ts: Timestamp,
    io: &mut TaskIo,
) {
    if let Some(side) = out.side::<X>(&tag.id) {
        side.record(value, ts, io);
    }
}

#[cfg(test)]
mod tests;
