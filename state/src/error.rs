//! The error type of keyed state.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::KeyGroup;

/// What went wrong when registering or accessing keyed state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A state name was registered again with other types or another kind.
    #[error("state {name:?} is already registered with another kind or other types")]
    TypeMismatch {
        /// The name of the state.
        name: String,
    },
    /// An access named a key group outside the backend's key groups.
    #[error("key group {key_group} is outside this backend's key groups {range:?}")]
    KeyGroupOutOfRange {
        /// The key group that was accessed.
        key_group: KeyGroup,
        /// The key groups the backend covers.
        range: Range<KeyGroup>,
    },
    /// A checkpoint holds a state that is not registered in the store restoring it.
    #[error("checkpoint has state {name:?} that this operator does not register")]
    UnknownState {
        /// The name of the state in the checkpoint.
        name: String,
    },
    /// A state snapshot could not be decoded.
    #[error("corrupt state snapshot: {what}")]
    Corrupt {
        /// What was wrong, naming the state and key group where the store knows them.
        what: String,
    },
    /// The state backend failed.
    #[error("state backend failed: {0}")]
    Backend(String),
    /// A file of a backend or of a checkpoint could not be read or written.
    #[error("cannot {action} '{}': {source}", path.display())]
    Io {
        /// What was being done, e.g. "read shared file".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// An [`Io`](Self::Io) error: `action` on `path` failed.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io { action, path: path.into(), source }
    }

    /// An [`Io`](Self::Io) error at a storage location (an object's is shown as its URL).
    pub(crate) fn io_at(action: &'static str, at: &crate::storage::Location, source: std::io::Error) -> Self {
        let path = at.as_local().map_or_else(|| PathBuf::from(at.to_string()), Path::to_path_buf);
        StateError::Io { action, path, source }
    }
}

/// The result of a state operation.
pub type Result<T, E = StateError> = std::result::Result<T, E>;
