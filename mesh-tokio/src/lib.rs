//! # mesh-tokio
//!
//! A gossip mesh on tokio: membership, unicast to any peer (routed over several hops),
//! broadcast to all, and eventually-consistent state, wire-compatible with the Go
//! library weaveworks/mesh (protocol version 2) so Rust services can join Go meshes.
//!
//! The protocol lives in [`mesh_proto::Node`] and the driver loop in `mesh-driver`; this
//! crate is the tokio implementation of the driver's runtime trait and the API with the
//! runtime fixed: a listener, one reader and one writer task per connection, and one task
//! that owns the node and performs its outputs in order.
//!
//! ```
//! use mesh_tokio::counter::Counter;
//! use mesh_tokio::{MeshBuilder, PeerName};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_tokio::Error> {
//! let name: PeerName = "00:00:00:00:00:01".parse().unwrap();
//! let mut builder = MeshBuilder::new(name)
//!     .nickname("first")
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .password("a long shared secret");
//! // A G-counter on channel "default", byte-compatible with Go's example app.
//! let counter = Counter::new(name);
//! let channel = builder.channel("default", counter.gossiper());
//! let mesh = builder.start().await?;
//!
//! channel.broadcast(counter.increment()).await?;
//! let status = mesh.status().await?;
//! assert_eq!(status.name, name);
//! mesh.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod runtime;

/// Channel names, passwords and payloads.
pub use bytes::Bytes;
pub use mesh_driver::{Error, EventItem, Events, MembersWatch, Runtime, Snapshot};
/// The sans-IO core, for anything of its API not re-exported here by name (through
/// [`Mesh::with_node`] the whole [`Node`] is reachable).
pub use mesh_proto as proto;
/// The grow-only counter CRDT and its gossiper, the example application.
pub use mesh_proto::counter;
/// The overlay extension point (Go's `Overlay`) and the ready liveness overlay.
pub use mesh_proto::overlay;
pub use mesh_proto::{
    AddressError, ChannelHandle, CloseReason, Config, ConnId, ConnectionState, ConnectionStatus, Context,
    Event, GossipData, GossipError, Gossiper, GossiperMaker, HandshakeError, Instant, MadeChannel, Member,
    NextTry, Node, NodeError, Overlay, OverlayConnection, OverlayControl, OverlayError, OverlayParams,
    PeerConnectionStatus, PeerDescription, PeerName, PeerNameError, PeerStatus, Security, Stats, Status,
    Subnet, SubnetError,
};
pub use runtime::Tokio;

/// A builder for a [`Mesh`] on tokio (`MeshBuilder::new(name)`).
pub type MeshBuilder = mesh_driver::MeshBuilder<Tokio>;
/// A running mesh peer on tokio.
pub type Mesh = mesh_driver::Mesh<Tokio>;
/// A gossip channel of a mesh on tokio.
pub type Channel<D> = mesh_driver::Channel<D, Tokio>;
