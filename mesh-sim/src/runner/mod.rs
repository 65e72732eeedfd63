//! Runs a [`Scenario`]: builds the cluster, applies the fault schedule and the workload,
//! checks the invariants during the run and after the final heal, and reports.
//!
//! Invariants (names as they appear in reports):
//! - `no_panic`: nothing panicked (checked by the explorer, which catches panics);
//! - `topology_agreement`: after the final heal and the quiet period, the live peers of
//!   every connected component hold the same topology (peers, UIDs, versions,
//!   connections), naming exactly that component;
//! - `routes`: unicast routes are loop-free and reach every peer of the component;
//! - `exactly_once`: broadcasts and unicasts sent once the topology has converged reach
//!   each live target exactly once;
//! - `counters`: the G-counter values agree within a component and each live peer's own
//!   entry equals its increments (kept across restarts, as an application would);
//! - `queue_bound`: queued outbound bytes per connection stay within bound, and no
//!   connection is ever closed for a full send buffer;
//! - `relay_channel_bound`: relay-only channels per peer stay within the configured bound;
//! - `slow_reader`: a peer that stops reading loses its connections within
//!   [`SLOW_READER_BOUND`];
//! - `reconnection`: after the final heal, a live peer is in one component with every
//!   live peer it dials (its initial peers and those churn added, less those it forgot);
//!   checked when the connection limit leaves room for everyone. (A peer known only by
//!   discovery may rightly stay lost: once garbage-collected it is no longer dialled.)
//! - `planted`: the scenario's deliberately failing check, if any.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::config::{MAX_QUEUED_BYTES, WRITE_WINDOW};
use mesh_proto::counter::{Counter, Counts};
use mesh_proto::{ChannelHandle, Config, GossipError, Gossiper, Instant, Node, PeerName};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::apps::{Ids, decode_ids};
use crate::scenario::{FaultKind, Link, Scenario, Topology};
use crate::{Cut, LinkProfile, NodeId, Sim, SimClock};

/// A peer that stops reading must have lost every connection this long after it stopped
/// (the 60 s receive timeout, plus a periodic tick of slack).
pub const SLOW_READER_BOUND: Duration = Duration::from_secs(120);
/// How long probes get to arrive.
pub const PROBE_WINDOW: Duration = Duration::from_secs(10);
/// Probe message ids start here (workload ids are below).
const PROBE_BASE: u64 = 1 << 40;

/// Every invariant the runner checks.
pub const INVARIANTS: [&str; 11] = [
    "no_panic",
    "topology_agreement",
    "routes",
    "exactly_once",
    "counters",
    "queue_bound",
    "relay_channel_bound",
    "slow_reader",
    "reconnection",
    "formation",
    "planted",
];

/// One invariant that did not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: String,
    /// The peers involved (scenario indices).
    pub nodes: Vec<usize>,
    /// Virtual time, in ms.
    pub at_ms: u64,
    /// The scenario's seed.
    pub seed: u64,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} violated at {} ms by nodes {:?}: {}",
            self.seed, self.invariant, self.at_ms, self.nodes, self.detail
        )
    }
}

/// p50, p99 and maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

fn percentiles(mut v: Vec<f64>) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Some(Percentiles { p50: at(0.5), p99: at(0.99), max: v[v.len() - 1] })
}

/// Samples over time, for plots.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// (virtual ms, fraction of live peers whose table names exactly the live peers).
    pub full_topology: Vec<(f64, f64)>,
    /// (virtual ms, bytes per second sent by all peers over the last interval).
    pub bytes_per_sec: Vec<(f64, f64)>,
    /// Broadcast delivery latencies, ms.
    pub broadcast_latency_ms: Vec<f64>,
    /// Fault windows: (start ms, end ms, class).
    pub fault_windows: Vec<(f64, f64, String)>,
}

/// What a run measured and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Mesh peers.
    pub nodes: usize,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// From the final heal until every component agreed on the topology, ms.
    pub convergence_ms: Option<u64>,
    /// Frames sent per peer (all incarnations).
    pub messages_per_peer: f64,
    /// Bytes sent per peer.
    pub bytes_per_peer: f64,
    /// Tracked broadcasts sent (workload and probes).
    pub broadcasts: u64,
    /// Broadcast delivery latency, ms.
    pub broadcast_latency_ms: Option<Percentiles>,
    /// Broadcast messages received per broadcast (each relay hop is one message).
    pub messages_per_broadcast: Option<f64>,
    /// Deliveries of a broadcast a peer had already received (during faults).
    pub duplicate_deliveries: u64,
    /// How often each fault class was applied.
    pub faults: BTreeMap<String, u64>,
    /// How often each protocol event happened.
    pub events: BTreeMap<String, u64>,
    /// Verdict per invariant (`true`: held).
    pub invariants: BTreeMap<String, bool>,
    /// Every violation, in order.
    pub violations: Vec<Violation>,
    /// Fingerprint of everything the peers sent and reported.
    pub digest: String,
    /// Wall-clock figures, only when asked for (they differ between runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall: Option<WallTime>,
    /// Time series for plots (not in the JSON summary).
    #[serde(skip)]
    pub series: Series,
    /// Event logs of traced peers (not in the JSON summary).
    #[serde(skip)]
    pub trace: Vec<String>,
}

