//! The application API: a builder, the running [`Mesh`], channel handles, events.
//! Every call is forwarded to the node task; nothing here decides anything about the
//! protocol.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::Stream;
use mesh_proto::AddressError;
use mesh_proto::Subnet;
use mesh_proto::{
    ChannelHandle, Config, Event, GossipData, Gossiper, Instant, Node, NodeError, PeerName, Status,
};
use tracing::{Instrument, info, info_span};

use crate::driver::{self, Call, Driver, EVENT_QUEUE, Input, Wiring};
use crate::runtime::Runtime;

/// Why a mesh call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The protocol core refused the call.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The operating system's random generator failed.
    #[error("cannot seed the random generator: {0}")]
    Random(String),
    /// The mesh has shut down.
    #[error("the mesh has shut down")]
    Stopped,
}

type Registration = Box<dyn FnOnce(&mut Node) -> Result<(), NodeError> + Send>;

/// Configures and starts a [`Mesh`].
pub struct MeshBuilder<R: Runtime> {
    rt: R,
    config: Config,
    listen: SocketAddr,
    peers: Vec<String>,
    wiring: Wiring<R::Stream>,
    registrations: Vec<Registration>,
}

impl<R: Runtime + Default> MeshBuilder<R> {
    /// A builder for a peer called `name`, listening on `0.0.0.0:6783`, plaintext, with
    /// peer discovery and no connection limit.
    pub fn new(name: PeerName) -> Self {
        Self::with_runtime(R::default(), name)
    }
}

impl<R: Runtime> MeshBuilder<R> {
    /// A builder for a peer called `name` on runtime `rt`, listening on `0.0.0.0:6783`,
    /// plaintext, with peer discovery and no connection limit.
    pub fn with_runtime(rt: R, name: PeerName) -> Self {
        MeshBuilder {
            rt,
            config: Config::new(name, name.to_string()),
            listen: SocketAddr::from(([0, 0, 0, 0], mesh_proto::config::DEFAULT_PORT)),
            peers: Vec::new(),
            wiring: Wiring::new(),
            registrations: Vec::new(),
        }
    }

    /// Our nickname (display only).
    pub fn nickname(mut self, nickname: impl Into<String>) -> Self {
        self.config.nickname = Bytes::from(nickname.into());
        self
    }

