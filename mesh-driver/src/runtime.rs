//! What the driver needs from an async runtime.
//!
//! The driver loop is written against this trait only: spawning, listening and
//! accepting, connecting, sleeping until an instant. Streams are the `futures-io`
//! `AsyncRead`/`AsyncWrite` traits, so any runtime's sockets fit. Each adapter crate
//! implements it in a few lines. Two things are deliberately not in it: a connect
//! timeout (the driver races `connect` against `sleep_until`, so every runtime gets the
//! same behaviour) and a clock (the driver reads `std::time::Instant`, the clock tokio's
//! and async-io's timers use, and hands the node instants relative to its start).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

/// An async runtime the mesh can run on.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected TCP stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;

    /// Runs `fut` in the background.
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F);
    /// Binds a listener.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    /// The listener's bound address.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// Accepts one connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// Connects to `addr` (`ip:port`, or `host:port` resolved now).
    fn connect(&self, addr: String) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
    /// The stream's local address, for an overlay ([`mesh_proto::OverlayParams`]); `None`
    /// if the runtime cannot tell.
    fn stream_local_addr(stream: &Self::Stream) -> Option<SocketAddr> {
        let _ = stream;
        None
    }
}
