//! The runtime inside a subtask: chain links, node factories and the processing loops.

pub(crate) mod io;
pub(crate) mod nodes;
pub(crate) mod operator_link;
pub(crate) mod task;
