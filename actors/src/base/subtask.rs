//! Where a subtask runs: its job, vertex, index, parallelism and attempt.

use crate::base::ids::JobId;

/// Where a subtask runs: its job, vertex, index and attempt.
#[derive(Debug, Clone)]
pub struct SubtaskInfo {
    /// The job.
    pub job_id: JobId,
    /// The job's name.
    pub job_name: String,
    /// The vertex (operator chain) name.
    pub vertex: String,
    /// This subtask's index, `0..parallelism`.
    pub index: usize,
    /// The vertex's parallelism.
    pub parallelism: usize,
    /// The job's maximum parallelism (the number of key groups).
    pub max_parallelism: u16,
    /// The execution attempt (0 for the first).
    pub attempt: u32,
}

impl SubtaskInfo {
    /// `vertex (index+1/parallelism)`, as Flink names subtasks.
    pub fn display_name(&self) -> String {
        format!("{} ({}/{})", self.vertex, self.index + 1, self.parallelism)
    }
}
