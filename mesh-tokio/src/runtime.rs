//! The tokio implementation of the driver's [`Runtime`] trait.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mesh_driver::Runtime;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

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

    fn stream_local_addr(stream: &Self::Stream) -> Option<SocketAddr> {
        stream.get_ref().local_addr().ok()
    }
}
