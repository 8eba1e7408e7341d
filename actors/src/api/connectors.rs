//! Built-in sources and sinks.

mod collect;
mod file_sink;
mod generator;
mod latency;
pub mod nexmark;
mod print;
mod text_file;
mod vec_source;

pub use collect::{CollectHandle, CollectSink, DiscardSink};
pub use file_sink::FileSink;
pub use generator::{Click, EventSequence, Generator, GeneratorConfig};
pub use latency::{LatencyHistogram, LatencySink};
pub use print::PrintSink;
pub use text_file::{BadLine, ParsedTextFile, TextFile};
pub use vec_source::VecSource;
