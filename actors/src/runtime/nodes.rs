//! Node factories: the typed halves of stream nodes, behind the erased [`NodeFactory`].

use std::any::Any;
use std::sync::Arc;

use weir_dataplane::{BatchConfig, ChannelId, InputGate, LocalShuffle, OutputBuffer, Partitioning};

use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::link::{Link, LinkInfo, Outputs, SideLinks};
use crate::runtime::input::{TwoInput, TwoInputGate};
use crate::runtime::task::{TaskParts, run_input};
use crate::runtime::writer::{EdgeWriter, ErasedOutput, FanOut, KeyGroupFn, NullLink, OutputChannels, Writer};
/// A type-erased box: a `Box<dyn Link<T>>` for the node's input or output type.
pub(crate) type AnyBox = Box<dyn Any + Send>;

/// The future that runs one subtask's processing loop.
pub(crate) type TaskFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// One output edge of a node, as the writer needs it.
pub(crate) struct WriterEdge {
    pub(crate) output: usize,
    pub(crate) partitioning: Partitioning,
    pub(crate) key_group: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) consumer_parallelism: usize,
    /// Each channel, and the consumer's data address when it runs in another process.
    pub(crate) channels: Vec<(ChannelId, Option<std::net::SocketAddr>)>,
    pub(crate) consumers: std::ops::Range<usize>,
}

/// What a subtask needs from its environment to wire and run.
pub(crate) struct TaskWiring<'a> {
    pub(crate) shuffle: &'a LocalShuffle,
    /// Channels to and from other processes (cluster mode).
    pub(crate) net: Option<&'a std::sync::Arc<weir_dataplane::NetShuffle>>,
    /// This TaskManager's id and where every slot of the job is (cluster mode).
    pub(crate) slots: Option<(&'a str, &'a [crate::runtime::slot::SlotLocation])>,
    pub(crate) batch: BatchConfig,
    pub(crate) max_parallelism: u16,
}

impl TaskWiring<'_> {
    /// The data address of the subtask with `index` (of any vertex: slot sharing puts subtask
    /// `i` of every vertex in slot `i`) when it runs in another process.
    pub(crate) fn remote_peer(&self, index: usize) -> Option<std::net::SocketAddr> {
        let (me, slots) = self.slots?;
        let slot = slots.get(index)?;
        if slot.task_manager == me { None } else { slot.data_addr }
    }
}

/// The record type of one output of a node, erased: how the runtime fans it out to several
/// consumers, drops it, writes it to channels, or hands it to the node's link as a side output.
pub(crate) trait OutputPort: Send + Sync {
    /// The record type's name (see [`stable_type_name`]).
    fn type_name(&self) -> String;
    /// One `Box<dyn Link<T>>` feeding all of `downs`.
    fn fan_out(&self, downs: Vec<AnyBox>) -> AnyBox;
    /// A `Box<dyn Link<T>>` that drops everything (after a sink).
    fn null_link(&self) -> AnyBox;
    /// The writer (`Box<dyn Link<T>>`) of a node's network edges, and their senders.
    fn writer(&self, edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)>;
    /// Adds `down` (a `Box<dyn Link<T>>`) to `sides` as the side output `tag`.
    fn add_side(&self, sides: &mut SideLinks, tag: Arc<str>, down: AnyBox);
}

/// The [`OutputPort`] of records of type `T`.
pub(crate) struct Port<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Data> Port<T> {
    pub(crate) fn shared() -> Arc<dyn OutputPort> {
        Arc::new(Port::<T>(std::marker::PhantomData))
    }
}

impl<T: Data> OutputPort for Port<T> {
    fn type_name(&self) -> String {
        stable_type_name::<T>()
    }
    fn fan_out(&self, downs: Vec<AnyBox>) -> AnyBox {
        erase::<T>(Box::new(FanOut { outs: downs.into_iter().map(typed::<T>).collect() }))
    }
    fn null_link(&self) -> AnyBox {
        erase::<T>(Box::new(NullLink))
    }
    fn writer(&self, edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)> {
        writer::<T>(edges, wiring)
    }
    fn add_side(&self, sides: &mut SideLinks, tag: Arc<str>, down: AnyBox) {
        sides.push::<T>(tag, typed::<T>(down));
    }
}

