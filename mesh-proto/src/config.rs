//! Every protocol constant and default in one place (docs/protocol-v2.md §13).
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
/// The highest protocol version this implementation speaks (3: ours, between Rust peers).
pub const PROTOCOL_MAX_VERSION: u8 = 3;
/// Length of the preamble: magic, minimum version, maximum version.
pub const PREAMBLE_LEN: usize = 7;

/// The conventional listening port of a mesh peer.
pub const DEFAULT_PORT: u16 = 6783;

/// Deadline for exchanging the preamble in both directions.
pub const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for the rest of the handshake (flag, key, features), from the preamble.
pub const HANDSHAKE_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Ours: deadline for the rest of a version 3 handshake (hello, confirmation,
/// features: three small flights), from the preamble.
pub const V3_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between heartbeats on a registered connection.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Silence after which a registered connection is closed (2 × heartbeat).
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest frame body Go sends or accepts (10 MiB), sealed or not.
pub const MAX_FRAME_LEN: usize = 10 * 1024 * 1024;
/// The smallest `max_frame_len` a node accepts: below it even a small mesh's topology
/// would not fit a frame.
pub const MIN_FRAME_LIMIT: usize = 4096;
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
/// Ours: a discovered address stays a target this long after the last record that
/// mentioned it is gone, so a peer refused at a connection limit can still dial the
/// peers it was referred to, and peers collected during a partition are redialled.
pub const DISCOVERY_MEMORY: Duration = Duration::from_secs(120);
/// Ours: once a peer knows as many other peers as its connection limit, discovery keeps
/// at most `limit / DISCOVERY_SHARE` outbound connections (at least one), so the mesh
/// never fills every peer's slots and a newcomer always finds room (weaveworks/weave#426).
pub const DISCOVERY_SHARE: usize = 4;
/// Ours: a connection the remote closes this soon after the handshake counts as refused
/// (a peer at its connection limit does exactly that), see `Termination::Refused`.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(5);

/// Number of bits in a short id.
pub const SHORT_ID_BITS: u32 = 12;
/// Number of distinct short ids.
pub const SHORT_ID_SPACE: u16 = 1 << SHORT_ID_BITS;
/// Random picks tried before scanning for a free short id.
pub const SHORT_ID_RANDOM_PICKS: u32 = 10;

/// Ours: a dial that has neither connected nor failed after this long is given up
/// (closed with [`crate::CloseReason::DialTimeout`]) and retried with back-off. Go sets
/// no dial timeout; the OS gives up after about two minutes (docs/protocol-v2.md §16.1).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Ours: outbound bytes of a connection must drain within this time, or it is closed.
/// Go has no send timeout at all (weaveworks/mesh#125).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Ours, version 3 links: a heartbeat must be acknowledged within this time, or the
/// remote is taken to have stopped reading and the connection is closed
/// (docs/protocol-v3.md §13).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Ours: the most relay-only channels (for names we have no gossiper for) kept at once.
pub const MAX_RELAY_CHANNELS: usize = 256;
/// Ours: the most channels a [`crate::GossiperMaker`] may make. Made channels are never
/// dropped, and their names come from the wire, so a peer inventing names must not be
/// able to grow them without end; past the bound a new name is relayed only.
pub const MAX_MADE_CHANNELS: usize = 256;

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

/// Ours: what one topology record, and the whole table, may cost (docs/protocol-v2.md
/// §17.8), on every connection whatever its version. A record beyond a bound is refused
/// and the connection that sent it closed; the defaults are far above any honest mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordLimits {
    /// Most connections one record may list. Default 10 000: a full mesh of ten
    /// thousand peers, where Go's README speaks of a hundred and a connection limit
    /// (64 in the example) keeps real records far smaller.
    pub max_connections: usize,
    /// Longest nickname, in bytes. Default 1 024: nicknames are host names, which DNS
    /// caps at 253.
    pub max_nickname_len: usize,
    /// Largest record on the wire (its summary and connection list), in bytes. Default
    /// 1 MiB: 10 000 connections with IPv6 addresses take about 600 KiB.
    pub max_record_len: usize,
    /// Most entries (records and placeholders) the table may hold. Default 20 000: four
    /// times the largest mesh the simulator runs (5 000 peers). An update that would
    /// take the table beyond it is refused whole.
    pub max_peers: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_connections: 10_000,
            max_nickname_len: 1024,
            max_record_len: 1 << 20,
            max_peers: 20_000,
        }
    }
}

/// Ours: the most bytes handed to the driver and not yet reported written before the
/// send slots stop draining (they merge instead while the peer is slow).
pub const WRITE_WINDOW: usize = 1024 * 1024;
/// Ours: the most bytes a connection may have buffered for writing before direct sends
/// (unicasts, relays) to it are refused.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Ours: a topology update is split into messages of about this size, each a complete
/// update that Go applies on its own, so a large mesh never hits the frame limit.
pub const TOPOLOGY_CHUNK: usize = 256 * 1024;

/// An IP subnet in CIDR notation, e.g. `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: std::net::IpAddr,
    prefix: u8,
}

/// A malformed subnet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid subnet {0:?}: expected an address and a prefix length, like 10.0.0.0/8")]
pub struct SubnetError(pub String);

