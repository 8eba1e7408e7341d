//! The job graph: the serializable plan a client submits and every node checks (vertices =
//! operator chains with their operators, edges with partitioning, parallelism, a
//! fingerprint), as Flink's JobGraph. It is derived from the stream graph
//! (`stream_graph`).

use std::fmt;

use weir_dataplane::Partitioning;

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
    /// Which output of the producing node: 0 its main output, `i` its `i`-th side output.
    pub output: usize,
    /// Consuming node (the head of its vertex).
    pub to_node: usize,
    /// Which input of the consuming node: its `i`-th stream edge (a two-input operator's
    /// first input is 0, its second 1).
    pub input: usize,
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
