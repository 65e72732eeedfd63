//! # mesh-proto
//!
//! The sans-IO core of a gossip mesh that speaks protocol version 2 of
//! weaveworks/mesh, byte for byte, so a Rust peer can join a mesh of unmodified Go peers.
//!
//! The whole protocol is one deterministic state machine, [`Node`]. It never touches a
//! socket, a clock, a thread or the operating system's randomness: a driver (the tokio
//! and async-io adapters, the simulator, a fuzzer) owns those and feeds the node.
//!
//! ## Inputs
//!
//! | call | when |
//! |---|---|
//! | [`Node::handle_accepted`] | a listener accepted a TCP connection; returns its [`ConnId`] |
//! | [`Node::handle_dialed`] / [`Node::handle_dial_failed`] | a dial the node asked for connected or failed |
//! | [`Node::handle_data`] | bytes were read from a connection |
//! | [`Node::handle_written`] | the socket took `n` more bytes of what [`Output::Transmit`] handed over |
//! | [`Node::handle_closed`] | the remote closed the connection or it failed |
//! | [`Node::handle_timeout`] | the time [`Node::poll_timeout`] asked for has come |
//! | application calls | [`Node::initiate_connections`], [`Node::register_channel`], [`Node::broadcast`], [`Node::gossip`], [`Node::unicast`], [`Node::shutdown`], [`Node::status`] |
//!
//! ## Outputs: drain after every input
//!
//! After each input, call [`Node::poll_output`] until it returns `None`, and act on each
//! [`Output`] in order: write [`Output::Transmit`] bytes after everything written before
//! on that connection, start an [`Output::Dial`] and report its result, reset the
//! connection on [`Output::Close`], hand [`Output::Event`]s to the application. Then ask
//! [`Node::poll_timeout`] when to call [`Node::handle_timeout`] next (`None`: never,
//! the node is shut down with nothing left open). Outputs left undrained are not lost,
//! but their order with the next input's is the driver's problem.
//!
//! ## Back-pressure: `handle_written`
//!
//! The node counts bytes handed over and not yet reported written. It builds no more
//! frames for a connection while its write window is full, merges what waits into one
//! item per send slot instead of queueing, and closes a connection whose bytes do not
//! drain within the send timeout ([`CloseReason::SendTimeout`]). A driver must report
//! every write, partial ones included, or its peers look like slow readers.
//!
//! ## Time and randomness
//!
//! Time is always an argument, an [`Instant`] on any monotonic clock; it must never go
//! backwards. Calling [`Node::handle_timeout`] early or more often than asked is
//! harmless: only what is due runs. Every protocol deadline (handshake, dial, receive,
//! heartbeat, send, periodic gossip, back-off) is kept in the node; a driver holds none.
//! All randomness comes from the one generator seeded by [`Node::new`]'s `seed`: given
//! the same seed and the same inputs, a node produces the same outputs, byte for byte.
//!
//! ## Gossipers
//!
//! A [`Gossiper`] handles one channel's messages. Its callbacks run inside the `Node`
//! call that delivered the message, on the driver's thread. A callback must return
//! promptly and must not call into the node or wait for anything that needs the node to
//! make progress (for example awaiting a send on the mesh from inside `on_unicast`):
//! the node is busy with the call that invoked it. Hand such work to another task. An
//! error returned by a callback closes the connection that delivered the message
//! ([`CloseReason::Gossiper`]), as in Go.
//!
//! ## A minimal driver loop
//!
//! Two nodes wired in memory: `a` dials `b`, and bytes are shuttled between them until
//! both have registered the connection.
//!
//! ```
//! use std::collections::BTreeMap;
//! use mesh_proto::{Config, ConnId, Event, Instant, Node, Output, PeerName};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::ZERO;
//! let name = |n| PeerName::from_u64(n).expect("not zero");
//! let mut nodes = [
//!     Node::new(Config::new(name(1), "a"), Node::seed_from_u64(1), now)?,
//!     Node::new(Config::new(name(2), "b"), Node::seed_from_u64(2), now)?,
//! ];
//! nodes[0].initiate_connections(&["10.0.0.2:6783".to_owned()], false, now);
//! // The in-memory sockets: (node, its connection) -> (other node, its connection).
//! let mut wires: BTreeMap<(usize, ConnId), (usize, ConnId)> = BTreeMap::new();
//! let mut established = 0;
//! let mut busy = true;
//! while busy {
//!     busy = false;
//!     for me in 0..2 {
//!         // Drain after every input: inputs below push more outputs, drained here too.
//!         while let Some(out) = nodes[me].poll_output() {
//!             busy = true;
//!             match out {
//!                 Output::Dial { conn, .. } => {
//!                     let theirs = nodes[1 - me].handle_accepted("10.0.0.1:40000".parse()?, now);
//!                     wires.insert((me, conn), (1 - me, theirs));
//!                     wires.insert((1 - me, theirs), (me, conn));
//!                     nodes[me].handle_dialed(conn, now);
//!                 }
//!                 Output::Transmit { conn, data } => {
//!                     nodes[me].handle_written(conn, data.len(), now);
//!                     let (peer, theirs) = wires[&(me, conn)];
//!                     nodes[peer].handle_data(theirs, &data, now);
//!                 }
//!                 Output::Close { conn } => {
//!                     if let Some((peer, theirs)) = wires.remove(&(me, conn)) {
//!                         nodes[peer].handle_closed(theirs, "reset", now);
//!                     }
//!                 }
//!                 Output::Event(Event::ConnectionEstablished { .. }) => established += 1,
//!                 Output::Event(_) => {}
//!             }
//!         }
//!     }
//!     // A real driver now sleeps until the earliest `poll_timeout()` and calls
//!     // `handle_timeout`; this one stops when nothing moves.
//! }
//! assert_eq!(established, 2);
//! assert_eq!(nodes[0].connected_peers(), [name(2)]);
//! # Ok(())
//! # }
//! ```
//!
//! ## What else is public
//!
//! - [`config`]: [`Config`] and every constant and default, in one place.
//! - [`wire`]: the version 2 byte codec (gob, frames, header, features, messages,
//!   topology), pure and bounded; for tools that read or write the protocol.
//! - [`counter`]: a grow-only counter CRDT and its gossiper, the example application.
//! - [`inspect`]: the read-only view a simulator or test takes of a node's table, routes
//!   and queues ([`Node::inspect`]).
//! - With the `serde` feature, `Serialize` and `Deserialize` for [`Status`] and its parts,
//!   [`Stats`], [`PeerName`] (as its text form), [`ConnId`], [`Subnet`] (as its text
//!   form), [`Security`] and [`Instant`]; `Serialize` for [`Event`] and [`CloseReason`]
//!   (some of the errors a close reason carries name static strings, which cannot be
//!   deserialized).
//! - `fuzzing` (only with `cfg(fuzzing)`, as cargo-fuzz builds, or the crate's own
//!   `test-internals` feature): the handshake, sealing and topology internals, for fuzz
//!   targets and this crate's tests and benches. It is not a stable API.

