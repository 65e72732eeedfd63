//! A scenario: a cluster, a workload and a schedule of faults, all in virtual time. It is
//! plain data (JSON or TOML), so a failing run can be printed, shrunk, pasted into a test
//! and replayed exactly.

use serde::{Deserialize, Serialize};

/// A whole simulation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// A label for reports.
    pub name: String,
    /// Seeds the simulator and the workload's timing.
    pub seed: u64,
    /// Number of mesh peers (intruders come on top).
    pub nodes: usize,
    /// Who dials whom at start.
    pub topology: Topology,
    /// Shared password (`None`: plaintext in version 2, unauthenticated encryption in
    /// version 3).
    pub password: Option<String>,
    /// Peers (by index) that offer only protocol version 2, as Go peers do; the others
    /// offer [2, 3] and speak version 3 to each other.
    pub v2_only: Vec<usize>,
    /// Peers (by index) that require version 3: they refuse the version-2-only ones.
    pub v3_only: Vec<usize>,
    /// Connection limit of each peer.
    pub connection_limit: usize,
    /// Whether peers dial the addresses they learn by gossip.
    pub discovery: bool,
    /// Periodic gossip interval.
    pub gossip_interval_ms: u64,
    /// Every link's default behaviour.
    pub link: Link,
    /// Application traffic during the active phase.
    pub workload: Workload,
    /// Faults, each starting and (optionally) ending at a virtual time.
    pub faults: Vec<Fault>,
    /// Length of the active phase; every fault ends by then.
    pub duration_ms: u64,
    /// Time after the final heal before the final checks.
    pub quiet_ms: u64,
    /// Probes per probing peer: after the quiet period every live peer (up to 64 of
    /// them) broadcasts this many tracked messages and unicasts as many to random peers
    /// of its component, each of which must reach its targets exactly once.
    pub probes: usize,
    /// A deliberately failing check, to test the shrinker.
    pub planted: Option<Planted>,
    /// Check `formation`: after the final heal every live peer is in one component and
    /// knows exactly the live peers, whatever the connection limit. (Without it,
    /// formation is still expected when the limit leaves room for every peer and the
    /// live peers' dial graph is connected.)
    pub expect_formed: bool,
    /// Each peer's bound on relay-only channels (`None`: the default, 256).
    pub max_relay_channels: Option<usize>,
    /// Each peer's receive timeout in ms (`None`: the default, 60 s). A long one makes a
    /// peer that stops reading keep its connections however long it hears nothing, as
    /// a hostile or stuck peer would, so only the other ends can find it.
    pub receive_timeout_ms: Option<u64>,
    /// Each peer's bounds on what one topology record may cost (`None`: the defaults of
    /// `mesh_proto::config::RecordLimits`); a bound left out keeps its default.
    pub record_limits: Option<Limits>,
    /// Core mechanisms switched off on purpose in every peer, by name (`skip_gc`,
    /// `stale_routes`, ...), to show an invariant failing. Needs mesh-sim's `sabotage`
    /// feature.
    pub sabotage: Vec<String>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "custom".into(),
            seed: 1,
            nodes: 5,
            topology: Topology::Star,
            password: None,
            v2_only: Vec::new(),
            v3_only: Vec::new(),
            connection_limit: 64,
            discovery: true,
            gossip_interval_ms: 30_000,
            link: Link::default(),
            workload: Workload::default(),
            faults: Vec::new(),
            duration_ms: 60_000,
            quiet_ms: 240_000,
            probes: 1,
            planted: None,
            expect_formed: false,
            max_relay_channels: None,
            receive_timeout_ms: None,
            record_limits: None,
            sabotage: Vec::new(),
        }
    }
}

/// Who dials whom when the cluster starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Topology {
    /// Node i dials node i-1.
    Line,
    /// Node i dials node i-1, and node 0 dials the last.
    Ring,
    /// Every node dials node 0 only (bootstrap from one peer).
    Star,
    /// Node i dials `degree` earlier nodes chosen at random (node 0 among them for i=1).
    Random {
        /// Dials per node.
        degree: usize,
    },
    /// Every node dials every other at once (simultaneous dials).
    Full,
}

/// How links carry bytes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Link {
    /// Fixed one-way latency.
    pub latency_ms: f64,
    /// Mean of the exponentially distributed extra delay.
    pub jitter_ms: f64,
    /// Bandwidth per direction in KiB/s (`None`: unlimited).
    pub bandwidth_kib: Option<u64>,
}

impl Default for Link {
    fn default() -> Self {
        Link { latency_ms: 1.0, jitter_ms: 0.0, bandwidth_kib: None }
    }
}

