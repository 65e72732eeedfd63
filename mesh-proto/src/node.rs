//! `Node`: the whole protocol as one deterministic state machine.
//!
//! A driver feeds it inputs (`handle_*`, application calls) with the current time and
//! drains [`Output`]s after each; [`Node::poll_timeout`] says when to call
//! [`Node::handle_timeout`] next. Given the same seed and inputs it produces the same
//! outputs, byte for byte.
//!
//! What happens where (behaviour.md): handshake completion, binding and registration
//! (§2.5–2.9) in `complete_handshake`; teardown (§2.11) in `close`; receiving gossip
//! (§5.3) in `on_gossip`; send slots drained in `flush` under a write window, so a peer
//! that stops reading only ever costs one merged item per slot, and is closed when its
//! bytes do not drain within the send timeout (Go's weaveworks/mesh#125).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::config::{
    ACCEPT_BURST, ACCEPT_TOKEN_INTERVAL, Config, DISCOVERY_SHARE, GC_DELAY, HEARTBEAT_INTERVAL,
    MAX_HANDSHAKE_FRAME_LEN, MAX_QUEUED_BYTES, RECEIVE_TIMEOUT, REFUSAL_WINDOW, ROUTES_RECALC_DELAY,
    SHORT_ID_SPACE, TOPOLOGY_CHUNK, TOPOLOGY_UPDATE_DELAY, WRITE_WINDOW,
};
use crate::connection::{ConnId, Connection, Phase, Running};
use crate::connector::{AddressError, Connector, DialBudget, LiveConnection, Termination};
use crate::crypto::TAG_LEN;
use crate::event::{CloseReason, Event, Output};
use crate::gossip::{AppChannel, Channel, Erased, GossipData, Gossiper, RelayChannel, RelayMemory, Slot};
use crate::handshake::{Handshake, HandshakeConfig, Outcome, Progress, Role};
use crate::name::PeerName;
use crate::routes::Routes;
use crate::sabotage::Sabotage;
use crate::status::{self, ConnectionState, ConnectionStatus, PeerConnectionStatus, PeerStatus, Status};
use crate::time::Instant;
use crate::topology::{Peer, Peers, RemoteConnection};
use crate::wire::frame::FrameDecoder;
use crate::wire::header::Preamble;
use crate::wire::message::{self, GossipKind, GossipMessage, Message};
use crate::wire::topology::{SummaryRef, UpdateEncoder};

/// The name of the router's own channel.
pub const TOPOLOGY_CHANNEL: &[u8] = b"topology";

/// Why an application call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// Our own name must not be the all-zero sentinel.
    #[error("peer name 00:00:00:00:00:00 is reserved")]
    ZeroName,
    /// A gossiper is already registered under this name (or it is `topology`).
    #[error("channel {0:?} is already registered")]
    ChannelTaken(String),
    /// The destination is not reachable.
    #[error("no route to {0}")]
    NoRoute(PeerName),
    /// Unicasts to ourselves are an error, as in Go.
    #[error("cannot unicast to ourselves")]
    UnicastToSelf,
    /// The next hop has no registered connection.
    #[error("next hop {hop} towards {dest} is not connected")]
    NotConnected {
        /// The destination.
        dest: PeerName,
        /// The next hop.
        hop: PeerName,
    },
    /// The message does not fit in a frame.
    #[error("message of {len} bytes does not fit in a frame (limit {max})")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The frame limit.
        max: usize,
    },
    /// Too much is already buffered for the next hop.
    #[error("connection to {0} is congested")]
    Congested(PeerName),
    /// The node has been shut down.
    #[error("the node is shut down")]
    Shutdown,
}

/// A registered channel, typed by its data.
#[derive(Debug)]
pub struct ChannelHandle<D> {
    name: Bytes,
    _data: PhantomData<fn(D)>,
}

impl<D> Clone for ChannelHandle<D> {
    fn clone(&self) -> Self {
        ChannelHandle { name: self.name.clone(), _data: PhantomData }
    }
}

impl<D> ChannelHandle<D> {
    /// The channel's name.
    pub fn name(&self) -> &Bytes {
        &self.name
    }

    /// A handle for the channel called `name`, for drivers that hand out handles before
    /// the gossiper is registered. Data of another type than the registered gossiper's is
    /// never queued.
    pub fn named(name: Bytes) -> Self {
        ChannelHandle { name, _data: PhantomData }
    }
}

/// Counters kept for diagnostics and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames sent.
    pub frames_sent: u64,
    /// Bytes handed to the driver.
    pub bytes_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Unicasts for other peers relayed onwards.
    pub unicasts_relayed: u64,
    /// Unicasts dropped at this hop (no route, not connected, congested).
    pub unicasts_dropped: u64,
    /// Messages an application produced that did not fit in a frame.
    pub oversize_dropped: u64,
    /// Relay-only channels evicted to respect the bound.
    pub relay_channels_evicted: u64,
    /// Our short id was reassigned.
    pub short_id_reassignments: u64,
    /// Connections closed because the remote stopped reading.
    pub slow_reader_closes: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Registrations that replaced a connection or lost a tie-break.
    pub tie_breaks: u64,
    /// Connections from peers that had restarted since we last knew them.
    pub restarts_detected: u64,
    /// Records removed by garbage collection.
    pub gc_removed: u64,
    /// Dials postponed by the exponential back-off after a failed attempt.
    pub backoffs: u64,
    /// Peers refused at our connection limit that we sent our topology to first.
    pub referrals: u64,
}

/// Data waiting for routes to be recalculated before it is queued.
enum Relay {
    Topology { slot: Slot, exclude: PeerName, names: BTreeSet<PeerName> },
    Channel { channel: Bytes, slot: Slot, exclude: PeerName, data: Erased },
}