#![forbid(unsafe_code)]

pub mod config;
mod connection;
mod connection_list;
mod connector;
pub mod counter;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod crypto;
mod event;
mod gossip;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod handshake;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod key_schedule;
mod members;
mod name;
mod node;
pub mod overlay;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod pake;
mod random;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod routes;
#[cfg(feature = "sabotage")]
pub mod sabotage;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod sealing;
// Without the feature the names exist only so that the core's checks compile to `false`.
#[cfg(not(feature = "sabotage"))]
#[allow(dead_code, unreachable_pub)]
mod sabotage;
#[cfg(feature = "serde")]
mod serde_text;
mod status;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod sync;
mod time;
// Public through `fuzzing` only: unreachable (and partly unused) in an ordinary build.
#[cfg_attr(not(any(fuzzing, feature = "test-internals")), allow(unreachable_pub, dead_code))]
mod topology;
pub mod version_growth;
pub mod wire;

pub use config::{Config, Subnet, SubnetError};
pub use connection::ConnId;
pub use connector::AddressError;
pub use crypto::CryptoError;
pub use event::{CloseReason, Event, Output};
pub use gossip::{Context, GossipData, GossipError, Gossiper, GossiperMaker, MadeChannel};
pub use handshake::{HandshakeError, Security, Stage};
pub use members::Member;
pub use name::{PeerName, PeerNameError, TextReason};
pub use node::{ChannelHandle, Inspect, Node, NodeError, Stats, TOPOLOGY_CHANNEL};
pub use overlay::{Overlay, OverlayConnection, OverlayControl, OverlayError, OverlayParams};
pub use pake::PakeError;
pub use status::{
    ConnectionState, ConnectionStatus, NextTry, PeerConnectionStatus, PeerDescription, PeerStatus, Status,
};
pub use time::Instant;

/// The read-only view of a node's internals: [`Node::inspect`] and the record types it
/// hands out. For simulators, tests and diagnostics; nothing here drives a node.
pub mod inspect {
    pub use crate::connection_list::{Addr, AddrText, Connection, ConnectionList};
    pub use crate::node::Inspect;
    pub use crate::routes::fanout;
    pub use crate::topology::{Peer, RemoteConnection};
}

/// Internals for fuzz targets (`cfg(fuzzing)`, set by cargo-fuzz) and this crate's own
/// tests and benches (the `test-internals` feature, enabled only by its dev-dependency
/// on itself). Not a stable API.
#[cfg(any(fuzzing, feature = "test-internals"))]
pub mod fuzzing {
    /// Key agreement, session keys, sealing and nonces.
    pub mod crypto {
        pub use crate::crypto::*;
    }
    /// One connection's introduction as a state machine over bytes.
    pub mod handshake {
        pub use crate::handshake::*;
    }
    /// Version 3's key schedule.
    pub mod key_schedule {
        pub use crate::key_schedule::*;
    }
    /// Version 3's key exchange.
    pub mod pake {
        pub use crate::pake::*;
    }
    /// Frame sealing of either version.
    pub mod sealing {
        pub use crate::sealing::*;
    }
    /// Routes computed from a peers table.
    pub mod routes {
        pub use crate::routes::*;
    }
    /// The peers table.
    pub mod topology {
        pub use crate::topology::*;
    }
    /// Version 3's table digests.
    pub mod sync {
        pub use crate::sync::*;
    }
}
