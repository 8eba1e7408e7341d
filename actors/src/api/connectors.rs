//! Built-in sources and sinks.

mod collect;
mod file_sink;
mod generator;
mod latency;
pub mod nexmark;
mod partition_committer;
mod print;
mod text_file;
mod vec_source;

pub use collect::{CollectHandle, CollectSink, DiscardSink};
pub use file_sink::{FileSink, PartitionCommitInfo, SUCCESS_FILE};
pub use generator::{Click, EventSequence, Generator, GeneratorConfig};
pub use latency::{LatencyHistogram, LatencySink};
pub use partition_committer::{
    PartitionCommitter, PartitionTime, escape_path_name, partition_committable, partition_path, partition_spec,
    unescape_path_name,
};
pub use print::PrintSink;
pub use text_file::{BadLine, ParsedTextFile, TextFile};
pub use vec_source::VecSource;
