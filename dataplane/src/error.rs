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
}

/// The result type of the data plane.
pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;
