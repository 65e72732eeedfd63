//! # mesh-sim
//!
//! A deterministic simulator for the mesh: many [`Node`]s in one thread, a virtual clock
//! that jumps to the next event, and a virtual network of reliable ordered byte streams
//! between virtual addresses, with per-link latency and faults (links cut with a reset
//! or stalled silently, crashed and restarted nodes, peers that stop reading).
//!
//! It plays the driver exactly as a real one does: dials, accepts, delivers bytes,
//! reports writes and closes, and wakes each node at its `poll_timeout`. Everything
//! random comes from the simulation seed, so a run is reproduced exactly by its seed, and
//! [`Sim::digest`] fingerprints everything that happened.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::{Config, ConnId, Event, Instant, Node, Output, PeerName};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub mod apps;
pub mod builtin;
pub mod explore;
pub mod plot;
pub mod runner;
pub mod scaling;
pub mod scenario;

/// Index of a simulated node (stable across restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// How a link is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Connections are reset at once and new ones are refused.
    Reset,
    /// Bytes stop moving without any error; new dials hang until they time out.
    Stall,
}

/// How a link carries bytes: one-way latency, random extra delay, and a bandwidth limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProfile {
    /// Fixed one-way latency.
    pub latency: Duration,
    /// Mean of an exponentially distributed extra delay per delivery (zero: none). Bytes
    /// of one connection still arrive in order, as TCP delivers them.
    pub jitter: Duration,
    /// Bytes per second each direction carries (`None`: unlimited).
    pub bandwidth: Option<u64>,
}

impl LinkProfile {
    /// A link with only a fixed latency.
    pub fn fixed(latency: Duration) -> Self {
        LinkProfile { latency, jitter: Duration::ZERO, bandwidth: None }
    }
}

/// A node's clock: it runs at its own rate from an anchor, so nodes disagree on how long
/// a second is (the node only ever sees instants of its own clock).
#[derive(Clone, Copy, Debug)]
struct Clock {
    anchor_global: Instant,
    anchor_local: Instant,
    /// Parts per million faster (positive) or slower (negative) than virtual time.
    rate_ppm: i64,
}

impl Clock {
    const IDENTITY: Clock = Clock { anchor_global: Instant::ZERO, anchor_local: Instant::ZERO, rate_ppm: 0 };

    fn local(&self, global: Instant) -> Instant {
        let d = global.as_nanos().saturating_sub(self.anchor_global.as_nanos()) as i128;
        let scaled = d * (1_000_000 + i128::from(self.rate_ppm)) / 1_000_000;
        Instant::from_nanos(self.anchor_local.as_nanos().saturating_add(scaled.max(0) as u64))
    }

    /// The first virtual instant at which the local clock reads at least `local`.
    fn global(&self, local: Instant) -> Instant {
        let d = local.as_nanos().saturating_sub(self.anchor_local.as_nanos()) as i128;
        let rate = 1_000_000 + i128::from(self.rate_ppm);
        let scaled = (d * 1_000_000 + rate - 1) / rate;
        Instant::from_nanos(self.anchor_global.as_nanos().saturating_add(scaled.max(0) as u64))
    }
}

