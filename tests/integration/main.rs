//! Workspace-level integration tests: example jobs against golden outputs, window and
//! supervision behaviour on the MiniCluster, backpressure, the real `weir` binary, and its web UI
//! in a headless browser.

mod backpressure;
mod cli;
mod cluster;
mod cluster_recovery;
mod event_windows;
mod fault_tolerance;
mod golden;
mod hosts;
mod joins;
mod kafka;
mod nexmark;
mod object_storage;
mod savepoints;
mod setup_script;
mod supervision;
mod support;
mod web_ui;
