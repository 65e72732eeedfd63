//! # mesh-async-std
//!
//! The mesh on async-io, the reactor and timers under both smol and async-std (which is
//! discontinued and built on the same pieces), so it runs under either, or under any
//! executor: spawning is injectable and defaults to smol's global executor.
//!
//! smol's global executor runs on one thread unless `SMOL_THREADS` says otherwise; with
//! encrypted traffic, sealing and opening then share one core. Give it more threads, or
//! hand the mesh a multi-threaded executor with [`AsyncIo::with_spawner`] (the
//! `bench-smol` example does), to use every core as tokio's default runtime does.
//!
//! The API is mesh-tokio's, from the same shared driver (`mesh-driver`):
//!
//! ```
//! use mesh_async_std::counter::Counter;
//! use mesh_async_std::{MeshBuilder, PeerName};
//!
//! smol::block_on(async {
//!     let name: PeerName = "00:00:00:00:00:01".parse().unwrap();
//!     let mut builder = MeshBuilder::new(name).listen("127.0.0.1:0".parse().unwrap());
//!     let counter = Counter::new(name);
//!     let channel = builder.channel("default", counter.gossiper());
//!     let mesh = builder.start().await.unwrap();
//!     channel.broadcast(counter.increment()).await.unwrap();
//!     assert_eq!(mesh.status().await.unwrap().name, name);
//!     mesh.shutdown().await.unwrap();
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant as StdInstant;

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

/// A task handed to a spawner.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The async-io runtime, with the executor that runs the mesh's tasks.
#[derive(Clone)]
pub struct AsyncIo {
    spawner: Arc<dyn Fn(Task) + Send + Sync>,
}

impl AsyncIo {
    /// Runs the mesh's tasks with `spawn` (for example an `async_executor::Executor`, or
    /// `async_std::task::spawn`).
    pub fn with_spawner(spawn: impl Fn(Task) + Send + Sync + 'static) -> Self {
        AsyncIo { spawner: Arc::new(spawn) }
    }
}

impl Default for AsyncIo {
    /// smol's global executor.
    fn default() -> Self {
        AsyncIo::with_spawner(|task| smol::spawn(task).detach())
    }
}

impl fmt::Debug for AsyncIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncIo").finish_non_exhaustive()
    }
}

impl Runtime for AsyncIo {
    type Stream = async_net::TcpStream;
    type Listener = async_net::TcpListener;

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        (self.spawner)(Box::pin(fut));
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        async_net::TcpListener::bind(addr).await
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, a) = listener.accept().await?;
        s.set_nodelay(true)?;
        Ok((s, a))
    }

    async fn connect(&self, addr: String) -> io::Result<Self::Stream> {
        let s = async_net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    async fn sleep_until(&self, deadline: StdInstant) {
        async_io::Timer::at(deadline).await;
    }

    fn stream_local_addr(stream: &Self::Stream) -> Option<SocketAddr> {
        stream.local_addr().ok()
    }
}

/// A builder for a [`Mesh`] on async-io (`MeshBuilder::new(name)` uses smol's executor;
/// `MeshBuilder::with_runtime(AsyncIo::with_spawner(..), name)` another).
pub type MeshBuilder = mesh_driver::MeshBuilder<AsyncIo>;
/// A running mesh peer on async-io.
pub type Mesh = mesh_driver::Mesh<AsyncIo>;
/// A gossip channel of a mesh on async-io.
pub type Channel<D> = mesh_driver::Channel<D, AsyncIo>;

/// The README's code examples (tokio and smol ones; this crate's tests have both
/// runtimes), compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
