//! Weir's operator API, job graphs, runtime and every actor of the cluster, in four layers.
//!
//! Users write jobs against [`prelude`]: a job builder makes a dataflow on a [`StreamEnv`]
//! with the typed builder ([`DataStream`], [`KeyedStream`], [`WindowedStream`]), or with
//! hand-written [`Operator`]s and [`KeyedProcessFunction`]s, and tests them one subtask at a
//! time with the [`OperatorHarness`](api::harness::OperatorHarness). A [`JobRegistry`] names
//! the builders a binary carries; the cluster's actors (see [`cluster`]) run them on a
//! [`MiniCluster`] in one process, and across processes in cluster mode.
//!
//! # Layers
//!
//! ```text
//! cluster   the actors (Dispatcher, ResourceManager, JobMaster, CheckpointCoordinator,
//!   │       TaskExecutor, Subtask), their messages, the job store, remote (the control
//!   │       plane between processes), REST, MiniCluster
//!   ▼
//! api       the StreamEnv builder and its streams, Operator, Source, Sink,
//!   │       KeyedProcessFunction, windows, aggregate functions, connectors, the job
//!   │       registry and JobArgs, the operator test harness
//!   ▼
//! runtime   stream and job graphs, node factories, deploy (wiring a subtask), the subtask
//!   │       loops with barrier alignment and their lifecycle, the writer, the source head,
//!   │       watermark generation, keyed state and timers, checkpoint format and storage,
//!   │       savepoints, slots
//!   ▼
//! base      ids, Data and Key, SubtaskInfo, errors, clocks and time domains, the file
//!           system seam, failpoints, the Link of a chain and its TaskIo, metrics, operator
//!           state as it is snapshotted and restored
//! ```
//!
//! Imports point down only, and no module imports itself through others: the crate's test
//! `tests/layers.rs` checks both on the source. The runtime knows links, not the API's
//! operators: an [`Operator`] runs behind the API's `OperatorLink`, a source behind the
//! runtime's `SourceHead`, so the API can grow (joins, side outputs, async I/O) without the
//! runtime importing it. The cluster's actors import each other's messages from
//! [`cluster::messages`], never each other's modules, except a parent the children it spawns.
//! Unit tests may use any layer.
//!
//! Where a concept lives: the barrier and its alignment in `weir_dataplane`
//! (`element.rs`, `alignment.rs`); the watermark in [`runtime::watermark`] (generation) and
//! `weir_dataplane`'s `watermark.rs` (combination); the slot in [`runtime::slot`]; the key
//! group in `weir_dataplane`'s `keygroup.rs` and [`runtime`]'s `keyed_state.rs`; the
//! checkpoint in [`runtime::checkpoint`] (format, storage, restore) and
//! [`cluster::checkpoint_coordinator`] (triggering and completion).

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod base;
pub mod cluster;
pub mod runtime;

pub use api::job::JobRegistry;
pub use api::job_args::JobArgs;
pub use api::keyed::KeyedProcessFunction;
pub use api::operator::{Context, Operator};
pub use api::stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
pub use base::data::{Data, Key};
pub use base::error::{ErrorDomain, Result, WeirError};
pub use base::ids::JobId;
pub use base::metrics::{TaskMetrics, TaskMetricsSnapshot};
pub use base::subtask::SubtaskInfo;
pub use base::time::TimeDomain;
pub use cluster::mini_cluster::{JobSubmission, MiniCluster, MiniClusterConfig};
pub use cluster::{JobDetails, JobOverview, JobResult, JobStatus, TaskState};
pub use runtime::job_graph::JobGraph;
pub use weir_dataplane::{BatchConfig, Timestamp};

/// Everything a job author needs, in one import.
pub mod prelude {
    pub use crate::api::async_io::AsyncFunction;
    pub use crate::api::broadcast::{
        BroadcastContext, BroadcastProcessFunction, BroadcastState, BroadcastStateDescriptor, BroadcastStream,
        KeyedBroadcastProcessFunction,
    };
    pub use crate::api::co_process::{
        CoProcessFunction, ConnectedStreams, KeyedCoProcessFunction, KeyedConnectedStreams, TwoInput,
    };
    pub use crate::api::connectors::{
        BadLine, Click, CollectHandle, CollectSink, DiscardSink, EventSequence, FileSink, Generator, GeneratorConfig,
        LatencyHistogram, LatencySink, ParsedTextFile, PrintSink, TextFile, VecSource,
    };
    pub use crate::api::functions::{AggregateFunction, Count, ReduceAgg, Sum};

    pub use crate::api::harness::{HarnessConfig, HarnessSnapshot, OperatorHarness, SideOutputs, SourceHarness};
    pub use crate::api::job::JobRegistry;
    pub use crate::api::job_args::JobArgs;
    pub use crate::api::join::{IntervalJoin, IntervalJoined, JoinContext, JoinedStreams, WindowedJoin};
    pub use crate::api::keyed::{
        KeyedContext, KeyedOpenContext, KeyedProcessFunction, ListState, MapState, ReducingState, ValueState,
    };
    pub use crate::api::operator::{Context, OpenContext, Operator, OperatorLists};
    pub use crate::api::side_output::OutputTag;
    pub use crate::api::sink::Sink;
    pub use crate::api::source::{Source, SourceContext, SplitId};
    pub use crate::api::stream::{DataStream, KeyedStream, StreamEnv, WindowedStream};
    pub use crate::api::window::evictor::{
        CountEvictor, DeltaEvictor, Evictor, EvictorContext, TimeEvictor, Timestamped,
    };
    pub use crate::api::window::trigger::{
        ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, ContinuousTrigger, CountTrigger, DefaultTrigger,
        PurgingTrigger, Trigger, TriggerContext, TriggerResult,
    };
    pub use crate::api::window::{
        Global, ProcessWindowFunction, Session, Sliding, TimeWindow, Tumbling, WindowAssigner, WindowContext,
        WindowOpenContext, WindowState, Windowed,
    };
    pub use crate::base::data::{Data, Key};
    pub use crate::base::error::{Result, WeirError};
    pub use crate::base::subtask::SubtaskInfo;
    pub use crate::base::time::TimeDomain;
    pub use crate::runtime::nodes::ValidateContext;
    pub use crate::runtime::source_head::SourcePoll;
    pub use crate::runtime::watermark::{WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
    pub use crate::{JobSubmission, MiniCluster, MiniClusterConfig};
    pub use weir_dataplane::{BatchConfig, Timestamp};
}