/// The virtual time, readable by applications running on simulated nodes (to time
/// deliveries); the simulator advances it.
#[derive(Clone, Debug, Default)]
pub struct SimClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SimClock {
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn set(&self, t: Instant) {
        self.0.store(t.as_nanos(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Kernel socket buffer per direction: writes are confirmed while it has room.
pub const SOCKET_BUFFER: usize = 256 * 1024;

/// Sets up a node after it starts (and after every restart): registers channels,
/// initiates connections. Returns the application state the tests will reach through
/// [`Sim::app`].
pub type Setup = Box<dyn FnMut(&mut Node, Instant) -> Box<dyn Any>>;

struct SimNode {
    config: Config,
    addr: String,
    node: Option<Node>,
    app: Option<Box<dyn Any>>,
    setup: Option<Setup>,
    incarnation: u64,
    reading: bool,
    log: Vec<(Instant, Event)>,
}

/// One direction of a pipe.
#[derive(Default)]
struct Flow {
    /// Bytes delivered to a node that is not reading, awaiting consumption.
    unread: VecDeque<Bytes>,
    unread_bytes: usize,
    /// Bytes whose write has not been confirmed to the sender.
    unconfirmed: usize,
    /// Deliveries held by a stall, in order.
    held: VecDeque<Bytes>,
    /// Time of the last scheduled delivery (deliveries stay ordered).
    last_arrival: Instant,
    /// When the link finishes putting already sent bytes on the wire (bandwidth limit).
    wire_free: Instant,
}

struct End {
    node: NodeId,
    incarnation: u64,
    conn: Option<ConnId>,
}

struct Pipe {
    ends: [End; 2],   // 0: dialer, 1: listener
    flows: [Flow; 2], // flows[i]: bytes travelling towards ends[i]
    open: bool,
    /// A reset sent towards each end into a stalled link, delivered if it heals.
    held_close: [bool; 2],
}

enum Ev {
    Accept {
        pipe: usize,
        from: String,
    },
    Dialed {
        pipe: usize,
    },
    DialFailed {
        node: NodeId,
        incarnation: u64,
        conn: ConnId,
        why: &'static str,
    },
    Deliver {
        pipe: usize,
        to: usize,
        data: Bytes,
    },
    /// Bytes a hostile peer adds to its stream: read by the receiver, confirmed to no
    /// one (the sender's node never wrote them).
    Inject {
        pipe: usize,
        to: usize,
        data: Bytes,
    },
    Closed {
        pipe: usize,
        to: usize,
        why: &'static str,
    },
}

/// The simulator.
pub struct Sim {
    now: Instant,
    rng: ChaCha20Rng,
    nodes: Vec<SimNode>,
    by_addr: BTreeMap<String, NodeId>,
    pipes: Vec<Pipe>,
    conn_pipe: BTreeMap<(NodeId, u64, ConnId), (usize, usize)>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    wakes: BTreeSet<(Instant, usize)>,
    wake_of: Vec<Option<Instant>>,
    profile: LinkProfile,
    link_profile: BTreeMap<(NodeId, NodeId), LinkProfile>,
    /// Cut directions: (from, to) means bytes from `from` do not reach `to`.
    cuts: BTreeMap<(NodeId, NodeId), Cut>,
    clocks: Vec<Clock>,
    clock: SimClock,
    /// Protocol counters of node incarnations that have ended (crashed or restarted).
    pub retired_stats: Vec<(NodeId, mesh_proto::Stats)>,
    next_port: u32,
    ipv6: bool,
    digest: u64,
    /// Bytes handed over by each node (by index), for reports.
    pub bytes_sent: Vec<u64>,
    /// Frames left before the simulation stops advancing.
    budget: Option<u64>,
    /// Each node's frame count when its outputs were last performed.
    frames_seen: Vec<u64>,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Sim {
    /// An empty simulation whose randomness all derives from `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim {
            now: Instant::ZERO,
            rng: ChaCha20Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            pipes: Vec::new(),
            conn_pipe: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            wakes: BTreeSet::new(),
            wake_of: Vec::new(),
            profile: LinkProfile::fixed(Duration::from_millis(1)),
            link_profile: BTreeMap::new(),
            cuts: BTreeMap::new(),
            clocks: Vec::new(),
            clock: SimClock::default(),
            retired_stats: Vec::new(),
            next_port: 40000,
            ipv6: false,
            digest: 0xcbf2_9ce4_8422_2325,
            bytes_sent: Vec::new(),
            budget: None,
            frames_seen: Vec::new(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A handle on the virtual time for applications.
    pub fn clock(&self) -> SimClock {
        self.clock.clone()
    }

    /// The default one-way latency of every link (no jitter, no bandwidth limit).
    pub fn set_default_latency(&mut self, d: Duration) {
        self.profile = LinkProfile::fixed(d);
    }

    /// The default profile of every link.
    pub fn set_default_profile(&mut self, p: LinkProfile) {
        self.profile = p;
    }

    /// The one-way latency between `a` and `b`.
    pub fn set_latency(&mut self, a: NodeId, b: NodeId, d: Duration) {
        self.link_profile.insert(pair(a, b), LinkProfile::fixed(d));
    }

    /// The profile of the link between `a` and `b` (both directions).
    pub fn set_profile(&mut self, a: NodeId, b: NodeId, p: LinkProfile) {
        self.link_profile.insert(pair(a, b), p);
    }

    /// Returns the link between `a` and `b` to the default profile.
    pub fn clear_profile(&mut self, a: NodeId, b: NodeId) {
        self.link_profile.remove(&pair(a, b));
    }

    fn profile(&self, a: NodeId, b: NodeId) -> LinkProfile {
        self.link_profile.get(&pair(a, b)).copied().unwrap_or(self.profile)
    }

    fn latency(&self, a: NodeId, b: NodeId) -> Duration {
        self.profile(a, b).latency
    }

    /// Makes node `id`'s clock jump `offset` ahead now and from now on run `rate_ppm`
    /// parts per million fast (negative: slow). A monotonic clock never goes back, so
    /// only forward offsets exist.
    pub fn set_clock(&mut self, id: NodeId, offset: Duration, rate_ppm: i64) {
        let local = self.local(id, self.now) + offset;
        self.clocks[id.0] =
            Clock { anchor_global: self.now, anchor_local: local, rate_ppm: rate_ppm.max(-500_000) };
        self.rearm(id);
    }

    /// What node `id`'s clock reads at virtual time `t`.
    fn local(&self, id: NodeId, t: Instant) -> Instant {
        self.clocks[id.0].local(t)
    }

    /// Node `id`'s clock now.
    fn local_now(&self, id: NodeId) -> Instant {
        self.local(id, self.now)
    }

    /// Re-arms a node's wake-up (after its clock changed).
    fn rearm(&mut self, id: NodeId) {
        let wake = self.nodes[id.0].node.as_ref().and_then(Node::poll_timeout);
        let at = wake.map(|w| self.clocks[id.0].global(w).max(self.now));
        self.set_wake(id, at);
    }

    /// The virtual IPv4 address of the `i`-th node.
    pub fn address_of(i: usize) -> String {
        // The last octet stays within 1..=250 (a node 255 once got "10.0.0.256").
        format!("10.{}.{}.{}:6783", (i / 62_500) % 250, (i / 250) % 250, i % 250 + 1)
    }

    /// The virtual IPv6 address of the `i`-th node.
    pub fn address_of_v6(i: usize) -> String {
        format!("[fd00::{:x}]:6783", i + 1)
    }

    /// Gives nodes added from now on IPv6 addresses.
    pub fn use_ipv6(&mut self, on: bool) {
        self.ipv6 = on;
    }

    /// Adds a node with `config` (its port is forced to the simulated one) and a setup
    /// run at every start.
    pub fn add_node(
        &mut self,
        mut config: Config,
        setup: impl FnMut(&mut Node, Instant) -> Box<dyn Any> + 'static,
    ) -> NodeId {
        let id = NodeId(self.nodes.len());
        let addr = if self.ipv6 { Self::address_of_v6(id.0) } else { Self::address_of(id.0) };
        config.port = 6783;
        self.by_addr.insert(addr.clone(), id);
        self.nodes.push(SimNode {
            config,
            addr,
            node: None,
            app: None,
            setup: Some(Box::new(setup)),
            incarnation: 0,
            reading: true,
            log: Vec::new(),
        });
        self.wake_of.push(None);
        self.frames_seen.push(0);
        self.clocks.push(Clock::IDENTITY);
        self.bytes_sent.push(0);
        self.start(id);
        id
    }

    /// Adds a node with no application channel.
    pub fn add_plain_node(&mut self, config: Config) -> NodeId {
        self.add_node(config, |_, _| Box::new(()))
    }

    fn start(&mut self, id: NodeId) {
        let seed = {
            let mut s = [0u8; 32];
            self.rng.fill_bytes(&mut s);
            s
        };
        self.frames_seen[id.0] = 0;
        let n = &mut self.nodes[id.0];
        n.incarnation += 1;
        n.reading = true;
        let now = self.clocks[id.0].local(self.now);
        let mut node = Node::new(n.config.clone(), seed, now).expect("valid simulated config");
        let mut setup = n.setup.take();
        let app = setup.as_mut().map(|f| f(&mut node, now));
        let n = &mut self.nodes[id.0];
        n.setup = setup;
        n.app = app;
        n.node = Some(node);
        self.pump(id);
    }

    /// Number of nodes (live or crashed).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All node ids.
    pub fn ids(&self) -> Vec<NodeId> {
        (0..self.nodes.len()).map(NodeId).collect()
    }

    /// The live node ids.
    pub fn live_ids(&self) -> Vec<NodeId> {
        self.ids().into_iter().filter(|i| self.nodes[i.0].node.is_some()).collect()
    }

    /// The node, if it is running.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes[id.0].node.as_ref()
    }

    /// The node's address.
    pub fn addr(&self, id: NodeId) -> String {
        self.nodes[id.0].addr.clone()
    }

    /// The node's name.
    pub fn name(&self, id: NodeId) -> PeerName {
        self.nodes[id.0].config.name
    }

    /// The application state the node's setup returned.
    pub fn app<T: 'static>(&self, id: NodeId) -> Option<&T> {
        self.nodes[id.0].app.as_ref().and_then(|a| a.downcast_ref())
    }

    /// Events the node emitted, with their times (all incarnations).
    pub fn events(&self, id: NodeId) -> &[(Instant, Event)] {
        &self.nodes[id.0].log
    }

    /// Runs `f` on a live node at the current time, then performs its outputs.
    pub fn act<R>(&mut self, id: NodeId, f: impl FnOnce(&mut Node, &dyn Any, Instant) -> R) -> Option<R> {
        let now = self.local_now(id);
        let n = &mut self.nodes[id.0];
        let node = n.node.as_mut()?;
        let unit: Box<dyn Any> = Box::new(());
        let app: &dyn Any = n.app.as_deref().unwrap_or(&*unit);
        let r = f(node, app, now);
        self.pump(id);
        Some(r)
    }

    /// Tells `a` to connect to `b` (adds `b` as a direct peer of `a`).
    pub fn connect(&mut self, a: NodeId, b: NodeId) {
        let addr = self.addr(b);
        self.act(a, |n, _, now| n.initiate_connections(&[addr], false, now));
    }

    // ------------------------------------------------------------------ faults

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&mut self, a: NodeId, b: NodeId, how: Cut) {
        self.cuts.insert((a, b), how);
        self.cuts.insert((b, a), how);
        if how == Cut::Reset {
            for p in 0..self.pipes.len() {
                if self.pipe_between(p, a, b) && self.pipes[p].open {
                    self.reset_pipe(p, "connection reset");
                }
            }
        }
    }

    /// Cuts one direction: bytes from `from` stop reaching `to` (they are held, as TCP
    /// retransmits them) while bytes from `to` still reach `from`. Dials either way time
    /// out, as a handshake needs both directions.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cuts.insert((from, to), Cut::Stall);
    }

    /// Whether bytes from `from` are kept from reaching `to`, and how.
    fn cut_towards(&self, from: NodeId, to: NodeId) -> Option<Cut> {
        self.cuts.get(&(from, to)).copied()
    }

    /// Heals the link between `a` and `b` in both directions; held bytes move again.
    pub fn heal(&mut self, a: NodeId, b: NodeId) {
        let was = [self.cuts.remove(&(a, b)), self.cuts.remove(&(b, a))];
        if !was.contains(&Some(Cut::Stall)) {
            return;
        }
        for p in 0..self.pipes.len() {
            if !self.pipe_between(p, a, b) || !self.pipes[p].open {
                continue;
            }
            for to in 0..2 {
                let held: Vec<Bytes> = self.pipes[p].flows[to].held.drain(..).collect();
                for data in held {
                    self.pipes[p].flows[to].unconfirmed -=
                        data.len().min(self.pipes[p].flows[to].unconfirmed);
                    self.send_on(p, to, data);
                }
                if std::mem::take(&mut self.pipes[p].held_close[to]) {
                    let lat = self.latency(a, b);
                    let at = (self.now + lat).max(self.pipes[p].flows[to].last_arrival);
                    self.schedule(at, Ev::Closed { pipe: p, to, why: "connection reset by peer" });
                }
            }
        }
    }

    /// Cuts every link between the two groups.
    pub fn partition(&mut self, left: &[NodeId], right: &[NodeId], how: Cut) {
        for &a in left {
            for &b in right {
                self.cut(a, b, how);
            }
        }
    }

    /// Heals every link between the two groups.
    pub fn heal_partition(&mut self, left: &[NodeId], right: &[NodeId]) {
        for &a in left {
            for &b in right {
                self.heal(a, b);
            }
        }
    }

    /// Heals every cut link.
    pub fn heal_all(&mut self) {
        let cut: Vec<(NodeId, NodeId)> = self.cuts.keys().copied().collect();
        for (a, b) in cut {
            self.heal(a, b);
        }
    }

    fn pipe_between(&self, p: usize, a: NodeId, b: NodeId) -> bool {
        let e = &self.pipes[p].ends;
        pair(e[0].node, e[1].node) == pair(a, b)
    }

    /// Crashes a node: its connections are reset.
    pub fn crash(&mut self, id: NodeId) {
        let Some(node) = self.nodes[id.0].node.take() else { return };
        self.retired_stats.push((id, node.stats()));
        self.nodes[id.0].app = None;
        self.set_wake(id, None);
        for p in 0..self.pipes.len() {
            let ends = &self.pipes[p].ends;
            if self.pipes[p].open && (ends[0].node == id || ends[1].node == id) {
                self.reset_pipe(p, "connection reset by crashed peer");
            }
        }
    }

    /// Restarts a crashed (or running) node: same name and address, new UID.
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.start(id);
    }

    /// Makes a node stop (or resume) reading from its sockets.
    pub fn set_reading(&mut self, id: NodeId, reading: bool) {
        self.nodes[id.0].reading = reading;
        if reading {
            for p in 0..self.pipes.len() {
                for to in 0..2 {
                    if self.pipes[p].ends[to].node == id && self.pipes[p].open {
                        let unread: Vec<Bytes> = self.pipes[p].flows[to].unread.drain(..).collect();
                        self.pipes[p].flows[to].unread_bytes = 0;
                        for data in unread {
                            self.consume(p, to, data);
                        }
                    }
                }
            }
        }
    }

    fn reset_pipe(&mut self, p: usize, why: &'static str) {
        self.pipes[p].open = false;
        for to in 0..2 {
            let lat = self.latency(self.pipes[p].ends[0].node, self.pipes[p].ends[1].node);
            let at = if self.nodes[self.pipes[p].ends[to].node.0].node.is_some() {
                self.now + lat
            } else {
                self.now
            };
            self.schedule(at, Ev::Closed { pipe: p, to, why });
        }
    }

    // ------------------------------------------------------------------ running

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn set_wake(&mut self, id: NodeId, at: Option<Instant>) {
        if let Some(old) = self.wake_of[id.0].take() {
            self.wakes.remove(&(old, id.0));
        }
        if let Some(t) = at {
            self.wakes.insert((t, id.0));
            self.wake_of[id.0] = Some(t);
        }
    }

    /// FNV-1a over 8-byte words (then the tail): stable and fast enough to fingerprint
    /// every byte sent.
    fn mix(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            self.digest = (self.digest ^ v).wrapping_mul(FNV_PRIME);
        }
        for b in words.remainder() {
            self.digest = (self.digest ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
        }
    }

    /// A fingerprint of everything every node sent and reported so far.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Performs the node's outputs and re-arms its wake-up.
    fn pump(&mut self, id: NodeId) {
        while let Some(out) = self.nodes[id.0].node.as_mut().and_then(Node::poll_output) {
            let inc = self.nodes[id.0].incarnation;
            let t = self.now.as_nanos().to_le_bytes();
            self.mix(&t);
            self.mix(&(id.0 as u64).to_le_bytes());
            match out {
                Output::Transmit { conn, data } => {
                    self.mix(&conn.0.to_le_bytes());
                    self.mix(&data);
                    self.bytes_sent[id.0] += data.len() as u64;
                    if let Some(&(p, from)) = self.conn_pipe.get(&(id, inc, conn)) {
                        let to = 1 - from;
                        self.send_on(p, to, data);
                    }
                }
                Output::Dial { conn, addr } => {
                    self.mix(addr.as_bytes());
                    self.dial(id, inc, conn, &addr);
                }
                Output::Close { conn } => {
                    self.mix(b"close");
                    self.mix(&conn.0.to_le_bytes());
                    if let Some((p, from)) = self.conn_pipe.remove(&(id, inc, conn)) {
                        self.pipes[p].ends[from].conn = None;
                        let (x, y) = (self.pipes[p].ends[from].node, self.pipes[p].ends[1 - from].node);
                        if self.pipes[p].open && self.cut_towards(x, y) == Some(Cut::Stall) {
                            // The reset vanishes into the stalled link with everything else.
                            self.pipes[p].held_close[1 - from] = true;
                        } else if self.pipes[p].open {
                            // Bytes already sent arrive first, then the reset.
                            let lat = self.latency(self.pipes[p].ends[0].node, self.pipes[p].ends[1].node);
                            let at = (self.now + lat).max(self.pipes[p].flows[1 - from].last_arrival);
                            let why = "connection reset by peer";
                            self.schedule(at, Ev::Closed { pipe: p, to: 1 - from, why });
                        }
                    }
                }
                Output::Event(ev) => {
                    self.mix(format!("{ev:?}").as_bytes());
                    self.nodes[id.0].log.push((self.now, ev));
                }
            }
        }
        if let (Some(b), Some(node)) = (&mut self.budget, &self.nodes[id.0].node) {
            let frames = node.stats().frames_sent;
            let seen = std::mem::replace(&mut self.frames_seen[id.0], frames);
            *b = b.saturating_sub(frames.saturating_sub(seen));
        }
        self.rearm(id);
    }

    fn dial(&mut self, from: NodeId, inc: u64, conn: ConnId, addr: &str) {
        let target = self.by_addr.get(addr).copied();
        let Some(to) = target.filter(|t| self.nodes[t.0].node.is_some()) else {
            let lat = self.profile.latency;
            self.schedule(
                self.now + lat * 2,
                Ev::DialFailed { node: from, incarnation: inc, conn, why: "connection refused" },
            );
            return;
        };
        let lat = self.latency(from, to);
        let cut = match (self.cut_towards(from, to), self.cut_towards(to, from)) {
            (Some(Cut::Reset), _) | (_, Some(Cut::Reset)) => Some(Cut::Reset),
            (Some(Cut::Stall), _) | (_, Some(Cut::Stall)) => Some(Cut::Stall),
            _ => None,
        };
        match cut {
            Some(Cut::Reset) => {
                self.schedule(
                    self.now + lat * 2,
                    Ev::DialFailed { node: from, incarnation: inc, conn, why: "connection refused" },
                );
                return;
            }
            // The dial hangs: the node gives it up at its connect timeout.
            Some(Cut::Stall) => return,
            None => {}
        }
        let p = self.pipes.len();
        let to_inc = self.nodes[to.0].incarnation;
        self.pipes.push(Pipe {
            ends: [
                End { node: from, incarnation: inc, conn: Some(conn) },
                End { node: to, incarnation: to_inc, conn: None },
            ],
            flows: [Flow::default(), Flow::default()],
            open: true,
            held_close: [false, false],
        });
        self.conn_pipe.insert((from, inc, conn), (p, 0));
        let port = self.next_port;
        self.next_port += 1;
        let from_addr: std::net::SocketAddr = self.addr(from).parse().expect("simulated addresses parse");
        let seen = std::net::SocketAddr::new(from_addr.ip(), (port % 65536) as u16).to_string();
        self.schedule(self.now + lat, Ev::Accept { pipe: p, from: seen });
        self.schedule(self.now + lat * 2, Ev::Dialed { pipe: p });
    }

    /// Sends `data` through pipe `p` towards end `to`.
    fn send_on(&mut self, p: usize, to: usize, data: Bytes) {
        if !self.pipes[p].open {
            return;
        }
        let (from_node, to_node) = (self.pipes[p].ends[1 - to].node, self.pipes[p].ends[to].node);
        if self.cut_towards(from_node, to_node) == Some(Cut::Stall) {
            self.pipes[p].flows[to].unconfirmed += data.len();
            self.pipes[p].flows[to].held.push_back(data);
            return;
        }
        let prof = self.profile(from_node, to_node);
        let jitter = if prof.jitter.is_zero() {
            Duration::ZERO
        } else {
            // Exponential with the given mean, capped at ten times it.
            let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            prof.jitter.mul_f64((-(1.0 - u).ln()).min(10.0))
        };
        let now = self.now;
        let flow = &mut self.pipes[p].flows[to];
        let mut departs = now;
        if let Some(bw) = prof.bandwidth.filter(|b| *b > 0) {
            let start = flow.wire_free.max(now);
            let nanos = (data.len() as u128 * 1_000_000_000 / u128::from(bw)) as u64;
            departs = start + Duration::from_nanos(nanos);
            flow.wire_free = departs;
        }
        flow.unconfirmed += data.len();
        let at = (departs + prof.latency + jitter).max(flow.last_arrival);
        flow.last_arrival = at;
        self.schedule(at, Ev::Deliver { pipe: p, to, data });
    }

    /// Hands delivered bytes to the receiving node, or to its socket buffer if it is
    /// not reading; confirms the sender's write while the buffer has room.
    fn deliver(&mut self, p: usize, to: usize, data: Bytes) {
        if !self.pipes[p].open || self.pipes[p].ends[to].conn.is_none() {
            return;
        }
        let node = self.pipes[p].ends[to].node;
        if self.cut_towards(self.pipes[p].ends[1 - to].node, node) == Some(Cut::Stall) {
            self.pipes[p].flows[to].held.push_back(data);
            return;
        }
        if self.nodes[node.0].reading {
            self.consume(p, to, data);
        } else {
            let flow = &mut self.pipes[p].flows[to];
            flow.unread_bytes += data.len();
            flow.unread.push_back(data);
            if flow.unread_bytes <= SOCKET_BUFFER {
                let n = flow.unread.back().map_or(0, Bytes::len);
                self.confirm(p, to, n);
            }
        }
    }

    fn consume(&mut self, p: usize, to: usize, data: Bytes) {
        let n = data.len();
        let end = &self.pipes[p].ends[to];
        let (node, inc) = (end.node, end.incarnation);
        if let Some(conn) = end.conn {
            if self.nodes[node.0].incarnation == inc {
                let now = self.local_now(node);
                if let Some(nd) = self.nodes[node.0].node.as_mut() {
                    nd.handle_data(conn, &data, now);
                }
                self.pump(node);
            }
        }
        self.confirm(p, to, n);
    }

    /// Confirms to the sender (the end opposite `to`) that `n` more bytes were written.
    fn confirm(&mut self, p: usize, to: usize, n: usize) {
        let flow = &mut self.pipes[p].flows[to];
        let n = n.min(flow.unconfirmed);
        flow.unconfirmed -= n;
        let from = &self.pipes[p].ends[1 - to];
        let (node, inc) = (from.node, from.incarnation);
        if let Some(conn) = from.conn {
            if self.nodes[node.0].incarnation == inc && n > 0 {
                let now = self.local_now(node);
                if let Some(nd) = self.nodes[node.0].node.as_mut() {
                    nd.handle_written(conn, n, now);
                }
                self.pump(node);
            }
        }
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Accept { pipe, from } => {
                if !self.pipes[pipe].open {
                    return;
                }
                let id = self.pipes[pipe].ends[1].node;
                let Some(addr) = from.parse().ok() else { return };
                if self.nodes[id.0].incarnation != self.pipes[pipe].ends[1].incarnation {
                    return;
                }
                let now = self.local_now(id);
                let Some(node) = self.nodes[id.0].node.as_mut() else { return };
                let conn = node.handle_accepted(addr, now);
                let inc = self.nodes[id.0].incarnation;
                self.pipes[pipe].ends[1].conn = Some(conn);
                self.conn_pipe.insert((id, inc, conn), (pipe, 1));
                self.pump(id);
            }
            Ev::Dialed { pipe } => {
                let end = &self.pipes[pipe].ends[0];
                let (id, inc, conn) = (end.node, end.incarnation, end.conn);
                if !self.pipes[pipe].open || self.nodes[id.0].incarnation != inc {
                    return;
                }
                let now = self.local_now(id);
                if let (Some(conn), Some(node)) = (conn, self.nodes[id.0].node.as_mut()) {
                    node.handle_dialed(conn, now);
                    self.pump(id);
                }
            }
            Ev::DialFailed { node: id, incarnation, conn, why } => {
                if self.nodes[id.0].incarnation != incarnation {
                    return;
                }
                let now = self.local_now(id);
                if let Some(node) = self.nodes[id.0].node.as_mut() {
                    node.handle_dial_failed(conn, why, now);
                    self.pump(id);
                }
            }
            Ev::Deliver { pipe, to, data } => self.deliver(pipe, to, data),
            Ev::Inject { pipe, to, data } => {
                let end = &self.pipes[pipe].ends[to];
                let (id, inc) = (end.node, end.incarnation);
                let Some(conn) = end.conn.filter(|_| self.pipes[pipe].open) else { return };
                if self.nodes[id.0].incarnation != inc {
                    return;
                }
                self.mix(b"inject");
                self.mix(&data);
                let now = self.local_now(id);
                if let Some(node) = self.nodes[id.0].node.as_mut() {
                    node.handle_data(conn, &data, now);
                    self.pump(id);
                }
            }
            Ev::Closed { pipe, to, why } => {
                // The reset reached this end: the pipe is dead even if this end had
                // closed its side already (both ends closing at once left it "open").
                self.pipes[pipe].open = false;
                let end = &self.pipes[pipe].ends[to];
                let (id, inc) = (end.node, end.incarnation);
                let Some(conn) = end.conn else { return };
                self.pipes[pipe].ends[to].conn = None;
                self.conn_pipe.remove(&(id, inc, conn));
                if self.nodes[id.0].incarnation != inc {
                    return;
                }
                let now = self.local_now(id);
                if let Some(node) = self.nodes[id.0].node.as_mut() {
                    node.handle_closed(conn, why, now);
                    self.pump(id);
                }
            }
        }
    }

