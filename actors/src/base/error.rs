//! Errors of the operator API and the runtime.

use std::fmt;

/// Where an error comes from, so a supervisor can tell whether a restart can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorDomain {
    /// The job's own code or arguments (an operator returned an error, a bad argument).
    User,
    /// Something outside Weir (a file, the network).
    External,
    /// Weir itself, or a resource it lacks (no slots).
    Internal,
}

/// Errors of the operator API and the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeirError {
    /// A job argument is missing, unknown or has a value of the wrong form.
    #[error("invalid job argument: {0}")]
    Argument(String),
    /// A job name that no registry entry has.
    #[error("unknown job '{name}'; registered jobs: {known}")]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The names the registry has, comma separated.
        known: String,
    },
    /// The dataflow a job builder made cannot run (a cycle, a bad parallelism, no sink).
    #[error("invalid job graph: {0}")]
    Graph(String),
    /// An I/O operation on a named path or resource failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operator's own code returned an error.
    #[error("operator '{operator}' failed: {message}")]
    Operator {
        /// The operator's name.
        operator: String,
        /// The error it returned.
        message: String,
    },
    /// A user function's error, before the runtime knows which operator it came from.
    #[error("{0}")]
    User(String),
    /// A subtask panicked.
    #[error("subtask {task} panicked: {message}")]
    Panic {
        /// The subtask, e.g. `map -> sink (2/4)`.
        task: String,
        /// The panic message.
        message: String,
    },
    /// A channel's other end went away: a neighbour subtask failed or was cancelled. A
    /// consequence of another failure, so job masters prefer any other cause over it.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// The cluster lacks the slots a job needs.
    #[error("not enough task slots: {0}")]
    NoResources(String),
    /// A job id no job has.
    #[error("unknown job id {0}")]
    UnknownJobId(String),
    /// Keyed state failed.
    #[error(transparent)]
    State(#[from] weir_state::StateError),
    /// The data plane failed.
    #[error(transparent)]
    Dataplane(#[from] weir_dataplane::DataplaneError),
    /// An actor of the runtime could not be reached or failed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A savepoint could not be taken, or a job cannot restore from the one it names.
    #[error("savepoint: {0}")]
    Savepoint(String),
    /// A sink was restored from state older than output it committed already: replaying would
    /// write that output twice, and committed output is never taken back. No restart fixes it.
    #[error("restored behind committed output: {0}")]
    RestoredBehindOutput(String),
}

impl WeirError {
    /// An error raised by a user function: `Err(WeirError::user("bad record"))`.
    pub fn user(message: impl fmt::Display) -> Self {
        WeirError::User(message.to_string())
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        WeirError::Io { context: context.to_string(), source }
    }

    /// A runtime (internal) error.
    pub fn runtime(message: impl fmt::Display) -> Self {
        WeirError::Runtime(message.to_string())
    }

    /// Names the operator an error of its own making came from (its code, its state, its
    /// files); runtime errors and errors already naming an operator are kept as they are. An
    /// I/O error stays one (from outside Weir: a restart may well fix it), naming the operator.
    pub fn in_operator(self, operator: &str) -> Self {
        match self {
            WeirError::User(message) => WeirError::Operator { operator: operator.to_owned(), message },
            WeirError::Io { context, source } => {
                WeirError::Io { context: format!("operator '{operator}' failed: {context}"), source }
            }
            e @ (WeirError::State(_) | WeirError::Argument(_)) => {
                WeirError::Operator { operator: operator.to_owned(), message: e.to_string() }
            }
            other => other,
        }
    }

    /// Whether a restart of the job could fix it: not when its cause is in what the job
    /// restores (see [`WeirError::RestoredBehindOutput`]).
    pub fn is_recoverable(&self) -> bool {
        !matches!(self, WeirError::RestoredBehindOutput(_))
    }

    /// Whether this error is only the consequence of a failure elsewhere.
    pub fn is_secondary(&self) -> bool {
        matches!(self, WeirError::Disconnected(_))
    }

    /// Where this error comes from.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            WeirError::Argument(_)
            | WeirError::UnknownJob { .. }
            | WeirError::Graph(_)
            | WeirError::Operator { .. }
            | WeirError::User(_)
            | WeirError::Savepoint(_)
            | WeirError::RestoredBehindOutput(_)
            | WeirError::Panic { .. } => ErrorDomain::User,
            WeirError::Io { .. } => ErrorDomain::External,
            _ => ErrorDomain::Internal,
        }
    }
}

impl From<String> for WeirError {
    fn from(message: String) -> Self {
        WeirError::User(message)
    }
}

impl From<&str> for WeirError {
    fn from(message: &str) -> Self {
        WeirError::User(message.to_owned())
    }
}

/// The result type of the operator API and the runtime.
pub type Result<T, E = WeirError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator's I/O error (a full disk under a file sink) is still one from outside, which
    /// a restart may fix: the JobMaster's rule for errors of the job's own code that come back
    /// after restarts does not apply to it. It used to become an operator (user) error.
    #[test]
    fn an_operators_io_error_keeps_its_domain_and_names_the_operator() {
        let io = WeirError::io("cannot write 'out/part-0-1'", std::io::Error::other("no space left on device"));
        let e = io.in_operator("sink");
        assert_eq!(e.domain(), ErrorDomain::External);
        assert_eq!(e.to_string(), "operator 'sink' failed: cannot write 'out/part-0-1': no space left on device");
        let user = WeirError::user("bad record").in_operator("parse");
        assert_eq!(
            (user.domain(), user.to_string()),
            (ErrorDomain::User, "operator 'parse' failed: bad record".into())
        );
    }
}
