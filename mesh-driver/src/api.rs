//! The application API: a builder, the running [`Mesh`], channel handles, events.
//! Every call is forwarded to the node task; nothing here decides anything about the
//! protocol.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::Stream;
use mesh_proto::AddressError;
use mesh_proto::Subnet;
use mesh_proto::{
    ChannelHandle, Config, ConnectionStatus, Event, GossipData, Gossiper, Instant, Member, Node, NodeError,
    PeerName, Status,
};
use tracing::{Instrument, info, info_span};

use crate::driver::{self, Call, Driver, EVENT_QUEUE, Input, Subscriber, Watcher, Wiring, in_callback};
use crate::runtime::Runtime;

/// Why a mesh call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Called from inside a gossiper callback, where waiting for a node would wait for
    /// ever on the one busy running the callback. Emit through the callback's
    /// [`Context`](mesh_proto::Context) instead, or hand the call to a task.
    #[error("called from inside a gossiper callback: use the callback's Context, or hand the call to a task")]
    InCallback,
    /// [`Mesh::wait_for_peers`] ran out of time.
    #[error("timed out after {timeout:?} waiting for {wanted} reachable peers ({reachable} reachable)")]
    Timeout {
        /// How many reachable peers were awaited.
        wanted: usize,
        /// How many were reachable at the deadline.
        reachable: usize,
        /// The time allowed.
        timeout: Duration,
    },
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
    event_buffer: usize,
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
            event_buffer: EVENT_QUEUE,
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

    /// Largest frame body sent or accepted after the handshake (default and most:
    /// 10 MiB; [`MeshBuilder::start`] refuses more).
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.config.max_frame_len = len;
        self
    }

    /// Outbound bytes that do not drain within this time close the connection (default
    /// 60 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// On version 3 links, a heartbeat (one every 30 s) not acknowledged within this
    /// time closes the connection: the remote stopped reading, even on a link too quiet
    /// to fill a buffer (default 60 s; more than 30 s and at most an hour, or
    /// [`MeshBuilder::start`] fails). Version 2 (Go) has no acknowledgement.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// A connection on which nothing arrives for this long is closed (default 60 s, as
    /// Go; more than 30 s, the heartbeat interval, or [`MeshBuilder::start`] fails).
    pub fn receive_timeout(mut self, timeout: Duration) -> Self {
        self.config.receive_timeout = timeout;
        self
    }

    /// Most relay-only channels (names we have no gossiper for, relayed for others) kept
    /// at once; the least recently used is dropped (default 256).
    pub fn max_relay_channels(mut self, max: usize) -> Self {
        self.config.max_relay_channels = max;
        self
    }

    /// The most channels the [`MeshBuilder::gossiper_maker`] may make (default 256):
    /// channel names come from the wire, so past it a new name is relayed only.
    pub fn max_made_channels(mut self, max: usize) -> Self {
        self.config.max_made_channels = max;
        self
    }

    /// What one topology record may cost, and how many entries the peers table may
    /// hold (defaults far above any honest mesh: 10 000 connections a record, 1 KiB
    /// nicknames, 1 MiB records, 20 000 entries). A record over a bound is refused and
    /// the connection it came on closed, with a typed reason in the
    /// `ConnectionClosed` event.
    ///
    /// ```
    /// # use mesh_proto::config::RecordLimits;
    /// # fn f<R: mesh_driver::Runtime>(b: mesh_driver::MeshBuilder<R>) -> mesh_driver::MeshBuilder<R> {
    /// let mut limits = RecordLimits::default();
    /// limits.max_peers = 50_000; // a very large mesh
    /// b.record_limits(limits)
    /// # }
    /// ```
    pub fn record_limits(mut self, limits: mesh_proto::config::RecordLimits) -> Self {
        self.config.record_limits = limits;
        self
    }

    /// Items each [`Events`] subscriber may have unread before it lags (default 1024,
    /// at least 1): past it events are dropped for that subscriber and counted in an
    /// [`EventItem::Lagged`].
    pub fn event_buffer(mut self, items: usize) -> Self {
        self.event_buffer = items.max(1);
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
        self.channel_with(name, |_| gossiper)
    }

    /// As [`MeshBuilder::channel`], for a gossiper that keeps a handle to its own channel
    /// (to send from tasks it starts; inside callbacks it uses its
    /// [`Context`](mesh_proto::Context)).
    ///
    /// ```
    /// # use mesh_driver::{Channel, MeshBuilder, Runtime};
    /// # use mesh_proto::counter::Counts;
    /// # use mesh_proto::Gossiper;
    /// struct Mine<R: Runtime>(Channel<Counts, R>);
    /// impl<R: Runtime> Gossiper for Mine<R> {
    ///     type Data = Counts;
    /// }
    /// # fn doc<R: Runtime>(mut b: MeshBuilder<R>) {
    /// let channel = b.channel_with("mine", |own| Mine(own));
    /// # }
    /// ```
    pub fn channel_with<G: Gossiper>(
        &mut self,
        name: impl Into<Bytes>,
        make: impl FnOnce(Channel<G::Data, R>) -> G,
    ) -> Channel<G::Data, R> {
        let name = name.into();
        let handle = ChannelHandle::<G::Data>::named(name.clone());
        let channel = Channel { handle, tx: self.wiring.input_tx.clone(), _rt: PhantomData };
        let gossiper = make(channel.clone());
        self.registrations.push(Box::new(move |node| node.register_channel(name, gossiper).map(|_| ())));
        channel
    }

    /// Makes gossipers for channels nobody registered, when traffic first arrives on one
    /// (Go's `GossiperMaker`; see [`mesh_proto::GossiperMaker`]). [`Mesh::channel`] then
    /// finds a made channel by name.
    ///
    /// ```
    /// # use mesh_driver::{MeshBuilder, Runtime};
    /// # use mesh_proto::{MadeChannel, PeerName};
    /// # use mesh_proto::counter::Counter;
    /// # fn doc<R: Runtime>(b: MeshBuilder<R>, me: PeerName) -> MeshBuilder<R> {
    /// b.gossiper_maker(move |channel: &[u8]| {
    ///     channel.starts_with(b"count-").then(|| MadeChannel::new(Counter::new(me).gossiper()))
    /// })
    /// # }
    /// ```
    pub fn gossiper_maker(mut self, maker: impl mesh_proto::GossiperMaker + 'static) -> Self {
        self.registrations.push(Box::new(move |node| {
            node.set_gossiper_maker(maker);
            Ok(())
        }));
        self
    }

    /// Plugs an overlay into every mesh connection (Go's `Overlay`; see
    /// [`mesh_proto::overlay`]): it adds its features to the handshake, prepares and
    /// confirms each connection's overlay connection, exchanges control messages with
    /// the remote's, and decides when a connection is established. Its diagnostics and
    /// each connection's attributes appear in [`Mesh::status`]. Without one, the mesh
    /// behaves as Go's null overlay.
    ///
    /// ```
    /// # use mesh_driver::{MeshBuilder, Runtime};
    /// use mesh_proto::overlay::{Liveness, LivenessConfig};
    /// # fn doc<R: Runtime>(b: MeshBuilder<R>) -> MeshBuilder<R> {
    /// b.overlay(Liveness::new(LivenessConfig::default()))
    /// # }
    /// ```
    pub fn overlay(mut self, overlay: impl mesh_proto::Overlay + 'static) -> Self {
        self.registrations.push(Box::new(move |node| {
            node.set_overlay(overlay);
            Ok(())
        }));
        self
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
        let Wiring { input_tx, all_done, alive_tx, .. } = self.wiring;
        let rt = self.rt;
        let event_buffer = self.event_buffer;
        Ok(Mesh { rt, name, local_addr, tx: input_tx, all_done, event_buffer, _alive: Arc::new(alive_tx) })
    }
}