/// Builds the runtime pieces of one node for any subtask; typed inside, erased outside.
pub(crate) trait NodeFactory: Send + Sync {
    /// The input type's name, without module paths (for the fingerprint, savepoint
    /// compatibility and messages; see [`stable_type_name`]).
    fn in_type(&self) -> String;
    /// The node's main output.
    fn output(&self) -> Arc<dyn OutputPort>;
    /// This node's link (`Box<dyn Link<In>>`) feeding `down` (`Box<dyn Link<Out>>`) and its
    /// side outputs.
    fn link(&self, name: LinkInfo, down: AnyBox, sides: SideLinks) -> Result<AnyBox>;
    /// The processing loop of a subtask whose chain starts at this node.
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        sides: SideLinks,
        inputs: Vec<InputChannel>,
        wiring: &TaskWiring<'_>,
        parts: crate::runtime::task::TaskParts,
    ) -> Result<TaskFuture>;
    /// Client-side checks of the node's configuration (sources' inputs, sinks' outputs).
    fn validate(&self, ctx: &crate::runtime::nodes::ValidateContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
}

/// One input channel of a subtask: its id, whether its producer runs in another process, and
/// which input of the head operator it feeds (0, or 1 for the second input of a two-input
/// operator).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InputChannel {
    pub(crate) id: ChannelId,
    pub(crate) remote: bool,
    pub(crate) input: usize,
}

/// The receivers of `channels`, local or from other processes.
pub(crate) fn receivers<T: Data>(
    channels: impl IntoIterator<Item = InputChannel>,
    wiring: &TaskWiring<'_>,
) -> Result<Vec<weir_dataplane::BatchReceiver<T>>> {
    let capacity = wiring.batch.channel_capacity;
    channels
        .into_iter()
        .map(|c| match (c.remote, wiring.net) {
            (false, _) => Ok(wiring.shuffle.receiver::<T>(c.id, capacity)?),
            (true, Some(net)) => Ok(net.remote_receiver::<T>(c.id, capacity)),
            (true, None) => Err(WeirError::runtime(format!(
                "channel {} comes from another process, but this process has no network",
                c.id
            ))),
        })
        .collect()
}

/// What the client knows when it checks a job's sources and sinks, before submitting it.
#[derive(Debug, Clone, Default)]
pub struct ValidateContext {
    pub(crate) restoring: bool,
}

impl ValidateContext {
    /// A job that restores from a savepoint (`true`) or starts afresh.
    pub fn new(restoring: bool) -> Self {
        ValidateContext { restoring }
    }

    /// Whether the job resumes from a savepoint: its output so far belongs to it (a sink
    /// must not clear it).
    pub fn restoring(&self) -> bool {
        self.restoring
    }
}

/// Makes an operator's link for one subtask, given its outputs.
pub(crate) type MakeLink<In, Out> = Arc<dyn Fn(LinkInfo, Outputs<Out>) -> Box<dyn Link<In>> + Send + Sync>;

/// A client-side check.
pub(crate) type Validate = Arc<dyn Fn(&ValidateContext) -> Result<()> + Send + Sync>;

pub(crate) fn typed<T: 'static>(link: AnyBox) -> Box<dyn Link<T>> {
    *link.downcast::<Box<dyn Link<T>>>().expect("chained operators' types match the plan")
}

pub(crate) fn erase<T: 'static>(link: Box<dyn Link<T>>) -> AnyBox {
    Box::new(link)
}