    /// Where to listen; port 0 picks a free port ([`Mesh::local_addr`] tells which).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Encrypts and authenticates every connection with this shared password (an empty
    /// one is a password too: it encrypts, as Go does, and anyone can guess it).
    ///
    /// Between two Rust peers (protocol version 3) the password is checked by SPAKE2:
    /// someone who does not know it learns whether one guess was right per handshake,
    /// and a recording lets them test no other guess offline. With Go peers (version 2)
    /// anyone who completes one handshake can test guesses offline: choose a long random
    /// password. Without a password, version 3 connections are still encrypted:
    /// confidential against eavesdroppers, authenticating nothing.
    pub fn password(mut self, password: impl Into<Bytes>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// The lowest protocol version to accept (default 2). With 3, Go peers and
    /// version-2-only peers are refused
    /// ([`HeaderError::BelowMinimum`](mesh_proto::wire::header::HeaderError::BelowMinimum)),
    /// and nobody in the middle can force a connection down to version 2.
    ///
    /// ```
    /// # use mesh_driver::MeshBuilder;
    /// # fn doc<R: mesh_driver::Runtime>(b: MeshBuilder<R>) {
    /// let b = b.password("a long random secret").min_protocol_version(3);
    /// assert_eq!(b.config().min_protocol_version, 3);
    /// # }
    /// ```
    pub fn min_protocol_version(mut self, version: u8) -> Self {
        self.config.min_protocol_version = version;
        self
    }

    /// The highest protocol version to offer (default 3). With 2 the peer behaves as a
    /// version-2-only peer, as before version 3 existed (for tests and mixed meshes).
    /// [`MeshBuilder::start`] refuses a range outside [2, 3].
    pub fn max_protocol_version(mut self, version: u8) -> Self {
        self.config.max_protocol_version = version;
        self
    }

    /// At most this many connections (0: no limit).
    pub fn connection_limit(mut self, limit: usize) -> Self {
        self.config.conn_limit = limit;
        self
    }

    /// Whether to connect to peers learnt from the topology (default: yes).
    pub fn peer_discovery(mut self, on: bool) -> Self {
        self.config.peer_discovery = on;
        self
    }

    /// Subnets whose peers we tell that we trust them.
    pub fn trusted_subnets(mut self, subnets: impl IntoIterator<Item = Subnet>) -> Self {
        self.config.trusted_subnets = subnets.into_iter().collect();
        self
    }

    /// Interval of periodic full-state gossip (default 30 s).
    pub fn gossip_interval(mut self, interval: Duration) -> Self {
        self.config.gossip_interval = interval;
        self
    }

    /// How long a dial may take before the node gives up on it and retries later
    /// (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Peers to connect to at start (`host`, `host:port`, `ip`, `[v6]:port`).
    pub fn peers<S: Into<String>>(mut self, peers: impl IntoIterator<Item = S>) -> Self {
        self.peers.extend(peers.into_iter().map(Into::into));
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Registers a gossip channel, before any connection exists, so nothing sent on it
    /// is missed. The handle works once the mesh has started.
    pub fn channel<G: Gossiper>(&mut self, name: impl Into<Bytes>, gossiper: G) -> Channel<G::Data, R> {
        let name = name.into();
        let handle = ChannelHandle::<G::Data>::named(name.clone());
        self.registrations.push(Box::new(move |node| node.register_channel(name, gossiper).map(|_| ())));
        Channel { handle, tx: self.wiring.input_tx.clone(), _rt: PhantomData }
    }

    /// Binds the listener, starts the node task, and dials the configured peers.
    pub async fn start(mut self) -> Result<Mesh<R>, Error> {
        let listener =
            self.rt.bind(self.listen).await.map_err(|source| Error::Bind { addr: self.listen, source })?;
        let local_addr =
            R::local_addr(&listener).map_err(|source| Error::Bind { addr: self.listen, source })?;
        // Peers found through inbound connections are dialled on our port.
        self.config.port = local_addr.port();
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Random(e.to_string()))?;
        let origin = StdInstant::now();
        let name = self.config.name;
        let mut node = Node::new(self.config, seed, Instant::ZERO)?;
        for register in self.registrations {
            register(&mut node)?;
        }
        if !self.peers.is_empty() {
            for e in node.initiate_connections(&self.peers, false, Instant::ZERO) {
                tracing::warn!(error = %e, "ignoring peer");
            }
        }
        let span = info_span!("mesh", peer = %name);
        let w = &self.wiring;
        let acceptor = driver::accept_loop(
            w.guard.clone(),
            listener,
            w.input_tx.clone(),
            w.stop.clone(),
            self.rt.clone(),
        );
        self.rt.spawn(acceptor.instrument(span.clone()));
        let d = Driver::new(self.rt.clone(), node, origin, w);
        self.rt.spawn(d.run().instrument(span.clone()));
        span.in_scope(|| info!(%local_addr, "mesh started"));
        let Wiring { input_tx, all_done, .. } = self.wiring;
        Ok(Mesh { name, local_addr, tx: input_tx, all_done })
    }
}

/// A running mesh peer. Cloning gives another handle to the same peer.
pub struct Mesh<R: Runtime> {
    name: PeerName,
    local_addr: SocketAddr,
    tx: async_channel::Sender<Input<R::Stream>>,
    all_done: async_channel::Receiver<()>,
}

impl<R: Runtime> Clone for Mesh<R> {
    fn clone(&self) -> Self {
        Mesh {
            name: self.name,
            local_addr: self.local_addr,
            tx: self.tx.clone(),
            all_done: self.all_done.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Mesh<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("name", &self.name).field("local_addr", &self.local_addr).finish()
    }
}

/// Runs `f` on the node task and returns its result.
async fn call<S, T: Send + 'static>(
    tx: &async_channel::Sender<Input<S>>,
    f: impl FnOnce(&mut Node, Instant) -> T + Send + 'static,
) -> Result<T, Error> {
    let (reply, rx) = async_channel::bounded(1);
    let call: Call = Box::new(move |node, now| {
        let _ = reply.try_send(f(node, now));
    });
    tx.send(Input::Call(call)).await.map_err(|_| Error::Stopped)?;
    rx.recv().await.map_err(|_| Error::Stopped)
}

impl<R: Runtime> Mesh<R> {
    /// Our peer name.
    pub fn name(&self) -> PeerName {
        self.name
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers a gossip channel on the running mesh. Prefer
    /// [`MeshBuilder::channel`]: gossip that arrives before this call is only relayed.
    pub async fn register_channel<G: Gossiper>(
        &self,
        name: impl Into<Bytes>,
        gossiper: G,
    ) -> Result<Channel<G::Data, R>, Error> {
        let name = name.into();
        let handle = call(&self.tx, move |node, _| node.register_channel(name, gossiper)).await??;
        Ok(Channel { handle, tx: self.tx.clone(), _rt: PhantomData })
    }

    /// Adds peers to connect to (`replace`: instead of the current ones). Returns the
    /// entries that could not be parsed; the others are used.
    pub async fn initiate_connections<S: Into<String>>(
        &self,
        peers: impl IntoIterator<Item = S>,
        replace: bool,
    ) -> Result<Vec<AddressError>, Error> {
        let peers: Vec<String> = peers.into_iter().map(Into::into).collect();
        call(&self.tx, move |node, now| node.initiate_connections(&peers, replace, now)).await
    }

    /// Stops connecting to these peers; existing connections stay up.
    pub async fn forget_connections<S: Into<String>>(
        &self,
        peers: impl IntoIterator<Item = S>,
    ) -> Result<(), Error> {
        let peers: Vec<String> = peers.into_iter().map(Into::into).collect();
        call(&self.tx, move |node, now| node.forget_connections(&peers, now)).await
    }

    /// A diagnostic snapshot.
    pub async fn status(&self) -> Result<Status, Error> {
        call(&self.tx, |node, _| node.status()).await
    }

    /// Runs `f` on the node, for what the other calls do not cover.
    pub async fn with_node<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node) -> T + Send + 'static,
    ) -> Result<T, Error> {
        call(&self.tx, move |node, _| f(node)).await
    }

