//! The error type of the data plane.

/// What can go wrong in the data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataplaneError {
    /// The two ends of a shuffle channel were requested with different element types.
    #[error("the two ends of channel {channel} were requested with different types")]
    ChannelTypeMismatch {
        /// The channel, as displayed by [`crate::ChannelId`].
        channel: String,
    },
    /// One end of a shuffle channel was requested twice.
    #[error("the {end} of channel {channel} was already taken")]
    ChannelAlreadyTaken {
        /// The channel, as displayed by [`crate::ChannelId`].
        channel: String,
        /// Which end: `"sender"` or `"receiver"`.
        end: &'static str,
    },
    /// A parallelism outside `1..=max_parallelism`.
    #[error("parallelism {parallelism} is outside 1..={max_parallelism}")]
    InvalidParallelism {
        /// The parallelism asked for.
        parallelism: usize,
        /// The maximum parallelism (number of key groups) it must not exceed.
        max_parallelism: u16,
    },
    /// The other end of a channel is gone.
    #[error("the other end of the channel is closed")]
    ChannelClosed,
    /// A frame longer than the maximum, announced by a peer or about to be sent.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The frame's length in bytes.
        len: u64,
        /// The largest frame allowed.
        max: usize,
    },
    /// A frame or message that does not decode; says what and why.
    #[error("malformed {0}")]
    Malformed(String),
    /// A message of a protocol version this build does not speak.
    #[error("unsupported protocol version {got} (this node speaks version {supported})")]
    UnsupportedVersion {
        /// The version the message carries.
        got: u16,
        /// The version this build speaks.
        supported: u16,
    },
    /// A certificate, key or TLS configuration problem.
    #[error("tls: {0}")]
    Tls(String),
    /// A connection could not be made or was refused.
    #[error("cannot connect to {peer}: {reason}")]
    Connect {
        /// The peer's address.
        peer: String,
        /// Why the connection failed.
        reason: String,
        /// The TLS handshake failed: the peer's certificate or this node's is not of the
        /// cluster, and trying again will not change that (unlike an unreachable peer).
        handshake: bool,
    },
    /// Stream or connection I/O failed; says what was being done.
    #[error("i/o failed while {0}")]
    Io(String),
}

/// The result type of the data plane.
pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;
