//! The status snapshot (docs/protocol-v2.md §21), with every list in a deterministic order.

use core::fmt;
use std::collections::BTreeMap;

use crate::config::Subnet;
use crate::connection::ConnId;
use crate::connector::TargetState;
use crate::handshake::Security;
use crate::name::PeerName;
use crate::time::Instant;

/// A diagnostic snapshot of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Status {
    /// Always `weave`.
    pub protocol: String,
    /// The protocol versions we accept, lowest and highest ([2, 3] unless configured).
    pub protocol_versions: (u8, u8),
    /// Whether a password is configured (even empty).
    pub encryption: bool,
    /// Whether peers are discovered from the topology.
    pub peer_discovery: bool,
    /// Our name.
    pub name: PeerName,
    /// Our nickname.
    pub nickname: String,
    /// Our UID.
    pub uid: u64,
    /// Our short id.
    pub short_id: u16,
    /// Our version.
    pub version: u64,
    /// The port we listen on.
    pub port: u16,
    /// Every record of the peers table, by name.
    pub peers: Vec<PeerStatus>,
    /// (destination, next hop) over established, symmetric links; the hop is all zeros
    /// for ourselves.
    pub unicast_routes: Vec<(PeerName, PeerName)>,
    /// (source, next hops) of the established broadcast routes computed so far.
    pub broadcast_routes: Vec<(PeerName, Vec<PeerName>)>,
    /// Our connections and the targets still being worked on, by address.
    pub connections: Vec<ConnectionStatus>,
    /// Connections ended, not counting connections to ourselves.
    pub terminations: u64,
    /// The direct peers as the user gave them.
    pub targets: Vec<String>,
    /// The trusted subnets.
    pub trusted_subnets: Vec<Subnet>,
    /// Names of relay-only channels currently held (decoded lossily from the wire bytes).
    pub relay_channels: Vec<String>,
    /// The overlay's diagnostics ([`crate::Overlay::diagnostics`]); `None` without an
    /// overlay (Go's null overlay).
    pub overlay: Option<BTreeMap<String, String>>,
}

/// One peer as the table holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PeerStatus {
    /// Name.
    pub name: PeerName,
    /// Nickname (decoded lossily from the wire bytes).
    pub nickname: String,
    /// UID (0 for a placeholder).
    pub uid: u64,
    /// Short id.
    pub short_id: u16,
    /// Version.
    pub version: u64,
    /// Its connections as reported (ours: live), by remote name.
    pub connections: Vec<PeerConnectionStatus>,
}

/// A peer as Go's `Peers.Descriptions` describes it: who it is and how connected, without
/// its connection list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PeerDescription {
    /// Name.
    pub name: PeerName,
    /// Nickname (decoded lossily from the wire bytes).
    pub nickname: String,
    /// UID (0 for a placeholder).
    pub uid: u64,
    /// Version.
    pub version: u64,
    /// Short id, if it has one.
    pub short_id: Option<u16>,
    /// How many connections its record lists (ours: live).
    pub connections: usize,
    /// Whether it is us.
    pub is_self: bool,
}

/// One connection in a peer's record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PeerConnectionStatus {
    /// The remote's name.
    pub name: PeerName,
    /// The remote's nickname, if known (empty if not; decoded lossily).
    pub nickname: String,
    /// The address as the describing peer sees it (decoded lossily).
    pub addr: String,
    /// Whether the describing peer dialled.
    pub outbound: bool,
    /// Whether it is established.
    pub established: bool,
}

/// State of one of our connections or targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum ConnectionState {
    /// Registered and established.
    Established,
    /// Handshaking, or registered but not yet established.
    Pending,
    /// Being dialled.
    Connecting,
    /// Being dialled again after an error.
    Retrying,
    /// Waiting after an error until the next try (or never).
    Failed,
    /// Waiting for its first try.
    Waiting,
}

/// A connection or target.
///
/// [`ConnectionStatus::go_info`] gives the one-line detail Go's status shows for it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ConnectionStatus {
    /// The address.
    pub addr: String,
    /// Whether we dial it.
    pub outbound: bool,
    /// Its state.
    pub state: ConnectionState,
    /// The connection id, for live connections.
    pub conn: Option<ConnId>,
    /// The negotiated protocol version (2 or 3), once the handshake is done.
    pub protocol_version: Option<u8>,
    /// What protects the connection, once the handshake is done. Its `Display` says it in
    /// words, e.g. version 3 without a password is "confidential against eavesdroppers,
    /// authenticating nothing".
    pub security: Option<Security>,
    /// Whether both ends trust each other (each one's address is in the other's trusted
    /// subnets), once the handshake is done: an overlay may then skip its own
    /// encryption, and Go calls the connection "unencrypted" (mesh traffic stays sealed).
    pub trusted: bool,
    /// The remote peer's name, once the handshake is done.
    pub remote_name: Option<PeerName>,
    /// The remote peer's nickname (decoded lossily), once the handshake is done.
    pub remote_nickname: Option<String>,
    /// For a target: why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// For a target: when it is tried next. `None` for live connections.
    pub next_try: Option<NextTry>,
    /// The overlay connection's attributes ([`crate::OverlayConnection::attrs`]); empty
    /// without an overlay.
    pub overlay: BTreeMap<String, String>,
}

/// When a target is tried next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum NextTry {
    /// At this time on the driver's clock.
    At(Instant),
    /// Never (a discovered address that failed, or a target given up on).
    Never,
}

impl fmt::Display for NextTry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextTry::At(at) => write!(f, "retry at {at}"),
            NextTry::Never => f.write_str("never retry"),
        }
    }
}

impl ConnectionStatus {
    /// The detail Go's status shows for this row: for an established connection its
    /// encryption and the remote (`"encrypted none 00:00:00:00:00:02(kv-2)"`, with
    /// `"unencrypted"` when both ends trust each other and `"v3"` marks for version 3;
    /// `none` is the overlay's name, an overlay's own `name` attribute where it has one),
    /// for a target its last error and next try (`"wrong password..., retry at 5s"`),
    /// and nothing for a connection still handshaking.
    pub fn go_info(&self) -> String {
        if self.state == ConnectionState::Established {
            if let (Some(security), Some(name)) = (self.security, self.remote_name) {
                let enc = match (security, self.trusted) {
                    (Security::Plaintext, _) => "",
                    (Security::V2Password, false) => "encrypted ",
                    (Security::V2Password, true) => "unencrypted ",
                    (Security::V3Password, false) => "encrypted v3 ",
                    (Security::V3Password, true) => "unencrypted v3 ",
                    (Security::V3Unauthenticated, _) => "encrypted v3 unauthenticated ",
                };
                let nickname = self.remote_nickname.as_deref().unwrap_or_default();
                // The overlay's name, as Go shows its `Attrs()["name"]`; "none" without.
                let overlay = self.overlay.get("name").map_or("none", String::as_str);
                return format!("{enc}{overlay} {name}({nickname})");
            }
        }
        match (&self.last_error, self.next_try) {
            (_, None) => String::new(),
            (Some(e), Some(next)) => format!("{e}, {next}"),
            (None, Some(next)) => next.to_string(),
        }
    }
}

pub(crate) fn target_state(state: TargetState, has_error: bool) -> Option<ConnectionState> {
    match state {
        TargetState::Waiting if has_error => Some(ConnectionState::Failed),
        TargetState::Waiting => Some(ConnectionState::Waiting),
        TargetState::Attempting if has_error => Some(ConnectionState::Retrying),
        TargetState::Attempting => Some(ConnectionState::Connecting),
        TargetState::Connected | TargetState::Suspended => None,
    }
}
