//! What a source subtask's loop drives: the start of a chain that produces its own input.
//! The API's `Source` is one behind this trait.

use std::time::Duration;

/// What a poll of a source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// It emitted records, or may have more right away: poll again.
    Ready,
    /// Nothing now (e.g. rate limit): poll again after this long.
    Pending(Duration),
    /// The input is exhausted (bounded sources).
    Finished,
}
