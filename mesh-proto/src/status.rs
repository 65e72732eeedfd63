//! The status snapshot (docs/protocol-v2.md §21), with every list in a deterministic order.

use bytes::Bytes;

use crate::config::Subnet;
use crate::connection::ConnId;
use crate::connector::TargetState;
use crate::name::PeerName;

/// A diagnostic snapshot of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Always `weave`.
    pub protocol: &'static str,
    /// The protocol versions we accept, lowest and highest ([2, 3] unless configured).
    pub protocol_versions: (u8, u8),
    /// Whether a password is configured (even empty).
    pub encryption: bool,
    /// Whether peers are discovered from the topology.
    pub peer_discovery: bool,
    /// Our name.
    pub name: PeerName,
    /// Our nickname.
    pub nickname: Bytes,
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
    /// Names of relay-only channels currently held.
    pub relay_channels: Vec<Bytes>,
}

/// One peer as the table holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Name.
    pub name: PeerName,
    /// Nickname.
    pub nickname: Bytes,
    /// UID (0 for a placeholder).
    pub uid: u64,
    /// Short id.
    pub short_id: u16,
    /// Version.
    pub version: u64,
    /// Its connections as reported (ours: live), by remote name.
    pub connections: Vec<PeerConnectionStatus>,
}

/// One connection in a peer's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConnectionStatus {
    /// The remote's name.
    pub name: PeerName,
    /// The remote's nickname, if known.
    pub nickname: Bytes,
    /// The address as the describing peer sees it.
    pub addr: Bytes,
    /// Whether the describing peer dialled.
    pub outbound: bool,
    /// Whether it is established.
    pub established: bool,
}

/// State of one of our connections or targets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// The address.
    pub addr: String,
    /// Whether we dial it.
    pub outbound: bool,
    /// Its state.
    pub state: ConnectionState,
    /// Human-readable detail: the peer, encryption, last error, next try.
    pub info: String,
    /// The connection id, for live connections.
    pub conn: Option<ConnId>,
    /// The negotiated protocol version (2 or 3), once the handshake is done.
    pub protocol_version: Option<u8>,
    /// What protects the connection, once the handshake is done. Its `Display` says it in
    /// words, e.g. version 3 without a password is "confidential against eavesdroppers,
    /// authenticating nothing".
    pub security: Option<crate::handshake::Security>,
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
