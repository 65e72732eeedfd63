//! Runs a [`Scenario`]: builds the cluster, applies the fault schedule and the workload,
//! checks the invariants during the run and after the final heal, and reports.
//!
//! The *final heal* is the moment the last disturbance ended: the last fault's end (a
//! crash for good counts at its start), or the last churn. From then on the runner
//! watches for convergence: the live mesh agrees on one topology, as one component
//! naming exactly the live peers when formation is expected, otherwise within each
//! connected component; and it stays that way, with no record changing, until the
//! final checks. `convergence_ms` is the time from the final heal to the start of that
//! stable agreement.
//!
//! Invariants (names as they appear in reports). Each counts what it examined; one that
//! examined nothing is reported as not applicable, with the reason:
//! - `no_panic`: nothing panicked (checked by the explorer, which catches panics);
//! - `topology_agreement`: after the final heal and the quiet period, the live peers of
//!   every connected component hold the same topology (peers, UIDs, versions,
//!   connections), naming exactly that component;
//! - `routes`: both unicast tables (established, and every reported link) are
//!   loop-free, reach every peer of the component, and every next hop is a registered
//!   connection of the peer that uses it;
//! - `broadcast_trees`: from every source (a sample in big components), relaying as the
//!   peers would reaches every other peer of the component exactly once and never
//!   comes back to the source;
//! - `exactly_once`: every tracked broadcast and unicast sent once the mesh had
//!   converged, and the probes (from every live peer, up to 64), reach each live target
//!   exactly once;
//! - `counters`: the G-counter values agree within a component and each live peer's own
//!   entry equals its increments (kept across restarts, as an application would);
//! - `queue_bound`: queued outbound bytes per connection stay within bound, and no
//!   connection is ever closed for a full send buffer (the bulk workload pushes
//!   queues to their limit);
//! - `relay_channel_bound`: relay-only channels per peer stay within the configured bound
//!   (the sparse workload makes peers relay channels they lack);
//! - `slow_reader`: a peer that stops reading for at least [`SLOW_READER_BOUND`] has lost
//!   every connection it had by then;
//! - `reconnection`: after the final heal, a live peer is in one component with every
//!   live peer it dials (its initial peers and those churn added, less those it forgot);
//!   checked when the connection limit leaves room for everyone. (A peer known only by
//!   discovery may rightly stay lost: once garbage-collected it is no longer dialled.)
//! - `formation`: one component in which every live peer knows exactly the live peers;
//!   expected when the scenario says so (`expect_formed`) or when the connection limit
//!   leaves room for everyone and the live peers' dial graph is connected;
//! - `quiet_traffic`: no traffic storm ever (more than [`STORM_RATE`] frames per peer
//!   per second within a sample interval stops the run), and once the mesh has converged
//!   and the workload is over, each gossip interval carries no more frames per peer
//!   than heartbeats and periodic gossip account for (see `quiet_bound`);
//! - `planted`: the scenario's deliberately failing check, if any.

mod app;
mod checks;
mod forge;
mod verdict;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::config::{MAX_QUEUED_BYTES, WRITE_WINDOW};
use mesh_proto::{Config, Instant, PeerName};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

pub use verdict::{INVARIANTS, InvariantReport, Verdict};

use crate::apps::{Blob, Ids};
use crate::scenario::{FaultKind, Forgery, Link, Scenario, Topology};
use crate::{Cut, LinkProfile, NodeId, Sim};
use app::{App, setup};
use verdict::Tally;

