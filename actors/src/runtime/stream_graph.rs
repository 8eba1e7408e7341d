//! Job graphs: the `StreamGraph` a job builder makes (typed operator factories, one node per
//! operator) and the serializable `JobGraph` derived from it (vertices = operator chains,
//! edges with partitioning, parallelism, a fingerprint), as Flink's StreamGraph → JobGraph.
//!
//! Only the `JobGraph` travels: every node rebuilds the `StreamGraph` from the registered job
//! builder and the job's arguments, derives the `JobGraph` again, and refuses to run if its
//! fingerprint differs from the submitted one (a different build of the job).

use std::any::Any;
use std::sync::Arc;

use weir_dataplane::{BatchConfig, Partitioning, check_parallelism};

use crate::base::error::{Result, WeirError};
use crate::base::link::SideLinks;
use crate::runtime::job_graph::{JobEdge, JobGraph, JobVertex, NodeKind, OperatorDescriptor};
use crate::runtime::nodes::{AnyBox, NodeFactory, OutputPort};

/// An input edge of a stream node.
#[derive(Clone)]
pub(crate) struct StreamEdge {
    pub(crate) from: usize,
    /// Which output of `from` it reads: 0 is the main output, `i` its side output
    /// `side_outputs[i - 1]`.
    pub(crate) output: usize,
    /// `None`: forward when parallelisms match, rebalance otherwise (Flink's default).
    pub(crate) partitioning: Option<Partitioning>,
    /// For hash edges: `KeyGroupFn<T>` of the edge's type.
    pub(crate) key_group: Option<Arc<dyn Any + Send + Sync>>,
}

/// One operator of the dataflow as the builder made it.
#[derive(Clone)]
pub(crate) struct StreamNode {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    /// The version of its state's layout (see `DataStream::state_version`).
    pub(crate) state_version: u32,
    pub(crate) kind: NodeKind,
    pub(crate) parallelism: Option<usize>,
    pub(crate) chaining: bool,
    /// Its inputs; a two-input operator's first input is `inputs[0]`, its second `inputs[1]`.
    pub(crate) inputs: Vec<StreamEdge>,
    pub(crate) factory: Arc<dyn NodeFactory>,
    /// The side outputs something reads, by tag.
    pub(crate) side_outputs: Vec<(Arc<str>, Arc<dyn OutputPort>)>,
}

impl StreamNode {
    /// The links of each output of this node (main first, then its side outputs in order)
    /// joined into its main downstream link and its side links. A side output nothing
    /// consumes is left out: what the operator sends there is dropped.
    pub(crate) fn assemble(&self, downs: Vec<Vec<AnyBox>>) -> (AnyBox, SideLinks) {
        let mut main = None;
        let mut sides = SideLinks::default();
        for (output, mut downs) in downs.into_iter().enumerate() {
            let port = self.port(output);
            if output > 0 && downs.is_empty() {
                continue;
            }
            let down = match downs.len() {
                0 => port.null_link(),
                1 => downs.pop().expect("one"),
                _ => port.fan_out(downs),
            };
            match output {
                0 => main = Some(down),
                _ => port.add_side(&mut sides, self.side_outputs[output - 1].0.clone(), down),
            }
        }
        (main.unwrap_or_else(|| self.port(0).null_link()), sides)
    }

    /// Output `output`'s type: 0 the main output, `i` the side output `side_outputs[i - 1]`.
    pub(crate) fn port(&self, output: usize) -> Arc<dyn OutputPort> {
        match output {
            0 => self.factory.output(),
            i => self.side_outputs[i - 1].1.clone(),
        }
    }
}

/// The dataflow a job builder made.
#[derive(Clone, Default)]
pub(crate) struct StreamGraph {
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) default_parallelism: usize,
    pub(crate) max_parallelism: u16,
    pub(crate) batch: BatchConfig,
    /// How often watermark generators emit periodically.
    pub(crate) auto_watermark_interval: std::time::Duration,
}

/// A job ready to run: the stream graph with its derived plan and the lookup tables the
/// runtime wires subtasks with.
#[derive(Clone)]
pub(crate) struct ExecutableGraph {
    pub(crate) stream: StreamGraph,
    pub(crate) job: JobGraph,
    pub(crate) node_parallelism: Vec<usize>,
    pub(crate) chained_children: Vec<Vec<usize>>,
    /// Per node: the job edges leaving it.
    pub(crate) out_edges: Vec<Vec<usize>>,
    /// Per job edge: the stream edge's key-group function.
    pub(crate) edge_key_group: Vec<Option<Arc<dyn Any + Send + Sync>>>,
}