    /// Peer and connection events from now on. A subscriber that falls more than 1024
    /// events behind misses the excess.
    pub async fn events(&self) -> Result<Events, Error> {
        let (tx, rx) = async_channel::bounded(EVENT_QUEUE);
        self.tx.send(Input::Subscribe(tx)).await.map_err(|_| Error::Stopped)?;
        Ok(Events(Box::pin(rx)))
    }

    /// Closes every connection, stops the listener and waits until every task of this
    /// mesh has ended. Peers see our connections close.
    pub async fn shutdown(self) -> Result<(), Error> {
        let (reply, rx) = async_channel::bounded(1);
        if self.tx.send(Input::Shutdown(reply)).await.is_ok() {
            let _ = rx.recv().await;
        }
        drop(self.tx);
        // Every task holds a guard; the channel closes when the last one ends.
        let _ = self.all_done.recv().await;
        Ok(())
    }
}

/// A handle to one gossip channel.
pub struct Channel<D, R: Runtime> {
    handle: ChannelHandle<D>,
    tx: async_channel::Sender<Input<R::Stream>>,
    _rt: PhantomData<fn() -> R>,
}

impl<D, R: Runtime> Clone for Channel<D, R> {
    fn clone(&self) -> Self {
        Channel { handle: self.handle.clone(), tx: self.tx.clone(), _rt: PhantomData }
    }
}

impl<D, R: Runtime> std::fmt::Debug for Channel<D, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", self.handle.name()).finish()
    }
}

impl<D: GossipData, R: Runtime> Channel<D, R> {
    /// The channel's name.
    pub fn name(&self) -> &Bytes {
        self.handle.name()
    }

    /// Sends `data` to every peer, down the spanning tree rooted at us.
    pub async fn broadcast(&self, data: D) -> Result<(), Error> {
        let h = self.handle.clone();
        call(&self.tx, move |node, now| node.broadcast(&h, data, now)).await
    }

    /// Gossips `data` to a random subset of neighbours.
    pub async fn gossip(&self, data: D) -> Result<(), Error> {
        let h = self.handle.clone();
        call(&self.tx, move |node, now| node.gossip(&h, data, now)).await
    }

    /// Sends `payload` to `dest`, routed over several hops if needed.
    pub async fn unicast(&self, dest: PeerName, payload: impl Into<Bytes>) -> Result<(), Error> {
        let h = self.handle.clone();
        let payload = payload.into();
        Ok(call(&self.tx, move |node, now| node.unicast(&h, dest, &payload, now)).await??)
    }
}

/// A stream of [`Event`]s.
#[derive(Debug)]
pub struct Events(Pin<Box<async_channel::Receiver<Event>>>);

impl Events {
    /// The next event; `None` once the mesh has shut down.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await.ok()
    }
}

impl Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.0.as_mut().poll_next(cx)
    }
}