/// Application operations during the active phase, at times drawn from the seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// G-counter increments (each broadcast) at random live peers.
    pub increments: usize,
    /// Tracked broadcasts from random live peers.
    pub broadcasts: usize,
    /// Tracked unicasts between random live peers.
    pub unicasts: usize,
    /// Random connection churn: a peer initiates or forgets a connection to another.
    pub churn: usize,
    /// If set, broadcasts are evenly spaced this far apart from `start_ms` instead of
    /// drawn at random (a steady stream).
    pub broadcast_every_ms: Option<u64>,
    /// Operations happen from this time on (for example once the cluster has formed).
    pub start_ms: u64,
    /// Bursts of large unicasts (each [`crate::runner::BULK_BURST`] messages of
    /// `payload_bytes`, untracked) between random live peers: they fill the queues
    /// towards slow links up to their bound.
    pub bulk: usize,
    /// Size of each bulk unicast.
    pub payload_bytes: usize,
    /// Channels that only some peers register (`sparse-k` on the peers `i` with
    /// `(i + k) % 3 == 0`); the others relay them through relay-only channels.
    pub sparse_channels: usize,
    /// Broadcasts on a sparse channel from random live peers that have one.
    pub sparse_broadcasts: usize,
}

/// Bounds on topology records, each overriding its default when given (see
/// `mesh_proto::config::RecordLimits`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most connections one record may list.
    pub max_connections: Option<usize>,
    /// Longest nickname, in bytes.
    pub max_nickname_len: Option<usize>,
    /// Largest record on the wire, in bytes.
    pub max_record_len: Option<usize>,
    /// Most entries the table may hold.
    pub max_peers: Option<usize>,
}

impl Limits {
    /// No bound at all, as before there were any.
    pub fn none() -> Limits {
        let max = Some(usize::MAX);
        Limits { max_connections: max, max_nickname_len: max, max_record_len: max, max_peers: max }
    }
}

/// A topology record a hostile peer forges (see [`FaultKind::Forge`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", deny_unknown_fields)]
pub enum Forgery {
    /// A record with peer `victim`'s name, another UID and the highest version: an
    /// attempt to push the victim's version out of reach.
    Claim {
        /// Whose name it claims.
        victim: usize,
    },
    /// A record of an unknown peer listing `count` connections to unknown peers: each
    /// would become a placeholder in every table it reaches.
    Connections {
        /// How many.
        count: usize,
    },
    /// A record of an unknown peer with a nickname of `len` bytes.
    Nickname {
        /// Its length.
        len: usize,
    },
}

/// Most connections or nickname bytes a forged record may have in a scenario.
pub const MAX_FORGERY: usize = 4 << 20;

/// One fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When it starts.
    pub at_ms: u64,
    /// When it ends (`None`: at the final heal; a crash without an end is for good).
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// What it is.
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", deny_unknown_fields)]
pub enum FaultKind {
    /// Symmetric partition: no bytes between the groups, connections reset.
    Partition {
        /// One side.
        left: Vec<usize>,
        /// The other.
        right: Vec<usize>,
    },
    /// One-way partition: bytes from `from` do not reach `to`; the other way they do.
    OneWay {
        /// Senders whose bytes vanish.
        from: Vec<usize>,
        /// Receivers that stop hearing them.
        to: Vec<usize>,
    },
    /// Bytes between `a` and `b` vanish; connections stall without a reset.
    BlackHole {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
    },
    /// The connection between `a` and `b` is reset and new ones are refused.
    Reset {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
    },
    /// The link between `a` and `b` gets another latency, jitter and bandwidth.
    SlowLink {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
        /// Its link profile meanwhile.
        link: Link,
    },
    /// The peer stops reading its sockets.
    StopReading {
        /// The peer.
        node: usize,
    },
    /// The peer crashes; it restarts (new UID, same name and address) at the end, or
    /// never if the fault has no end.
    Crash {
        /// The peer.
        node: usize,
    },
    /// The peer's clock jumps ahead and runs at another rate.
    ClockSkew {
        /// The peer.
        node: usize,
        /// Forward jump.
        offset_ms: u64,
        /// Rate error in parts per million.
        rate_ppm: i64,
    },
    /// An extra peer joins through `via`: with the wrong password (`collides_with` none)
    /// or with the name of peer `collides_with`. It leaves at the end.
    Intruder {
        /// The peer it dials.
        via: usize,
        /// Whose name it takes, if any; otherwise it has the wrong password.
        collides_with: Option<usize>,
    },
    /// Peer `node`, an admitted member turned hostile, writes a forged topology update
    /// on its connection to each peer of `to` it is connected to when the fault starts
    /// (its end changes nothing). The simulator writes the frame itself, so the scenario must be
    /// plaintext version 2 for `node`: no password, `node` in `v2_only`. Random
    /// schedules never contain it.
    Forge {
        /// The hostile peer.
        node: usize,
        /// The peers it sends the forgery to.
        to: Vec<usize>,
        /// What it forges.
        record: Forgery,
    },
}

