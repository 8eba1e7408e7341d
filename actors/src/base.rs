//! The core: what every other layer builds on, and which imports nothing of theirs. Ids,
//! [`Data`](data::Data) and [`Key`](data::Key), the subtask's identity, errors, clocks, the
//! file system seam, failpoints, the `Link` an operator chain is made of with the
//! `TaskIo` it runs with, the subtask's metrics, and operator state as it
//! is snapshotted and restored.
//!
//! (Named `base` rather than `core`, which would shadow Rust's own `core` crate in paths.)

pub mod data;
pub mod error;
pub mod failpoint;
pub mod fence;
/// The file operations whose durability exactly-once rests on (in the state crate).
pub use weir_state::fs;
pub mod ids;
pub(crate) mod link;
pub mod metrics;
pub mod state;
pub mod subtask;
pub(crate) mod task_io;
pub mod time;
