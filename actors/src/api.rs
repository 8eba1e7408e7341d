//! The API users write jobs with: the [`StreamEnv`](stream::StreamEnv) builder and its
//! streams, operators, sources and sinks, keyed process functions with state and timers,
//! windows, aggregate functions, the connectors, the job registry, and the test harness for
//! operators. It builds on the runtime ([`crate::runtime`]) and the core ([`crate::base`]);
//! nothing below imports it.

pub mod async_io;
pub mod broadcast;
pub mod co_process;
pub mod connectors;
pub mod functions;
pub mod harness;
pub mod job;
pub mod job_args;
pub mod join;
pub mod keyed;
pub mod operator;
pub mod side_output;
pub mod sink;
pub mod source;
pub mod stream;
pub mod window;
