//! Random schedules from seeds, an explorer that runs many on all cores, and a shrinker
//! that reduces a failing schedule to a minimal one.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::runner::{self, InvariantReport, Report, RunOptions, Violation};
use crate::scenario::{Fault, FaultKind, Forgery, Link, Scenario, Topology, Workload};

/// What the generator may produce.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Fault classes switched off (see [`FaultKind::CLASSES`]).
    pub disabled: BTreeSet<String>,
    /// Largest cluster.
    pub max_nodes: usize,
    /// Most faults per schedule.
    pub max_faults: usize,
    /// Core mechanisms switched off in every peer (see [`Scenario::sabotage`]).
    pub sabotage: Vec<String>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { disabled: BTreeSet::new(), max_nodes: 10, max_faults: 6, sabotage: Vec::new() }
    }
}

fn below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

fn chance(rng: &mut ChaCha20Rng, percent: u64) -> bool {
    below(rng, 100) < percent
}

/// Turns `seed` into a cluster, a workload and a fault schedule.
pub fn generate(seed: u64, opts: &GenOptions) -> Scenario {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x7363_6865_6475_6c65);
    let nodes = 2 + below(&mut rng, opts.max_nodes.max(2) as u64 - 1) as usize;
    let topology = match below(&mut rng, 5) {
        0 => Topology::Line,
        1 => Topology::Ring,
        2 => Topology::Star,
        3 => Topology::Full,
        _ => Topology::Random { degree: 1 + below(&mut rng, 3) as usize },
    };
    let link = Link {
        latency_ms: (1 + below(&mut rng, 50)) as f64,
        jitter_ms: if chance(&mut rng, 50) { below(&mut rng, 20) as f64 } else { 0.0 },
        bandwidth_kib: chance(&mut rng, 20).then(|| 64 + below(&mut rng, 4096)),
    };
    let mut duration_ms = 60_000 + below(&mut rng, 120_000);
    let classes: Vec<&str> =
        FaultKind::CLASSES.iter().copied().filter(|c| !opts.disabled.contains(*c)).collect();
    let mut faults = Vec::new();
    let mut count = if classes.is_empty() { 0 } else { below(&mut rng, opts.max_faults as u64 + 1) };
    // The slow-reader check needs a peer that stops reading for longer than its bound:
    // most schedules get one (as their first fault).
    let long_stop = classes.contains(&"stop_reading") && opts.max_faults > 0 && chance(&mut rng, 60);
    if long_stop {
        count = count.max(1);
    }
    for k in 0..count {
        let class = if long_stop && k == 0 {
            "stop_reading"
        } else {
            classes[below(&mut rng, classes.len() as u64) as usize]
        };
        let node = |rng: &mut ChaCha20Rng| below(rng, nodes as u64) as usize;
        let pair = |rng: &mut ChaCha20Rng| {
            let a = node(rng);
            let b = (a + 1 + below(rng, nodes as u64 - 1) as usize) % nodes;
            (a, b)
        };
        let split = |rng: &mut ChaCha20Rng| {
            let mut left = Vec::new();
            let mut right = Vec::new();
            for i in 0..nodes {
                if chance(rng, 50) { left.push(i) } else { right.push(i) }
            }
            if left.is_empty() {
                left.push(right.pop().unwrap_or(0));
            }
            if right.is_empty() {
                right.push(left.pop().unwrap_or(0));
            }
            (left, right)
        };
        let kind = match class {
            "partition" => {
                let (left, right) = split(&mut rng);
                FaultKind::Partition { left, right }
            }
            "one_way" => {
                let (from, to) = split(&mut rng);
                FaultKind::OneWay { from, to }
            }
            "black_hole" => {
                let (a, b) = pair(&mut rng);
                FaultKind::BlackHole { a, b }
            }
            "reset" => {
                let (a, b) = pair(&mut rng);
                FaultKind::Reset { a, b }
            }
            "slow_link" => {
                let (a, b) = pair(&mut rng);
                let link = Link {
                    latency_ms: (50 + below(&mut rng, 500)) as f64,
                    jitter_ms: below(&mut rng, 200) as f64,
                    bandwidth_kib: chance(&mut rng, 50).then(|| 8 + below(&mut rng, 256)),
                };
                FaultKind::SlowLink { a, b, link }
            }
            "stop_reading" => FaultKind::StopReading { node: node(&mut rng) },
            "crash" => FaultKind::Crash { node: node(&mut rng) },
            "clock_skew" => FaultKind::ClockSkew {
                node: node(&mut rng),
                offset_ms: below(&mut rng, 10_000),
                rate_ppm: below(&mut rng, 200_000) as i64 - 100_000,
            },
            _ => FaultKind::Intruder {
                via: node(&mut rng),
                collides_with: chance(&mut rng, 50).then(|| node(&mut rng)),
            },
        };
        let at_ms = below(&mut rng, duration_ms);
        // Most faults are short; some outlast the receive timeout, garbage collection
        // and the back-off; a long stop outlasts the slow-reader bound. The active
        // phase grows to hold them.
        let bound = runner::SLOW_READER_BOUND.as_millis() as u64;
        let length = match kind {
            _ if long_stop && k == 0 => bound + 5_000 + below(&mut rng, 60_000),
            _ if chance(&mut rng, 30) => 90_000 + below(&mut rng, 120_000),
            _ => 1 + below(&mut rng, 90_000),
        };
        let until_ms = match kind {
            // One crash in four is for good.
            FaultKind::Crash { .. } if chance(&mut rng, 25) => None,
            _ => Some(at_ms + length),
        };
        duration_ms = duration_ms.max(until_ms.unwrap_or(0));
        faults.push(Fault { at_ms, until_ms, kind });
    }
    let password = chance(&mut rng, 50).then(|| format!("pw{}", below(&mut rng, 1000)));
    // Each peer's protocol versions: most offer [2, 3]; some only 2 (as Go peers);
    // in a third of the runs with no version-2-only peer, some require version 3.
    let mut v2_only = Vec::new();
    let mut v3_only = Vec::new();
    if chance(&mut rng, 40) {
        v2_only = (0..nodes).filter(|_| chance(&mut rng, 30)).collect();
    }
    if v2_only.is_empty() && chance(&mut rng, 33) {
        v3_only = (0..nodes).filter(|_| chance(&mut rng, 40)).collect();
    } else if chance(&mut rng, 20) {
        // And sometimes both, which refuse each other: the others must bridge them.
        v3_only = (0..nodes).filter(|i| !v2_only.contains(i) && chance(&mut rng, 30)).collect();
    }
    let connection_limit = if chance(&mut rng, 15) { 2 + below(&mut rng, nodes as u64) as usize } else { 64 };
    let discovery = chance(&mut rng, 80);
    // Bounds get workloads that reach them: bursts of large unicasts fill the queues
    // towards slow links, and channels only some peers have make the others relay them.
    let (bulk, payload_bytes) = if chance(&mut rng, 25) {
        (1 + below(&mut rng, 3), 16_384 + below(&mut rng, 245_760))
    } else {
        (0, 0)
    };
    let (sparse_channels, sparse_broadcasts) =
        if chance(&mut rng, 70) { (1 + below(&mut rng, 8), below(&mut rng, 20)) } else { (0, 0) };
    let max_relay_channels =
        (sparse_channels > 0 && chance(&mut rng, 50)).then(|| 1 + below(&mut rng, 4) as usize);
    let workload = Workload {
        increments: below(&mut rng, 30) as usize,
        broadcasts: below(&mut rng, 30) as usize,
        unicasts: below(&mut rng, 30) as usize,
        churn: below(&mut rng, 6) as usize,
        broadcast_every_ms: None,
        start_ms: 0,
        bulk: bulk as usize,
        payload_bytes: payload_bytes as usize,
        sparse_channels: sparse_channels as usize,
        sparse_broadcasts: sparse_broadcasts as usize,
    };
    Scenario {
        name: format!("random-{seed}"),
        seed,
        nodes,
        topology,
        password,
        v2_only,
        v3_only,
        connection_limit,
        discovery,
        gossip_interval_ms: 30_000,
        link,
        workload,
        faults,
        duration_ms,
        quiet_ms: 300_000,
        probes: 1,
        planted: None,
        // The runner expects formation whenever the connection limit leaves room for
        // everyone and the live dial graph is connected; discovery only adds to that.
        expect_formed: false,
        max_relay_channels,
        receive_timeout_ms: None,
        record_limits: None,
        sabotage: opts.sabotage.clone(),
    }
}