/// Wall-clock cost of a run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WallTime {
    /// Wall time, ms.
    pub wall_ms: f64,
    /// Virtual time over wall time.
    pub speedup: f64,
    /// Virtual time over wall time from the workload's start (`start_ms`, once the
    /// cluster has formed) to the end: the steady-state speed-up.
    pub speedup_after_start: Option<f64>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first violation, if any.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations.first()
    }
}

/// How to run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Peers whose event log goes into the report.
    pub trace: Vec<usize>,
    /// Sampling interval for series and running checks (0: chosen from the size).
    pub sample_ms: u64,
    /// Stop at the first violation.
    pub stop_at_first: bool,
    /// Called with (virtual ms so far, virtual ms planned) now and then.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trace", &self.trace)
            .field("sample_ms", &self.sample_ms)
            .field("stop_at_first", &self.stop_at_first)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------- the app

/// Deliveries seen by one peer's tracker: id → (times delivered, first delivery).
#[derive(Debug, Default)]
struct Seen {
    broadcasts: BTreeMap<u64, (u32, Instant)>,
    unicasts: BTreeMap<u64, (u32, Instant)>,
    broadcast_messages: u64,
}

struct TrackerGossiper {
    seen: Arc<Mutex<Seen>>,
    clock: SimClock,
}

impl Gossiper for TrackerGossiper {
    type Data = Ids;
    fn gossip(&mut self) -> Option<Ids> {
        None
    }
    fn on_gossip(&mut self, _: &[u8]) -> Result<Option<Ids>, GossipError> {
        Ok(None)
    }
    fn on_broadcast(&mut self, _: PeerName, payload: &[u8]) -> Result<Option<Ids>, GossipError> {
        let ids = decode_ids(payload)?;
        let now = self.clock.now();
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        s.broadcast_messages += 1;
        for id in &ids.0 {
            s.broadcasts.entry(*id).or_insert((0, now)).0 += 1;
        }
        Ok(Some(ids))
    }
    fn on_unicast(&mut self, _: PeerName, payload: &[u8]) -> Result<(), GossipError> {
        let now = self.clock.now();
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for id in decode_ids(payload)?.0 {
            s.unicasts.entry(id).or_insert((0, now)).0 += 1;
        }
        Ok(())
    }
}

/// The application every simulated peer runs: the counter and the tracker.
struct App {
    counter: Counter,
    counter_ch: ChannelHandle<Counts>,
    seen: Arc<Mutex<Seen>>,
    track_ch: ChannelHandle<Ids>,
}

/// A peer's name in a scenario.
pub fn peer_name(i: usize) -> PeerName {
    PeerName::from_u64(0x0a00_0000_0000 + i as u64 + 1)
        .unwrap_or_else(|_| PeerName::from_u64(1).expect("1 fits"))
}

/// Registers the app on a (re)started peer and dials its initial peers; the counter
/// starts from the peer's own increments so far, as if it had kept them on disk.
fn setup(
    i: usize,
    clock: SimClock,
    own: Rc<RefCell<Vec<i64>>>,
    dials: Vec<String>,
) -> impl FnMut(&mut Node, Instant) -> Box<dyn Any> {
    move |node, now| {
        let mut state = Counts::default();
        let mine = own.borrow().get(i).copied().unwrap_or(0);
        if mine > 0 {
            state.0.insert(node.name(), mine);
        }
        let counter = Counter::with_state(node.name(), state);
        let counter_ch = node.register_channel("default", counter.gossiper()).expect("fresh node");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let track_ch = node
            .register_channel("track", TrackerGossiper { seen: seen.clone(), clock: clock.clone() })
            .expect("fresh node");
        node.initiate_connections(&dials, false, now);
        Box::new(App { counter, counter_ch, seen, track_ch })
    }
}

// ---------------------------------------------------------------------- the run

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    FaultStart(usize),
    FaultEnd(usize),
    Increment,
    Broadcast,
    Unicast,
    Churn,
}

fn profile(l: &Link) -> LinkProfile {
    LinkProfile {
        latency: Duration::from_secs_f64(l.latency_ms / 1000.0),
        jitter: Duration::from_secs_f64(l.jitter_ms / 1000.0),
        bandwidth: l.bandwidth_kib.map(|k| k.saturating_mul(1024)),
    }
}

struct Runner<'a> {
    sc: &'a Scenario,
    opts: &'a RunOptions,
    sim: Sim,
    rng: ChaCha20Rng,
    members: Vec<NodeId>,
    intruders: BTreeMap<usize, NodeId>,
    /// Each member's own increments, kept across restarts.
    own: Rc<RefCell<Vec<i64>>>,
    next_id: u64,
    sent_broadcasts: BTreeMap<u64, (usize, Instant)>,
    report: Report,
    /// (node, deadline, pipes open when it stopped reading).
    slow_checks: Vec<(usize, Instant, Vec<usize>)>,
    last_bytes: u64,
    last_sample: Instant,
    /// (a, b): peer a dials peer b directly (initial peers, churn).
    direct: BTreeSet<(usize, usize)>,
    /// The peers each member dials at every start.
    initial_dials: Vec<Vec<usize>>,
    /// Wall clock when virtual time reached the workload's start.
    wall_at_start: Option<std::time::Instant>,
}

