//! Every protocol constant and default in one place (wire.md §14, behaviour.md §9).
//!
//! Constants that are part of the protocol's observable behaviour keep Go's values so that
//! a Rust peer is indistinguishable from a Go peer on the wire. Bounds that Go lacks (a
//! send timeout, a cap on relay-only channels, a lower limit on pre-authentication
//! frames) are ours and are marked as such.

use core::time::Duration;

/// The protocol name at the start of every connection.
pub const PROTOCOL_MAGIC: [u8; 5] = *b"weave";
/// The lowest protocol version this implementation speaks.
pub const PROTOCOL_MIN_VERSION: u8 = 2;
/// The highest protocol version this implementation speaks.
pub const PROTOCOL_MAX_VERSION: u8 = 2;
/// Length of the preamble: magic, minimum version, maximum version.
pub const PREAMBLE_LEN: usize = 7;

/// The conventional listening port of a mesh peer.
pub const DEFAULT_PORT: u16 = 6783;

/// Deadline for exchanging the preamble in both directions.
pub const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for the rest of the handshake (flag, key, features), from the preamble.
pub const HANDSHAKE_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between heartbeats on a registered connection.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after which a registered connection is closed (2 × heartbeat).
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest frame body Go sends or accepts (10 MiB), sealed or not.
pub const MAX_FRAME_LEN: usize = 10 * 1024 * 1024;
/// Ours: the largest frame accepted before the remote is authenticated. The features
/// map is about 160 bytes; Go would reserve 10 MiB here for anyone who connects.
pub const MAX_HANDSHAKE_FRAME_LEN: usize = 64 * 1024;

/// Size of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Size of the session key.
pub const SESSION_KEY_LEN: usize = 32;
/// Size of an XSalsa20 nonce.
pub const NONCE_LEN: usize = 24;
/// Size of a Poly1305 tag, i.e. what sealing adds to a frame body.
pub const TAG_LEN: usize = 16;

/// Default interval of periodic full-state gossip.
pub const GOSSIP_INTERVAL: Duration = Duration::from_secs(30);
/// Delay from the first local topology change to the coalesced update.
pub const TOPOLOGY_UPDATE_DELAY: Duration = Duration::from_secs(1);
/// Delay from the first applied topology update to the deferred garbage collection.
pub const GC_DELAY: Duration = Duration::from_secs(1);
/// Coalescing window for route recalculation.
pub const ROUTES_RECALC_DELAY: Duration = Duration::from_millis(100);

/// Capacity of the inbound accept token bucket.
pub const ACCEPT_BURST: u32 = 20;
/// One new accept token per this interval.
pub const ACCEPT_TOKEN_INTERVAL: Duration = Duration::from_millis(50);

/// First reconnect back-off interval.
pub const RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Growth factor of the back-off interval, as a ratio (× 3 / 2).
pub const RETRY_GROWTH: (u32, u32) = (3, 2);
/// Cap of the back-off interval; also stored for never-retry targets.
pub const RETRY_MAX: Duration = Duration::from_secs(6 * 60);
/// A connection that outlived its scheduled try by more than this is retried at once.
pub const RETRY_RESET_AFTER: Duration = Duration::from_secs(60);

/// Number of bits in a short id.
pub const SHORT_ID_BITS: u32 = 12;
/// Number of distinct short ids.
pub const SHORT_ID_SPACE: u16 = 1 << SHORT_ID_BITS;
/// Random picks tried before scanning for a free short id.
pub const SHORT_ID_RANDOM_PICKS: u32 = 10;

/// Ours: outbound bytes of a connection must drain within this time, or it is closed.
/// Go has no send timeout at all (weaveworks/mesh#125).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Ours: the most relay-only channels (for names we have no gossiper for) kept at once.
pub const MAX_RELAY_CHANNELS: usize = 256;

/// Limits the gob decoder enforces on any stream it reads, whatever the frame size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GobLimits {
    /// Most type definitions in one stream. The protocol needs at most four.
    pub max_types: usize,
    /// Deepest nesting of composite values or definitions.
    pub max_depth: usize,
}

impl Default for GobLimits {
    fn default() -> Self {
        GobLimits { max_types: 32, max_depth: 16 }
    }
}