/// Runs a scenario, turning a panic into a `no_panic` violation.
pub fn run_guarded(sc: &Scenario, opts: &RunOptions) -> Report {
    match catch_unwind(AssertUnwindSafe(|| runner::run(sc, opts))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            runner::panicked(sc, msg)
        }
    }
}

/// One explored seed's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Its first violation, if any.
    pub violation: Option<Violation>,
    /// Fault classes applied and protocol events counted.
    pub counts: Vec<(String, u64)>,
    /// What each invariant examined and concluded.
    pub invariants: BTreeMap<String, InvariantReport>,
}

/// Runs seeds `first..first + count` on `jobs` threads; `progress` is called after each.
pub fn explore(
    first: u64,
    count: u64,
    jobs: usize,
    options: &GenOptions,
    progress: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Outcome> {
    let next = AtomicU64::new(first);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    let sc = generate(seed, options);
                    let opts = RunOptions { stop_at_first: true, ..RunOptions::default() };
                    let report = run_guarded(&sc, &opts);
                    let counts =
                        report.faults.iter().chain(&report.events).map(|(k, v)| (k.clone(), *v)).collect();
                    let violation = report.violations.first().cloned();
                    let out = Outcome { seed, violation, counts, invariants: report.invariants };
                    progress(&out);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(out);
                }
            });
        }
    });
    let mut v = results.into_inner().unwrap_or_else(|e| e.into_inner());
    v.sort_by_key(|o| o.seed);
    v
}

