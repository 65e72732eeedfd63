//! Errors of the application's calls.

use crate::name::PeerName;

/// Why an application call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Our own name must not be the all-zero sentinel.
    #[error("peer name 00:00:00:00:00:00 is reserved")]
    ZeroName,
    /// The configured protocol versions are not a range within [2, 3].
    #[error("protocol versions [{min}, {max}] are not a range within the supported [2, 3]")]
    BadVersions {
        /// The configured minimum.
        min: u8,
        /// The configured maximum.
        max: u8,
    },
    /// The configured `max_frame_len` is outside [[`MIN_FRAME_LIMIT`](crate::config::MIN_FRAME_LIMIT),
    /// [`MAX_FRAME_LEN`](crate::config::MAX_FRAME_LEN)].
    #[error(
        "max_frame_len {len} is outside [{}, {}]",
        crate::config::MIN_FRAME_LIMIT,
        crate::config::MAX_FRAME_LEN
    )]
    BadFrameLimit {
        /// The configured limit.
        len: usize,
    },
    /// The configured `ack_timeout` or `receive_timeout` does not exceed the heartbeat
    /// interval (30 s), or `ack_timeout` exceeds an hour.
    #[error("{what} of {value:?} is outside ({:?}, {max:?}]", crate::config::HEARTBEAT_INTERVAL)]
    BadTimeout {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: std::time::Duration,
        /// The most it may be.
        max: std::time::Duration,
    },
    /// A gossiper is already registered under this name (or it is `topology`).
    #[error("channel {0:?} is already registered")]
    ChannelTaken(String),
    /// The destination is not reachable.
    #[error("no route to {0}")]
    NoRoute(PeerName),
    /// Unicasts to ourselves are an error, as in Go.
    #[error("cannot unicast to ourselves")]
    UnicastToSelf,
    /// The next hop has no registered connection.
    #[error("next hop {hop} towards {dest} is not connected")]
    NotConnected {
        /// The destination.
        dest: PeerName,
        /// The next hop.
        hop: PeerName,
    },
    /// The message does not fit in a frame.
    #[error("message of {len} bytes does not fit in a frame (limit {max})")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The frame limit.
        max: usize,
    },
    /// Too much is already buffered for the next hop.
    #[error("connection to {0} is congested")]
    Congested(PeerName),
    /// The node has been shut down.
    #[error("the node is shut down")]
    Shutdown,
}
