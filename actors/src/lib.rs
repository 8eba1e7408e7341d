//! Weir's operator API, job graphs, and every actor of the runtime.
//!
//! Users write jobs against [`prelude`]: a job builder makes a dataflow on a [`StreamEnv`]
//! with the typed builder ([`DataStream`], [`KeyedStream`], [`WindowedStream`]), or with
//! hand-written [`Operator`]s and [`KeyedProcessFunction`]s. A [`JobRegistry`] names the
//! builders a binary carries; the runtime's actors (see [`cluster`]) run them on a
//! [`MiniCluster`] in one process today, and across processes in cluster mode.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod base;
pub mod cluster;
pub mod runtime;

pub use api::job::JobRegistry;
pub use api::job_args::JobArgs;
pub use api::keyed::{KeyedProcessFunction, TimeDomain};
pub use api::operator::{Context, Operator};
pub use api::stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
pub use base::data::{Data, Key};
pub use base::error::{ErrorDomain, Result, WeirError};
pub use base::ids::JobId;
pub use base::metrics::{TaskMetrics, TaskMetricsSnapshot};
pub use base::subtask::SubtaskInfo;
pub use cluster::mini_cluster::{JobSubmission, MiniCluster, MiniClusterConfig};
pub use cluster::{JobDetails, JobOverview, JobResult, JobStatus, TaskState};
pub use runtime::job_graph::JobGraph;
pub use weir_dataplane::{BatchConfig, Timestamp};

/// Everything a job author needs, in one import.
pub mod prelude {
    pub use crate::api::connectors::{
        Click, CollectHandle, CollectSink, DiscardSink, FileSink, Generator, GeneratorConfig, PrintSink, TextFile,
        VecSource,
    };
    pub use crate::api::functions::{AggregateFunction, Count, ReduceAgg, Sum};

    pub use crate::api::job::JobRegistry;
    pub use crate::api::job_args::JobArgs;
    pub use crate::api::keyed::{
        KeyedContext, KeyedOpenContext, KeyedProcessFunction, ListState, MapState, ReducingState, TimeDomain,
        ValueState,
    };
    pub use crate::api::operator::{Context, OpenContext, Operator};
    pub use crate::api::sink::Sink;
    pub use crate::api::source::{Source, SourceContext};
    pub use crate::api::stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
    pub use crate::api::window::{Global, Session, Sliding, TimeWindow, Tumbling, WindowAssigner, Windowed};
    pub use crate::base::data::{Data, Key};
    pub use crate::base::error::{Result, WeirError};
    pub use crate::base::subtask::SubtaskInfo;
    pub use crate::runtime::nodes::ValidateContext;
    pub use crate::runtime::source_head::SourcePoll;
    pub use crate::runtime::watermark::WatermarkStrategy;
    pub use crate::{JobSubmission, MiniCluster, MiniClusterConfig};
    pub use weir_dataplane::{BatchConfig, Timestamp};
}
