//! Node factories: the typed halves of stream nodes, behind the erased [`NodeFactory`].

use std::sync::Arc;

use weir_dataplane::{ChannelId, InputGate, OutputBuffer};

use crate::error::{Result, WeirError};
use crate::graph::{AnyBox, NodeFactory, TaskFuture, TaskWiring, WriterEdge, stable_type_name};
use crate::operator::Data;
use crate::runtime::io::{
    EdgeWriter, ErasedOutput, FanOut, KeyGroupFn, Link, LinkInfo, NullLink, OutputChannels, Writer,
};
use crate::runtime::task::{TaskParts, run_input, run_source};
use crate::source::{Source, ValidateContext};

/// Makes an operator's link for one subtask, given its downstream.
pub(crate) type MakeLink<In, Out> = Arc<dyn Fn(LinkInfo, Box<dyn Link<Out>>) -> Box<dyn Link<In>> + Send + Sync>;

/// A client-side check.
pub(crate) type Validate = Arc<dyn Fn(&ValidateContext) -> Result<()> + Send + Sync>;

fn typed<T: 'static>(link: AnyBox) -> Box<dyn Link<T>> {
    *link.downcast::<Box<dyn Link<T>>>().expect("chained operators' types match the plan")
}

fn erase<T: 'static>(link: Box<dyn Link<T>>) -> AnyBox {
    Box::new(link)
}

fn fan_out<T: Data>(downs: Vec<AnyBox>) -> AnyBox {
    erase::<T>(Box::new(FanOut { outs: downs.into_iter().map(typed::<T>).collect() }))
}

fn null_link<T: Data>() -> AnyBox {
    erase::<T>(Box::new(NullLink))
}

fn writer<T: Data>(edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)> {
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
    fn out_type(&self) -> String {
        stable_type_name::<Out>()
    }
    fn link(&self, name: LinkInfo, down: AnyBox) -> Result<AnyBox> {
        Ok(erase::<In>((self.make)(name, typed::<Out>(down))))
    }
    fn fan_out(&self, downs: Vec<AnyBox>) -> AnyBox {
        fan_out::<Out>(downs)
    }
    fn null_link(&self) -> AnyBox {
        null_link::<Out>()
    }
    fn writer(&self, edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)> {
        writer::<Out>(edges, wiring)
    }
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        inputs: Vec<(ChannelId, bool)>,
        wiring: &TaskWiring<'_>,
        parts: TaskParts,
    ) -> Result<TaskFuture> {
        let head = (self.make)(name, typed::<Out>(down));
        let capacity = wiring.batch.channel_capacity;
        let receivers = inputs
            .iter()
            .map(|&(id, remote)| match (remote, wiring.net) {
                (false, _) => Ok(wiring.shuffle.receiver::<In>(id, capacity)?),
                (true, Some(net)) => Ok(net.remote_receiver::<In>(id, capacity)),
                (true, None) => Err(WeirError::runtime(format!(
                    "channel {id} comes from another process, but this process has no network"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::pin(run_input(InputGate::new(receivers), head, parts, wiring.batch)))
    }
    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        self.validate.as_ref().map_or(Ok(()), |v| v(ctx))
    }
}

/// A source node.
pub(crate) struct SourceNode<S> {
    pub(crate) source: S,
}

impl<S: Source + Clone + Sync> NodeFactory for SourceNode<S> {
    fn in_type(&self) -> String {
        "()".to_owned()
    }
    fn out_type(&self) -> String {
        stable_type_name::<S::Out>()
    }
    fn link(&self, _name: LinkInfo, _down: AnyBox) -> Result<AnyBox> {
        Err(WeirError::Graph("a source cannot consume another operator's output".into()))
    }
    fn fan_out(&self, downs: Vec<AnyBox>) -> AnyBox {
        fan_out::<S::Out>(downs)
    }
    fn null_link(&self) -> AnyBox {
        null_link::<S::Out>()
    }
    fn writer(&self, edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)> {
        writer::<S::Out>(edges, wiring)
    }
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        _inputs: Vec<(ChannelId, bool)>,
        wiring: &TaskWiring<'_>,
        parts: TaskParts,
    ) -> Result<TaskFuture> {
        Ok(Box::pin(run_source(self.source.clone(), name, typed::<S::Out>(down), parts, wiring.batch)))
    }
    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        self.source.validate(ctx)
    }
}
