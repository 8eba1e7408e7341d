//! How the subtasks of a producer vertex connect to the subtasks of a consumer vertex.

use std::ops::Range;

/// The connection pattern and routing of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Partitioning {
    /// Producer `i` to consumer `i`; both sides have the same parallelism.
    Forward,
    /// All-to-all; each record goes to the owner of its key group.
    Hash,
    /// All-to-all; records go round-robin.
    Rebalance,
    /// Pointwise (as Flink's `POINTWISE` pattern); records go round-robin over the consumers
    /// a producer is connected to.
    Rescale,
    /// All-to-all; every record goes to every consumer.
    Broadcast,
}

impl Partitioning {
    /// Consumer subtask indices that producer `producer` (of `p_up`) has a channel to.
    ///
    /// For [`Partitioning::Forward`] with `p_up != p_down` (an invalid edge the graph builder
    /// rejects) the range is empty rather than a panic.
    pub fn consumers_of(self, producer: usize, p_up: usize, p_down: usize) -> Range<usize> {
        debug_assert!(producer < p_up, "producer {producer} of {p_up}");
        match self {
            Partitioning::Forward if p_up == p_down => producer..producer + 1,
            Partitioning::Forward => 0..0,
            Partitioning::Hash | Partitioning::Rebalance | Partitioning::Broadcast => 0..p_down,
            Partitioning::Rescale => pointwise_targets(producer, p_up, p_down),
        }
    }

    /// Producer subtask indices that consumer `consumer` (of `p_down`) has a channel from; the
    /// exact inverse of [`Partitioning::consumers_of`].
    ///
    /// For [`Partitioning::Forward`] with `p_up != p_down` the range is empty.
    pub fn producers_of(self, consumer: usize, p_up: usize, p_down: usize) -> Range<usize> {
        debug_assert!(consumer < p_down, "consumer {consumer} of {p_down}");
        match self {
            Partitioning::Forward if p_up == p_down => consumer..consumer + 1,
            Partitioning::Forward => 0..0,
            Partitioning::Hash | Partitioning::Rebalance | Partitioning::Broadcast => 0..p_up,
            // The pattern is symmetric: swap the roles of the two sides.
            Partitioning::Rescale => pointwise_targets(consumer, p_down, p_up),
        }
    }

    /// The lowercase name of the partitioning: `"forward"`, `"hash"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Partitioning::Forward => "forward",
            Partitioning::Hash => "hash",
            Partitioning::Rebalance => "rebalance",
            Partitioning::Rescale => "rescale",
            Partitioning::Broadcast => "broadcast",
        }
    }

    /// Whether every producer is connected to every consumer.
    pub fn is_all_to_all(self) -> bool {
        matches!(self, Partitioning::Hash | Partitioning::Rebalance | Partitioning::Broadcast)
    }
}

impl std::fmt::Display for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The subtasks on the other side that subtask `index` of `n` is connected to in Flink's
/// pointwise pattern, where the other side has `m` subtasks.
///
/// When `m >= n` the other side is cut into `n` contiguous slices, `[i*m/n, (i+1)*m/n)`, one
/// per subtask here. When `m < n` this side is cut into `m` slices the same way and `index`
/// connects to the one subtask whose slice holds it: the largest `j` with `j*n/m <= index`,
/// which is `((index + 1) * m - 1) / n`.
fn pointwise_targets(index: usize, n: usize, m: usize) -> Range<usize> {
    if m >= n {
        index * m / n..(index + 1) * m / n
    } else {
        let j = ((index + 1) * m - 1) / n;
        j..j + 1
    }
}

#[cfg(test)]
mod tests;