/// The protocol state machine of one peer.
pub struct Node {
    config: Config,
    uid: u64,
    rng: ChaCha20Rng,
    peers: Peers,
    routes: Routes,
    routes_dirty: bool,
    /// When the coalesced route recalculation runs; relays that need routes wait for it.
    routes_at: Option<Instant>,
    pending_relays: Vec<Relay>,
    conns: BTreeMap<ConnId, Connection>,
    by_name: BTreeMap<PeerName, ConnId>,
    channels: BTreeMap<Bytes, Box<dyn Channel>>,
    /// Gossip relayed lately on relay-only channels (outlives the channels).
    relay_memory: RelayMemory,
    connector: Connector,
    connector_at: Option<Instant>,
    connector_dirty: bool,
    outputs: VecDeque<Output>,
    to_flush: BTreeSet<ConnId>,
    pending_update: BTreeSet<PeerName>,
    update_at: Option<Instant>,
    /// The pending update must carry our record (see `schedule_forced_update`).
    update_forced: bool,
    /// Our connections as of the last topology update we sent.
    announced: BTreeMap<PeerName, RemoteConnection>,
    gc_at: Option<Instant>,
    gossip_at: Instant,
    /// Time of the earliest unspent accept token, in signed nanoseconds so that a full
    /// bucket can be expressed even right after the clock's origin.
    next_token: i128,
    /// Accepted connections waiting for a token, oldest first.
    paced: VecDeque<ConnId>,
    /// When the next paced handshake may start (the last start's token was taken).
    accept_ready_at: Instant,
    /// When to call `pace_accepts` again, if connections are waiting.
    accept_at: Option<Instant>,
    next_conn: u64,
    terminations: u64,
    shut_down: bool,
    stats: Stats,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node with this configuration; `seed` feeds its only random generator (UID,
    /// short id, connection ids, ephemeral keys, neighbour sampling, back-off jitter).
    /// Drivers seed it from the operating system; the simulator from its own seed.
    pub fn new(config: Config, seed: [u8; 32], now: Instant) -> Result<Node, NodeError> {
        if config.name.is_unknown() {
            return Err(NodeError::ZeroName);
        }
        let mut rng = ChaCha20Rng::from_seed(seed);
        let uid = loop {
            let u = rng.next_u64();
            if u != 0 {
                break u;
            }
        };
        let short_id = (rng.next_u64() % u64::from(SHORT_ID_SPACE)) as u16;
        let peers = Peers::new(config.name, config.nickname.clone(), uid, short_id);
        let connector = Connector::new(config.port, config.peer_discovery);
        // Ours: the first periodic gossip comes after a random half to whole interval,
        // so peers started together (a fleet rolled out at once, a simulation) do not
        // all send their whole table in the same instant of every interval. Go starts
        // every ticker at construction; at 1,000 peers that instant is 1,000 × 19
        // copies of a 2 MB table.
        let half = config.gossip_interval / 2;
        let gossip_at = now + half + half.mul_f64(rand_below(&mut rng, 1 << 32) as f64 / (1u64 << 32) as f64);
        Ok(Node {
            uid,
            rng,
            peers,
            routes: Routes::default(),
            routes_dirty: true,
            routes_at: None,
            pending_relays: Vec::new(),
            conns: BTreeMap::new(),
            by_name: BTreeMap::new(),
            channels: BTreeMap::new(),
            relay_memory: RelayMemory::new(config.gossip_interval),
            connector,
            connector_at: None,
            connector_dirty: false,
            outputs: VecDeque::new(),
            to_flush: BTreeSet::new(),
            pending_update: BTreeSet::new(),
            update_forced: false,
            announced: BTreeMap::new(),
            update_at: None,
            gc_at: None,
            gossip_at,
            next_token: i128::MIN / 2,
            paced: VecDeque::new(),
            accept_ready_at: now,
            accept_at: None,
            next_conn: 1,
            terminations: 0,
            shut_down: false,
            stats: Stats::default(),
            config,
        })
    }

    /// A 32-byte seed derived from a number, for simulations and tests.
    pub fn seed_from_u64(seed: u64) -> [u8; 32] {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        s
    }

    /// Our name.
    pub fn name(&self) -> PeerName {
        self.config.name
    }

    /// Our incarnation id.
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peers table.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The routes, recomputed if the table changed.
    pub fn routes(&mut self) -> &Routes {
        self.ensure_routes();
        &self.routes
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats { backoffs: self.connector.backoffs(), ..self.stats.clone() }
    }

    /// The names of peers with a registered connection, in order.
    pub fn connected_peers(&self) -> Vec<PeerName> {
        self.by_name.keys().copied().collect()
    }

    /// Bytes handed to the driver for `conn` and not yet reported written, plus bytes
    /// built and not yet handed over.
    pub fn queued_bytes(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, Connection::queued)
    }

    /// The neighbours a broadcast from `source` is relayed to when it reaches us: the
    /// registered connections among our next hops on `source`'s tree (for the
    /// simulator's broadcast-tree check; relaying uses exactly this).
    pub fn broadcast_relays(&mut self, source: PeerName) -> Vec<PeerName> {
        if self.broken(Sabotage::FloodBroadcasts) {
            return self.by_name.keys().copied().filter(|n| *n != source).collect();
        }
        self.ensure_routes();
        let hops = self.routes.broadcast_all(source);
        hops.iter().copied().filter(|n| self.by_name.contains_key(n)).collect()
    }

    /// Number of relay-only channels held.
    pub fn relay_channel_count(&self) -> usize {
        self.channels.values().filter(|c| c.is_relay()).count()
    }

    // ------------------------------------------------------------------ driver inputs

    /// An inbound connection was accepted from `remote`. Returns its id.
    pub fn handle_accepted(&mut self, remote: SocketAddr, now: Instant) -> ConnId {
        let id = self.new_conn_id();
        let trusts = self.trusts(remote.ip());
        let paced = Phase::Paced { buffered: Vec::new() };
        self.conns.insert(id, Connection::new(remote.to_string(), false, true, trusts, paced));
        if self.shut_down {
            self.close(id, CloseReason::Shutdown, false, now);
            return id;
        }
        // Accept pacing: handshakes start in arrival order as the bucket gives tokens.
        self.paced.push_back(id);
        self.pace_accepts(now);
        self.after_input(now);
        id
    }

    /// Starts the handshakes of paced connections in arrival order, paced by the accept
    /// bucket (20, one per 50 ms) as Go's listener is: each start is followed by taking
    /// a token, and the next start waits for it. Ours: a connection whose dialler gave
    /// up while it waited is skipped without taking a token; Go accepts it from the
    /// kernel's backlog and spends one, so after a burst of a thousand dials that timed
    /// out the bucket stayed empty for minutes and nobody could join.
    fn pace_accepts(&mut self, now: Instant) {
        self.accept_at = None;
        let interval = ACCEPT_TOKEN_INTERVAL.as_nanos() as i128;
        while let Some(&id) = self.paced.front() {
            if !matches!(self.conns.get(&id).map(|c| &c.phase), Some(Phase::Paced { .. })) {
                self.paced.pop_front();
                continue;
            }
            if self.accept_ready_at > now {
                self.accept_at = Some(self.accept_ready_at);
                return;
            }
            self.paced.pop_front();
            self.start_handshake(id, Role::Listener, now);
            let full = i128::from(now.as_nanos()) - interval * i128::from(ACCEPT_BURST);
            let token = self.next_token.max(full);
            self.next_token = token + interval;
            self.accept_ready_at = Instant::from_nanos(token.clamp(0, i128::from(u64::MAX)) as u64);
        }
    }

    /// The dial of `conn` succeeded.
    pub fn handle_dialed(&mut self, conn: ConnId, now: Instant) {
        if matches!(self.conns.get(&conn).map(|c| &c.phase), Some(Phase::Dialing)) {
            self.start_handshake(conn, Role::Dialer, now);
        }
        self.after_input(now);
    }

    /// The dial of `conn` failed.
    pub fn handle_dial_failed(&mut self, conn: ConnId, error: impl std::fmt::Display, now: Instant) {
        self.close(conn, CloseReason::DialFailed(error.to_string()), true, now);
        self.after_input(now);
    }

    /// Bytes arrived on `conn`.
    pub fn handle_data(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        self.on_data(conn, data, now);
        self.after_input(now);
    }

