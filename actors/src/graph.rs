//! Job graphs: the `StreamGraph` a job builder makes (typed operator factories, one node per
//! operator) and the serializable `JobGraph` derived from it (vertices = operator chains,
//! edges with partitioning, parallelism, a fingerprint), as Flink's StreamGraph → JobGraph.
//!
//! Only the `JobGraph` travels: every node rebuilds the `StreamGraph` from the registered job
//! builder and the job's arguments, derives the `JobGraph` again, and refuses to run if its
//! fingerprint differs from the submitted one (a different build of the job).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use weir_dataplane::{BatchConfig, ChannelId, LocalShuffle, Partitioning, check_parallelism};

use crate::error::{Result, WeirError};
use crate::job::{JobArgs, JobFn};
use crate::runtime::io::{ErasedOutput, LinkInfo};
use crate::stream::StreamEnv;

/// A type-erased box: a `Box<dyn Link<T>>` for the node's input or output type.
pub(crate) type AnyBox = Box<dyn Any + Send>;

/// The future that runs one subtask's processing loop.
pub(crate) type TaskFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// What kind of operator a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeKind {
    /// Produces records.
    Source,
    /// Transforms records.
    Operator,
    /// Consumes records.
    Sink,
}

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
    pub(crate) slots: Option<(&'a str, &'a [crate::cluster::task_executor::SlotLocation])>,
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

/// Builds the runtime pieces of one node for any subtask; typed inside, erased outside.
pub(crate) trait NodeFactory: Send + Sync {
    /// The input type's name, without module paths (for the fingerprint, savepoint
    /// compatibility and messages; see [`stable_type_name`]).
    fn in_type(&self) -> String;
    /// The output type's name, as [`in_type`](Self::in_type).
    fn out_type(&self) -> String;
    /// This node's link (`Box<dyn Link<In>>`) feeding `down` (`Box<dyn Link<Out>>`).
    fn link(&self, name: LinkInfo, down: AnyBox) -> Result<AnyBox>;
    /// One `Box<dyn Link<Out>>` feeding all of `downs`.
    fn fan_out(&self, downs: Vec<AnyBox>) -> AnyBox;
    /// A `Box<dyn Link<Out>>` that drops everything (after a sink).
    fn null_link(&self) -> AnyBox;
    /// The writer (`Box<dyn Link<Out>>`) of this node's network edges, and their senders.
    fn writer(&self, edges: Vec<WriterEdge>, wiring: &TaskWiring<'_>) -> Result<(AnyBox, Vec<Box<dyn ErasedOutput>>)>;
    /// The processing loop of a subtask whose chain starts at this node.
    fn task(
        &self,
        name: LinkInfo,
        down: AnyBox,
        inputs: Vec<(ChannelId, bool)>,
        wiring: &TaskWiring<'_>,
        parts: crate::runtime::task::TaskParts,
    ) -> Result<TaskFuture>;
    /// Client-side checks of the node's configuration (sources' inputs, sinks' outputs).
    fn validate(&self, ctx: &crate::source::ValidateContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
}

/// An input edge of a stream node.
#[derive(Clone)]
pub(crate) struct StreamEdge {
    pub(crate) from: usize,
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
    pub(crate) inputs: Vec<StreamEdge>,
    pub(crate) factory: Arc<dyn NodeFactory>,
}

/// The dataflow a job builder made.
#[derive(Clone, Default)]
pub(crate) struct StreamGraph {
    pub(crate) nodes: Vec<StreamNode>,
    pub(crate) default_parallelism: usize,
    pub(crate) max_parallelism: u16,
    pub(crate) batch: BatchConfig,
}

/// An operator of a vertex, as the plan describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorDescriptor {
    /// The stream node's index.
    pub node: usize,
    /// The operator's name.
    pub name: String,
    /// The operator's stable id, if set.
    pub uid: Option<String>,
    /// The version of its state's layout the job declares (1 unless declared).
    pub state_version: u32,
    /// Source, operator or sink.
    pub kind: NodeKind,
    /// Input record type.
    pub in_type: String,
    /// Output record type.
    pub out_type: String,
}

/// A vertex of the job graph: a chain of operators run by one subtask per parallel instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobVertex {
    /// Index in [`JobGraph::vertices`].
    pub id: usize,
    /// The chain's operator names joined by ` -> `.
    pub name: String,
    /// Parallel subtasks.
    pub parallelism: usize,
    /// The node whose input (or source) drives the chain.
    pub head: usize,
    /// The chain's operators, head first.
    pub operators: Vec<OperatorDescriptor>,
    /// Chained (direct-call) connections inside the vertex, `(from node, to node)`.
    pub chained: Vec<(usize, usize)>,
}

/// An edge between two vertices, carried by channels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobEdge {
    /// Index in [`JobGraph::edges`].
    pub id: usize,
    /// Producing node.
    pub from_node: usize,
    /// Consuming node (the head of its vertex).
    pub to_node: usize,
    /// Producing vertex.
    pub source_vertex: usize,
    /// Consuming vertex.
    pub target_vertex: usize,
    /// How records are distributed.
    pub partitioning: Partitioning,
}

/// The plan of a job: what the client submits and every node checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobGraph {
    /// The registered job name.
    pub job_name: String,
    /// Number of key groups.
    pub max_parallelism: u16,
    /// Operator chains.
    pub vertices: Vec<JobVertex>,
    /// Channels between chains.
    pub edges: Vec<JobEdge>,
    /// Hash of everything above: equal builds of a job have equal fingerprints.
    pub fingerprint: u64,
}

impl JobGraph {
    /// The slots the job needs: its highest parallelism (slot sharing).
    pub fn slots_needed(&self) -> usize {
        self.vertices.iter().map(|v| v.parallelism).max().unwrap_or(0)
    }

    /// Subtasks over all vertices.
    pub fn subtask_count(&self) -> usize {
        self.vertices.iter().map(|v| v.parallelism).sum()
    }

    /// The fingerprint as 16 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job '{}' (fingerprint {}, max parallelism {})",
            self.job_name,
            self.fingerprint_hex(),
            self.max_parallelism
        )?;
        for v in &self.vertices {
            writeln!(f, "  vertex {}: {} [parallelism {}]", v.id, v.name, v.parallelism)?;
        }
        for e in &self.edges {
            writeln!(
                f,
                "  edge {}: vertex {} -> vertex {} ({})",
                e.id,
                e.source_vertex,
                e.target_vertex,
                e.partitioning.name()
            )?;
        }
        Ok(())
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

/// Runs a job builder and derives its plan. With `client`, runs the client-side checks
/// (inputs exist, output directories are usable) that must not run again on every node.
pub(crate) fn build_job(
    name: &str,
    builder: &JobFn,
    args: &JobArgs,
    parallelism: usize,
    client: Option<&crate::source::ValidateContext>,
) -> Result<ExecutableGraph> {
    let args = args.clone();
    let mut env = StreamEnv::new(parallelism);
    builder(&mut env, &args)?;
    args.check_all_read(name)?;
    let stream = env.finish()?;
    if let Some(ctx) = client {
        for node in &stream.nodes {
            node.factory.validate(ctx)?;
        }
    }
    plan(name, stream)
}

fn plan(job_name: &str, stream: StreamGraph) -> Result<ExecutableGraph> {
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
            out_type: node.factory.out_type(),
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
        for (edge, &(partitioning, chained)) in node.inputs.iter().zip(&resolved[to]) {
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
                to_node: to,
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