impl FaultKind {
    /// The fault's class name, as used to switch classes off.
    pub fn class(&self) -> &'static str {
        match self {
            FaultKind::Partition { .. } => "partition",
            FaultKind::OneWay { .. } => "one_way",
            FaultKind::BlackHole { .. } => "black_hole",
            FaultKind::Reset { .. } => "reset",
            FaultKind::SlowLink { .. } => "slow_link",
            FaultKind::StopReading { .. } => "stop_reading",
            FaultKind::Crash { .. } => "crash",
            FaultKind::ClockSkew { .. } => "clock_skew",
            FaultKind::Intruder { .. } => "intruder",
            FaultKind::Forge { .. } => "forge",
        }
    }

    /// Every class name that random schedules draw from (all but `forge`).
    pub const CLASSES: [&'static str; 9] = [
        "partition",
        "one_way",
        "black_hole",
        "reset",
        "slow_link",
        "stop_reading",
        "crash",
        "clock_skew",
        "intruder",
    ];

    /// The peers the fault names.
    pub fn nodes(&self) -> Vec<usize> {
        match self {
            FaultKind::Partition { left, right } => left.iter().chain(right).copied().collect(),
            FaultKind::OneWay { from, to } => from.iter().chain(to).copied().collect(),
            FaultKind::BlackHole { a, b } | FaultKind::Reset { a, b } | FaultKind::SlowLink { a, b, .. } => {
                vec![*a, *b]
            }
            FaultKind::StopReading { node }
            | FaultKind::Crash { node }
            | FaultKind::ClockSkew { node, .. } => {
                vec![*node]
            }
            FaultKind::Intruder { via, collides_with } => {
                std::iter::once(*via).chain(*collides_with).collect()
            }
            FaultKind::Forge { node, to, record } => {
                let victim = match record {
                    Forgery::Claim { victim } => Some(*victim),
                    _ => None,
                };
                std::iter::once(*node).chain(to.iter().copied()).chain(victim).collect()
            }
        }
    }
}

/// A deliberately failing check (for testing the shrinker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planted {
    /// Fails when a one-way partition lasts longer than this.
    pub one_way_longer_than_ms: u64,
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file is not valid JSON or TOML for a scenario.
    #[error("malformed scenario: {0}")]
    Malformed(String),
    /// A value is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// Most peers a scenario may have.
pub const MAX_NODES: usize = 5000;
/// Largest bulk unicast (a frame holds up to 10 MiB; bursts of these fill queues fast).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

#[cfg(feature = "sabotage")]
fn check_sabotage(name: &str) -> Result<(), String> {
    name.parse::<mesh_proto::sabotage::Sabotage>().map(|_| ()).map_err(|e| {
        let names: Vec<&str> = mesh_proto::sabotage::Sabotage::ALL.iter().map(|s| s.name()).collect();
        format!("{e}; known: {}", names.join(", "))
    })
}

#[cfg(not(feature = "sabotage"))]
fn check_sabotage(name: &str) -> Result<(), String> {
    Err(format!("sabotage {name:?} needs mesh-sim built with the `sabotage` feature"))
}

impl Scenario {
    /// Parses a scenario from JSON (if it starts with `{`) or TOML.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let sc: Scenario = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| ScenarioError::Malformed(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| ScenarioError::Malformed(e.to_string()))?
        };
        sc.validate()?;
        Ok(sc)
    }

    /// The scenario as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every value is in range.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return bad(format!("nodes must be 1..={MAX_NODES}, got {}", self.nodes));
        }
        if self.gossip_interval_ms == 0 {
            return bad("gossip_interval_ms must be positive".into());
        }
        if let Topology::Random { degree: 0 } = self.topology {
            return bad("random topology needs degree >= 1".into());
        }
        if self.workload.bulk > 0 && !(1..=MAX_PAYLOAD).contains(&self.workload.payload_bytes) {
            return bad(format!("bulk bursts need payload_bytes in 1..={MAX_PAYLOAD}"));
        }
        for name in &self.sabotage {
            check_sabotage(name).map_err(ScenarioError::Invalid)?;
        }
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(n) = f.kind.nodes().into_iter().find(|n| *n >= self.nodes) {
                return bad(format!("fault {i} names node {n}, but there are {} nodes", self.nodes));
            }
            if f.at_ms > self.duration_ms || f.until_ms.is_some_and(|u| u < f.at_ms || u > self.duration_ms) {
                return bad(format!("fault {i} must start and end within 0..={} ms", self.duration_ms));
            }
        }
        for f in &self.faults {
            if let FaultKind::Forge { node, record, .. } = &f.kind {
                if self.password.is_some() || !self.v2_only.contains(node) {
                    return bad(format!(
                        "forge: peer {node} must speak plaintext version 2 (no password, in v2_only): \
                         the simulator writes its forged frames unsealed"
                    ));
                }
                if let Forgery::Connections { count: n } | Forgery::Nickname { len: n } = record
                    && *n > MAX_FORGERY
                {
                    return bad(format!("forge: at most {MAX_FORGERY} connections or nickname bytes"));
                }
            }
        }
        for l in std::iter::once(&self.link).chain(self.faults.iter().filter_map(|f| match &f.kind {
            FaultKind::SlowLink { link, .. } => Some(link),
            _ => None,
        })) {
            if !(l.latency_ms >= 0.0 && l.jitter_ms >= 0.0 && l.latency_ms < 3.6e6 && l.jitter_ms < 3.6e6) {
                return bad("latency and jitter must be between 0 and one hour".into());
            }
        }
        Ok(())
    }
}
