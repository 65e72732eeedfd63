//! `Node`: the whole protocol as one deterministic state machine.
//!
//! This file is the contract: the [`Node`] type, its inputs (`handle_*`), its outputs
//! ([`Node::poll_output`], [`Node::poll_timeout`]) and the application's calls. The
//! state it keeps is split by concern, each part in its own file (the sections are those
//! of docs/protocol-v2.md):
//!
//! - `timers`: the one table of node-wide deadlines and the order they run in;
//! - `pacing`: accept pacing (§16.2);
//! - `lifecycle`: a connection's handshake, frames, handshake completion (bind, self
//!   check, tie-break, connection limit, register: §16.3–§16.7) and its own timers;
//! - `teardown`: a connection's end (§16.9);
//! - `dialing`: the connector's decisions turned into dials (§20);
//! - `routing`: coalesced route recalculation and the relays that wait for it (§18.4);
//! - `updates`: coalesced topology updates, garbage collection, short ids (§17.5–§17.7);
//! - `channels`: the application's channels and its broadcast, gossip and unicast;
//! - `dispatch`: received gossip to its channel, relay-only channels (§19.3, §19.7);
//! - `send`: send slots drained into frames under a write window (§19.4);
//! - `status`: the diagnostic snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::config::{Config, SHORT_ID_SPACE};
use crate::connection::{ConnId, Connection, Phase};
use crate::connector::{AddressError, Connector};
use crate::event::{CloseReason, Event, Output};
use crate::gossip::{Channel, GossiperMaker, RelayMemory};
use crate::name::PeerName;
use crate::random::Random;
use crate::sabotage::Sabotage;
use crate::time::Instant;
use crate::topology::Peers;

mod channels;
mod dialing;
mod dispatch;
mod error;
mod inspect;
mod lifecycle;
mod overlay;
mod pacing;
mod routing;
mod send;
mod stats;
mod status;
pub(crate) mod sync;
mod teardown;
mod timers;
mod updates;

pub use channels::ChannelHandle;
pub use error::NodeError;
pub use inspect::Inspect;
pub use stats::Stats;

use pacing::AcceptPacing;
use routing::RouteCache;
use timers::{Timer, Timers};
use updates::UpdateSchedule;

/// The name of the router's own channel.
pub const TOPOLOGY_CHANNEL: &[u8] = b"topology";

