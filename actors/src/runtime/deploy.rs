//! Wiring one subtask from the plan: its chain of links, its output channels (local or to
//! other processes), its input channels, and its processing loop.

use std::sync::Arc;

use weir_dataplane::ChannelId;

use crate::base::error::Result;
use crate::base::ids::JobId;
use crate::base::link::{LinkInfo, SideLinks};
use crate::base::metrics::TaskMetrics;
use crate::base::subtask::SubtaskInfo;
use crate::base::task_io::TaskIo;
use crate::base::time::SharedClock;
use crate::runtime::checkpoint::{PendingRestore, TaskControl};
use crate::runtime::nodes::{AnyBox, InputChannel, TaskFuture, TaskWiring, WriterEdge};
use crate::runtime::stream_graph::ExecutableGraph;
use crate::runtime::task::TaskParts;
use crate::runtime::writer::ErasedOutput;

/// Builds the downstream of `node` inside its vertex, per output: chained successors and
/// the writer of its network edges; returns its main downstream link and its side links.
fn build_down(
    graph: &ExecutableGraph,
    node: usize,
    subtask: usize,
    job: JobId,
    attempt: u32,
    wiring: &TaskWiring<'_>,
    outputs: &mut Vec<Box<dyn ErasedOutput>>,
) -> Result<(AnyBox, SideLinks)> {
    let stream_node = &graph.stream.nodes[node];
    let mut downs: Vec<Vec<AnyBox>> = (0..=stream_node.side_outputs.len()).map(|_| Vec::new()).collect();
    for &child in &graph.chained_children[node] {
        let (down, sides) = build_down(graph, child, subtask, job, attempt, wiring, outputs)?;
        let child_node = &graph.stream.nodes[child];
        let info = LinkInfo { name: Arc::from(child_node.name.as_str()), node: child };
        downs[child_node.inputs[0].output].push(child_node.factory.link(info, down, sides)?);
    }
    for (output, downs) in downs.iter_mut().enumerate() {
        let mut edges = Vec::new();
        for &edge_id in graph.out_edges[node].iter().filter(|&&e| graph.job.edges[e].output == output) {
            let edge = &graph.job.edges[edge_id];
            let p_up = graph.node_parallelism[edge.from_node];
            let p_down = graph.node_parallelism[edge.to_node];
            let consumers = edge.partitioning.consumers_of(subtask, p_up, p_down);
            let channels = consumers
                .clone()
                .map(|c| {
                    let id = ChannelId {
                        job: job.0,
                        attempt,
                        edge: edge_id as u32,
                        producer: subtask as u32,
                        consumer: c as u32,
                    };
                    (id, wiring.remote_peer(c))
                })
                .collect();
            edges.push(WriterEdge {
                output: outputs.len() + edges.len(),
                partitioning: edge.partitioning,
                key_group: graph.edge_key_group[edge_id].clone(),
                consumer_parallelism: p_down,
                channels,
                consumers,
            });
        }
        if !edges.is_empty() {
            let (writer, outs) = stream_node.port(output).writer(edges, wiring)?;
            outputs.extend(outs);
            downs.push(writer);
        }
    }
    Ok(stream_node.assemble(downs))
}

/// Everything a subtask needs to start.
pub(crate) struct SubtaskSpec<'a> {
    pub(crate) graph: &'a ExecutableGraph,
    pub(crate) job: JobId,
    pub(crate) vertex: usize,
    pub(crate) index: usize,
    pub(crate) attempt: u32,
    pub(crate) shuffle: &'a weir_dataplane::LocalShuffle,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// Channels to other processes, this TaskManager's id and where every slot of the job is
    /// (cluster mode; `None` in a MiniCluster).
    pub(crate) remote: Option<RemoteWiring<'a>>,
    /// Checkpoint storage and where acknowledgements go (when the job checkpoints).
    pub(crate) checkpoints: Option<crate::runtime::checkpoint::CheckpointIo>,
    /// What to restore (read by the subtask when it starts).
    pub(crate) restore: Option<PendingRestore>,
    /// Where keyed state lives.
    pub(crate) state_backend: crate::base::state::StateBackend,
}

/// What a subtask needs to wire channels to other processes.
pub(crate) struct RemoteWiring<'a> {
    pub(crate) net: &'a Arc<weir_dataplane::NetShuffle>,
    pub(crate) task_manager: &'a str,
    pub(crate) slots: &'a [crate::runtime::slot::SlotLocation],
}

/// Wires one subtask's chain and returns its processing loop and where its control
/// messages go.
pub(crate) fn build_subtask(
    spec: SubtaskSpec<'_>,
) -> Result<(TaskFuture, tokio::sync::mpsc::UnboundedSender<TaskControl>)> {
    let graph = spec.graph;
    let vertex = &graph.job.vertices[spec.vertex];
    let info = Arc::new(SubtaskInfo {
        job_id: spec.job,
        job_name: graph.job.job_name.clone(),
        vertex: vertex.name.clone(),
        index: spec.index,
        parallelism: vertex.parallelism,
        max_parallelism: graph.job.max_parallelism,
        attempt: spec.attempt,
    });
    let wiring = TaskWiring {
        shuffle: spec.shuffle,
        net: spec.remote.as_ref().map(|r| r.net),
        slots: spec.remote.as_ref().map(|r| (r.task_manager, r.slots)),
        batch: graph.stream.batch,
        max_parallelism: graph.job.max_parallelism,
    };
    let mut outputs = Vec::new();
    let head = vertex.head;
    let (down, sides) = build_down(graph, head, spec.index, spec.job, spec.attempt, &wiring, &mut outputs)?;
    let inputs: Vec<InputChannel> = graph
        .job
        .edges
        .iter()
        .filter(|e| e.to_node == head)
        .flat_map(|e| {
            let p_up = graph.node_parallelism[e.from_node];
            let wiring = &wiring;
            e.partitioning.producers_of(spec.index, p_up, vertex.parallelism).map(move |p| {
                let id = ChannelId {
                    job: spec.job.0,
                    attempt: spec.attempt,
                    edge: e.id as u32,
                    producer: p as u32,
                    consumer: spec.index as u32,
                };
                InputChannel { id, remote: wiring.remote_peer(p).is_some(), input: e.input }
            })
        })
        .collect();
    let _ = spec.metrics.output_channels.set(outputs.iter().flat_map(|o| o.metrics()).collect());
    let mut io = TaskIo::new(info, spec.clock, spec.metrics);
    io.checkpointing = spec.checkpoints.as_ref().is_some_and(|c| c.storage.is_some());
    io.state_backend = spec.state_backend;
    io.watermark_interval = graph.stream.auto_watermark_interval;
    let node = &graph.stream.nodes[head];
    let (control_tx, control) = tokio::sync::mpsc::unbounded_channel();
    let info = LinkInfo { name: Arc::from(node.name.as_str()), node: head };
    let task = node.factory.task(
        info,
        down,
        sides,
        inputs,
        &wiring,
        TaskParts { io, outputs, control, restore: spec.restore, checkpoints: spec.checkpoints },
    )?;
    Ok((task, control_tx))
}