/// Runs `sc` until `inv` fails (or to the end); that violation, if any.
fn failure_of(sc: &Scenario, inv: &str) -> Option<Violation> {
    let opts = RunOptions { stop_at_invariant: Some(inv.to_owned()), ..RunOptions::default() };
    run_guarded(sc, &opts).violations.into_iter().find(|v| v.invariant == inv)
}

/// Whether `sc` still fails the invariant `inv`.
fn fails(sc: &Scenario, inv: &str) -> bool {
    sc.validate().is_ok() && failure_of(sc, inv).is_some()
}

/// One invariant over many explored schedules.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Coverage {
    /// Schedules in which it examined something.
    pub applied: u64,
    /// Schedules in which it held.
    pub held: u64,
    /// Cases examined in all.
    pub cases: u64,
    /// For bounds: schedules whose peak reached half the bound.
    pub half_loaded: u64,
}

/// Per invariant over many outcomes: how often it applied, held, and was loaded.
pub fn coverage(outcomes: &[Outcome]) -> BTreeMap<String, Coverage> {
    let mut out: BTreeMap<String, Coverage> = BTreeMap::new();
    for o in outcomes {
        for (name, r) in &o.invariants {
            let e = out.entry(name.clone()).or_default();
            e.applied += u64::from(r.applied());
            e.held += u64::from(r.held());
            e.cases += r.examined;
            e.half_loaded += u64::from(r.load.is_some_and(|l| l >= 0.5));
        }
    }
    out
}

/// Removes node `n` from a scenario: faults naming it go, higher indices shift down.
fn without_node(sc: &Scenario, n: usize) -> Scenario {
    let mut out = sc.clone();
    out.nodes -= 1;
    let shift = |i: usize| if i > n { i - 1 } else { i };
    let fix = |v: &[usize]| v.iter().filter(|i| **i != n).map(|i| shift(*i)).collect::<Vec<_>>();
    out.faults = sc
        .faults
        .iter()
        .filter_map(|f| {
            let kind = match &f.kind {
                FaultKind::Partition { left, right } => {
                    let (left, right) = (fix(left), fix(right));
                    if left.is_empty() || right.is_empty() {
                        return None;
                    }
                    FaultKind::Partition { left, right }
                }
                FaultKind::OneWay { from, to } => {
                    let (from, to) = (fix(from), fix(to));
                    if from.is_empty() || to.is_empty() {
                        return None;
                    }
                    FaultKind::OneWay { from, to }
                }
                k if k.nodes().contains(&n) => return None,
                FaultKind::BlackHole { a, b } => FaultKind::BlackHole { a: shift(*a), b: shift(*b) },
                FaultKind::Reset { a, b } => FaultKind::Reset { a: shift(*a), b: shift(*b) },
                FaultKind::SlowLink { a, b, link } => {
                    FaultKind::SlowLink { a: shift(*a), b: shift(*b), link: *link }
                }
                FaultKind::StopReading { node } => FaultKind::StopReading { node: shift(*node) },
                FaultKind::Crash { node } => FaultKind::Crash { node: shift(*node) },
                FaultKind::ClockSkew { node, offset_ms, rate_ppm } => {
                    FaultKind::ClockSkew { node: shift(*node), offset_ms: *offset_ms, rate_ppm: *rate_ppm }
                }
                FaultKind::Intruder { via, collides_with } => {
                    FaultKind::Intruder { via: shift(*via), collides_with: collides_with.map(shift) }
                }
                FaultKind::Forge { node, to, record } => {
                    let record = match record {
                        Forgery::Claim { victim } => Forgery::Claim { victim: shift(*victim) },
                        other => other.clone(),
                    };
                    FaultKind::Forge {
                        node: shift(*node),
                        to: to.iter().map(|t| shift(*t)).collect(),
                        record,
                    }
                }
            };
            Some(Fault { kind, ..f.clone() })
        })
        .collect();
    out
}