    /// The driver wrote `n` bytes of what it was given for `conn`.
    pub fn handle_written(&mut self, conn: ConnId, n: usize, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.written(n);
            self.to_flush.insert(conn);
        }
        self.after_input(now);
    }

    /// `conn` was closed by the remote or failed; `error` says how.
    pub fn handle_closed(&mut self, conn: ConnId, error: impl std::fmt::Display, now: Instant) {
        let reason = match self.conns.get_mut(&conn).map(|c| &mut c.phase) {
            Some(Phase::Handshaking(h)) => CloseReason::Handshake(h.handle_closed()),
            Some(Phase::Running(r)) => match r.frames.finish() {
                Err(e) => CloseReason::Frame(e),
                Ok(()) => CloseReason::Closed(error.to_string()),
            },
            _ => CloseReason::Closed(error.to_string()),
        };
        self.close(conn, reason, true, now);
        self.after_input(now);
    }

    /// Time passed; harmless if nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.conn_timers(id, now);
        }
        if self.accept_at.is_some_and(|t| t <= now) {
            self.pace_accepts(now);
        }
        if self.routes_at.is_some_and(|t| t <= now) {
            self.routes_at = None;
            self.ensure_routes();
            for r in std::mem::take(&mut self.pending_relays) {
                self.relay(r, now);
            }
        }
        if self.update_at.is_some_and(|t| t <= now) {
            self.update_at = None;
            self.send_topology_update(now);
        }
        if self.gc_at.is_some_and(|t| t <= now) {
            self.gc_at = None;
            self.garbage_collect(now);
        }
        if self.gossip_at <= now {
            while self.gossip_at <= now {
                self.gossip_at += self.config.gossip_interval.max(std::time::Duration::from_millis(1));
            }
            if !self.shut_down {
                self.periodic_gossip(now);
            }
        }
        if self.connector_at.is_some_and(|t| t <= now) {
            self.connector_dirty = true;
        }
        self.after_input(now);
    }

    /// The next output, if any. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = [self.update_at, self.gc_at, self.connector_at, self.routes_at, self.accept_at]
            .into_iter()
            .flatten()
            .min()
            .map_or(self.gossip_at, |x| x.min(self.gossip_at));
        if self.shut_down && self.conns.is_empty() {
            return None;
        }
        for c in self.conns.values() {
            let due = match &c.phase {
                Phase::Paced { .. } => None,
                Phase::Handshaking(h) => Some(h.deadline()),
                Phase::Running(r) => Some(r.receive_deadline.min(r.heartbeat_at)),
                Phase::Dialing => None,
            };
            let send = c
                .oldest_unwritten()
                .map(|o| o + self.config.send_timeout)
                .filter(|_| !self.broken(Sabotage::NeverCloseSlowReader));
            for d in [due, send].into_iter().flatten() {
                t = t.min(d);
            }
        }
        Some(t)
    }

    // ------------------------------------------------------------------ application

    /// Adds direct peers (`host`, `host:port`, `ip`, `[v6]:port`...); with `replace`,
    /// they replace the current ones. Invalid entries are returned; the others are used.
    pub fn initiate_connections(
        &mut self,
        peers: &[String],
        replace: bool,
        now: Instant,
    ) -> Vec<AddressError> {
        let errors = self.connector.initiate(peers, replace, now);
        self.connector_dirty = true;
        self.after_input(now);
        errors
    }

    /// Removes direct peers; their connections stay up until they end.
    pub fn forget_connections(&mut self, peers: &[String], now: Instant) {
        self.connector.forget(peers);
        self.connector_dirty = true;
        self.after_input(now);
    }

    /// The direct peers; with `active_only`, without those never retried.
    pub fn targets(&self, active_only: bool) -> Vec<String> {
        self.connector.direct_peers(active_only)
    }

    /// Registers a gossiper under `name`. A relay-only channel of that name is replaced.
    pub fn register_channel<G: Gossiper>(
        &mut self,
        name: impl Into<Bytes>,
        gossiper: G,
    ) -> Result<ChannelHandle<G::Data>, NodeError> {
        let name = name.into();
        let taken =
            name.as_ref() == TOPOLOGY_CHANNEL || self.channels.get(&name).is_some_and(|c| !c.is_relay());
        if taken {
            return Err(NodeError::ChannelTaken(String::from_utf8_lossy(&name).into_owned()));
        }
        self.channels.insert(name.clone(), Box::new(AppChannel::new(gossiper)));
        Ok(ChannelHandle { name, _data: PhantomData })
    }

    /// Broadcasts `data` to every peer: sent to all our neighbours, relayed down the
    /// spanning tree rooted at us.
    pub fn broadcast<D: GossipData>(&mut self, ch: &ChannelHandle<D>, data: D, now: Instant) {
        // A broadcast we originate goes to every neighbour.
        let us = self.config.name;
        let conns: Vec<ConnId> = self.by_name.values().copied().collect();
        self.queue_channel(&ch.name, &conns, Slot::Broadcast(us), &(Box::new(data) as Erased));
        self.after_input(now);
    }

    /// Gossips `data` to a weighted random subset of neighbours (Go's
    /// `GossipNeighbourSubset`).
    pub fn gossip<D: GossipData>(&mut self, ch: &ChannelHandle<D>, data: D, now: Instant) {
        let us = self.config.name;
        let relay = Relay::Channel {
            channel: ch.name.clone(),
            slot: Slot::Gossip,
            exclude: us,
            data: Box::new(data),
        };
        self.relay(relay, now);
        self.after_input(now);
    }

    /// Sends `payload` to `dest` over the next hop, now (unicasts bypass the send slots).
    pub fn unicast<D>(
        &mut self,
        ch: &ChannelHandle<D>,
        dest: PeerName,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), NodeError> {
        if self.shut_down {
            return Err(NodeError::Shutdown);
        }
        if dest == self.config.name {
            return Err(NodeError::UnicastToSelf);
        }
        let us = self.config.name;
        let r = self.send_to_hop(dest, |out| {
            message::encode_gossip(out, GossipKind::Unicast { destination: dest }, &ch.name, us, payload)
        });
        self.after_input(now);
        r
    }

    /// A diagnostic snapshot.
    pub fn status(&mut self) -> Status {
        self.ensure_routes();
        let names: BTreeMap<PeerName, Bytes> =
            self.peers.iter().map(|p| (p.name, p.nickname.clone())).collect();
        let peers = self
            .peers
            .iter()
            .map(|p| PeerStatus {
                name: p.name,
                nickname: p.nickname.clone(),
                uid: p.uid,
                short_id: p.short_id,
                version: p.version,
                connections: p
                    .connections
                    .iter()
                    .map(|(n, c)| PeerConnectionStatus {
                        name: *n,
                        nickname: names.get(n).cloned().unwrap_or_default(),
                        addr: c.addr.clone(),
                        outbound: c.outbound,
                        established: c.established,
                    })
                    .collect(),
            })
            .collect();
        let mut connections: Vec<ConnectionStatus> = Vec::new();
        for (id, c) in &self.conns {
            let (state, info) = match &c.phase {
                Phase::Running(r) if self.by_name.get(&r.remote.name) == Some(id) => {
                    let enc = match (&self.config.password, c.trusts_remote && r.remote.trusts_us) {
                        (None, _) => "",
                        (Some(_), false) => "encrypted ",
                        (Some(_), true) => "unencrypted ",
                    };
                    let info = format!(
                        "{enc}none {}({})",
                        r.remote.name,
                        String::from_utf8_lossy(&r.remote.nickname)
                    );
                    (ConnectionState::Established, info)
                }
                Phase::Dialing => (ConnectionState::Connecting, String::new()),
                _ => (ConnectionState::Pending, String::new()),
            };
            connections.push(ConnectionStatus {
                addr: c.addr.clone(),
                outbound: c.outbound,
                state,
                info,
                conn: Some(*id),
            });
        }
        let live_addrs: BTreeSet<&str> = self.conns.values().map(|c| c.addr.as_str()).collect();
        for (addr, t) in self.connector.targets() {
            if live_addrs.contains(addr.as_str()) {
                continue;
            }
            let Some(state) = status::target_state(t.state, t.last_error.is_some()) else { continue };
            let retry = match t.try_after {
                Some(at) => format!("retry at {at}"),
                None => "never retry".to_owned(),
            };
            let info = match &t.last_error {
                Some(e) => format!("{e}, {retry}"),
                None => retry,
            };
            connections.push(ConnectionStatus {
                addr: addr.clone(),
                outbound: true,
                state,
                info,
                conn: None,
            });
        }
        connections.sort_by(|a, b| (&a.addr, a.conn).cmp(&(&b.addr, b.conn)));
        let me = self.peers.ours();
        Status {
            protocol: "weave",
            protocol_versions: (Preamble::OURS.min, Preamble::OURS.max),
            encryption: self.config.password.is_some(),
            peer_discovery: self.config.peer_discovery,
            name: self.config.name,
            nickname: self.config.nickname.clone(),
            uid: self.uid,
            short_id: me.short_id,
            version: me.version,
            port: self.config.port,
            peers,
            unicast_routes: self.routes.unicast.iter().map(|(d, h)| (*d, *h)).collect(),
            broadcast_routes: self
                .routes
                .broadcast_established()
                .iter()
                .map(|(s, v)| (*s, v.clone()))
                .collect(),
            connections,
            terminations: self.terminations,
            targets: self.connector.direct_peers(false),
            trusted_subnets: self.config.trusted_subnets.clone(),
            relay_channels: self
                .channels
                .iter()
                .filter(|(_, c)| c.is_relay())
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// Closes every connection and stops dialling. Peers learn of our departure from
    /// the closed connections.
    pub fn shutdown(&mut self, now: Instant) {
        self.shut_down = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, CloseReason::Shutdown, false, now);
        }
        self.after_input(now);
    }

    /// Whether [`Node::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    // ------------------------------------------------------------------ connections

    /// Whether `s` is switched on (test builds with the `sabotage` feature only).
    #[cfg(feature = "sabotage")]
    fn broken(&self, s: Sabotage) -> bool {
        self.config.sabotage.contains(&s)
    }

    #[cfg(not(feature = "sabotage"))]
    #[inline(always)]
    fn broken(&self, _: Sabotage) -> bool {
        false
    }

    fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.config.trusted_subnets.iter().any(|s| s.contains(ip))
    }

    fn start_handshake(&mut self, id: ConnId, role: Role, now: Instant) {
        let me = self.peers.ours();
        let Some(c) = self.conns.get(&id) else { return };
        let config = HandshakeConfig {
            role,
            name: self.config.name,
            nickname: self.config.nickname.clone(),
            uid: self.uid,
            short_id: me.short_id,
            trusts_remote: c.trusts_remote,
            password: self.config.password.clone(),
            versions: Preamble::OURS,
        };
        let mut h = Handshake::new(config, &mut self.rng, now);
        let buffered = match self.conns.get_mut(&id).map(|c| std::mem::replace(&mut c.phase, Phase::Dialing))
        {
            Some(Phase::Paced { buffered, .. }) => buffered,
            _ => Vec::new(),
        };
        if let Some(c) = self.conns.get_mut(&id) {
            if let Some(out) = h.take_output() {
                c.out.extend_from_slice(&out);
            }
            c.phase = Phase::Handshaking(Box::new(h));
            self.to_flush.insert(id);
        }
        if !buffered.is_empty() {
            self.on_data(id, &buffered, now);
        }
    }

    fn on_data(&mut self, id: ConnId, data: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        match &mut c.phase {
            Phase::Dialing => {}
            Phase::Paced { buffered, .. } => {
                // A paced connection may only have sent its handshake so far.
                if buffered.len() + data.len() > MAX_HANDSHAKE_FRAME_LEN * 2 {
                    let e = crate::wire::frame::FrameError::TooLarge {
                        len: (buffered.len() + data.len()) as u64,
                        max: MAX_HANDSHAKE_FRAME_LEN,
                    };
                    self.close(id, CloseReason::Frame(e), false, now);
                } else {
                    buffered.extend_from_slice(data);
                }
            }
            Phase::Handshaking(h) => {
                let r = h.handle_data(data, now);
                if let Some(out) = h.take_output() {
                    c.out.extend_from_slice(&out);
                    self.to_flush.insert(id);
                }
                match r {
                    Ok(Progress::Pending) => {}
                    Ok(Progress::Done(outcome)) => self.complete_handshake(id, *outcome, now),
                    Err(e) => self.close(id, CloseReason::Handshake(e), false, now),
                }
            }
            Phase::Running(r) => {
                r.frames.push(data);
                self.read_frames(id, now);
            }
        }
    }

    fn read_frames(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) else { return };
            let mut body = match r.frames.next_frame() {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => return self.close(id, CloseReason::Frame(e), false, now),
            };
            if let Some(s) = r.session.as_mut() {
                if let Err(e) = s.opener.open_in_place(&mut body) {
                    return self.close(id, CloseReason::Crypto(e), false, now);
                }
                body.advance(TAG_LEN);
            }
            r.receive_deadline = now + RECEIVE_TIMEOUT;
            self.stats.frames_received += 1;
            let body = body.freeze();
            match Message::decode(&body) {
                Err(e) => return self.close(id, CloseReason::Message(e), false, now),
                Ok(Message::Gossip(g)) => self.on_gossip(id, &body, g, now),
                // Heartbeats only refresh the deadline; overlay and unknown tags and
                // empty frames are ignored, as by Go with the null overlay.
                Ok(_) => {}
            }
        }
    }

    fn complete_handshake(&mut self, id: ConnId, outcome: Outcome, now: Instant) {
        let Outcome { remote, session, leftover, .. } = outcome;
        let conn_key = outcome.local_conn_id ^ remote.conn_id;
        let name = remote.name;
        let Some(c) = self.conns.get_mut(&id) else { return };
        // A discovered peer we have collected since learning its address may answer too.
        let accept_new = c.accept_new_peer || c.expected_peer == Some(name);
        let (addr, outbound) = (c.addr.clone(), c.outbound);
        let nickname = remote.nickname.clone();
        let candidate = Peer::candidate(name, remote.nickname.clone(), remote.uid, remote.short_id);
        let remote_uid = remote.uid;
        c.phase = Phase::Running(Box::new(Running {
            remote,
            conn_key,
            session,
            frames: FrameDecoder::new(self.config.max_frame_len),
            bound: false,
            since: now,
            heartbeat_at: now + HEARTBEAT_INTERVAL,
            receive_deadline: now + RECEIVE_TIMEOUT,
            topo_gossip: None,
            topo_broadcast: BTreeMap::new(),
        }));
        self.stats.handshakes += 1;

        if outbound {
            self.connector.answered_by(&addr, name);
        }
        // Bind to a record (§2.5).
        let was_known = self.peers.contains(&name);
        let Some((table_uid, change)) = self.peers.bind(candidate, accept_new) else {
            return self.close(id, CloseReason::UnknownPeer(name), false, now);
        };
        if let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) {
            r.bound = true;
        }
        if !was_known {
            self.outputs.push_back(Output::Event(Event::PeerAdded(name)));
        }
        if change.displaced == Some(self.config.name) {
            self.reassign_short_id(now);
        }
        if name == self.config.name {
            let reason = if remote_uid == self.uid {
                CloseReason::ConnectToSelf
            } else {
                CloseReason::NameCollision(name)
            };
            return self.close(id, reason, false, now);
        }
        let restarted = table_uid != remote_uid;
        if restarted {
            self.stats.restarts_detected += 1;
            if self.broken(Sabotage::PanicOnRestart) {
                panic!("sabotage panic_on_restart: {name} restarted");
            }
        }

        // Register (§2.8).
        if let Some(&old) = self.by_name.get(&name) {
            self.stats.tie_breaks += 1;
            let old_key = self.conns.get(&old).and_then(Connection::running).map_or(u64::MAX, |r| r.conn_key);
            if conn_key < old_key {
                self.close(old, CloseReason::Duplicate(name), false, now);
            } else if conn_key > old_key {
                return self.close(id, CloseReason::Duplicate(name), false, now);
            } else {
                self.close(old, CloseReason::Duplicate(name), false, now);
                return self.close(id, CloseReason::Duplicate(name), false, now);
            }
        }
        if self.config.conn_limit > 0 && self.by_name.len() >= self.config.conn_limit {
            // A peer already in our part of the mesh has our topology: refuse it plainly.
            self.ensure_routes();
            if !outbound && !self.routes.reachable_established(name) && !self.broken(Sabotage::NoReferral) {
                self.refer(id, now);
            }
            return self.close(id, CloseReason::ConnectionLimit(self.config.conn_limit), false, now);
        }
        // Go decides this on routes up to 100 ms stale, so a peer that reconnects right
        // after a close can miss the full state (behaviour.md §13.3). Ours are current,
        // and a record binding just created was reachable by no one.
        self.ensure_routes();
        let reachable = was_known && self.routes.reachable_established(name);
        self.by_name.insert(name, id);
        let rc = RemoteConnection { addr: Bytes::from(addr.clone()), outbound, established: false };
        self.peers.set_our_connection(name, rc);
        self.peers.bump_our_version();
        if restarted || !reachable {
            self.queue_complete_state(id);
        }
        self.routes_changed(now);
        self.schedule_update([name], now);
        if outbound {
            self.connector.connected(&addr);
        }
        // Null overlay: established at once (§2.9).
        self.peers.set_our_connection_established(name);
        self.peers.bump_our_version();
        self.schedule_update([], now);
        self.outputs.push_back(Output::Event(Event::ConnectionEstablished {
            conn: id,
            peer: name,
            nickname,
            addr,
            outbound,
        }));
        self.to_flush.insert(id);
        if !leftover.is_empty() {
            if let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) {
                r.frames.push(&leftover);
            }
            self.read_frames(id, now);
        }
    }

    /// Ours (weaveworks/weave#426): before refusing a peer that dialled us at our
    /// connection limit, send it our whole topology as an ordinary topology gossip
    /// message, so it learns where else to connect instead of being locked out with only
    /// our address. Go applies it like any update; nothing on the wire is new.
    fn refer(&mut self, id: ConnId, now: Instant) {
        let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
        self.queue_topology(&[id], Slot::Gossip, &all);
        self.flush(id, now);
        self.stats.referrals += 1;
    }

    /// Teardown (§2.11). `by_driver`: the driver reported the close, so no Close output.
    fn close(&mut self, id: ConnId, reason: CloseReason, by_driver: bool, now: Instant) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        self.to_flush.remove(&id);
        if !by_driver {
            // What this input built goes out before the close, as Go's concurrent
            // handshake writer does: above all our sealed features when the remote's
            // features arrived in the same read and failed (wrong password) or were
            // refused, so the remote learns why instead of seeing a bare close. A slow
            // reader gets nothing more.
            let slow = matches!(reason, CloseReason::SendTimeout | CloseReason::SendBufferFull);
            if let Some(data) = conn.take_out(now).filter(|_| !slow) {
                self.stats.bytes_sent += data.len() as u64;
                self.outputs.push_back(Output::Transmit { conn: id, data });
            }
            self.outputs.push_back(Output::Close { conn: id });
        }
        let peer = conn.running().map(|r| r.remote.name);
        // The remote closed a connection it had just accepted: refused at its limit.
        let refused = by_driver
            && conn.running().is_some_and(|r| {
                self.by_name.get(&r.remote.name) == Some(&id) && now < r.since + REFUSAL_WINDOW
            });
        if let Some(r) = conn.running() {
            let name = r.remote.name;
            if r.bound {
                self.peers.release(name);
                // Ours: a record that only a failed handshake inserted would linger until
                // some later GC and be gossiped as a member; collect it soon.
                if self.by_name.get(&name) != Some(&id) && self.gc_at.is_none() {
                    self.gc_at = Some(now + GC_DELAY);
                }
            }
            if self.by_name.get(&name) == Some(&id) {
                self.by_name.remove(&name);
                self.peers.remove_our_connection(name);
                self.peers.bump_our_version();
                // GC before the update, so we never announce peers that just became
                // unreachable.
                self.garbage_collect(now);
                self.routes_changed(now);
                self.schedule_update([], now);
            }
        }
        for ch in self.channels.values_mut() {
            ch.drop_conn(id.0);
        }
        if matches!(reason, CloseReason::SendTimeout | CloseReason::SendBufferFull) {
            self.stats.slow_reader_closes += 1;
        }
        if conn.outbound {
            match &reason {
                CloseReason::DialFailed(e) => {
                    let e = e.clone();
                    let rng = &mut self.rng;
                    self.connector.attempt_failed(&conn.addr, e, now, |n| rand_below(rng, n));
                }
                other => {
                    let how = match other {
                        CloseReason::NameCollision(_) => Termination::NameCollision,
                        CloseReason::ConnectToSelf => Termination::ConnectToSelf,
                        CloseReason::Closed(_) if refused => Termination::Refused,
                        _ => Termination::Retry,
                    };
                    let how =
                        if self.broken(Sabotage::NeverRedial) { Termination::NameCollision } else { how };
                    let rng = &mut self.rng;
                    self.connector
                        .terminated(&conn.addr, how, other.to_string(), now, |n| rand_below(rng, n));
                }
            }
        }
        if !matches!(reason, CloseReason::DialFailed(_) | CloseReason::ConnectToSelf) {
            self.terminations += 1;
        }
        self.connector_dirty = true;
        self.outputs.push_back(Output::Event(Event::ConnectionClosed {
            conn: id,
            peer,
            addr: conn.addr,
            outbound: conn.outbound,
            reason,
        }));
    }

    fn conn_timers(&mut self, id: ConnId, now: Instant) {
        let send_timeout = self.config.send_timeout;
        let keep = self.broken(Sabotage::NeverCloseSlowReader);
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.oldest_unwritten().is_some_and(|t| t + send_timeout <= now) && !keep {
            return self.close(id, CloseReason::SendTimeout, false, now);
        }
        match &mut c.phase {
            Phase::Handshaking(h) => {
                if let Err(e) = h.handle_timeout(now) {
                    self.close(id, CloseReason::Handshake(e), false, now);
                }
            }
            Phase::Running(r) => {
                if r.receive_deadline <= now && keep {
                    r.receive_deadline = now + RECEIVE_TIMEOUT;
                } else if r.receive_deadline <= now {
                    return self.close(id, CloseReason::ReceiveTimeout, false, now);
                }
                if r.heartbeat_at <= now {
                    while r.heartbeat_at <= now {
                        r.heartbeat_at += HEARTBEAT_INTERVAL;
                    }
                    // Heartbeats go out directly, not through the send slots.
                    let sent = c.append_frame(self.config.max_frame_len, |o| o.push(message::TAG_HEARTBEAT));
                    self.stats.frames_sent += u64::from(sent.is_ok());
                    self.to_flush.insert(id);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ gossip

    fn on_gossip(&mut self, id: ConnId, body: &Bytes, g: GossipMessage<'_>, now: Instant) {
        let us = self.config.name;
        if let GossipKind::Unicast { destination } = g.kind {
            if destination != us {
                return self.relay_unicast(destination, body);
            }
        }
        if g.channel == TOPOLOGY_CHANNEL {
            return self.on_topology(id, g, now);
        }
        if !self.channels.contains_key(g.channel) {
            self.add_relay_channel(g.channel, now);
        }
        if g.kind == GossipKind::Gossip && self.broken(Sabotage::IgnoreGossip) {
            return;
        }
        let dedupe = !self.broken(Sabotage::NoRelayDedupe);
        let Some(ch) = self.channels.get_mut(g.channel) else { return };
        let repeat = |m: &mut RelayMemory| !m.first_sight(g.channel, g.payload, now);
        if g.kind == GossipKind::Gossip && ch.is_relay() && dedupe && repeat(&mut self.relay_memory) {
            return;
        }
        let channel = Bytes::copy_from_slice(g.channel);
        let fail =
            |error| CloseReason::Gossiper { channel: String::from_utf8_lossy(g.channel).into_owned(), error };
        match g.kind {
            GossipKind::Unicast { .. } => {
                if let Err(e) = ch.on_unicast(g.source, g.payload) {
                    self.close(id, fail(e), false, now);
                }
            }
            GossipKind::Broadcast => {
                if g.source == us {
                    return; // our own broadcast came back: Go would re-send it
                }
                match ch.on_broadcast(g.source, g.payload) {
                    Err(e) => self.close(id, fail(e), false, now),
                    Ok(None) => {}
                    Ok(Some(_)) if self.broken(Sabotage::NoBroadcastRelay) => {}
                    Ok(Some(data)) => {
                        let slot = Slot::Broadcast(g.source);
                        self.relay(Relay::Channel { channel, slot, exclude: g.source, data }, now);
                    }
                }
            }
            GossipKind::Gossip => match ch.on_gossip(g.payload, now) {
                Err(e) => self.close(id, fail(e), false, now),
                Ok(None) => {}
                Ok(Some(delta)) => {
                    let relay =
                        Relay::Channel { channel, slot: Slot::Gossip, exclude: g.source, data: delta };
                    self.relay(relay, now);
                }
            },
        }
    }

    fn on_topology(&mut self, id: ConnId, g: GossipMessage<'_>, now: Instant) {
        if matches!(g.kind, GossipKind::Unicast { .. }) {
            return self.close(id, CloseReason::TopologyUnicast, false, now);
        }
        let peers = &self.peers;
        let wanted = |s: &SummaryRef<'_>| peers.wants(s);
        let records = match crate::wire::topology::decode_refs_wanted(g.payload, Default::default(), wanted) {
            Ok(r) => r,
            Err(e) => return self.close(id, CloseReason::Topology(e), false, now),
        };
        let applied = self.peers.apply(&records);
        for name in &applied.added {
            self.outputs.push_back(Output::Event(Event::PeerAdded(*name)));
        }
        if applied.bumped_self {
            self.schedule_forced_update(now);
        }
        if applied.short_id_displaced {
            self.reassign_short_id(now);
        }
        // An update that changed nothing cannot have made anything unreachable: in a
        // steady mesh every periodic gossip would otherwise cost a search of the graph.
        let changed = !applied.improved.is_empty() || !applied.added.is_empty();
        if changed && self.gc_at.is_none() {
            self.gc_at = Some(now + GC_DELAY);
        }
        if !applied.improved.is_empty() {
            self.routes_changed(now);
            // Re-check targets with the routes, at most every 100 ms.
            let soon = now + ROUTES_RECALC_DELAY;
            self.connector_at = Some(self.connector_at.map_or(soon, |t| t.min(soon)));
        }
        match g.kind {
            GossipKind::Gossip if !applied.improved.is_empty() => {
                let relay =
                    Relay::Topology { slot: Slot::Gossip, exclude: g.source, names: applied.improved };
                self.relay(relay, now);
            }
            // Older peers broadcast updates (tag 6): relay every received name down
            // the source's tree.
            GossipKind::Broadcast if !applied.received.is_empty() && g.source != self.config.name => {
                let slot = Slot::Broadcast(g.source);
                self.relay(Relay::Topology { slot, exclude: g.source, names: applied.received }, now);
            }
            _ => {}
        }
    }

    fn add_relay_channel(&mut self, name: &[u8], now: Instant) {
        if self.relay_channel_count() >= self.config.max_relay_channels
            && !self.broken(Sabotage::NoRelayEviction)
        {
            let lru = self
                .channels
                .iter()
                .filter(|(_, c)| c.is_relay())
                .min_by_key(|(n, c)| (c.last_used(), (*n).clone()))
                .map(|(n, _)| n.clone());
            if let Some(n) = lru {
                self.channels.remove(&n);
                self.stats.relay_channels_evicted += 1;
            }
        }
        if self.config.max_relay_channels > 0 {
            self.channels.insert(Bytes::copy_from_slice(name), Box::new(RelayChannel::new(now)));
        }
    }

    fn relay_unicast(&mut self, dest: PeerName, body: &Bytes) {
        match self.send_to_hop(dest, |out| out.extend_from_slice(body)) {
            Ok(()) => self.stats.unicasts_relayed += 1,
            Err(_) => self.stats.unicasts_dropped += 1,
        }
    }

    /// Frames a message straight onto the connection towards `dest`'s next hop.
    fn send_to_hop(&mut self, dest: PeerName, body: impl FnOnce(&mut Vec<u8>)) -> Result<(), NodeError> {
        // Unicasts use the routes as they are, possibly up to 100 ms stale, as in Go.
        let hop = self.routes.next_hop(dest).ok_or(NodeError::NoRoute(dest))?;
        let id = *self.by_name.get(&hop).ok_or(NodeError::NotConnected { dest, hop })?;
        let max = self.config.max_frame_len;
        let bounded = !self.broken(Sabotage::NoCongestionLimit);
        let c = self.conns.get_mut(&id).ok_or(NodeError::NotConnected { dest, hop })?;
        if c.queued() > MAX_QUEUED_BYTES && bounded {
            return Err(NodeError::Congested(hop));
        }
        c.append_frame(max, body).map_err(|e| match e {
            crate::wire::frame::FrameError::TooLarge { len, max } => {
                NodeError::TooLarge { len: len as usize, max }
            }
            _ => NodeError::Congested(hop),
        })?;
        self.stats.frames_sent += 1;
        self.to_flush.insert(id);
        Ok(())
    }

    fn queue_channel(&mut self, channel: &Bytes, conns: &[ConnId], slot: Slot, data: &Erased) {
        let Some(ch) = self.channels.get_mut(channel) else { return };
        for id in conns {
            if ch.queue(id.0, slot, data) {
                self.to_flush.insert(*id);
            }
        }
    }

    fn queue_topology(&mut self, conns: &[ConnId], slot: Slot, names: &BTreeSet<PeerName>) {
        for id in conns {
            let Some(r) = self.conns.get_mut(id).and_then(Connection::running_mut) else { continue };
            let set = match slot {
                Slot::Gossip => r.topo_gossip.get_or_insert_with(BTreeSet::new),
                Slot::Broadcast(src) => r.topo_broadcast.entry(src).or_default(),
            };
            set.extend(names.iter().copied());
            self.to_flush.insert(*id);
        }
    }

    /// The complete state of every channel, down a new connection (§5.6).
    fn queue_complete_state(&mut self, id: ConnId) {
        let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
        self.queue_topology(&[id], Slot::Gossip, &all);
        let names: Vec<Bytes> = self.channels.keys().cloned().collect();
        for name in names {
            let Some(ch) = self.channels.get_mut(&name) else { continue };
            if let Some(state) = ch.gossip() {
                self.queue_channel(&name, &[id], Slot::Gossip, &state);
            }
        }
    }

    fn periodic_gossip(&mut self, now: Instant) {
        let us = self.config.name;
        let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
        self.relay(Relay::Topology { slot: Slot::Gossip, exclude: us, names: all }, now);
        let names: Vec<Bytes> = self.channels.keys().cloned().collect();
        for channel in names {
            let Some(ch) = self.channels.get_mut(&channel) else { continue };
            if let Some(data) = ch.gossip() {
                self.relay(Relay::Channel { channel, slot: Slot::Gossip, exclude: us, data }, now);
            }
        }
    }

    fn send_topology_update(&mut self, now: Instant) {
        let mut names = std::mem::take(&mut self.pending_update);
        // Ours: a connection that came and went within the coalescing second (a peer
        // at its limit refused us) changed only our version; announcing it would make
        // every peer apply, relay and re-check for nothing.
        let forced = std::mem::take(&mut self.update_forced);
        if !forced && self.peers.ours().connections == self.announced {
            return;
        }
        self.announced = self.peers.ours().connections.clone();
        names.insert(self.config.name);
        let us = self.config.name;
        self.relay(Relay::Topology { slot: Slot::Gossip, exclude: us, names }, now);
    }

    /// Queues data for a neighbour subset (gossip slot) or down a broadcast tree. Waits
    /// for the coalesced route recalculation if the table changed since the last one,
    /// so relays always use routes that include every change applied before them.
    fn relay(&mut self, r: Relay, now: Instant) {
        if self.routes_dirty {
            if self.routes_at.is_none() {
                self.routes_at = Some(now + ROUTES_RECALC_DELAY);
            }
            self.pending_relays.push(r);
            return;
        }
        match r {
            Relay::Topology { slot, exclude, names } => {
                let conns = self.relay_conns(slot, exclude);
                self.queue_topology(&conns, slot, &names);
            }
            Relay::Channel { channel, slot, exclude, data } => {
                let conns = self.relay_conns(slot, exclude);
                self.queue_channel(&channel, &conns, slot, &data);
            }
        }
    }

    fn relay_conns(&mut self, slot: Slot, exclude: PeerName) -> Vec<ConnId> {
        match slot {
            Slot::Gossip => self.subset_conns(exclude),
            Slot::Broadcast(source) => self.broadcast_conns(source),
        }
    }

    fn routes_changed(&mut self, now: Instant) {
        self.routes_dirty = true;
        if self.routes_at.is_none() {
            self.routes_at = Some(now + ROUTES_RECALC_DELAY);
        }
    }

    /// Schedules an update that must carry our record even if our connections are as
    /// last announced (our version or short id changed for another reason).
    fn schedule_forced_update(&mut self, now: Instant) {
        self.update_forced = true;
        self.schedule_update([], now);
    }

    fn schedule_update(&mut self, names: impl IntoIterator<Item = PeerName>, now: Instant) {
        self.pending_update.extend(names);
        if self.update_at.is_none() {
            self.update_at = Some(now + TOPOLOGY_UPDATE_DELAY);
        }
    }

    fn garbage_collect(&mut self, now: Instant) {
        if self.broken(Sabotage::SkipGc) {
            return;
        }
        let removed = self.peers.garbage_collect();
        if removed.is_empty() {
            return;
        }
        // Discovered addresses outlive the records collected here (DISCOVERY_MEMORY).
        let live = self.live_connections();
        self.connector.remember(now, &live, &removed, self.config.name);
        let removed: Vec<PeerName> = removed.into_iter().map(|p| p.name).collect();
        self.stats.gc_removed += removed.len() as u64;
        self.routes_changed(now);
        for name in &removed {
            self.outputs.push_back(Output::Event(Event::PeerRemoved(*name)));
        }
        if !self.peers.own_short_id_held() {
            self.reassign_short_id(now);
        }
    }

    fn reassign_short_id(&mut self, now: Instant) {
        let rng = &mut self.rng;
        if self.peers.reassign_short_id(|n| rand_below(rng, u64::from(n)) as u32) {
            self.stats.short_id_reassignments += 1;
            self.schedule_forced_update(now);
        }
    }

    // ------------------------------------------------------------------ routing helpers

    fn ensure_routes(&mut self) {
        if self.routes_dirty {
            let mut fresh = Routes::compute(&self.peers);
            if self.broken(Sabotage::StaleRoutes) {
                fresh.unicast.extend(std::mem::take(&mut self.routes.unicast));
                fresh.unicast_all.extend(std::mem::take(&mut self.routes.unicast_all));
            }
            self.routes = fresh;
            self.routes_dirty = false;
        }
    }

    fn conns_of(&self, names: &[PeerName]) -> Vec<ConnId> {
        names.iter().filter_map(|n| self.by_name.get(n).copied()).collect()
    }

    fn broadcast_conns(&mut self, source: PeerName) -> Vec<ConnId> {
        let hops = self.broadcast_relays(source);
        self.conns_of(&hops)
    }

    fn subset_conns(&mut self, exclude: PeerName) -> Vec<ConnId> {
        self.ensure_routes();
        let rng = &mut self.rng;
        let hops = self.routes.neighbour_subset(exclude, |n| rand_below(rng, n));
        self.conns_of(&hops)
    }

    // ------------------------------------------------------------------ output

    fn after_input(&mut self, now: Instant) {
        if self.connector_dirty && !self.shut_down {
            self.connector_dirty = false;
            self.run_connector(now);
        }
        while let Some(id) = self.to_flush.pop_first() {
            self.flush(id, now);
        }
    }

    fn live_connections(&self) -> Vec<LiveConnection> {
        self.by_name
            .iter()
            .filter_map(|(name, id)| {
                let c = self.conns.get(id)?;
                Some(LiveConnection { name: *name, addr: c.addr.clone(), outbound: c.outbound })
            })
            .collect()
    }

    /// What the connection limit leaves for new dials. Dials in progress count, so a
    /// burst of targets cannot overshoot the limit (weaveworks/weave#444); and once we
    /// know more peers than the limit allows, discovery keeps to its share of outbound
    /// connections so that newcomers find room (weaveworks/weave#426).
    fn dial_budget(&self) -> DialBudget {
        let limit = self.config.conn_limit;
        if limit == 0 {
            return DialBudget::UNLIMITED;
        }
        // A running connection is registered: registration ends the handshake.
        let attempts = self.conns.values().filter(|c| c.outbound && c.running().is_none()).count();
        let outbound = self.conns.values().filter(|c| c.outbound).count();
        let any = limit.saturating_sub(self.by_name.len() + attempts);
        // Other peers we know of: in the table, or only remembered as targets.
        let known = (self.peers.len() - 1).max(self.connector.targets().len());
        let share = if known >= limit { (limit / DISCOVERY_SHARE).max(1) } else { limit };
        DialBudget { any, discovered: any.min(share.saturating_sub(outbound)) }
    }

    fn run_connector(&mut self, now: Instant) {
        let live = self.live_connections();
        let budget = self.dial_budget();
        self.ensure_routes();
        let rng = &mut self.rng;
        let routes = &self.routes;
        let (dials, next) = self.connector.check(
            now,
            &live,
            &self.peers,
            budget,
            |n| rand_below(rng, n),
            |p| routes.reachable_established(p),
        );
        self.connector_at = next;
        for d in dials {
            let id = self.new_conn_id();
            let trusts = d.addr.parse::<SocketAddr>().is_ok_and(|a| self.trusts(a.ip()));
            let mut conn = Connection::new(d.addr.clone(), true, d.accept_new_peer, trusts, Phase::Dialing);
            conn.expected_peer = d.expected;
            self.conns.insert(id, conn);
            self.outputs.push_back(Output::Dial { conn: id, addr: d.addr });
        }
    }

    /// Drains send slots into frames while the write window allows, then hands the
    /// frames to the driver as one transmit.
    fn flush(&mut self, id: ConnId, now: Instant) {
        let us = self.config.name;
        let max = self.config.max_frame_len;
        loop {
            let Some(c) = self.conns.get_mut(&id) else { return };
            if c.queued() >= WRITE_WINDOW {
                break;
            }
            let Some(r) = c.running_mut() else { break };
            if let Some(names) = r.topo_gossip.take() {
                write_topology(c, &self.peers, GossipKind::Gossip, us, &names, max, &mut self.stats);
                continue;
            }
            if let Some((src, names)) = r.topo_broadcast.pop_first() {
                write_topology(c, &self.peers, GossipKind::Broadcast, src, &names, max, &mut self.stats);
                continue;
            }
            let mut wrote = false;
            for (name, ch) in self.channels.iter_mut() {
                let Some((slot, msgs)) = ch.take(id.0) else { continue };
                let (kind, source) = match slot {
                    Slot::Gossip => (GossipKind::Gossip, us),
                    Slot::Broadcast(src) => (GossipKind::Broadcast, src),
                };
                for m in msgs {
                    match c.append_frame(max, |o| message::encode_gossip(o, kind, name, source, &m)) {
                        Ok(()) => self.stats.frames_sent += 1,
                        Err(_) => self.stats.oversize_dropped += 1,
                    }
                }
                wrote = true;
                break;
            }
            if !wrote {
                break;
            }
        }
        let Some(c) = self.conns.get_mut(&id) else { return };
        // Direct sends stop at MAX_QUEUED_BYTES and slots at the write window, so only a
        // bug could pass this; a slow reader is closed by the send timeout instead.
        if c.queued() > 2 * MAX_QUEUED_BYTES + self.config.max_frame_len {
            return self.close(id, CloseReason::SendBufferFull, false, now);
        }
        if let Some(data) = c.take_out(now) {
            self.stats.bytes_sent += data.len() as u64;
            self.outputs.push_back(Output::Transmit { conn: id, data });
        }
    }
}

/// A uniform number below `n` from `rng`.
fn rand_below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n.max(1))) >> 64) as u64
}