/// Runs `sc` to the end and reports. Panics inside the protocol propagate (the explorer
/// catches them and reports `no_panic`).
pub fn run(sc: &Scenario, opts: &RunOptions) -> Report {
    let wall = std::time::Instant::now();
    let mut r = Runner::new(sc, opts);
    r.execute();
    let at_start = r.wall_at_start;
    let mut report = r.finish();
    let secs = wall.elapsed().as_secs_f64();
    let after = at_start.filter(|_| sc.workload.start_ms > 0).map(|t| {
        let virt = report.virtual_ms.saturating_sub(sc.workload.start_ms) as f64 / 1000.0;
        virt / t.elapsed().as_secs_f64().max(1e-9)
    });
    report.wall = Some(WallTime {
        wall_ms: secs * 1000.0,
        speedup: report.virtual_ms as f64 / 1000.0 / secs.max(1e-9),
        speedup_after_start: after,
    });
    report
}

impl<'a> Runner<'a> {
    fn new(sc: &'a Scenario, opts: &'a RunOptions) -> Self {
        let mut sim = Sim::new(sc.seed);
        sim.set_default_profile(profile(&sc.link));
        let own = Rc::new(RefCell::new(vec![0i64; sc.nodes]));
        let mut rng = ChaCha20Rng::seed_from_u64(sc.seed ^ 0x6d65_7368_2d73_696d);
        let mut members = Vec::with_capacity(sc.nodes);
        let mut direct = BTreeSet::new();
        let mut initial_dials = Vec::with_capacity(sc.nodes);
        for i in 0..sc.nodes {
            let dials = Self::dials(sc, i, &mut rng);
            let peers: Vec<usize> =
                dials.iter().filter_map(|d| (0..sc.nodes).find(|j| Sim::address_of(*j) == *d)).collect();
            direct.extend(peers.iter().map(|&j| (i, j)));
            initial_dials.push(peers);
            let config = Self::config(sc, i, peer_name(i), sc.password.clone());
            let id = sim.add_node(config, setup(i, sim.clock(), own.clone(), dials));
            members.push(id);
        }
        let report = Report {
            scenario: sc.name.clone(),
            seed: sc.seed,
            nodes: sc.nodes,
            invariants: INVARIANTS.iter().map(|i| (i.to_string(), true)).collect(),
            faults: crate::scenario::FaultKind::CLASSES.iter().map(|c| (c.to_string(), 0)).collect(),
            ..Report::default()
        };
        Runner {
            sc,
            opts,
            sim,
            rng,
            members,
            intruders: BTreeMap::new(),
            own,
            next_id: 1,
            sent_broadcasts: BTreeMap::new(),
            report,
            slow_checks: Vec::new(),
            last_bytes: 0,
            last_sample: Instant::ZERO,
            direct,
            initial_dials,
            wall_at_start: None,
        }
    }

    fn config(sc: &Scenario, i: usize, name: PeerName, password: Option<String>) -> Config {
        let mut c = Config::new(name, format!("n{i}"));
        c.password = password.map(Bytes::from);
        c.conn_limit = sc.connection_limit;
        c.peer_discovery = sc.discovery;
        c.gossip_interval = Duration::from_millis(sc.gossip_interval_ms);
        c
    }

    /// The addresses peer `i` dials at start.
    fn dials(sc: &Scenario, i: usize, rng: &mut ChaCha20Rng) -> Vec<String> {
        let idx: Vec<usize> = match sc.topology {
            Topology::Line => (i > 0).then(|| i - 1).into_iter().collect(),
            Topology::Ring if sc.nodes > 2 => vec![(i + sc.nodes - 1) % sc.nodes],
            Topology::Ring => (i > 0).then(|| i - 1).into_iter().collect(),
            Topology::Star => (i > 0).then_some(0).into_iter().collect(),
            Topology::Full => (0..sc.nodes).filter(|j| *j != i).collect(),
            Topology::Random { degree } => {
                let mut pool: Vec<usize> = (0..i).collect();
                let mut out = Vec::new();
                while out.len() < degree && !pool.is_empty() {
                    let k = (rng.next_u64() % pool.len() as u64) as usize;
                    out.push(pool.swap_remove(k));
                }
                out.sort_unstable();
                out
            }
        };
        idx.into_iter().map(Sim::address_of).collect()
    }

    fn ms(&self) -> u64 {
        self.sim.now().as_nanos() / 1_000_000
    }

    fn violate(&mut self, invariant: &str, nodes: Vec<usize>, detail: String) {
        if let Some(v) = self.report.invariants.get_mut(invariant) {
            *v = false;
        }
        let at_ms = self.ms();
        self.report.violations.push(Violation {
            invariant: invariant.to_owned(),
            nodes,
            at_ms,
            seed: self.sc.seed,
            detail,
        });
    }

    fn stopped(&self) -> bool {
        self.opts.stop_at_first && !self.report.violations.is_empty()
    }

    fn sample_interval(&self) -> Duration {
        let ms = match self.opts.sample_ms {
            0 if self.sc.nodes > 300 => 2000,
            0 if self.sc.nodes > 60 => 1000,
            0 => 250,
            ms => ms,
        };
        Duration::from_millis(ms)
    }

