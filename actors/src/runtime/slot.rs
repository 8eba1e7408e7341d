//! The slot: where one subtask of a job runs (its TaskManager and data address).

/// Where one slot of a job is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotLocation {
    /// The TaskManager holding it.
    pub task_manager: String,
    /// Where that TaskManager accepts data streams (`None`: in the JobManager's process).
    pub data_addr: Option<std::net::SocketAddr>,
}