/// A peer that stops reading must have lost every connection this long after it stopped
/// (the 60 s receive timeout, plus a periodic tick of slack).
pub const SLOW_READER_BOUND: Duration = Duration::from_secs(120);
/// How long probes get to arrive.
pub const PROBE_WINDOW: Duration = Duration::from_secs(10);
/// Probe message ids start here (workload ids are below).
const PROBE_BASE: u64 = 1 << 40;
/// Most peers that send probes (every live peer in smaller meshes).
pub const PROBE_SOURCES: usize = 64;
/// Unicasts in one burst of the bulk workload.
pub const BULK_BURST: usize = 128;
/// Frames per live peer per second that make a storm (the busiest honest moments, a bulk
/// burst relayed over several hops or a big table's first exchange, stay far below).
pub const STORM_RATE: f64 = 5_000.0;

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
    /// Each peer's connection limit.
    pub connection_limit: usize,
    /// How many peers offered only protocol version 2 (all of them: a version 2 mesh).
    pub v2_only_peers: usize,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// When the last disturbance ended (the final heal), ms.
    pub final_heal_ms: u64,
    /// Whether convergence meant one formed mesh (formation expected) rather than
    /// agreement within each component.
    pub convergence_as_one_mesh: bool,
    /// From the final heal until the mesh agreed for good (see the module docs), ms.
    pub convergence_ms: Option<u64>,
    /// Frames sent per peer (all incarnations).
    pub messages_per_peer: f64,
    /// Bytes sent per peer.
    pub bytes_per_peer: f64,
    /// Bytes sent per live peer per gossip interval in steady state: averaged over the
    /// whole gossip intervals between convergence (once the workload is over) and the
    /// end. `None` without such an interval.
    pub steady_bytes_per_peer_per_interval: Option<f64>,
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
    /// The most entries (records and placeholders) a live peer's table held at the end.
    pub largest_table: usize,
    /// The fewest.
    pub smallest_table: usize,
    /// The most entries a peer's table held at any sample of the run.
    pub peak_table: usize,
    /// The fewest of the peers' peaks: every peer's table held this many at some sample.
    pub peak_table_everywhere: usize,
    /// The highest version of any record a live peer held at the end.
    pub highest_version: u64,
    /// Verdict per invariant, with what it examined.
    pub invariants: BTreeMap<String, InvariantReport>,
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
    /// Whether every invariant held (or did not apply).
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first violation, if any.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// Whether `invariant` examined something and held.
    pub fn held(&self, invariant: &str) -> bool {
        self.invariants.get(invariant).is_some_and(InvariantReport::held)
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
    /// Stop at the first violation of this invariant (others are recorded and the run
    /// goes on).
    pub stop_at_invariant: Option<String>,
    /// Called with (virtual ms so far, virtual ms planned) now and then.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trace", &self.trace)
            .field("sample_ms", &self.sample_ms)
            .field("stop_at_first", &self.stop_at_first)
            .field("stop_at_invariant", &self.stop_at_invariant)
            .finish_non_exhaustive()
    }
}

/// The report of a run that panicked with `msg`: `no_panic` violated, nothing else
/// checked.
pub fn panicked(sc: &Scenario, msg: String) -> Report {
    let mut tally = Tally::default();
    tally.violated("no_panic");
    for (inv, _) in INVARIANTS {
        tally.not_applicable(inv, "not checked: the run panicked");
    }
    Report {
        scenario: sc.name.clone(),
        seed: sc.seed,
        nodes: sc.nodes,
        connection_limit: sc.connection_limit,
        v2_only_peers: sc.v2_only.len(),
        invariants: tally.finish(),
        violations: vec![Violation {
            invariant: "no_panic".into(),
            nodes: Vec::new(),
            at_ms: 0,
            seed: sc.seed,
            detail: msg,
        }],
        ..Report::default()
    }
}

/// A peer's name in a scenario.
pub fn peer_name(i: usize) -> PeerName {
    PeerName::from_u64(0x0a00_0000_0000 + i as u64 + 1)
        .unwrap_or_else(|_| PeerName::from_u64(1).expect("1 fits"))
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
    Bulk,
    SparseBroadcast,
}

fn profile(l: &Link) -> LinkProfile {
    LinkProfile {
        latency: Duration::from_secs_f64(l.latency_ms / 1000.0),
        jitter: Duration::from_secs_f64(l.jitter_ms / 1000.0),
        bandwidth: l.bandwidth_kib.map(|k| k.saturating_mul(1024)),
    }
}

