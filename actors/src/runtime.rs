//! The runtime: what runs a subtask and snapshots it. It knows links, not the API's
//! operators: the graphs a job is planned into, the processing loops of a subtask with their
//! barrier alignment and lifecycle, the writer that batches records per channel, keyed state
//! and timers, watermark generation at sources, and checkpoint storage and restore. Below the
//! API ([`crate::api`]) and the cluster ([`crate::cluster`]), above [`crate::base`].

pub mod checkpoint;
pub(crate) mod deploy;
pub mod input;
pub mod job_graph;
pub(crate) mod keyed_state;
pub(crate) mod nodes;
pub mod slot;
pub(crate) mod source_head;
pub(crate) mod stream_graph;
pub(crate) mod task;
pub mod watermark;
pub(crate) mod writer;