impl Subnet {
    /// Whether `ip` lies in this subnet.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip) {
            (V4(net), V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (V6(net), V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (V6(net), V4(ip)) => prefix_eq(&net.octets(), &ip.to_ipv6_mapped().octets(), self.prefix),
            (V4(net), V6(ip)) => {
                ip.to_ipv4_mapped().is_some_and(|ip| prefix_eq(&net.octets(), &ip.octets(), self.prefix))
            }
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}

impl std::str::FromStr for Subnet {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SubnetError(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Subnet { addr, prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A node's configuration. [`Config::new`] gives Go's defaults (with the example's
/// connection limit left unlimited, as the library does).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Our peer name (not all zeros).
    pub name: crate::name::PeerName,
    /// Our nickname.
    pub nickname: bytes::Bytes,
    /// The port we listen on: direct peers given without a port and peers discovered
    /// through inbound connections are dialled on it.
    pub port: u16,
    /// `Some`, even empty: every connection is encrypted and authenticated by this
    /// password. `None`: version 2 connections are plaintext, and version 3 ones are
    /// encrypted without a password: confidential against eavesdroppers, authenticating
    /// nothing.
    pub password: Option<bytes::Bytes>,
    /// The lowest protocol version accepted: 2 (default, Go's) or 3, which refuses Go
    /// peers and version-2-only Rust peers with [`crate::wire::header::HeaderError::BelowMinimum`].
    pub min_protocol_version: u8,
    /// The highest protocol version offered: 3 (default; Rust peers that both offer it
    /// use it) or 2, to behave as a version-2-only peer.
    pub max_protocol_version: u8,
    /// Most registered connections; 0 means no limit.
    pub conn_limit: usize,
    /// Whether to dial peers learnt from the topology.
    pub peer_discovery: bool,
    /// Remotes in these subnets are told we trust them (no effect on mesh traffic).
    pub trusted_subnets: Vec<Subnet>,
    /// Interval of periodic full-state gossip.
    pub gossip_interval: Duration,
    /// Largest frame body sent or accepted after the handshake (at most 10 MiB).
    pub max_frame_len: usize,
    /// Outbound bytes that do not drain within this time close the connection.
    pub send_timeout: Duration,
    /// Version 3 links: a heartbeat not acknowledged within this time closes the
    /// connection (the remote stopped reading), whatever the traffic. The remote
    /// acknowledges with its own next heartbeat, so this must exceed the heartbeat
    /// interval (30 s); at most an hour.
    pub ack_timeout: Duration,
    /// A registered connection on which nothing arrives for this long is closed (Go: 60 s,
    /// fixed). It must exceed the heartbeat interval (30 s).
    pub receive_timeout: Duration,
    /// A dial that has not connected within this time is given up.
    pub connect_timeout: Duration,
    /// Most relay-only channels kept at once (the least recently used one is dropped).
    pub max_relay_channels: usize,
    /// Most channels a [`crate::GossiperMaker`] may make; further names are relayed only.
    pub max_made_channels: usize,
    /// What one topology record, and the table, may cost.
    pub record_limits: RecordLimits,
    /// Test builds only: mechanisms switched off on purpose (see [`crate::sabotage`]).
    #[cfg(feature = "sabotage")]
    pub sabotage: std::collections::BTreeSet<crate::sabotage::Sabotage>,
}

impl Config {
    /// The defaults for a peer with this name and nickname.
    pub fn new(name: crate::name::PeerName, nickname: impl Into<bytes::Bytes>) -> Self {
        Config {
            name,
            nickname: nickname.into(),
            port: DEFAULT_PORT,
            password: None,
            min_protocol_version: PROTOCOL_MIN_VERSION,
            max_protocol_version: PROTOCOL_MAX_VERSION,
            conn_limit: 0,
            peer_discovery: true,
            trusted_subnets: Vec::new(),
            gossip_interval: GOSSIP_INTERVAL,
            max_frame_len: MAX_FRAME_LEN,
            send_timeout: SEND_TIMEOUT,
            ack_timeout: ACK_TIMEOUT,
            receive_timeout: RECEIVE_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            max_relay_channels: MAX_RELAY_CHANNELS,
            max_made_channels: MAX_MADE_CHANNELS,
            record_limits: RecordLimits::default(),
            #[cfg(feature = "sabotage")]
            sabotage: Default::default(),
        }
    }
}

impl Config {
    /// The version range this configuration advertises, if it is one this
    /// implementation speaks (within [2, 3], minimum at most maximum).
    pub fn versions(&self) -> Option<crate::wire::header::Preamble> {
        let (min, max) = (self.min_protocol_version, self.max_protocol_version);
        let speaks = PROTOCOL_MIN_VERSION..=PROTOCOL_MAX_VERSION;
        (speaks.contains(&min) && speaks.contains(&max) && min <= max)
            .then_some(crate::wire::header::Preamble { min, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_within_two_and_three() {
        let mut c = Config::new(crate::name::PeerName::from_u64(1).unwrap(), "");
        assert_eq!(c.versions(), Some(crate::wire::header::Preamble::OURS));
        c.max_protocol_version = 2;
        assert_eq!(c.versions(), Some(crate::wire::header::Preamble::V2_ONLY));
        c.min_protocol_version = 3;
        assert_eq!(c.versions(), None);
        c.max_protocol_version = 3;
        assert_eq!(c.versions().map(|p| (p.min, p.max)), Some((3, 3)));
        c.max_protocol_version = 4;
        assert_eq!(c.versions(), None);
        c.min_protocol_version = 1;
        c.max_protocol_version = 2;
        assert_eq!(c.versions(), None);
    }

    #[test]
    fn subnets() {
        let s: Subnet = "10.1.0.0/16".parse().unwrap();
        assert!(s.contains("10.1.200.3".parse().unwrap()));
        assert!(!s.contains("10.2.0.1".parse().unwrap()));
        assert!(s.contains("::ffff:10.1.0.9".parse().unwrap()));
        let v6: Subnet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let odd: Subnet = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains("192.168.1.255".parse().unwrap()));
        assert!(!odd.contains("192.168.2.0".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("10.0.0.0".parse::<Subnet>().is_err());
        assert_eq!(s.to_string(), "10.1.0.0/16");
    }
}