/// A tracked unicast that the sending node accepted.
#[derive(Clone, Copy, Debug)]
struct SentUnicast {
    from: usize,
    to: usize,
    at: Instant,
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
    sent_unicasts: BTreeMap<u64, SentUnicast>,
    report: Report,
    tally: Tally,
    /// (node, deadline, pipes open when it stopped reading).
    slow_checks: Vec<(usize, Instant, Vec<usize>)>,
    last_bytes: u64,
    last_sample: Instant,
    /// The most entries each member's table held at a sample.
    peak_tables: Vec<usize>,
    /// (a, b): peer a dials peer b directly (initial peers, churn).
    direct: BTreeSet<(usize, usize)>,
    /// The peers each member dials at every start.
    initial_dials: Vec<Vec<usize>>,
    /// When the last disturbance ends.
    final_heal: Instant,
    /// Since when the mesh has agreed without change, and on what (a fingerprint).
    stable: Option<(Instant, u64)>,
    /// Whether one formed mesh is expected (or why not), decided after the final heal.
    one_mesh: Option<Result<(), String>>,
    /// Wall clock when virtual time reached the workload's start.
    wall_at_start: Option<std::time::Instant>,
    /// Frames and bytes sent by all peers so far, at each sample.
    frames: Vec<(Instant, u64, u64)>,
    /// Stopped early (a storm would not end).
    aborted: bool,
    /// The last agreement computed, with the state it was computed from.
    agreement_cache: Option<(Vec<TableState>, Option<u64>)>,
    /// Per member: whether it knew exactly the live peers, and in what state.
    knows_cache: Vec<Option<(TableState, u64, bool)>>,
}