pub(crate) fn plan(job_name: &str, stream: StreamGraph) -> Result<ExecutableGraph> {
    if stream.nodes.is_empty() {
        return Err(WeirError::Graph("the job defines no operators".into()));
    }
    let max = stream.max_parallelism;
    let n = stream.nodes.len();
    let parallelism: Vec<usize> =
        stream.nodes.iter().map(|node| node.parallelism.unwrap_or(stream.default_parallelism)).collect();
    for (node, &p) in stream.nodes.iter().zip(&parallelism) {
        check_parallelism(p, max).map_err(|e| WeirError::Graph(format!("operator '{}': {e}", node.name)))?;
    }
    // A uid names an operator's state in savepoints: two operators cannot share one.
    let mut uids = std::collections::HashMap::new();
    for node in &stream.nodes {
        if let Some(uid) = &node.uid
            && let Some(other) = uids.insert(uid, &node.name)
        {
            return Err(WeirError::Graph(format!(
                "operators '{other}' and '{}' have the same uid '{uid}': a uid must be unique in a job",
                node.name
            )));
        }
    }
    // Resolve partitioning and decide chaining per stream edge.
    let mut resolved: Vec<Vec<(Partitioning, bool)>> = Vec::with_capacity(n);
    for (to, node) in stream.nodes.iter().enumerate() {
        let mut edges = Vec::new();
        for edge in &node.inputs {
            let (pu, pd) = (parallelism[edge.from], parallelism[to]);
            let partitioning = match edge.partitioning {
                Some(Partitioning::Forward) if pu != pd => {
                    return Err(WeirError::Graph(format!(
                        "forward edge from '{}' (parallelism {pu}) to '{}' (parallelism {pd}): forward needs equal parallelism",
                        stream.nodes[edge.from].name, node.name
                    )));
                }
                Some(p) => p,
                None if pu == pd => Partitioning::Forward,
                None => Partitioning::Rebalance,
            };
            let chainable = partitioning == Partitioning::Forward
                && node.inputs.len() == 1
                && node.chaining
                && stream.nodes[edge.from].chaining;
            edges.push((partitioning, chainable));
        }
        resolved.push(edges);
    }
    // Heads are nodes without a chainable input; every other node joins its input's vertex.
    let mut vertex_of_node = vec![usize::MAX; n];
    let mut chained_children = vec![Vec::new(); n];
    let mut vertices: Vec<JobVertex> = Vec::new();
    for id in 0..n {
        // Nodes are created after their inputs, so an input's vertex is known already.
        let chained_from =
            stream.nodes[id].inputs.iter().zip(&resolved[id]).find(|(_, (_, c))| *c).map(|(e, _)| e.from);
        let node = &stream.nodes[id];
        let descriptor = OperatorDescriptor {
            node: id,
            name: node.name.clone(),
            uid: node.uid.clone(),
            state_version: node.state_version,
            kind: node.kind,
            in_type: node.factory.in_type(),
            out_type: node.factory.output().type_name(),
        };
        match chained_from {
            Some(from) => {
                let v = vertex_of_node[from];
                vertex_of_node[id] = v;
                chained_children[from].push(id);
                vertices[v].operators.push(descriptor);
                vertices[v].chained.push((from, id));
                vertices[v].name = format!("{} -> {}", vertices[v].name, node.name);
            }
            None => {
                let v = vertices.len();
                vertex_of_node[id] = v;
                vertices.push(JobVertex {
                    id: v,
                    name: node.name.clone(),
                    parallelism: parallelism[id],
                    head: id,
                    operators: vec![descriptor],
                    chained: Vec::new(),
                });
            }
        }
    }
    let mut edges = Vec::new();
    let mut out_edges = vec![Vec::new(); n];
    let mut edge_key_group = Vec::new();
    for (to, node) in stream.nodes.iter().enumerate() {
        for (input, (edge, &(partitioning, chained))) in node.inputs.iter().zip(&resolved[to]).enumerate() {
            if chained {
                continue;
            }
            if partitioning == Partitioning::Hash && edge.key_group.is_none() {
                return Err(WeirError::Graph(format!("hash edge into '{}' has no key selector", node.name)));
            }
            let id = edges.len();
            out_edges[edge.from].push(id);
            edge_key_group.push(edge.key_group.clone());
            edges.push(JobEdge {
                id,
                from_node: edge.from,
                output: edge.output,
                to_node: to,
                input,
                source_vertex: vertex_of_node[edge.from],
                target_vertex: vertex_of_node[to],
                partitioning,
            });
        }
    }
    let mut job = JobGraph { job_name: job_name.to_owned(), max_parallelism: max, vertices, edges, fingerprint: 0 };
    let bytes =
        postcard::to_allocvec(&job).map_err(|e| WeirError::runtime(format!("cannot encode the job graph: {e}")))?;
    job.fingerprint = weir_dataplane::stable_hash(&bytes);
    Ok(ExecutableGraph { stream, job, node_parallelism: parallelism, chained_children, out_edges, edge_key_group })
}

#[cfg(test)]
pub(crate) mod tests;