    /// Processes the next event or wake-up at or before `limit`; false if none.
    pub fn step(&mut self, limit: Instant) -> bool {
        let next_ev = self.queue.first_key_value().map(|((t, _), _)| *t);
        let next_wake = self.wakes.first().map(|(t, _)| *t);
        let t = match (next_ev, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        self.clock.set(self.now);
        if next_ev == Some(t) {
            if let Some((_, ev)) = self.queue.pop_first() {
                self.process(ev);
            }
        } else if let Some((_, i)) = self.wakes.pop_first() {
            self.wake_of[i] = None;
            let now = self.local_now(NodeId(i));
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.handle_timeout(now);
            }
            self.pump(NodeId(i));
            // A node that asks to be woken in the past would spin: push it forward.
            let now = self.now;
            if let Some(w) = self.wake_of[i] {
                if w <= now {
                    self.set_wake(NodeId(i), Some(now + Duration::from_millis(1)));
                }
            }
        }
        true
    }

    /// Runs until virtual time `t`.
    pub fn run_until(&mut self, t: Instant) {
        while !self.over_budget() && self.step(t) {}
        if !self.over_budget() {
            self.now = self.now.max(t);
            self.clock.set(self.now);
        }
    }

    /// Allows `frames` more frames (sent by all nodes) before the simulation stops
    /// advancing (`None`: no limit). A storm never ends by itself; with a budget, a run
    /// that meets one stops instead of hanging (see [`Sim::over_budget`]).
    pub fn set_frame_budget(&mut self, frames: Option<u64>) {
        self.budget = frames;
    }

