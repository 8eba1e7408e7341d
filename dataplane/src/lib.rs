//! The Weir data plane: stream elements, key groups, partitioning, output batching and the
//! exchange of batches between subtasks, in one process or over QUIC between processes.
//!
//! Protocol logic (batching, watermark combination, key-group assignment, framing) is sans-IO
//! and unit-tested on its own; the async parts ([`channel`], [`shuffle`], [`net`]) are a thin
//! layer on top.

pub mod alignment;
pub mod batch;
pub mod channel;
pub mod element;
pub mod error;
pub mod frame;
pub mod keygroup;
pub mod net;
pub mod partition;
pub mod shuffle;
pub mod watermark;

pub use alignment::*;
pub use batch::*;
pub use channel::*;
pub use element::*;
pub use error::*;
pub use frame::*;
pub use keygroup::*;
pub use net::*;
pub use partition::*;
pub use shuffle::*;
pub use watermark::*;

/// Event time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The timestamp of a record that carries no event time.
pub const NO_TIMESTAMP: Timestamp = i64::MIN;

/// The watermark before any event time has been observed.
pub const MIN_WATERMARK: Timestamp = i64::MIN;

/// The watermark that closes all event time: emitted at the end of input.
pub const MAX_WATERMARK: Timestamp = i64::MAX;