    fn live_members(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| self.sim.is_live(self.members[*i])).collect()
    }

    fn pick(&mut self, from: &[usize]) -> Option<usize> {
        (!from.is_empty()).then(|| from[(self.rng.next_u64() % from.len() as u64) as usize])
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn execute(&mut self) {
        let sc = self.sc;
        // The timeline: fault starts and ends, workload operations.
        let mut timeline: Vec<(u64, Action)> = Vec::new();
        for (k, f) in sc.faults.iter().enumerate() {
            timeline.push((f.at_ms, Action::FaultStart(k)));
            let end = match (&f.kind, f.until_ms) {
                (_, Some(u)) => Some(u),
                (FaultKind::Crash { .. }, None) => None,
                (_, None) => Some(sc.duration_ms),
            };
            if let Some(e) = end {
                timeline.push((e, Action::FaultEnd(k)));
            }
            self.report.series.fault_windows.push((
                f.at_ms as f64,
                end.unwrap_or(sc.duration_ms) as f64,
                f.kind.class().to_owned(),
            ));
        }
        let w = sc.workload;
        let start = w.start_ms.min(sc.duration_ms);
        let span = (sc.duration_ms - start).max(1);
        let random_times = |n: usize, a: Action, rng: &mut ChaCha20Rng, tl: &mut Vec<(u64, Action)>| {
            for _ in 0..n {
                tl.push((start + rng.next_u64() % span, a));
            }
        };
        random_times(w.increments, Action::Increment, &mut self.rng, &mut timeline);
        match w.broadcast_every_ms {
            Some(every) if every > 0 => {
                for k in 0..w.broadcasts as u64 {
                    let t = start + k * every;
                    if t < sc.duration_ms {
                        timeline.push((t, Action::Broadcast));
                    }
                }
            }
            _ => random_times(w.broadcasts, Action::Broadcast, &mut self.rng, &mut timeline),
        }
        random_times(w.unicasts, Action::Unicast, &mut self.rng, &mut timeline);
        random_times(w.churn, Action::Churn, &mut self.rng, &mut timeline);
        timeline.sort();

        let planned = sc.duration_ms + sc.quiet_ms;
        let step = self.sample_interval();
        let mut next_sample = Instant::ZERO + step;
        let mut active: BTreeSet<usize> = BTreeSet::new();
        for (t, action) in timeline {
            let t = Self::at(t);
            while next_sample <= t {
                self.sim.run_until(next_sample);
                self.sample();
                next_sample += step;
            }
            self.sim.run_until(t);
            match action {
                Action::FaultStart(k) => {
                    active.insert(k);
                    self.fault(k, true);
                }
                Action::FaultEnd(k) => {
                    if active.remove(&k) {
                        self.fault(k, false);
                    }
                }
                Action::Increment => self.increment(),
                Action::Broadcast => {
                    self.broadcast();
                }
                Action::Unicast => {
                    self.unicast();
                }
                Action::Churn => self.churn(),
            }
            if self.stopped() {
                return;
            }
        }
        let heal = Self::at(sc.duration_ms);
        while next_sample <= heal {
            self.sim.run_until(next_sample);
            self.sample();
            next_sample += step;
        }
        self.sim.run_until(heal);
        // The final heal: every fault still active ends (crashes without an end stay).
        for k in active {
            self.fault(k, false);
        }
        for (_, id) in std::mem::take(&mut self.intruders) {
            self.sim.crash(id);
        }
        self.sim.heal_all();
        if let Some(p) = &self.opts.progress {
            p(sc.duration_ms, planned);
        }

        // Converge, then the quiet period.
        let end = heal + Duration::from_millis(sc.quiet_ms);
        let mut converged_at = None;
        while self.sim.now() < end {
            let next = (self.sim.now() + step).min(end);
            self.sim.run_until(next);
            self.sample();
            if converged_at.is_none() && self.components_agree() {
                converged_at = Some(self.sim.now());
            }
            if let Some(p) = &self.opts.progress {
                p(self.ms(), planned);
            }
            if self.stopped() {
                return;
            }
        }
        self.report.convergence_ms = converged_at.map(|t| (t - heal).as_millis() as u64);
        self.final_checks();
    }

    /// Periodic sampling and running checks.
    fn sample(&mut self) {
        let now = self.sim.now();
        if self.wall_at_start.is_none() && now >= Self::at(self.sc.workload.start_ms) {
            self.wall_at_start = Some(std::time::Instant::now());
        }
        let live = self.live_members();
        let expect: BTreeSet<PeerName> = live.iter().map(|i| peer_name(*i)).collect();
        let full = live.iter().filter(|&&i| self.knows_exactly(i, &expect)).count();
        let t = (now.as_nanos() / 1_000_000) as f64;
        self.report.series.full_topology.push((t, full as f64 / live.len().max(1) as f64));
        let bytes: u64 = self.sim.bytes_sent.iter().sum();
        let dt = (now - self.last_sample).as_secs_f64().max(1e-9);
        self.report.series.bytes_per_sec.push((t, (bytes - self.last_bytes) as f64 / dt));
        self.last_bytes = bytes;
        self.last_sample = now;

        // Bounds.
        for &i in &live {
            let id = self.members[i];
            let Some(node) = self.sim.node(id) else { continue };
            let limit = node.config().max_relay_channels;
            let relays = node.relay_channel_count();
            let bound = MAX_QUEUED_BYTES + WRITE_WINDOW + node.config().max_frame_len;
            let worst = self.sim.conns_of(id).into_iter().map(|c| node.queued_bytes(c)).max().unwrap_or(0);
            if relays > limit {
                self.violate(
                    "relay_channel_bound",
                    vec![i],
                    format!("{relays} relay-only channels, bound {limit}"),
                );
            }
            if worst > bound {
                self.violate(
                    "queue_bound",
                    vec![i],
                    format!("{worst} bytes queued on a connection, bound {bound}"),
                );
            }
        }
        // Slow readers.
        let due: Vec<(usize, Instant, Vec<usize>)> =
            self.slow_checks.iter().filter(|c| c.1 <= now).cloned().collect();
        self.slow_checks.retain(|c| c.1 > now);
        for (i, _, pipes) in due {
            let still: Vec<usize> = pipes.into_iter().filter(|p| self.sim.pipe_open(*p)).collect();
            if !still.is_empty() {
                self.violate(
                    "slow_reader",
                    vec![i],
                    format!(
                        "{} connections still open {} s after it stopped reading",
                        still.len(),
                        SLOW_READER_BOUND.as_secs()
                    ),
                );
            }
        }
    }

    fn fault(&mut self, k: usize, start: bool) {
        let f = self.sc.faults[k].clone();
        let ids = |v: &[usize], m: &[NodeId]| v.iter().map(|i| m[*i]).collect::<Vec<_>>();
        if start {
            *self.report.faults.entry(f.kind.class().to_owned()).or_insert(0) += 1;
        }
        match &f.kind {
            FaultKind::Partition { left, right } => {
                let (l, r) = (ids(left, &self.members), ids(right, &self.members));
                if start {
                    self.sim.partition(&l, &r, Cut::Reset);
                } else {
                    self.sim.heal_partition(&l, &r);
                }
            }
            FaultKind::OneWay { from, to } => {
                let (a, b) = (ids(from, &self.members), ids(to, &self.members));
                for &x in &a {
                    for &y in &b {
                        if x == y {
                            continue;
                        }
                        if start {
                            self.sim.cut_one_way(x, y);
                        } else {
                            self.sim.heal(x, y);
                        }
                    }
                }
                if let (false, Some(p)) = (start, self.sc.planted) {
                    let lasted = self.ms().saturating_sub(f.at_ms);
                    if lasted > p.one_way_longer_than_ms {
                        let nodes = f.kind.nodes();
                        self.violate("planted", nodes, format!("a one-way partition lasted {lasted} ms"));
                    }
                }
            }
            FaultKind::BlackHole { a, b } => {
                let (a, b) = (self.members[*a], self.members[*b]);
                if start { self.sim.cut(a, b, Cut::Stall) } else { self.sim.heal(a, b) }
            }
            FaultKind::Reset { a, b } => {
                let (a, b) = (self.members[*a], self.members[*b]);
                if start { self.sim.cut(a, b, Cut::Reset) } else { self.sim.heal(a, b) }
            }
            FaultKind::SlowLink { a, b, link } => {
                let (a, b) = (self.members[*a], self.members[*b]);
                if start { self.sim.set_profile(a, b, profile(link)) } else { self.sim.clear_profile(a, b) }
            }
            FaultKind::StopReading { node } => {
                let id = self.members[*node];
                self.sim.set_reading(id, !start);
                if start {
                    let lasts = f.until_ms.unwrap_or(self.sc.duration_ms).saturating_sub(f.at_ms);
                    if Duration::from_millis(lasts) >= SLOW_READER_BOUND {
                        let pipes = self.sim.open_pipes_of(id);
                        self.slow_checks.push((*node, self.sim.now() + SLOW_READER_BOUND, pipes));
                    }
                } else {
                    self.slow_checks.retain(|c| c.0 != *node);
                }
            }
            FaultKind::Crash { node } => {
                let id = self.members[*node];
                if start {
                    self.sim.crash(id);
                } else if !self.sim.is_live(id) {
                    self.sim.restart(id);
                    // The new incarnation dials only its initial peers: churn is forgotten.
                    let node = *node;
                    self.direct.retain(|&(a, _)| a != node);
                    self.direct.extend(self.initial_dials[node].iter().map(|&b| (node, b)));
                }
            }
            FaultKind::ClockSkew { node, offset_ms, rate_ppm } => {
                let id = self.members[*node];
                if !self.sim.is_live(id) && start {
                    return;
                }
                if start {
                    self.sim.set_clock(id, Duration::from_millis(*offset_ms), *rate_ppm);
                } else {
                    self.sim.set_clock(id, Duration::ZERO, 0);
                }
            }
            FaultKind::Intruder { via, collides_with } => {
                if start {
                    let i = self.members.len() + k;
                    let (name, password) = match collides_with {
                        Some(c) => (peer_name(*c), self.sc.password.clone()),
                        None => (
                            PeerName::from_u64(0x0e00_0000_0000 + k as u64).unwrap_or_else(|_| peer_name(i)),
                            Some(format!("not {}", self.sc.password.clone().unwrap_or_default())),
                        ),
                    };
                    let config = Self::config(self.sc, i, name, password);
                    let dials = vec![Sim::address_of(*via)];
                    let own = Rc::new(RefCell::new(Vec::new()));
                    let id = self.sim.add_node(config, setup(usize::MAX, self.sim.clock(), own, dials));
                    self.intruders.insert(k, id);
                } else if let Some(id) = self.intruders.remove(&k) {
                    self.sim.crash(id);
                }
            }
        }
    }

    fn increment(&mut self) {
        let live = self.live_members();
        let Some(i) = self.pick(&live) else { return };
        self.own.borrow_mut()[i] += 1;
        self.sim.act(self.members[i], |node, app, now| {
            if let Some(app) = app.downcast_ref::<App>() {
                let state = app.counter.increment();
                node.broadcast(&app.counter_ch, state, now);
            }
        });
    }

    fn broadcast_from(&mut self, i: usize, id: u64) {
        let now = self.sim.now();
        self.sent_broadcasts.insert(id, (i, now));
        self.report.broadcasts += 1;
        self.sim.act(self.members[i], |node, app, now| {
            if let Some(app) = app.downcast_ref::<App>() {
                node.broadcast(&app.track_ch, Ids(BTreeSet::from([id])), now);
            }
        });
    }

    fn broadcast(&mut self) {
        let live = self.live_members();
        let Some(i) = self.pick(&live) else { return };
        let id = self.next_id;
        self.next_id += 1;
        self.broadcast_from(i, id);
    }

    fn unicast_between(&mut self, from: usize, to: usize, id: u64) {
        let dest = peer_name(to);
        self.sim.act(self.members[from], |node, app, now| {
            if let Some(app) = app.downcast_ref::<App>() {
                let _ = node.unicast(&app.track_ch, dest, &id.to_be_bytes(), now);
            }
        });
    }

    fn unicast(&mut self) {
        let live = self.live_members();
        let (Some(a), Some(b)) = (self.pick(&live), self.pick(&live)) else { return };
        if a == b {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.unicast_between(a, b, id);
    }

    fn churn(&mut self) {
        let live = self.live_members();
        let (Some(a), Some(b)) = (self.pick(&live), self.pick(&live)) else { return };
        if a == b {
            return;
        }
        let addr = Sim::address_of(b);
        let forget = self.rng.next_u64() % 2 == 0;
        if forget {
            self.direct.remove(&(a, b));
        } else {
            self.direct.insert((a, b));
        }
        *self.report.faults.entry("churn".into()).or_insert(0) += 1;
        self.sim.act(self.members[a], |node, _, now| {
            if forget {
                node.forget_connections(&[addr], now);
            } else {
                node.initiate_connections(&[addr], false, now);
            }
        });
    }

    /// Connected components of live members over registered connections.
    fn components(&self) -> Vec<Vec<usize>> {
        let live = self.live_members();
        let index: BTreeMap<PeerName, usize> = live.iter().map(|i| (peer_name(*i), *i)).collect();
        let mut parent: BTreeMap<usize, usize> = live.iter().map(|i| (*i, *i)).collect();
        fn find(p: &mut BTreeMap<usize, usize>, x: usize) -> usize {
            let mut r = x;
            while p[&r] != r {
                r = p[&r];
            }
            p.insert(x, r);
            r
        }
        for &i in &live {
            let Some(node) = self.sim.node(self.members[i]) else { continue };
            for peer in node.connected_peers() {
                if let Some(&j) = index.get(&peer) {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent.insert(a, b);
                }
            }
        }
        let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &live {
            let r = find(&mut parent, i);
            comps.entry(r).or_default().push(i);
        }
        comps.into_values().collect()
    }

    fn components_agree(&self) -> bool {
        self.components().iter().all(|c| {
            let ids: Vec<NodeId> = c.iter().map(|i| self.members[*i]).collect();
            self.sim.topology_converged(&ids)
        })
    }

    fn final_checks(&mut self) {
        // Let a component that is still settling (a late reconnection) converge first.
        let step = self.sample_interval();
        let mut waited = Duration::ZERO;
        while !self.components_agree() && waited < Duration::from_secs(120) {
            self.sim.run_for(step);
            waited += step;
        }
        let comps = self.components();
        for c in &comps {
            let ids: Vec<NodeId> = c.iter().map(|i| self.members[*i]).collect();
            if !self.sim.topology_converged(&ids) {
                let detail = self.disagreement(c);
                self.violate("topology_agreement", c.clone(), detail);
            }
        }
        if self.stopped() {
            return;
        }
        self.check_reconnection(&comps);
        self.check_formation(&comps);
        self.check_routes(&comps);
        self.check_counters(&comps);
        self.probes(&comps);
        self.trace();
    }

    /// With `expect_formed`: one component, and every live peer knows exactly the live
    /// peers (a peer locked out at a connection limit is its own consistent component,
    /// which `topology_agreement` cannot see).
    fn check_formation(&mut self, comps: &[Vec<usize>]) {
        if !self.sc.expect_formed {
            return;
        }
        if comps.len() > 1 {
            let mut sizes: Vec<usize> = comps.iter().map(Vec::len).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let strays: Vec<usize> = comps.iter().filter(|c| c.len() < sizes[0]).flatten().copied().collect();
            let detail = format!("{} components (sizes {sizes:?})", comps.len());
            self.violate("formation", strays, detail);
            return;
        }
        let live = self.live_members();
        let expect: BTreeSet<PeerName> = live.iter().map(|i| peer_name(*i)).collect();
        let partial: Vec<usize> = live.iter().copied().filter(|&i| !self.knows_exactly(i, &expect)).collect();
        if !partial.is_empty() {
            let detail = format!("{} peers do not know exactly the live peers", partial.len());
            self.violate("formation", partial, detail);
        }
    }

    /// Whether live member `i`'s table holds exactly the peers in `expect`.
    fn knows_exactly(&self, i: usize, expect: &BTreeSet<PeerName>) -> bool {
        self.sim.node(self.members[i]).is_some_and(|n| {
            n.peers().len() == expect.len() && n.peers().iter().all(|p| expect.contains(&p.name))
        })
    }

    fn check_reconnection(&mut self, comps: &[Vec<usize>]) {
        let intruders =
            self.sc.faults.iter().filter(|f| matches!(f.kind, FaultKind::Intruder { .. })).count();
        if self.sc.connection_limit < self.members.len() + intruders {
            return;
        }
        let comp_of: BTreeMap<usize, usize> =
            comps.iter().enumerate().flat_map(|(k, c)| c.iter().map(move |i| (*i, k))).collect();
        let pairs: Vec<(usize, usize)> = self.direct.iter().copied().collect();
        for (a, b) in pairs {
            if let (Some(x), Some(y)) = (comp_of.get(&a), comp_of.get(&b)) {
                if x != y {
                    self.violate(
                        "reconnection",
                        vec![a, b],
                        format!("n{a} dials n{b}, but they are in different components"),
                    );
                    return;
                }
            }
        }
    }

    fn disagreement(&self, c: &[usize]) -> String {
        let mut views = Vec::new();
        for &i in c.iter().take(4) {
            if let Some(n) = self.sim.node(self.members[i]) {
                let v: Vec<String> = n
                    .peers()
                    .iter()
                    .map(|p| format!("{}v{}c{}", p.name, p.version, p.connections.len()))
                    .collect();
                views.push(format!("n{i}: [{}]", v.join(" ")));
            }
        }
        views.join("; ")
    }

    fn check_routes(&mut self, comps: &[Vec<usize>]) {
        let by_name: BTreeMap<PeerName, usize> = (0..self.members.len()).map(|i| (peer_name(i), i)).collect();
        for c in comps {
            let mut tables: BTreeMap<usize, BTreeMap<PeerName, PeerName>> = BTreeMap::new();
            for &i in c {
                if let Some(t) = self.sim.unicast_routes(self.members[i]) {
                    tables.insert(i, t);
                }
            }
            // All pairs for small components, a sample for big ones.
            let pairs: Vec<(usize, usize)> = if c.len() <= 100 {
                c.iter().flat_map(|a| c.iter().map(move |b| (*a, *b))).filter(|(a, b)| a != b).collect()
            } else {
                (0..4000)
                    .filter_map(|_| {
                        let a = c[(self.rng.next_u64() % c.len() as u64) as usize];
                        let b = c[(self.rng.next_u64() % c.len() as u64) as usize];
                        (a != b).then_some((a, b))
                    })
                    .collect()
            };
            for (src, dst) in pairs {
                let target = peer_name(dst);
                let mut hop = src;
                let mut steps = 0;
                let mut failure = None;
                while hop != dst {
                    steps += 1;
                    let next = tables.get(&hop).and_then(|t| t.get(&target)).and_then(|n| by_name.get(n));
                    match next {
                        None => {
                            failure = Some(format!("n{hop} has no route to n{dst} (from n{src})"));
                            break;
                        }
                        Some(&n) if steps > c.len() => {
                            failure = Some(format!("route from n{src} to n{dst} loops (at n{n})"));
                            break;
                        }
                        Some(&n) => hop = n,
                    }
                }
                if let Some(f) = failure {
                    self.violate("routes", vec![src, dst], f);
                    break;
                }
            }
        }
    }

    fn check_counters(&mut self, comps: &[Vec<usize>]) {
        let own = self.own.borrow().clone();
        for c in comps {
            let mut reference: Option<(usize, Counts)> = None;
            for &i in c {
                let Some(app) = self.sim.app::<App>(self.members[i]) else { continue };
                let snap = app.counter.snapshot();
                let mine = snap.0.get(&peer_name(i)).copied().unwrap_or(0);
                if mine != own[i] {
                    self.violate(
                        "counters",
                        vec![i],
                        format!("n{i} holds {mine} for its own entry after {} increments", own[i]),
                    );
                    return;
                }
                match &reference {
                    None => reference = Some((i, snap)),
                    Some((j, r)) if *r != snap => {
                        let detail = format!("n{i} has {} but n{j} has {}", snap.value(), r.value());
                        let j = *j;
                        self.violate("counters", vec![j, i], detail);
                        return;
                    }
                    _ => {}
                }
            }
        }
    }

    fn probes(&mut self, comps: &[Vec<usize>]) {
        let mut expect_b: Vec<(u64, usize, Vec<usize>)> = Vec::new();
        let mut expect_u: Vec<(u64, usize, usize)> = Vec::new();
        for k in 0..self.sc.probes as u64 {
            let live = self.live_members();
            let Some(src) = self.pick(&live) else { return };
            let Some(comp) = comps.iter().find(|c| c.contains(&src)) else { continue };
            let targets: Vec<usize> = comp.iter().copied().filter(|i| *i != src).collect();
            let id = PROBE_BASE + 2 * k;
            self.broadcast_from(src, id);
            expect_b.push((id, src, targets.clone()));
            if let Some(dst) = self.pick(&targets) {
                let id = PROBE_BASE + 2 * k + 1;
                self.unicast_between(src, dst, id);
                expect_u.push((id, src, dst));
            }
        }
        self.sim.run_for(PROBE_WINDOW);
        for (id, src, targets) in expect_b {
            for t in targets {
                let n = self.seen(t, |s| s.broadcasts.get(&id).map_or(0, |e| e.0));
                if n != 1 {
                    self.violate(
                        "exactly_once",
                        vec![src, t],
                        format!("probe broadcast {id} from n{src} reached n{t} {n} times"),
                    );
                    return;
                }
            }
        }
        for (id, src, dst) in expect_u {
            let n = self.seen(dst, |s| s.unicasts.get(&id).map_or(0, |e| e.0));
            if n != 1 {
                self.violate(
                    "exactly_once",
                    vec![src, dst],
                    format!("probe unicast {id} from n{src} reached n{dst} {n} times"),
                );
                return;
            }
        }
    }

    fn seen<T>(&self, i: usize, f: impl FnOnce(&Seen) -> T) -> T
    where
        T: Default,
    {
        match self.sim.app::<App>(self.members[i]) {
            Some(app) => f(&app.seen.lock().unwrap_or_else(|e| e.into_inner())),
            None => T::default(),
        }
    }

    fn trace(&mut self) {
        for &i in &self.opts.trace {
            if i >= self.members.len() {
                continue;
            }
            for (t, ev) in self.sim.events(self.members[i]) {
                self.report.trace.push(format!("{:>10.3} s  n{i}  {ev:?}", t.as_nanos() as f64 / 1e9));
            }
        }
    }

    fn finish(mut self) -> Report {
        let n = self.members.len();
        // Latencies and duplicates, from every member's tracker.
        let mut latencies = Vec::new();
        let mut messages = 0u64;
        let mut dups = 0u64;
        for i in 0..n {
            let Some(app) = self.sim.app::<App>(self.members[i]) else { continue };
            let s = app.seen.lock().unwrap_or_else(|e| e.into_inner());
            messages += s.broadcast_messages;
            for (id, (count, first)) in &s.broadcasts {
                dups += u64::from(count.saturating_sub(1));
                if let Some((_, sent)) = self.sent_broadcasts.get(id) {
                    latencies.push((*first - *sent).as_secs_f64() * 1000.0);
                }
            }
        }
        self.report.broadcast_latency_ms = percentiles(latencies.clone());
        self.report.series.broadcast_latency_ms = latencies;
        self.report.duplicate_deliveries = dups;
        if self.report.broadcasts > 0 {
            self.report.messages_per_broadcast = Some(messages as f64 / self.report.broadcasts as f64);
        }
        // Protocol events: live incarnations plus retired ones.
        let mut stats: Vec<mesh_proto::node::Stats> =
            self.sim.retired_stats.iter().map(|(_, s)| s.clone()).collect();
        stats.extend(self.sim.live_ids().into_iter().filter_map(|id| self.sim.node(id).map(|n| n.stats())));
        let sum = |f: fn(&mesh_proto::node::Stats) -> u64| stats.iter().map(f).sum::<u64>();
        let frames = sum(|s| s.frames_sent);
        for (k, v) in [
            ("handshakes", sum(|s| s.handshakes)),
            ("tie_breaks", sum(|s| s.tie_breaks)),
            ("restarts_detected", sum(|s| s.restarts_detected)),
            ("gc_removed", sum(|s| s.gc_removed)),
            ("backoffs", sum(|s| s.backoffs)),
            ("slow_reader_closes", sum(|s| s.slow_reader_closes)),
            ("short_id_reassignments", sum(|s| s.short_id_reassignments)),
            ("unicasts_dropped", sum(|s| s.unicasts_dropped)),
            ("relay_channels_evicted", sum(|s| s.relay_channels_evicted)),
        ] {
            self.report.events.insert(k.to_owned(), v);
        }
        // Refused intruders and send-buffer closes, from the event logs.
        let mut collisions = 0;
        let mut wrong_pw = 0;
        let mut full = Vec::new();
        for id in self.sim.ids() {
            for (_, ev) in self.sim.events(id) {
                if let mesh_proto::Event::ConnectionClosed { reason, .. } = ev {
                    match reason {
                        mesh_proto::CloseReason::NameCollision(_) => collisions += 1,
                        mesh_proto::CloseReason::Handshake(_) => wrong_pw += 1,
                        mesh_proto::CloseReason::SendBufferFull => full.push(id.0),
                        _ => {}
                    }
                }
            }
        }
        if !full.is_empty() {
            self.violate("queue_bound", full, "a connection was closed for a full send buffer".into());
        }
        self.report.events.insert("name_collisions_refused".into(), collisions);
        self.report.events.insert("handshakes_refused".into(), wrong_pw);
        self.report.messages_per_peer = frames as f64 / n.max(1) as f64;
        self.report.bytes_per_peer = self.sim.bytes_sent.iter().sum::<u64>() as f64 / n.max(1) as f64;
        self.report.virtual_ms = self.ms();
        self.report.digest = format!("{:016x}", self.sim.digest());
        self.report
    }
}