/// What a member's table derives from, for recomputing checks only when it moved: the
/// member, its incarnation's UID and its table's generation.
type TableState = (usize, u64, u64);

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
            let app = setup(i, sim.clock(), own.clone(), dials, sc.workload.sparse_channels);
            members.push(sim.add_node(config, app));
        }
        let report = Report {
            scenario: sc.name.clone(),
            seed: sc.seed,
            nodes: sc.nodes,
            connection_limit: sc.connection_limit,
            v2_only_peers: sc.v2_only.len(),
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
            sent_unicasts: BTreeMap::new(),
            report,
            tally: Tally::default(),
            slow_checks: Vec::new(),
            last_bytes: 0,
            peak_tables: vec![0; sc.nodes],
            last_sample: Instant::ZERO,
            direct,
            initial_dials,
            final_heal: Instant::ZERO,
            stable: None,
            one_mesh: None,
            wall_at_start: None,
            frames: Vec::new(),
            agreement_cache: None,
            knows_cache: Vec::new(),
            aborted: false,
        }
    }

    fn config(sc: &Scenario, i: usize, name: PeerName, password: Option<String>) -> Config {
        let mut c = Config::new(name, format!("n{i}"));
        c.password = password.map(Bytes::from);
        if sc.v2_only.contains(&i) {
            c.max_protocol_version = 2;
        }
        if sc.v3_only.contains(&i) && !sc.v2_only.contains(&i) {
            c.min_protocol_version = 3;
        }
        c.conn_limit = sc.connection_limit;
        c.peer_discovery = sc.discovery;
        c.gossip_interval = Duration::from_millis(sc.gossip_interval_ms);
        if let Some(m) = sc.max_relay_channels {
            c.max_relay_channels = m;
        }
        if let Some(ms) = sc.receive_timeout_ms {
            c.receive_timeout = Duration::from_millis(ms);
        }
        if let Some(l) = sc.record_limits {
            let r = &mut c.record_limits;
            r.max_connections = l.max_connections.unwrap_or(r.max_connections);
            r.max_nickname_len = l.max_nickname_len.unwrap_or(r.max_nickname_len);
            r.max_record_len = l.max_record_len.unwrap_or(r.max_record_len);
            r.max_peers = l.max_peers.unwrap_or(r.max_peers);
        }
        #[cfg(feature = "sabotage")]
        {
            c.sabotage = sc.sabotage.iter().filter_map(|s| s.parse().ok()).collect();
        }
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
        self.tally.violated(invariant);
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
        self.aborted
            || (self.opts.stop_at_first && !self.report.violations.is_empty())
            || self.opts.stop_at_invariant.as_deref().is_some_and(|i| self.tally.is_violated(i))
    }

    /// Whether the run must end now: a storm used up the transmit budget (a violation;
    /// the simulation cannot advance), or the first violation when asked to stop there.
    fn halted(&mut self) -> bool {
        if self.sim.over_budget() && !self.aborted {
            self.aborted = true;
            let detail = format!("a storm: more than {STORM_RATE} frames per peer per second");
            self.violate("quiet_traffic", Vec::new(), detail);
        }
        self.stopped()
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

    /// The workload's and the faults' actions in time order.
    fn timeline(&mut self) -> Vec<(u64, Action)> {
        let sc = self.sc;
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
        random_times(w.bulk, Action::Bulk, &mut self.rng, &mut timeline);
        random_times(w.sparse_broadcasts, Action::SparseBroadcast, &mut self.rng, &mut timeline);
        timeline.sort();
        timeline
    }

    /// The last disturbance: the last fault end (a crash for good counts at its start,
    /// faults without an end at the end of the active phase) or the last churn.
    fn final_heal_ms(&self, timeline: &[(u64, Action)]) -> u64 {
        let faults = self.sc.faults.iter().map(|f| match (&f.kind, f.until_ms) {
            (_, Some(u)) => u,
            (FaultKind::Crash { .. }, None) => f.at_ms,
            (_, None) => self.sc.duration_ms,
        });
        let churn = timeline.iter().filter(|(_, a)| *a == Action::Churn).map(|(t, _)| *t);
        faults.chain(churn).max().unwrap_or(0)
    }

    fn execute(&mut self) {
        let sc = self.sc;
        let timeline = self.timeline();
        self.report.final_heal_ms = self.final_heal_ms(&timeline);
        self.final_heal = Self::at(self.report.final_heal_ms);

        let planned = sc.duration_ms + sc.quiet_ms;
        let step = self.sample_interval();
        let mut next_sample = Instant::ZERO + step;
        self.arm_budget(step);
        let mut active: BTreeSet<usize> = BTreeSet::new();
        for (t, action) in timeline {
            let t = Self::at(t);
            while next_sample <= t {
                self.sim.run_until(next_sample);
                self.sample();
                next_sample += step;
                if self.halted() {
                    return;
                }
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
                Action::Broadcast => self.broadcast(),
                Action::Unicast => self.unicast(),
                Action::Churn => self.churn(),
                Action::Bulk => self.bulk(),
                Action::SparseBroadcast => self.sparse_broadcast(),
            }
            if self.halted() {
                return;
            }
        }
        let heal = Self::at(sc.duration_ms);
        while next_sample <= heal {
            self.sim.run_until(next_sample);
            self.sample();
            next_sample += step;
            if self.halted() {
                return;
            }
        }
        self.sim.run_until(heal);
        // The end of the active phase: every fault still active ends, but crashes without
        // an end are for good (they used to be restarted here too).
        for k in active {
            let f = &sc.faults[k];
            if !(matches!(f.kind, FaultKind::Crash { .. }) && f.until_ms.is_none()) {
                self.fault(k, false);
            }
        }
        for (_, id) in std::mem::take(&mut self.intruders) {
            self.sim.crash(id);
        }
        self.sim.heal_all();
        if let Some(p) = &self.opts.progress {
            p(sc.duration_ms, planned);
        }

        // The quiet period.
        let end = heal + Duration::from_millis(sc.quiet_ms);
        while self.sim.now() < end {
            let next = (self.sim.now() + step).min(end);
            self.sim.run_until(next);
            self.sample();
            if let Some(p) = &self.opts.progress {
                p(self.ms(), planned);
            }
            if self.halted() {
                return;
            }
        }
        self.final_checks();
    }

    /// Periodic sampling and running checks.
    fn sample(&mut self) {
        if self.halted() {
            return;
        }
        let now = self.sim.now();
        if self.wall_at_start.is_none() && now >= Self::at(self.sc.workload.start_ms) {
            self.wall_at_start = Some(std::time::Instant::now());
        }
        let live = self.live_members();
        let expect: BTreeSet<PeerName> = live.iter().map(|i| peer_name(*i)).collect();
        let expect_key = live.iter().fold(FNV_OFFSET, |h, i| fnv(h, *i as u64));
        let full = live.iter().filter(|&&i| self.knows_exactly_cached(i, &expect, expect_key)).count();
        let t = (now.as_nanos() / 1_000_000) as f64;
        self.report.series.full_topology.push((t, full as f64 / live.len().max(1) as f64));
        let bytes: u64 = self.sim.bytes_sent.iter().sum();
        let dt = (now - self.last_sample).as_secs_f64().max(1e-9);
        self.report.series.bytes_per_sec.push((t, (bytes - self.last_bytes) as f64 / dt));
        self.last_bytes = bytes;
        self.last_sample = now;
        for &i in &live {
            let held = self.sim.node(self.members[i]).map_or(0, |n| n.inspect().peer_count());
            self.peak_tables[i] = self.peak_tables[i].max(held);
        }
        // Strictly after: a sample at the very instant of the last fault's end runs
        // before the fault is lifted.
        if now > self.final_heal {
            self.watch_convergence(now);
        }
        self.check_bounds(&live);
        self.check_slow_readers(now);
        let frames = self.frames_sent();
        self.frames.push((now, frames, bytes));
        self.arm_budget(self.sample_interval());
    }

    /// The frame budget for the next `d` of virtual time (a storm exhausts it).
    fn arm_budget(&mut self, d: Duration) {
        let live = self.live_members().len().max(1);
        self.sim.set_frame_budget(Some((STORM_RATE * live as f64 * d.as_secs_f64()) as u64));
    }

    /// Frames sent by every member incarnation so far (intruders excluded).
    fn frames_sent(&self) -> u64 {
        let live: u64 =
            self.members.iter().filter_map(|id| self.sim.node(*id)).map(|n| n.stats().frames_sent).sum();
        let retired = self.sim.retired_stats.iter().filter(|(id, _)| id.0 < self.members.len());
        live + retired.map(|(_, s)| s.frames_sent).sum::<u64>()
    }

    /// Keeps `stable`: since when the mesh has agreed without a record changing.
    fn watch_convergence(&mut self, now: Instant) {
        if self.one_mesh.is_none() {
            let expected = self.formation_expected();
            self.report.convergence_as_one_mesh = expected.is_ok();
            self.one_mesh = Some(expected);
        }
        match self.agreement_cached() {
            Some(fp) if self.stable.is_some_and(|(_, f)| f == fp) => {}
            Some(fp) => self.stable = Some((now, fp)),
            None => self.stable = None,
        }
    }

    /// The state agreement and knowledge are derived from, for member `i`.
    fn table_state(&self, i: usize) -> Option<TableState> {
        let node = self.sim.node(self.members[i])?;
        let view = node.inspect();
        Some((i, view.ours().summary.uid, view.table_generation()))
    }

    /// [`Runner::agreement`], recomputed only when a live member's table changed (or the
    /// live members did): in a steady mesh most samples change nothing.
    fn agreement_cached(&mut self) -> Option<u64> {
        let key: Vec<TableState> = self.live_members().iter().filter_map(|i| self.table_state(*i)).collect();
        if let Some((k, v)) = &self.agreement_cache {
            if *k == key {
                return *v;
            }
        }
        let v = self.agreement();
        self.agreement_cache = Some((key, v));
        v
    }

    /// [`Runner::knows_exactly`] of the live peers (`key` fingerprints which they are),
    /// recomputed only when the member's table or the live set changed.
    fn knows_exactly_cached(&mut self, i: usize, expect: &BTreeSet<PeerName>, key: u64) -> bool {
        let Some(state) = self.table_state(i) else { return false };
        if self.knows_cache.len() <= i {
            self.knows_cache.resize(i + 1, None);
        }
        if let Some((s, k, v)) = self.knows_cache[i] {
            if s == state && k == key {
                return v;
            }
        }
        let v = self.knows_exactly(i, expect);
        self.knows_cache[i] = Some((state, key, v));
        v
    }

    /// A fingerprint of what the live mesh agrees on, if it agrees: one component naming
    /// exactly the live peers when formation is expected, otherwise every component
    /// agreeing on itself. Records are compared by name, UID and version (a record's
    /// connections are fixed by its version); `topology_agreement` compares them in full.
    fn agreement(&self) -> Option<u64> {
        let comps = self.components();
        if self.report.convergence_as_one_mesh && comps.len() != 1 {
            return None;
        }
        let mut all = FNV_OFFSET;
        for c in &comps {
            let mut first: Option<u64> = None;
            for &i in c {
                let node = self.sim.node(self.members[i])?;
                let fp = node.inspect().peers().fold(FNV_OFFSET, |h, p| {
                    fnv(fnv(fnv(h, p.summary.name.to_u64()), p.summary.uid), p.summary.version)
                });
                match first {
                    None => {
                        let names: BTreeSet<PeerName> = c.iter().map(|i| peer_name(*i)).collect();
                        if !self.knows_exactly(i, &names) {
                            return None;
                        }
                        first = Some(fp);
                    }
                    Some(f) if f != fp => return None,
                    Some(_) => {}
                }
            }
            all = fnv(all, first.unwrap_or(0));
        }
        Some(all)
    }

    fn check_bounds(&mut self, live: &[usize]) {
        for &i in live {
            let id = self.members[i];
            let Some(node) = self.sim.node(id) else { continue };
            let limit = node.config().max_relay_channels;
            let relays = node.inspect().relay_channel_count();
            let bound = MAX_QUEUED_BYTES + WRITE_WINDOW + node.config().max_frame_len;
            let conns = self.sim.conns_of(id);
            let worst = conns.iter().map(|c| node.inspect().queued_bytes(*c)).max().unwrap_or(0);
            self.tally.examined("queue_bound", conns.len() as u64);
            self.tally.load("queue_bound", worst, bound);
            if relays > 0 {
                self.tally.examined("relay_channel_bound", 1);
                self.tally.load("relay_channel_bound", relays, limit);
            }
            // A bound stays exceeded for a while: report the first time only.
            if relays > limit && !self.tally.is_violated("relay_channel_bound") {
                self.violate(
                    "relay_channel_bound",
                    vec![i],
                    format!("{relays} relay-only channels, bound {limit}"),
                );
            }
            if worst > bound && !self.tally.is_violated("queue_bound") {
                self.violate(
                    "queue_bound",
                    vec![i],
                    format!("{worst} bytes queued on a connection, bound {bound}"),
                );
            }
        }
    }

    fn check_slow_readers(&mut self, now: Instant) {
        let due: Vec<(usize, Instant, Vec<usize>)> =
            self.slow_checks.iter().filter(|c| c.1 <= now).cloned().collect();
        self.slow_checks.retain(|c| c.1 > now);
        for (i, _, pipes) in due {
            self.tally.examined("slow_reader", 1);
            let still: Vec<usize> = pipes.into_iter().filter(|p| self.sim.pipe_held(*p)).collect();
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
                    self.tally.examined("planted", 1);
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
                    if Duration::from_millis(lasts) >= SLOW_READER_BOUND && self.sim.is_live(id) {
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
            FaultKind::Forge { node, to, record } => {
                if start {
                    self.forge(*node, to, record);
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
                    let app = setup(usize::MAX, self.sim.clock(), own, dials, 0);
                    let id = self.sim.add_node(config, app);
                    self.intruders.insert(k, id);
                } else if let Some(id) = self.intruders.remove(&k) {
                    self.sim.crash(id);
                }
            }
        }
    }

    /// Peer `node` writes a forged record to each of `to` it is connected to.
    fn forge(&mut self, node: usize, to: &[usize], record: &Forgery) {
        let hostile = self.members[node];
        let victim = match record {
            Forgery::Claim { victim } => peer_name(*victim),
            _ => peer_name(node),
        };
        let frame = forge::forged_update(peer_name(node), record, victim);
        let connected = self.sim.node(hostile).map(|n| n.connected_peers()).unwrap_or_default();
        for &t in to {
            if connected.contains(&peer_name(t)) && self.sim.inject(hostile, self.members[t], frame.clone()) {
                *self.report.events.entry("forgeries_sent".into()).or_insert(0) += 1;
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

    /// A tracked unicast; remembered only if the sending node accepted it.
    fn unicast_between(&mut self, from: usize, to: usize, id: u64) {
        let dest = peer_name(to);
        let at = self.sim.now();
        let sent = self.sim.act(self.members[from], |node, app, now| {
            app.downcast_ref::<App>()
                .is_some_and(|app| node.unicast(&app.track_ch, dest, &id.to_be_bytes(), now).is_ok())
        });
        if sent == Some(true) {
            self.sent_unicasts.insert(id, SentUnicast { from, to, at });
        }
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

    /// A burst of large untracked unicasts between two peers: it fills queues towards
    /// slow links up to their bound (refused sends and relay drops are expected).
    fn bulk(&mut self) {
        let live = self.live_members();
        let (Some(a), Some(b)) = (self.pick(&live), self.pick(&live)) else { return };
        let size = self.sc.workload.payload_bytes;
        if a == b || size == 0 {
            return;
        }
        let dest = peer_name(b);
        let payload = vec![0x5a; size];
        self.sim.act(self.members[a], |node, app, now| {
            if let Some(app) = app.downcast_ref::<App>() {
                for _ in 0..BULK_BURST {
                    let _ = node.unicast(&app.bulk_ch, dest, &payload, now);
                }
            }
        });
    }

    /// A broadcast on one of the sending peer's sparse channels (others relay it).
    fn sparse_broadcast(&mut self) {
        let live = self.live_members();
        let Some(i) = self.pick(&live) else { return };
        let pick = self.rng.next_u64() as usize;
        self.sim.act(self.members[i], |node, app, now| {
            if let Some(app) = app.downcast_ref::<App>().filter(|a| !a.sparse.is_empty()) {
                let ch = &app.sparse[pick % app.sparse.len()];
                node.broadcast(ch, Blob(Bytes::from_static(b"sparse")), now);
            }
        });
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

    /// Whether live member `i`'s table holds exactly the peers in `expect`.
    fn knows_exactly(&self, i: usize, expect: &BTreeSet<PeerName>) -> bool {
        self.sim.node(self.members[i]).is_some_and(|n| {
            n.inspect().peer_count() == expect.len()
                && n.inspect().peers().all(|p| expect.contains(&p.summary.name))
        })
    }

    /// Whether one formed mesh is expected after the final heal; otherwise why not.
    fn formation_expected(&self) -> Result<(), String> {
        if self.sc.expect_formed {
            return Ok(());
        }
        let intruders =
            self.sc.faults.iter().filter(|f| matches!(f.kind, FaultKind::Intruder { .. })).count();
        let n = self.members.len() + intruders;
        if self.sc.connection_limit < n {
            return Err(format!("connection limit {} is below the {n} peers", self.sc.connection_limit));
        }
        // Peers crashed for good and churn may split who dials whom; with room for every
        // connection, a connected dial graph forms one mesh (discovery only adds links).
        if !self.dial_graph_connected() {
            return Err("the live peers' dial graph is split (by crashes for good or churn)".into());
        }
        Ok(())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3)
}
