//! Weir's operator API, job graphs, and every actor of the runtime.
//!
//! Users write jobs against [`prelude`]: a job builder makes a dataflow on a [`StreamEnv`]
//! with the typed builder ([`DataStream`], [`KeyedStream`], [`WindowedStream`]), or with
//! hand-written [`Operator`]s and [`KeyedProcessFunction`]s. A [`JobRegistry`] names the
//! builders a binary carries; the runtime's actors (see [`cluster`]) run them on a
//! [`MiniCluster`] in one process today, and across processes in cluster mode.

#![warn(missing_docs, unreachable_pub)]

pub mod checkpoint;
pub mod cluster;
pub mod connectors;
mod durable;
pub mod error;
pub mod failpoint;
pub mod fs;
pub mod functions;
pub mod graph;
pub mod job;
pub mod keyed;
pub mod operator;
pub mod remote;
mod runtime;
pub mod source;
pub mod stream;
pub mod time;
pub mod window;

pub use cluster::mini_cluster::{JobSubmission, MiniCluster, MiniClusterConfig};
pub use cluster::{JobDetails, JobOverview, JobResult, JobStatus, TaskState};
pub use error::{ErrorDomain, Result, WeirError};
pub use graph::JobGraph;
pub use job::{JobArgs, JobId, JobRegistry};
pub use keyed::{KeyedProcessFunction, TimeDomain};
pub use operator::{Context, Data, Key, Operator, SubtaskInfo};
pub use runtime::io::{TaskMetrics, TaskMetricsSnapshot};
pub use stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
pub use weir_dataplane::{BatchConfig, Timestamp};

/// Everything a job author needs, in one import.
pub mod prelude {
    pub use crate::connectors::{
        Click, CollectHandle, CollectSink, DiscardSink, FileSink, Generator, GeneratorConfig, PrintSink, TextFile,
        VecSource,
    };
    pub use crate::error::{Result, WeirError};
    pub use crate::functions::{AggregateFunction, Count, ReduceAgg, Sum};
    pub use crate::job::{JobArgs, JobRegistry};
    pub use crate::keyed::{
        KeyedContext, KeyedOpenContext, KeyedProcessFunction, ListState, MapState, ReducingState, TimeDomain,
        ValueState,
    };
    pub use crate::operator::{Context, Data, Key, OpenContext, Operator, SubtaskInfo};
    pub use crate::source::{Sink, Source, SourceContext, SourcePoll, ValidateContext, WatermarkStrategy};
    pub use crate::stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
    pub use crate::window::{Global, Session, Sliding, TimeWindow, Tumbling, WindowAssigner, Windowed};
    pub use crate::{JobSubmission, MiniCluster, MiniClusterConfig};
    pub use weir_dataplane::{BatchConfig, Timestamp};
}