/// A running mesh peer. Cloning gives another handle to the same peer.
///
/// Dropping the last handle shuts the peer down, as [`Mesh::shutdown`] does but without
/// waiting: the listener closes, every connection closes (peers see them end) and the
/// tasks end. [`Channel`] handles, [`Events`] and [`MembersWatch`] do not keep a peer
/// running; their calls then return [`Error::Stopped`].
///
/// # Calls from callbacks
/// Every call here and on [`Channel`] made from inside a gossiper callback returns
/// [`Error::InCallback`] at once: the node it would wait for is the one running the
/// callback. A callback emits through its [`Context`](mesh_proto::Context).
pub struct Mesh<R: Runtime> {
    rt: R,
    name: PeerName,
    local_addr: SocketAddr,
    tx: async_channel::Sender<Input<R::Stream>>,
    all_done: async_channel::Receiver<()>,
    event_buffer: usize,
    /// The node task shuts down when the last clone is dropped.
    _alive: Arc<async_channel::Sender<()>>,
}

impl<R: Runtime> Clone for Mesh<R> {
    fn clone(&self) -> Self {
        Mesh {
            rt: self.rt.clone(),
            name: self.name,
            local_addr: self.local_addr,
            tx: self.tx.clone(),
            all_done: self.all_done.clone(),
            event_buffer: self.event_buffer,
            _alive: self._alive.clone(),
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
    if in_callback() {
        return Err(Error::InCallback);
    }
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

    /// The channel called `name`, registered or made by the
    /// [`MeshBuilder::gossiper_maker`], if its data is `D` (Go's `Router.GetGossip`).
    /// `None` for an unknown name, a relay-only channel or another data type.
    pub async fn channel<D: GossipData>(
        &self,
        name: impl Into<Bytes>,
    ) -> Result<Option<Channel<D, R>>, Error> {
        let name = name.into();
        let handle = call(&self.tx, move |node, _| node.channel::<D>(&name)).await?;
        Ok(handle.map(|handle| Channel { handle, tx: self.tx.clone(), _rt: PhantomData }))
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

    /// The peer a 12-bit short id names, ourselves included (Go's
    /// `Peers.FetchByShortID`); `None` if no peer claims it. The mapping changes when
    /// peers join, leave or resolve a collision: [`Event::ShortIdsInvalidated`] in
    /// [`Mesh::events`] says when to look again.
    ///
    /// [`Event::ShortIdsInvalidated`]: mesh_proto::Event::ShortIdsInvalidated
    pub async fn peer_by_short_id(&self, short_id: u16) -> Result<Option<PeerName>, Error> {
        call(&self.tx, move |node, _| node.peer_by_short_id(short_id)).await
    }

    /// Every peer we hold a record of, ourselves included, by name: name, nickname, UID,
    /// version, short id, how many connections it reports, whether it is us (Go's
    /// `Peers.Descriptions`).
    pub async fn peer_descriptions(&self) -> Result<Vec<mesh_proto::PeerDescription>, Error> {
        call(&self.tx, |node, _| node.peer_descriptions()).await
    }

    /// Runs `f` on the node, for what the other calls do not cover.
    pub async fn with_node<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node) -> T + Send + 'static,
    ) -> Result<T, Error> {
        call(&self.tx, move |node, _| f(node)).await
    }

    /// Peer and connection events: first an [`EventItem::Snapshot`] of the members and
    /// connections at the moment of subscribing, then every event after it. A
    /// subscriber that falls [`MeshBuilder::event_buffer`] items behind gets an [`EventItem::Lagged`] with the
    /// number it missed, where they were missed.
    pub async fn events(&self) -> Result<Events, Error> {
        self.events_with_buffer(self.event_buffer).await
    }

    /// As [`Mesh::events`], with room for `items` unread items (at least 1) instead of
    /// [`MeshBuilder::event_buffer`]'s.
    pub async fn events_with_buffer(&self, items: usize) -> Result<Events, Error> {
        if in_callback() {
            return Err(Error::InCallback);
        }
        let (tx, rx) = async_channel::bounded(items.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let sub = Subscriber { tx, missed: missed.clone() };
        self.tx.send(Input::Subscribe(sub)).await.map_err(|_| Error::Stopped)?;
        Ok(Events { rx: Box::pin(rx), missed })
    }

    /// Every other peer whose record we hold, by name: nickname, whether a route reaches
    /// it, and the next hop.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        call(&self.tx, |node, _| node.members()).await
    }

    /// A watch on [`Mesh::members`]: yields the current members first, then the members
    /// after every change.
    pub async fn watch_members(&self) -> Result<MembersWatch, Error> {
        if in_callback() {
            return Err(Error::InCallback);
        }
        let current = Arc::new(Mutex::new(Vec::new()));
        let (changed, rx) = async_channel::bounded(1);
        let w = Watcher { current: current.clone(), changed };
        self.tx.send(Input::WatchMembers(w)).await.map_err(|_| Error::Stopped)?;
        Ok(MembersWatch { current, changed: Box::pin(rx) })
    }

    /// Waits until at least `n` other peers are reachable and returns the members then.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # async fn doc<R: mesh_driver::Runtime>(mesh: mesh_driver::Mesh<R>) -> Result<(), mesh_driver::Error> {
    /// let members = mesh.wait_for_peers(2, Duration::from_secs(10)).await?;
    /// assert!(members.iter().filter(|m| m.reachable).count() >= 2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Timeout`] with the number reachable at the deadline.
    pub async fn wait_for_peers(&self, n: usize, timeout: Duration) -> Result<Vec<Member>, Error> {
        let deadline = StdInstant::now() + timeout;
        let mut watch = self.watch_members().await?;
        let reachable = |m: &[Member]| m.iter().filter(|m| m.reachable).count();
        loop {
            let next = std::pin::pin!(watch.next());
            let sleep = std::pin::pin!(self.rt.sleep_until(deadline));
            match futures_util::future::select(next, sleep).await {
                futures_util::future::Either::Left((Some(members), _)) => {
                    if reachable(&members) >= n {
                        return Ok(members);
                    }
                }
                futures_util::future::Either::Left((None, _)) => return Err(Error::Stopped),
                futures_util::future::Either::Right(_) => break,
            }
        }
        let reachable = reachable(&watch.current());
        Err(Error::Timeout { wanted: n, reachable, timeout })
    }

    /// Closes every connection, stops the listener and waits until every task of this
    /// mesh has ended. Peers see our connections close. Other handles of this mesh get
    /// [`Error::Stopped`] from then on.
    pub async fn shutdown(self) -> Result<(), Error> {
        if in_callback() {
            return Err(Error::InCallback);
        }
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

    /// Sends `data` to `dest`, routed over several hops if needed: each message of
    /// `data.encode()` is one unicast, which `dest`'s gossiper gets in `on_unicast`.
    ///
    /// # Errors
    /// [`NodeError::NoRoute`](mesh_proto::NodeError) when `dest` is unreachable, and
    /// the other unicast errors of the node; messages before the failing one were sent.
    pub async fn unicast(&self, dest: PeerName, data: D) -> Result<(), Error> {
        let h = self.handle.clone();
        Ok(call(&self.tx, move |node, now| {
            data.encode().iter().try_for_each(|payload| node.unicast(&h, dest, payload, now))
        })
        .await??)
    }

    /// Sends raw bytes to `dest` as one unicast, for channels whose unicasts are not
    /// their gossip data.
    pub async fn unicast_bytes(&self, dest: PeerName, payload: impl Into<Bytes>) -> Result<(), Error> {
        let h = self.handle.clone();
        let payload = payload.into();
        Ok(call(&self.tx, move |node, now| node.unicast(&h, dest, &payload, now)).await??)
    }
}

/// What the mesh knew when an [`Events`] subscription started.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// Every other peer whose record we held.
    pub members: Vec<Member>,
    /// Every connection, in whatever state it was.
    pub connections: Vec<ConnectionStatus>,
}

/// An item of [`Events`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EventItem {
    /// The first item: the state when the subscription started.
    Snapshot(Snapshot),
    /// Something happened.
    Event(Event),
    /// The subscriber fell behind: this many events were dropped here.
    Lagged(u64),
}