    /// Whether the frame budget ran out: time stands still until a new one is set.
    pub fn over_budget(&self) -> bool {
        self.budget == Some(0)
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until `done` holds (checked every `every`) or `max` has passed. Returns the
    /// time it took, or `None` on time-out.
    pub fn run_until_true(
        &mut self,
        max: Duration,
        every: Duration,
        mut done: impl FnMut(&mut Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + max;
        loop {
            if done(self) {
                return Some(self.now - start);
            }
            if self.now >= end {
                return None;
            }
            let next = (self.now + every).min(end);
            self.run_until(next);
        }
    }

    // ------------------------------------------------------------------ checks

    /// Whether every live node in `ids` holds the same topology: the same records
    /// (name, UID, version) and connection lists, naming exactly the live nodes of `ids`.
    pub fn topology_converged(&self, ids: &[NodeId]) -> bool {
        let live: Vec<NodeId> = ids.iter().copied().filter(|i| self.nodes[i.0].node.is_some()).collect();
        let expect: BTreeSet<PeerName> = live.iter().map(|i| self.name(*i)).collect();
        let mut reference = None;
        for i in &live {
            let Some(node) = self.node(*i) else { return false };
            let view: Vec<_> = node
                .inspect()
                .peers()
                .map(|p| {
                    (
                        p.summary.name,
                        p.summary.uid,
                        p.summary.version,
                        p.connections.names().collect::<Vec<_>>(),
                    )
                })
                .collect();
            let names: BTreeSet<PeerName> = view.iter().map(|v| v.0).collect();
            if names != expect {
                return false;
            }
            match &reference {
                None => reference = Some(view),
                Some(r) if *r != view => return false,
                _ => {}
            }
        }
        true
    }

    /// Whether every live node in `ids` has a unicast route to every other one.
    pub fn routes_complete(&mut self, ids: &[NodeId]) -> bool {
        let live: Vec<NodeId> = ids.iter().copied().filter(|i| self.nodes[i.0].node.is_some()).collect();
        let names: Vec<PeerName> = live.iter().map(|i| self.name(*i)).collect();
        for i in &live {
            let Some(node) = self.nodes[i.0].node.as_mut() else { return false };
            let routes = node.inspect_routes().unicast_routes();
            if !names.iter().all(|n| routes.contains_key(n)) {
                return false;
            }
        }
        true
    }

    /// The connections the running incarnation of `id` has open in the network.
    pub fn conns_of(&self, id: NodeId) -> Vec<ConnId> {
        let inc = self.nodes[id.0].incarnation;
        let lo = (id, inc, ConnId(0));
        let hi = (id, inc, ConnId(u64::MAX));
        self.conn_pipe.range(lo..=hi).map(|((_, _, c), _)| *c).collect()
    }

    /// Adds `data` to the stream from `from` to `to` on a connection both ends hold, after
    /// everything `from` sent on it so far: what a hostile peer writes besides what its
    /// node does. It must be whole frames of the connection's protocol as it stands
    /// (plaintext version 2 frames, say: the simulator cannot seal for a node). Arrives
    /// after the link's latency. False if no such connection is open, its link is cut or
    /// the receiver is not reading (its buffered bytes would be overtaken).
    pub fn inject(&mut self, from: NodeId, to: NodeId, data: Bytes) -> bool {
        let held = |e: &End| e.conn.is_some() && self.nodes[e.node.0].incarnation == e.incarnation;
        let found = (0..self.pipes.len()).rev().find_map(|p| {
            let pipe = &self.pipes[p];
            let side = pipe.ends.iter().position(|e| e.node == to)?;
            (pipe.open && pipe.ends[1 - side].node == from && pipe.ends.iter().all(held)).then_some((p, side))
        });
        let Some((p, side)) = found else { return false };
        if self.cut_towards(from, to).is_some() || !self.nodes[to.0].reading {
            return false;
        }
        let at = (self.now + self.latency(from, to)).max(self.pipes[p].flows[side].last_arrival);
        self.pipes[p].flows[side].last_arrival = at;
        self.schedule(at, Ev::Inject { pipe: p, to: side, data });
        true
    }

    /// The open network pipes (TCP connections) with `id` at one end.
    pub fn open_pipes_of(&self, id: NodeId) -> Vec<usize> {
        (0..self.pipes.len())
            .filter(|p| self.pipes[*p].open && self.pipes[*p].ends.iter().any(|e| e.node == id))
            .collect()
    }

    /// Whether either end of network pipe `p` still holds its connection. A pipe both
    /// ends have closed is not held, even while their resets are stuck in a stalled
    /// link.
    pub fn pipe_held(&self, p: usize) -> bool {
        self.pipes.get(p).is_some_and(|p| p.open && p.ends.iter().any(|e| e.conn.is_some()))
    }

    /// A copy of node `id`'s unicast next-hop table (destination → next hop).
    pub fn unicast_routes(&mut self, id: NodeId) -> Option<BTreeMap<PeerName, PeerName>> {
        self.nodes[id.0].node.as_mut().map(|n| n.inspect_routes().unicast_routes().clone())
    }

    /// Copies of node `id`'s two unicast tables: over established, symmetric links, and
    /// over every reported link (the one unicasts are relayed with).
    pub fn route_tables(&mut self, id: NodeId) -> Option<[BTreeMap<PeerName, PeerName>; 2]> {
        self.nodes[id.0].node.as_mut().map(|n| {
            let r = n.inspect_routes();
            [r.unicast_routes().clone(), r.unicast_routes_all().clone()]
        })
    }

    /// The neighbours node `id` relays a broadcast from `source` to.
    pub fn broadcast_relays(&mut self, id: NodeId, source: PeerName) -> Vec<PeerName> {
        self.nodes[id.0]
            .node
            .as_mut()
            .map(|n| n.inspect_routes().broadcast_relays(source))
            .unwrap_or_default()
    }

    /// Whether node `id` is running.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.nodes[id.0].node.is_some()
    }

    /// Number of registered connections `a` holds to `b`'s name (0 or 1).
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.node(a).is_some_and(|n| n.connected_peers().contains(&self.name(b)))
    }
}