/// Writes the records of `names` (those still in the table) as one or more topology
/// messages of bounded size; each is a complete update on its own.
fn write_topology(
    c: &mut Connection,
    peers: &Peers,
    kind: GossipKind,
    source: PeerName,
    names: &BTreeSet<PeerName>,
    max: usize,
    stats: &mut Stats,
) {
    // Each chunk is encoded straight into the frame: its length is known from the
    // records' cached encodings, so no payload is built apart and copied.
    let definitions = UpdateEncoder::definitions_len();
    let mut chunk: Vec<&(Bytes, Bytes)> = Vec::new();
    let mut len = 0;
    let mut write = |chunk: &mut Vec<&(Bytes, Bytes)>, len: &mut usize, c: &mut Connection| {
        if chunk.is_empty() {
            return;
        }
        let payload_len = definitions + *len;
        let mut encoded = false;
        let framed = c.append_frame(max, |o| {
            encoded = message::encode_gossip_with(o, kind, TOPOLOGY_CHANNEL, source, payload_len, |o| {
                let mut enc = UpdateEncoder::new();
                for (summary, list) in chunk.iter() {
                    enc.push_encoded(o, summary, list);
                }
            });
        });
        match framed {
            Ok(()) if encoded => stats.frames_sent += 1,
            _ => stats.oversize_dropped += 1,
        }
        chunk.clear();
        *len = 0;
    };
    let records: Vec<&(Bytes, Bytes)> =
        names.iter().filter_map(|n| peers.get(n)).map(|p| p.encoded()).collect();
    // One reservation for every chunk: growing by doubling would copy a whole table
    // (2 MB at 1,000 peers) on every full-topology send.
    let total: usize = records.iter().map(|e| e.0.len() + e.1.len()).sum();
    c.out.reserve(total + (total / TOPOLOGY_CHUNK + 1) * (definitions + 128));
    for e in records {
        chunk.push(e);
        len += e.0.len() + e.1.len();
        if len >= TOPOLOGY_CHUNK {
            write(&mut chunk, &mut len, c);
        }
    }
    write(&mut chunk, &mut len, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_gossip_of_peers_started_together_is_spread_over_the_interval() {
        let t0 = Instant::from_secs(10);
        let mut firsts = BTreeSet::new();
        for seed in 0..20 {
            let config = Config::new(PeerName::from_u64(seed + 1).unwrap(), "n");
            let interval = config.gossip_interval;
            let n = Node::new(config, Node::seed_from_u64(seed), t0).unwrap();
            let first = n.poll_timeout().unwrap();
            assert!(first >= t0 + interval / 2 && first < t0 + interval, "{first:?}");
            firsts.insert(first);
        }
        assert!(firsts.len() >= 19, "{firsts:?}");
    }

    #[test]
    fn node_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Node>();
    }

    #[test]
    fn the_zero_name_is_refused() {
        let c = Config::new(PeerName::UNKNOWN, "x");
        assert_eq!(Node::new(c, [0; 32], Instant::ZERO).err(), Some(NodeError::ZeroName));
    }

    #[test]
    fn channels_cannot_be_registered_twice_or_as_topology() {
        let mut n =
            Node::new(Config::new(PeerName::from_u64(1).unwrap(), "x"), [0; 32], Instant::ZERO).unwrap();
        let c = crate::counter::Counter::new(n.name());
        assert!(n.register_channel("topology", c.gossiper()).is_err());
        assert!(n.register_channel("default", c.gossiper()).is_ok());
        assert_eq!(
            n.register_channel("default", c.gossiper()).err(),
            Some(NodeError::ChannelTaken("default".into()))
        );
    }

    #[test]
    fn unicast_errors_are_typed() {
        let mut n =
            Node::new(Config::new(PeerName::from_u64(1).unwrap(), "x"), [0; 32], Instant::ZERO).unwrap();
        let c = crate::counter::Counter::new(n.name());
        let ch = n.register_channel("default", c.gossiper()).unwrap();
        let me = n.name();
        assert_eq!(n.unicast(&ch, me, b"x", Instant::ZERO), Err(NodeError::UnicastToSelf));
        let other = PeerName::from_u64(2).unwrap();
        assert_eq!(n.unicast(&ch, other, b"x", Instant::ZERO), Err(NodeError::NoRoute(other)));
        n.shutdown(Instant::ZERO);
        assert_eq!(n.unicast(&ch, other, b"x", Instant::ZERO), Err(NodeError::Shutdown));
    }
}