impl std::fmt::Display for EventItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventItem::Snapshot(s) => {
                write!(f, "{} members and {} connections known", s.members.len(), s.connections.len())
            }
            EventItem::Event(e) => e.fmt(f),
            EventItem::Lagged(n) => write!(f, "{n} events missed: the subscriber fell behind"),
        }
    }
}

/// A stream of [`EventItem`]s: a snapshot, then events.
///
/// Inside a gossiper callback use [`Events::try_next`] only: the node that produces the
/// next item is the one running the callback, so awaiting [`Events::next`] there would
/// wait for ever.
#[derive(Debug)]
pub struct Events {
    rx: Pin<Box<async_channel::Receiver<EventItem>>>,
    missed: Arc<AtomicU64>,
}

impl Events {
    /// The next item; `None` once the mesh has shut down.
    pub async fn next(&mut self) -> Option<EventItem> {
        futures_util::StreamExt::next(self).await
    }

    /// The next item if one is ready.
    pub fn try_next(&mut self) -> Option<EventItem> {
        match self.rx.try_recv() {
            Ok(item) => Some(item),
            Err(_) => self.lagged(),
        }
    }

    /// Reports the events missed once everything before them was read (the driver
    /// queues nothing while some are missed, so the gap is here).
    fn lagged(&self) -> Option<EventItem> {
        match self.missed.swap(0, Ordering::AcqRel) {
            0 => None,
            n => Some(EventItem::Lagged(n)),
        }
    }
}