/// Smaller variants of `sc`, most aggressive first.
fn candidates(sc: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    // Fewer faults.
    if sc.faults.len() > 1 {
        let half = sc.faults.len() / 2;
        out.push(Scenario { faults: sc.faults[..half].to_vec(), ..sc.clone() });
        out.push(Scenario { faults: sc.faults[half..].to_vec(), ..sc.clone() });
    }
    for k in 0..sc.faults.len() {
        let mut c = sc.clone();
        c.faults.remove(k);
        out.push(c);
    }
    // No workload, then less of it.
    if sc.workload != Workload::default() {
        out.push(Scenario { workload: Workload::default(), ..sc.clone() });
    }
    let w = sc.workload;
    let counts =
        [w.increments, w.broadcasts, w.unicasts, w.churn, w.bulk, w.sparse_broadcasts, w.sparse_channels];
    for (i, n) in counts.into_iter().enumerate() {
        if n > 0 {
            let mut c = sc.clone();
            let half = n / 2;
            let field = match i {
                0 => &mut c.workload.increments,
                1 => &mut c.workload.broadcasts,
                2 => &mut c.workload.unicasts,
                3 => &mut c.workload.churn,
                4 => &mut c.workload.bulk,
                5 => &mut c.workload.sparse_broadcasts,
                _ => &mut c.workload.sparse_channels,
            };
            *field = half;
            out.push(c);
        }
    }
    if w.bulk == 0 && w.payload_bytes > 0 {
        out.push(Scenario { workload: Workload { payload_bytes: 0, ..w }, ..sc.clone() });
    }
    // Fewer nodes.
    if sc.nodes > 2 {
        for n in (0..sc.nodes).rev() {
            out.push(without_node(sc, n));
        }
    }
    // Shorter: drop the time after the last fault ends, halve the quiet period.
    let last = sc.faults.iter().map(|f| f.until_ms.unwrap_or(f.at_ms)).max().unwrap_or(0);
    if last + 1000 < sc.duration_ms {
        out.push(Scenario { duration_ms: last + 1000, ..sc.clone() });
    }
    if sc.quiet_ms > 30_000 {
        out.push(Scenario { quiet_ms: sc.quiet_ms / 2, ..sc.clone() });
    }
    // Simpler links and settings.
    if sc.link != Link::default() {
        out.push(Scenario { link: Link::default(), ..sc.clone() });
    }
    if sc.password.is_some() {
        out.push(Scenario { password: None, ..sc.clone() });
    }
    if !sc.v2_only.is_empty() {
        out.push(Scenario { v2_only: Vec::new(), ..sc.clone() });
    }
    if !sc.v3_only.is_empty() {
        out.push(Scenario { v3_only: Vec::new(), ..sc.clone() });
    }
    if sc.max_relay_channels.is_some() {
        out.push(Scenario { max_relay_channels: None, ..sc.clone() });
    }
    out
}

/// Reduces a failing scenario to a minimal one failing the same invariant as its first
/// violation (`None` if it does not fail). `progress` hears each accepted step.
pub fn shrink(sc: &Scenario, progress: &dyn Fn(&Scenario)) -> Option<(Scenario, Violation)> {
    let first = run_guarded(sc, &RunOptions { stop_at_first: true, ..RunOptions::default() });
    let inv = first.violations.first()?.invariant.clone();
    shrink_to(sc, &inv, progress)
}

/// Reduces a scenario that fails invariant `inv` (whatever else fails first) to a
/// minimal one that still fails it (`None` if it does not).
pub fn shrink_to(sc: &Scenario, inv: &str, progress: &dyn Fn(&Scenario)) -> Option<(Scenario, Violation)> {
    failure_of(sc, inv)?;
    let mut cur = sc.clone();
    'outer: loop {
        for c in candidates(&cur) {
            if fails(&c, inv) {
                cur = c;
                progress(&cur);
                continue 'outer;
            }
        }
        break;
    }
    cur.name = format!("{}-shrunk", sc.name);
    let v = failure_of(&cur, inv)?;
    Some((cur, v))
}

/// A test a user can paste into `mesh-sim/tests/` to keep the failure fixed.
pub fn as_test(sc: &Scenario, v: &Violation) -> String {
    let json = serde_json::to_string(sc).unwrap_or_default();
    format!(
        "/// {}\n#[test]\nfn regression_seed_{}() {{\n    let scenario = mesh_sim::scenario::Scenario::parse(r#\"{}\"#).unwrap();\n    let report = mesh_sim::runner::run(&scenario, &Default::default());\n    assert!(report.passed(), \"{{:?}}\", report.violations);\n}}\n",
        v, sc.seed, json
    )
}