/// The protocol state machine of one peer.
pub struct Node {
    config: Config,
    uid: u64,
    rng: Random,
    peers: Peers,
    routing: RouteCache,
    conns: BTreeMap<ConnId, Connection>,
    by_name: BTreeMap<PeerName, ConnId>,
    channels: BTreeMap<Bytes, Box<dyn Channel>>,
    /// Makes gossipers for channels nobody registered, if the application set one.
    maker: Option<Box<dyn GossiperMaker>>,
    /// The application's overlay, if it set one (Go's null overlay otherwise).
    overlay: Option<Box<dyn crate::overlay::Overlay>>,
    /// Gossip relayed lately on relay-only channels (outlives the channels).
    relay_memory: RelayMemory,
    connector: Connector,
    /// The connector must re-check before the next input returns.
    connector_dirty: bool,
    timers: Timers,
    pacing: AcceptPacing,
    updates: UpdateSchedule,
    /// Version 3: records asked for and not yet received.
    sync_requests: sync::Requests,
    outputs: VecDeque<Output>,
    to_flush: send::FlushQueue,
    /// The time of the last input, for the flush that [`Node::poll_output`] does.
    input_now: Instant,
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
        if config.versions().is_none() {
            return Err(NodeError::BadVersions {
                min: config.min_protocol_version,
                max: config.max_protocol_version,
            });
        }
        if !(crate::config::MIN_FRAME_LIMIT..=crate::config::MAX_FRAME_LEN).contains(&config.max_frame_len) {
            return Err(NodeError::BadFrameLimit { len: config.max_frame_len });
        }
        let hour = std::time::Duration::from_secs(3600);
        for (what, value, max) in [
            ("ack_timeout", config.ack_timeout, hour),
            ("receive_timeout", config.receive_timeout, std::time::Duration::MAX),
        ] {
            if value <= crate::config::HEARTBEAT_INTERVAL || value > max {
                return Err(NodeError::BadTimeout { what, value, max });
            }
        }
        let mut rng = Random::from_seed(seed);
        let uid = loop {
            let u = rng.next_u64();
            if u != 0 {
                break u;
            }
        };
        let short_id = (rng.next_u64() % u64::from(SHORT_ID_SPACE)) as u16;
        // Ours: the first periodic gossip comes after a random half to whole interval,
        // so peers started together (a fleet rolled out at once, a simulation) do not
        // all send their whole table in the same instant of every interval. Go starts
        // every ticker at construction; at 1,000 peers that instant is 1,000 × 19
        // copies of a 2 MB table.
        let half = config.gossip_interval / 2;
        let mut timers = Timers::default();
        let first = now + half + half.mul_f64(rng.below(1 << 32) as f64 / (1u64 << 32) as f64);
        timers.set(Timer::Gossip, Some(first));
        let mut peers = Peers::new(config.name, config.nickname.clone(), uid, short_id);
        peers.set_max_peers(config.record_limits.max_peers);
        Ok(Node {
            uid,
            rng,
            peers,
            routing: RouteCache::stale(),
            conns: BTreeMap::new(),
            by_name: BTreeMap::new(),
            channels: BTreeMap::new(),
            maker: None,
            overlay: None,
            relay_memory: RelayMemory::new(config.gossip_interval),
            connector: Connector::new(config.port, config.peer_discovery),
            connector_dirty: false,
            timers,
            pacing: AcceptPacing::new(now),
            updates: UpdateSchedule::default(),
            sync_requests: sync::Requests::default(),
            outputs: VecDeque::new(),
            to_flush: send::FlushQueue::default(),
            input_now: now,
            next_conn: 1,
            terminations: 0,
            shut_down: false,
            stats: Stats::default(),
            config,
        })
    }

    /// A 32-byte seed derived from a number, for simulations and tests.
    pub fn seed_from_u64(seed: u64) -> [u8; 32] {
        Random::seed_from_u64(seed)
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

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats { backoffs: self.connector.backoffs(), ..self.stats.clone() }
    }

    /// The names of peers with a registered connection, in order.
    pub fn connected_peers(&self) -> Vec<PeerName> {
        self.by_name.keys().copied().collect()
    }

    /// The peer a short id names, ourselves included (Go's `Peers.FetchByShortID`): of
    /// the peers that claim it, the lowest-named; `None` if no one does. The mapping can
    /// change with any input; [`Event::ShortIdsInvalidated`] says when.
    pub fn peer_by_short_id(&self, short_id: u16) -> Option<PeerName> {
        self.peers.by_short_id(short_id)
    }

    /// Every record of the peers table, ourselves included, by name (Go's
    /// `Peers.Descriptions`).
    pub fn peer_descriptions(&self) -> Vec<crate::PeerDescription> {
        let us = self.config.name;
        self.peers
            .iter()
            .map(|p| crate::PeerDescription {
                name: p.summary.name,
                nickname: String::from_utf8_lossy(&p.summary.nickname).into_owned(),
                uid: p.summary.uid,
                version: p.summary.version,
                short_id: p.summary.short_id,
                connections: p.connections.len(),
                is_self: p.summary.name == us,
            })
            .collect()
    }

    fn relay_channel_count(&self) -> usize {
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
            self.close(id, CloseReason::Shutdown, now);
            return id;
        }
        self.pace(id, now);
        self.after_input(now);
        id
    }

    /// The local address of `conn`'s socket, for an overlay
    /// ([`crate::OverlayParams::local_addr`]). Optional: a driver that cannot tell skips
    /// it.
    pub fn handle_local_addr(&mut self, conn: ConnId, addr: SocketAddr) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.local_addr = Some(addr);
        }
    }

    /// The dial of `conn` succeeded. A dial the node already gave up on (its connect
    /// timeout passed, or the node shut down) is answered with [`Output::Close`].
    pub fn handle_dialed(&mut self, conn: ConnId, now: Instant) {
        match self.conns.get(&conn).map(|c| &c.phase) {
            Some(Phase::Dialing { .. }) => self.start_handshake(conn, crate::handshake::Role::Dialer, now),
            Some(_) => {}
            None => self.outputs.push_back(Output::Close { conn }),
        }
        self.after_input(now);
    }

    /// The dial of `conn` failed.
    pub fn handle_dial_failed(&mut self, conn: ConnId, error: impl std::fmt::Display, now: Instant) {
        self.forget_conn(conn, CloseReason::DialFailed(error.to_string()), now);
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
        self.forget_conn(conn, reason, now);
        self.after_input(now);
    }

    /// Time passed; harmless if nothing is due. Connections' own deadlines run first,
    /// then the node's timers in a fixed order: accept pacing, route recalculation,
    /// topology update, garbage collection, periodic gossip, connector.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.conn_timers(id, now);
        }
        for t in Timer::ORDER {
            if let Some(due) = self.timers.take_due(t, now) {
                self.on_timer(t, due, now);
            }
        }
        self.after_input(now);
    }

    fn on_timer(&mut self, t: Timer, due: Instant, now: Instant) {
        match t {
            Timer::Accept => self.pace_accepts(now),
            Timer::Routes => self.recalculate_routes(now),
            Timer::Update => self.send_topology_update(now),
            Timer::Gc => self.garbage_collect(now),
            Timer::Gossip => {
                let interval = self.config.gossip_interval.max(std::time::Duration::from_millis(1));
                let mut next = due;
                while next <= now {
                    next += interval;
                }
                self.timers.set(Timer::Gossip, Some(next));
                if !self.shut_down {
                    self.periodic_gossip(now);
                }
            }
            // The check runs as the input ends, with everything this input changed.
            Timer::Connector => self.connector_dirty = true,
        }
    }

    /// The next output, if any. Drain after every input, or after a batch of them:
    /// what the inputs of a batch queued for a connection leaves as one transmit (in
    /// version 3, one sealed record), once the other outputs are taken.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        let now = self.input_now;
        while let Some(id) = self.to_flush.pop_first() {
            self.flush(id, now);
        }
        self.outputs.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next: the earliest node timer or
    /// connection deadline; `None` once shut down with every connection gone.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down && self.conns.is_empty() {
            return None;
        }
        let send_timeout = self.config.send_timeout;
        let keep = self.broken(Sabotage::NeverCloseSlowReader);
        let conns = self.conns.values().flat_map(|c| {
            let send = c.oldest_unwritten().map(|o| o + send_timeout).filter(|_| !keep);
            [c.deadline(), send]
        });
        conns.flatten().chain(self.timers.next()).min()
    }

    /// Ends the input: the connector re-checks if something it depends on changed.
    /// Connections with something to send are flushed by the next [`Node::poll_output`]
    /// that finds no other output, so the frames of a batch of inputs share a transmit.
    fn after_input(&mut self, now: Instant) {
        if self.connector_dirty && !self.shut_down {
            self.connector_dirty = false;
            self.run_connector(now);
        }
        if self.peers.take_short_ids_invalidated() {
            self.stats.short_id_invalidations += 1;
            self.outputs.push_back(Output::Event(Event::ShortIdsInvalidated));
        }
        self.input_now = now;
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

    /// Closes every connection and stops dialling. Peers learn of our departure from
    /// the closed connections.
    pub fn shutdown(&mut self, now: Instant) {
        self.shut_down = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, CloseReason::Shutdown, now);
        }
        self.after_input(now);
    }

    /// Whether [`Node::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

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
}

#[cfg(test)]
mod tests;