pub(crate) fn writer<T: Data>(
    edges: Vec<WriterEdge>,
    wiring: &TaskWiring<'_>,
) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)> {
    let mut writers = Vec::with_capacity(edges.len());
    let mut outputs: Vec<Box<dyn ErasedOutput>> = Vec::with_capacity(edges.len());
    for edge in edges {
        let capacity = wiring.batch.channel_capacity;
        let senders = edge
            .channels
            .iter()
            .map(|&(id, peer)| match (peer, wiring.net) {
                (None, _) => Ok(wiring.shuffle.sender::<T>(id, capacity)?),
                (Some(peer), Some(net)) => Ok(net.remote_sender::<T>(id, peer, capacity)),
                (Some(peer), None) => {
                    Err(WeirError::runtime(format!("channel {id} leads to {peer}, but this process has no network")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let key_group = match edge.key_group {
            Some(any) => Some(
                any.downcast::<KeyGroupFn<T>>()
                    .map_err(|_| WeirError::runtime("the key selector of a hash edge has another record type"))?
                    .as_ref()
                    .clone(),
            ),
            None => None,
        };
        writers.push(EdgeWriter {
            output: edge.output,
            partitioning: edge.partitioning,
            key_group,
            max_parallelism: wiring.max_parallelism,
            consumer_parallelism: edge.consumer_parallelism,
            consumers: edge.consumers,
            buffer: OutputBuffer::new(senders.len(), wiring.batch.max_records),
            next: 0,
        });
        outputs.push(Box::new(OutputChannels { senders }));
    }
    Ok((erase::<T>(Box::new(Writer { edges: writers })), outputs))
}

/// An operator node: input `In`, output `Out`.
pub(crate) struct OperatorNode<In, Out> {
    pub(crate) make: MakeLink<In, Out>,
    pub(crate) validate: Option<Validate>,
}

impl<In: Data, Out: Data> NodeFactory for OperatorNode<In, Out> {
    fn in_type(&self) -> String {
        stable_type_name::<In>()
    }
    fn output(&self) -> Arc<dyn OutputPort> {
        Port::<Out>::shared()
    }
    fn link(&self, name: LinkInfo, down: AnyBox, sides: SideLinks) -> Result<AnyBox> {
        Ok(erase::<In>((self.make)(name, Outputs { main: typed::<Out>(down), sides })))
    }
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        sides: SideLinks,
        inputs: Vec<InputChannel>,
        wiring: &TaskWiring<'_>,
        parts: TaskParts,
    ) -> Result<TaskFuture> {
        let head = (self.make)(name, Outputs { main: typed::<Out>(down), sides });
        let receivers = receivers::<In>(inputs, wiring)?;
        parts.io.metrics.watch_inputs(receivers.iter().map(|r| r.metrics()));
        let gate = InputGate::new(receivers);
        Ok(Box::pin(run_input(gate, head, parts, wiring.batch)))
    }
    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        self.validate.as_ref().map_or(Ok(()), |v| v(ctx))
    }
}

/// A two-input operator node: inputs `A` and `B`, output `Out`. Its link takes both inputs'
/// records as [`TwoInput`]s; it always heads its chain.
pub(crate) struct TwoInputNode<A, B, Out> {
    pub(crate) make: MakeLink<TwoInput<A, B>, Out>,
}

impl<A: Data, B: Data, Out: Data> NodeFactory for TwoInputNode<A, B, Out> {
    fn in_type(&self) -> String {
        stable_type_name::<TwoInput<A, B>>()
    }
    fn output(&self) -> Arc<dyn OutputPort> {
        Port::<Out>::shared()
    }
    fn link(&self, name: LinkInfo, down: AnyBox, sides: SideLinks) -> Result<AnyBox> {
        Ok(erase::<TwoInput<A, B>>((self.make)(name, Outputs { main: typed::<Out>(down), sides })))
    }
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        sides: SideLinks,
        inputs: Vec<InputChannel>,
        wiring: &TaskWiring<'_>,
        parts: TaskParts,
    ) -> Result<TaskFuture> {
        let head = (self.make)(name, Outputs { main: typed::<Out>(down), sides });
        let (first, second): (Vec<_>, Vec<_>) = inputs.into_iter().partition(|c| c.input == 0);
        let (first, second) = (receivers::<A>(first, wiring)?, receivers::<B>(second, wiring)?);
        parts.io.metrics.watch_inputs(first.iter().map(|r| r.metrics()).chain(second.iter().map(|r| r.metrics())));
        let gate = TwoInputGate::new(InputGate::new(first), InputGate::new(second));
        Ok(Box::pin(run_input(gate, head, parts, wiring.batch)))
    }
}

/// `std::any::type_name` without module paths: `alloc::vec::Vec<my_app::events::Click>` is
/// `Vec<Click>`. Plans (their fingerprint) and savepoints (whether a stateful operator's
/// record types changed) compare these names. The full name would not do: it changes when a
/// type moves to another module, and its form is not guaranteed across compiler versions, so
/// an upgrade could refuse every savepoint and checkpoint. The short name changes only when
/// the type itself is renamed or its generic arguments change.
pub(crate) fn stable_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut short = String::with_capacity(full.len());
    let mut path_start = 0;
    for (i, c) in full.char_indices() {
        if !(c.is_alphanumeric() || c == '_' || c == ':') {
            short.push_str(last_segment(&full[path_start..i]));
            short.push(c);
            path_start = i + c.len_utf8();
        }
    }
    short.push_str(last_segment(&full[path_start..]));
    short
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}