impl Stream for Events {
    type Item = EventItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        if let Ok(item) = self.rx.try_recv() {
            return Poll::Ready(Some(item));
        }
        if let Some(lagged) = self.lagged() {
            return Poll::Ready(Some(lagged));
        }
        self.rx.as_mut().poll_next(cx)
    }
}

/// A watch on the members of a mesh ([`Mesh::watch_members`]).
///
/// Inside a gossiper callback read [`MembersWatch::current`] only; awaiting
/// [`MembersWatch::next`] there would wait for the node that is running the callback.
#[derive(Debug)]
pub struct MembersWatch {
    current: Arc<Mutex<Vec<Member>>>,
    changed: Pin<Box<async_channel::Receiver<()>>>,
}

impl MembersWatch {
    /// The members now (as last reported by the mesh).
    pub fn current(&self) -> Vec<Member> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current members first, then the members after each change (changes that
    /// come faster than they are read are seen as their latest state); `None` once the
    /// mesh has shut down.
    pub async fn next(&mut self) -> Option<Vec<Member>> {
        futures_util::StreamExt::next(self).await
    }
}

impl Stream for MembersWatch {
    type Item = Vec<Member>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<Member>>> {
        match self.changed.as_mut().poll_next(cx) {
            Poll::Ready(Some(())) => Poll::Ready(Some(self.current())),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
