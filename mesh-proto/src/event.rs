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
///
/// Deliberately exhaustive: a driver must carry out every action, so a new one is a
/// breaking change that the compiler reports, not an arm a driver skips.
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Event {
    /// A connection passed the handshake and was registered.
    ConnectionEstablished {
        /// The connection.
        conn: ConnId,
        /// The remote peer.
        peer: PeerName,
        /// Its nickname (decoded lossily from the wire bytes).
        nickname: String,
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
    /// A peer left the peers table (garbage-collected as unreachable: Go's `OnGC`).
    PeerRemoved(PeerName),
    /// The short-id mapping changed: some short id now names another peer than before,
    /// because a lower-named peer claimed it, its principal left or changed id, or a
    /// freed id was taken again (Go's `OnInvalidateShortIDs`). Whatever was looked up by
    /// short id ([`crate::Node::peer_by_short_id`]) should be looked up again. Raised
    /// once per input, however many ids changed.
    ShortIdsInvalidated,
}

impl core::fmt::Display for Event {
    /// One line for a log, e.g. "connection to 00:00:00:00:00:02(kv-2) at
    /// 127.0.0.1:6783 established (outbound)".
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let direction = |outbound: bool| if outbound { ("to", "outbound") } else { ("from", "inbound") };
        match self {
            Event::ConnectionEstablished { peer, nickname, addr, outbound, .. } => {
                let (prep, dir) = direction(*outbound);
                write!(f, "connection {prep} {peer}({nickname}) at {addr} established ({dir})")
            }
            Event::ConnectionClosed { peer, addr, outbound, reason, .. } => {
                let (prep, dir) = direction(*outbound);
                match peer {
                    Some(peer) => write!(f, "connection {prep} {peer} at {addr} closed ({dir}): {reason}"),
                    None => write!(f, "connection {prep} {addr} closed ({dir}): {reason}"),
                }
            }
            Event::PeerAdded(peer) => write!(f, "peer {peer} added"),
            Event::PeerRemoved(peer) => write!(f, "peer {peer} removed"),
            Event::ShortIdsInvalidated => write!(f, "short ids invalidated"),
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
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
    /// A version 3 topology synchronisation message was malformed.
    #[error("{0}")]
    Sync(#[from] crate::wire::sync::SyncError),
    /// A gossiper returned an error for a message from this connection.
    #[error("gossiper of channel {channel:?} failed: {error}")]
    Gossiper {
        /// The channel.
        channel: String,
        /// Its error.
        error: GossipError,
    },
    /// A topology update would have taken the table beyond
    /// [`crate::config::RecordLimits::max_peers`] entries; nothing of it was applied.
    #[error("a topology update would grow the peers table to {entries} entries; at most {max} are kept")]
    TableFull {
        /// The entries (records and placeholders) the update would have made.
        entries: usize,
        /// The bound.
        max: usize,
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
    /// Version 3: a heartbeat was not acknowledged within this time: the remote stopped
    /// reading (docs/protocol-v3.md §13).
    #[error("no heartbeat acknowledgement within {0:?}: the remote stopped reading")]
    AckTimeout(std::time::Duration),
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
    /// The application's overlay refused the connection or its overlay connection failed
    /// ([`crate::overlay`]).
    #[error("overlay: {0}")]
    Overlay(crate::overlay::OverlayError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u64) -> PeerName {
        PeerName::from_u64(n).unwrap()
    }

    #[test]
    fn events_display_in_words() {
        let established = |outbound| Event::ConnectionEstablished {
            conn: ConnId(1),
            peer: name(2),
            nickname: "kv-2".to_owned(),
            addr: "127.0.0.1:6783".to_owned(),
            outbound,
        };
        assert_eq!(
            established(true).to_string(),
            "connection to 00:00:00:00:00:02(kv-2) at 127.0.0.1:6783 established (outbound)"
        );
        assert_eq!(
            established(false).to_string(),
            "connection from 00:00:00:00:00:02(kv-2) at 127.0.0.1:6783 established (inbound)"
        );
        let closed = Event::ConnectionClosed {
            conn: ConnId(1),
            peer: Some(name(2)),
            addr: "127.0.0.1:6783".to_owned(),
            outbound: true,
            reason: CloseReason::ReceiveTimeout,
        };
        assert_eq!(
            closed.to_string(),
            "connection to 00:00:00:00:00:02 at 127.0.0.1:6783 closed (outbound): no message received for 60 s"
        );
        let refused = Event::ConnectionClosed {
            conn: ConnId(3),
            peer: None,
            addr: "10.0.0.9:40000".to_owned(),
            outbound: false,
            reason: CloseReason::Handshake(HandshakeError::WrongPassword),
        };
        assert_eq!(
            refused.to_string(),
            "connection from 10.0.0.9:40000 closed (inbound): handshake failed: wrong password: \
             the remote proved a different one (or the handshake was tampered with)"
        );
        assert_eq!(Event::PeerAdded(name(5)).to_string(), "peer 00:00:00:00:00:05 added");
        assert_eq!(Event::PeerRemoved(name(5)).to_string(), "peer 00:00:00:00:00:05 removed");
        assert_eq!(Event::ShortIdsInvalidated.to_string(), "short ids invalidated");
    }

    #[test]
    fn close_reasons_display_in_words() {
        let cases = [
            (CloseReason::DialFailed("connection refused".to_owned()), "dial failed: connection refused"),
            (CloseReason::DialTimeout(std::time::Duration::from_secs(10)), "dial timed out after 10s"),
            (
                CloseReason::Gossiper {
                    channel: "kv".to_owned(),
                    error: GossipError("bad state".to_owned()),
                },
                "gossiper of channel \"kv\" failed: bad state",
            ),
            (CloseReason::Duplicate(name(2)), "duplicate connection to 00:00:00:00:00:02"),
            (
                CloseReason::NameCollision(name(1)),
                "peer name collision: 00:00:00:00:00:01 is also used by another peer",
            ),
            (CloseReason::ConnectionLimit(64), "connection limit of 64 reached"),
            (
                CloseReason::Closed("reset".to_owned()),
                "connection closed by the remote or the network: reset",
            ),
            (CloseReason::Shutdown, "shutting down"),
            (CloseReason::Overlay(crate::overlay::OverlayError::failed("no answer")), "overlay: no answer"),
            (
                CloseReason::Frame(FrameError::TooLarge { len: 9, max: 8 }),
                "bad frame: frame of 9 bytes exceeds the limit of 8",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
