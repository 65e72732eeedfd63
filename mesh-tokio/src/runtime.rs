//! What the driver needs from an async runtime, and its tokio implementation.
//!
//! The driver loop is written against this trait only: spawning, listening and
//! accepting, connecting, sleeping until an instant. Streams are the `futures-io`
//! `AsyncRead`/`AsyncWrite` traits, so any runtime's sockets fit.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

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
}

/// The tokio runtime (the one the caller is running in).
#[derive(Clone, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Stream = Compat<tokio::net::TcpStream>;
    type Listener = tokio::net::TcpListener;

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        tokio::spawn(fut);
    }

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        tokio::net::TcpListener::bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (s, a) = listener.accept().await?;
        s.set_nodelay(true)?;
        Ok((s.compat(), a))
    }

    async fn connect(&self, addr: String) -> io::Result<Self::Stream> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s.compat())
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(deadline.into())
    }
}
