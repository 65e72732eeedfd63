//! What the node hands back: outputs for the driver, events for the application, and the
//! typed reasons a connection ends.

use bytes::Bytes;

use crate::connection::ConnId;
use crate::crypto::CryptoError;
use crate::gossip::GossipError;
use crate::handshake::HandshakeError;
use crate::name::PeerName;
use crate::wire::frame::FrameError;
use crate::wire::message::MessageError;
use crate::wire::topology::TopologyError;

/// Something the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes on the connection, after everything written before; then report
    /// progress with `handle_written`.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// Open a TCP connection to `addr` (an `ip:port`, or a `host:port` to resolve now);
    /// report `handle_dialed` or `handle_dial_failed` for `conn`.
    Dial {
        /// The id the node gave this connection.
        conn: ConnId,
        /// Where to connect.
        addr: String,
    },
    /// Close the connection (with a reset, as Go does). No further input is expected
    /// for it; a late `handle_closed` is harmless.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Tell the application.
    Event(Event),
}

/// Something the application may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A connection passed the handshake and was registered.
    ConnectionEstablished {
        /// The connection.
        conn: ConnId,
        /// The remote peer.
        peer: PeerName,
        /// Its nickname.
        nickname: Bytes,
        /// The dialled address, or the remote socket address for inbound connections.
        addr: String,
        /// Whether we dialled.
        outbound: bool,
    },
    /// A connection ended, before or after registration.
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// The remote peer, if the handshake got that far.
        peer: Option<PeerName>,
        /// Its address.
        addr: String,
        /// Whether we dialled.
        outbound: bool,
        /// Why.
        reason: CloseReason,
    },
    /// A peer entered the peers table.
    PeerAdded(PeerName),
    /// A peer left the peers table (garbage-collected as unreachable).
    PeerRemoved(PeerName),
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The driver could not connect.
    #[error("dial failed: {0}")]
    DialFailed(String),
    /// The dial neither connected nor failed within the connect timeout.
    #[error("dial timed out after {0:?}")]
    DialTimeout(std::time::Duration),
    /// The handshake failed (wrong password, version, features, timeout...).
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A frame was too large or the stream ended inside one.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// A frame failed to open (tampered, replayed, reordered).
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// A gossip envelope was malformed.
    #[error("{0}")]
    Message(#[from] MessageError),
    /// A topology update was malformed.
    #[error("{0}")]
    Topology(#[from] TopologyError),
    /// A gossiper returned an error for a message from this connection.
    #[error("gossiper of channel {channel:?} failed: {error}")]
    Gossiper {
        /// The channel.
        channel: String,
        /// Its error.
        error: GossipError,
    },
    /// A unicast on the topology channel was addressed to us (Go treats it as an error).
    #[error("unicast to us on the topology channel")]
    TopologyUnicast,
    /// No frame arrived for 60 s.
    #[error("no message received for 60 s")]
    ReceiveTimeout,
    /// Bytes we sent were not written in time: the remote stopped reading.
    #[error("outbound data did not drain in time: the remote stopped reading")]
    SendTimeout,
    /// Too much was buffered for a peer that does not read.
    #[error("too much outbound data buffered for a slow peer")]
    SendBufferFull,
    /// Another connection to the same peer won the tie-break.
    #[error("duplicate connection to {0}")]
    Duplicate(PeerName),
    /// The remote is this very process.
    #[error("connected to ourselves")]
    ConnectToSelf,
    /// The remote uses our name with another UID.
    #[error("peer name collision: {0} is also used by another peer")]
    NameCollision(PeerName),
    /// A discovered address answered with a name we do not know.
    #[error("unknown peer {0} at a discovered address")]
    UnknownPeer(PeerName),
    /// The connection limit is reached.
    #[error("connection limit of {0} reached")]
    ConnectionLimit(usize),
    /// The remote closed the connection or the socket failed.
    #[error("connection closed by the remote or the network: {0}")]
    Closed(String),
    /// The node is shutting down.
    #[error("shutting down")]
    Shutdown,
}
