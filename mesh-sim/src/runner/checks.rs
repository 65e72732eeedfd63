//! The final checks, once the quiet period has passed, and the report's totals.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mesh_proto::PeerName;
use mesh_proto::counter::Counts;
use rand_core::Rng;

use super::app::{App, Seen};
use super::{PROBE_BASE, PROBE_SOURCES, PROBE_WINDOW, Report, Runner, peer_name, percentiles};
use crate::NodeId;
use crate::scenario::FaultKind;

/// Pairs checked by `routes` in a component too big to check every pair.
const ROUTE_SAMPLE: usize = 4000;
/// Broadcast sources checked in a component of more than this many peers (all below).
const TREE_SOURCES: usize = 32;
/// Sources checked in bigger components.
const TREE_SAMPLE: usize = 4;

impl Runner<'_> {
    /// Connected components of live members over registered connections.
    pub(super) fn components(&self) -> Vec<Vec<usize>> {
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

    /// Whether the live members are connected by who dials whom (either direction).
    /// Whether peers `a` and `b` share a protocol version: a version-2-only peer and one
    /// that requires version 3 never connect.
    pub(super) fn versions_compatible(&self, a: usize, b: usize) -> bool {
        let v2 = |i: usize| self.sc.v2_only.contains(&i) && !self.sc.v3_only.contains(&i);
        let v3 = |i: usize| self.sc.v3_only.contains(&i) && !self.sc.v2_only.contains(&i);
        !(v2(a) && v3(b) || v3(a) && v2(b))
    }

    pub(super) fn dial_graph_connected(&self) -> bool {
        let live = self.live_members();
        let Some(&first) = live.first() else { return true };
        let is_live: BTreeSet<usize> = live.iter().copied().collect();
        let mut adj: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(a, b) in &self.direct {
            if is_live.contains(&a) && is_live.contains(&b) && self.versions_compatible(a, b) {
                adj.entry(a).or_default().push(b);
                adj.entry(b).or_default().push(a);
            }
        }
        let mut seen = BTreeSet::from([first]);
        let mut stack = vec![first];
        while let Some(x) = stack.pop() {
            for &y in adj.get(&x).into_iter().flatten() {
                if seen.insert(y) {
                    stack.push(y);
                }
            }
        }
        seen.len() == live.len()
    }

    pub(super) fn final_checks(&mut self) {
        if self.one_mesh.is_none() {
            self.watch_convergence(self.sim.now());
        }
        // Let a component that is still settling (a late reconnection) converge first.
        let step = self.sample_interval();
        let mut waited = Duration::ZERO;
        while self.agreement().is_none() && waited < Duration::from_secs(120) {
            self.arm_budget(step);
            self.sim.run_for(step);
            if self.halted() {
                return;
            }
            self.watch_convergence(self.sim.now());
            waited += step;
        }
        let comps = self.components();
        if comps.is_empty() {
            self.tally.not_applicable("topology_agreement", "no live peers");
        }
        for c in &comps {
            self.tally.examined("topology_agreement", c.len() as u64);
            let ids: Vec<NodeId> = c.iter().map(|i| self.members[*i]).collect();
            if !self.sim.topology_converged(&ids) {
                let detail = self.disagreement(c);
                self.violate("topology_agreement", c.clone(), detail);
            }
        }
        if self.stopped() {
            return;
        }
        if comps.iter().all(|c| c.len() < 2) {
            for inv in ["routes", "broadcast_trees"] {
                self.tally.not_applicable(inv, "no component has two live peers");
            }
        }
        self.check_reconnection(&comps);
        self.check_formation(&comps);
        self.check_routes(&comps);
        self.check_broadcast_trees(&comps);
        self.check_counters(&comps);
        self.check_quiet_traffic();
        self.probes(&comps);
        self.trace();
    }

    /// The most frames a peer may send in one gossip interval of a converged, idle
    /// mesh: a heartbeat per connection, and periodic gossip (topology in chunks, every
    /// channel's state, relay-only channels passing each payload on once) to its
    /// neighbour subset; twice that, for the intervals where two periodic rounds land.
    fn quiet_bound(&self, live: usize) -> u64 {
        let n = live as u64;
        let fanout = mesh_proto::inspect::fanout(n, n.saturating_sub(1)) as u64;
        let channels = 3 + 2 * self.sc.workload.sparse_channels as u64;
        let chunks = 1 + n / 200;
        2 * (n + fanout * (chunks + channels)) + 16
    }

    /// Every whole gossip interval between convergence (once the workload is over) and
    /// now carried no more than `quiet_bound` frames per peer.
    fn check_quiet_traffic(&mut self) {
        let Some((since, _)) = self.stable else {
            self.tally.not_applicable("quiet_traffic", "the mesh never converged for good");
            return;
        };
        let start = since.max(Self::at(self.sc.duration_ms));
        let interval = Duration::from_millis(self.sc.gossip_interval_ms);
        let live = self.live_members().len();
        let bound = self.quiet_bound(live);
        let samples: Vec<(mesh_proto::Instant, u64, u64)> =
            self.frames.iter().copied().filter(|(t, ..)| *t >= start).collect();
        self.tally.not_applicable("quiet_traffic", "no whole gossip interval after convergence");
        let mut from = 0;
        let mut steady = (0u64, Duration::ZERO);
        for k in 0..samples.len() {
            if samples[k].0 - samples[from].0 < interval {
                continue;
            }
            steady =
                (steady.0 + (samples[k].2 - samples[from].2), steady.1 + (samples[k].0 - samples[from].0));
            let (bytes, elapsed) = steady;
            let intervals = elapsed.as_secs_f64() / interval.as_secs_f64();
            self.report.steady_bytes_per_peer_per_interval =
                Some(bytes as f64 / intervals / live.max(1) as f64);
            self.tally.examined("quiet_traffic", 1);
            let per_peer = (samples[k].1 - samples[from].1) / live.max(1) as u64;
            self.tally.load("quiet_traffic", per_peer as usize, bound as usize);
            if per_peer > bound {
                let at = samples[from].0;
                let detail =
                    format!("{per_peer} frames per peer in the gossip interval from {at} (bound {bound})");
                self.violate("quiet_traffic", Vec::new(), detail);
                return;
            }
            from = k;
        }
    }

    /// One component, and every live peer knows exactly the live peers (a peer locked
    /// out at a connection limit is its own consistent component, which
    /// `topology_agreement` cannot see).
    fn check_formation(&mut self, comps: &[Vec<usize>]) {
        let expected = self.one_mesh.clone().unwrap_or_else(|| self.formation_expected());
        if let Err(why) = expected {
            self.tally.not_applicable("formation", why);
            return;
        }
        let live = self.live_members();
        self.tally.examined("formation", live.len() as u64);
        if comps.len() > 1 {
            let mut sizes: Vec<usize> = comps.iter().map(Vec::len).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let strays: Vec<usize> = comps.iter().filter(|c| c.len() < sizes[0]).flatten().copied().collect();
            let detail = format!("{} components (sizes {sizes:?})", comps.len());
            self.violate("formation", strays, detail);
            return;
        }
        let expect: BTreeSet<PeerName> = live.iter().map(|i| peer_name(*i)).collect();
        let partial: Vec<usize> = live.iter().copied().filter(|&i| !self.knows_exactly(i, &expect)).collect();
        if !partial.is_empty() {
            let detail = format!("{} peers do not know exactly the live peers", partial.len());
            self.violate("formation", partial, detail);
        }
    }

    fn check_reconnection(&mut self, comps: &[Vec<usize>]) {
        let intruders =
            self.sc.faults.iter().filter(|f| matches!(f.kind, FaultKind::Intruder { .. })).count();
        let n = self.members.len() + intruders;
        if self.sc.connection_limit < n {
            let why = format!("connection limit {} is below the {n} peers", self.sc.connection_limit);
            self.tally.not_applicable("reconnection", why);
            return;
        }
        self.tally.not_applicable("reconnection", "no live peer dials another live peer");
        let comp_of: BTreeMap<usize, usize> =
            comps.iter().enumerate().flat_map(|(k, c)| c.iter().map(move |i| (*i, k))).collect();
        let pairs: Vec<(usize, usize)> =
            self.direct.iter().copied().filter(|&(a, b)| self.versions_compatible(a, b)).collect();
        for (a, b) in pairs {
            if let (Some(x), Some(y)) = (comp_of.get(&a), comp_of.get(&b)) {
                self.tally.examined("reconnection", 1);
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
                    .inspect()
                    .peers()
                    .map(|p| format!("{}v{}c{}", p.summary.name, p.summary.version, p.connections.len()))
                    .collect();
                views.push(format!("n{i}: [{}]", v.join(" ")));
            }
        }
        views.join("; ")
    }

    /// Up to `max` distinct members of `c`, all of them if it has no more.
    fn sample_of(&mut self, c: &[usize], max: usize) -> Vec<usize> {
        let mut pool = c.to_vec();
        if pool.len() <= max {
            return pool;
        }
        (0..max).map(|_| pool.swap_remove((self.rng.next_u64() % pool.len() as u64) as usize)).collect()
    }

    /// Walks every pair's route in both tables: each step must exist, be a registered
    /// connection of the peer taking it, and not loop.
    fn check_routes(&mut self, comps: &[Vec<usize>]) {
        let by_name: BTreeMap<PeerName, usize> = (0..self.members.len()).map(|i| (peer_name(i), i)).collect();
        for c in comps.iter().filter(|c| c.len() > 1) {
            let mut tables: BTreeMap<usize, [BTreeMap<PeerName, PeerName>; 2]> = BTreeMap::new();
            let mut links: BTreeMap<usize, BTreeSet<PeerName>> = BTreeMap::new();
            for &i in c {
                if let Some(t) = self.sim.route_tables(self.members[i]) {
                    tables.insert(i, t);
                }
                let connected =
                    self.sim.node(self.members[i]).map(|n| n.connected_peers()).unwrap_or_default();
                links.insert(i, connected.into_iter().collect());
            }
            let pairs: Vec<(usize, usize)> = if c.len() * c.len() <= ROUTE_SAMPLE {
                c.iter().flat_map(|a| c.iter().map(move |b| (*a, *b))).filter(|(a, b)| a != b).collect()
            } else {
                (0..ROUTE_SAMPLE)
                    .filter_map(|_| {
                        let a = c[(self.rng.next_u64() % c.len() as u64) as usize];
                        let b = c[(self.rng.next_u64() % c.len() as u64) as usize];
                        (a != b).then_some((a, b))
                    })
                    .collect()
            };
            for (src, dst) in pairs {
                self.tally.examined("routes", 1);
                let failure = (0..2).find_map(|table| {
                    let target = peer_name(dst);
                    let kind = ["established", "all-links"][table];
                    let mut hop = src;
                    for _ in 0..=c.len() {
                        if hop == dst {
                            return None;
                        }
                        let Some(next) = tables.get(&hop).and_then(|t| t[table].get(&target)) else {
                            return Some(format!("n{hop} has no {kind} route to n{dst} (from n{src})"));
                        };
                        if !links.get(&hop).is_some_and(|l| l.contains(next)) {
                            return Some(format!(
                                "n{hop}'s {kind} next hop to n{dst} is {next}, which is not one of its connections"
                            ));
                        }
                        let Some(&n) = by_name.get(next) else {
                            return Some(format!("n{hop} routes to n{dst} through unknown {next}"));
                        };
                        hop = n;
                    }
                    Some(format!("{kind} route from n{src} to n{dst} loops"))
                });
                if let Some(f) = failure {
                    self.violate("routes", vec![src, dst], f);
                    return;
                }
            }
        }
    }

    /// Relays a broadcast from each source as the peers would: every other peer of the
    /// component must get it exactly once, and it must never come back to the source.
    fn check_broadcast_trees(&mut self, comps: &[Vec<usize>]) {
        for c in comps.iter().filter(|c| c.len() > 1) {
            let index: BTreeMap<PeerName, usize> = c.iter().map(|i| (peer_name(*i), *i)).collect();
            let max = if c.len() <= TREE_SOURCES { TREE_SOURCES } else { TREE_SAMPLE };
            for s in self.sample_of(c, max) {
                self.tally.examined("broadcast_trees", 1);
                let source = peer_name(s);
                let mut received: BTreeMap<usize, u32> = BTreeMap::new();
                let mut frontier = vec![s];
                let mut failure = None;
                'relay: while let Some(x) = frontier.pop() {
                    for hop in self.sim.broadcast_relays(self.members[x], source) {
                        let Some(&j) = index.get(&hop) else { continue };
                        let n = received.entry(j).or_insert(0);
                        *n += 1;
                        if j == s {
                            failure = Some(format!("the broadcast from n{s} came back to it from n{x}"));
                        } else if *n > 1 {
                            failure =
                                Some(format!("the broadcast from n{s} reached n{j} twice (again from n{x})"));
                        }
                        if failure.is_some() {
                            break 'relay;
                        }
                        frontier.push(j);
                    }
                }
                let missed: Vec<usize> =
                    c.iter().copied().filter(|i| *i != s && !received.contains_key(i)).collect();
                if failure.is_none() && !missed.is_empty() {
                    failure = Some(format!("the broadcast from n{s} does not reach {missed:?}"));
                }
                if let Some(f) = failure {
                    self.violate("broadcast_trees", vec![s], f);
                    return;
                }
            }
        }
    }

    fn check_counters(&mut self, comps: &[Vec<usize>]) {
        if self.sc.workload.increments == 0 {
            self.tally.not_applicable("counters", "no increments");
            return;
        }
        let own = self.own.borrow().clone();
        for c in comps {
            let mut reference: Option<(usize, Counts)> = None;
            for &i in c {
                let Some(app) = self.sim.app::<App>(self.members[i]) else { continue };
                self.tally.examined("counters", 1);
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

    /// Sends the probes (every live peer, up to [`PROBE_SOURCES`], broadcasts and
    /// unicasts `probes` times each), then checks every tracked message.
    fn probes(&mut self, comps: &[Vec<usize>]) {
        if self.sc.probes > 0 {
            let live = self.live_members();
            let mut k = 0;
            for src in self.sample_of(&live, PROBE_SOURCES) {
                let Some(comp) = comps.iter().find(|c| c.contains(&src)) else { continue };
                let targets: Vec<usize> = comp.iter().copied().filter(|i| *i != src).collect();
                for _ in 0..self.sc.probes {
                    self.broadcast_from(src, PROBE_BASE + 2 * k);
                    if let Some(dst) = self.pick(&targets) {
                        self.unicast_between(src, dst, PROBE_BASE + 2 * k + 1);
                    }
                    k += 1;
                }
            }
            self.arm_budget(PROBE_WINDOW);
            self.sim.run_for(PROBE_WINDOW);
            if self.halted() {
                return;
            }
        }
        self.check_exactly_once(comps);
    }

    /// Every probe, and every tracked message sent once the mesh had converged for good,
    /// reached each live target in its source's component exactly once.
    fn check_exactly_once(&mut self, comps: &[Vec<usize>]) {
        let since = self.stable.map(|s| s.0);
        let checked = |id: u64, at| id >= PROBE_BASE || since.is_some_and(|c| at >= c);
        let comp_of: BTreeMap<usize, usize> =
            comps.iter().enumerate().flat_map(|(k, c)| c.iter().map(move |i| (*i, k))).collect();
        self.tally.not_applicable(
            "exactly_once",
            if since.is_none() {
                "the mesh never converged for good, and no probe reached a second peer"
            } else {
                "no tracked message was sent to a second peer after convergence"
            },
        );
        let broadcasts: Vec<(u64, usize)> = self
            .sent_broadcasts
            .iter()
            .filter(|(id, (_, at))| checked(**id, *at))
            .map(|(id, (s, _))| (*id, *s))
            .collect();
        for (id, src) in broadcasts {
            let Some(&k) = comp_of.get(&src) else { continue };
            let targets: Vec<usize> = comps[k].iter().copied().filter(|i| *i != src).collect();
            if targets.is_empty() {
                continue;
            }
            self.tally.examined("exactly_once", 1);
            for t in targets {
                let n = self.seen(t, |s| s.broadcasts.get(&id).map_or(0, |e| e.0));
                if n != 1 {
                    let what = if id >= PROBE_BASE { "probe broadcast" } else { "broadcast" };
                    self.violate(
                        "exactly_once",
                        vec![src, t],
                        format!("{what} {id} from n{src} reached n{t} {n} times"),
                    );
                    return;
                }
            }
        }
        let unicasts: Vec<(u64, usize, usize)> = self
            .sent_unicasts
            .iter()
            .filter(|(id, u)| checked(**id, u.at))
            .map(|(id, u)| (*id, u.from, u.to))
            .collect();
        for (id, src, dst) in unicasts {
            if !comp_of.contains_key(&src) || comp_of.get(&src) != comp_of.get(&dst) {
                continue;
            }
            self.tally.examined("exactly_once", 1);
            let n = self.seen(dst, |s| s.unicasts.get(&id).map_or(0, |e| e.0));
            if n != 1 {
                let what = if id >= PROBE_BASE { "probe unicast" } else { "unicast" };
                self.violate(
                    "exactly_once",
                    vec![src, dst],
                    format!("{what} {id} from n{src} reached n{dst} {n} times"),
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
    pub(super) fn finish(mut self) -> Report {
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
        self.report.smallest_table = usize::MAX;
        for id in self.sim.live_ids() {
            let Some(node) = self.sim.node(id) else { continue };
            let inspect = node.inspect();
            self.report.largest_table = self.report.largest_table.max(inspect.peer_count());
            self.report.smallest_table = self.report.smallest_table.min(inspect.peer_count());
            let highest = inspect.peers().map(|p| p.summary.version).max().unwrap_or(0);
            self.report.highest_version = self.report.highest_version.max(highest);
        }
        self.report.smallest_table = self.report.smallest_table.min(self.report.largest_table);
        self.report.peak_table = self.peak_tables.iter().copied().max().unwrap_or(0);
        self.report.peak_table_everywhere = self.peak_tables.iter().copied().min().unwrap_or(0);
        if self.report.broadcasts > 0 {
            self.report.messages_per_broadcast = Some(messages as f64 / self.report.broadcasts as f64);
        }
        // Protocol events: live incarnations plus retired ones.
        let mut stats: Vec<mesh_proto::Stats> =
            self.sim.retired_stats.iter().map(|(_, s)| s.clone()).collect();
        stats.extend(self.sim.live_ids().into_iter().filter_map(|id| self.sim.node(id).map(|n| n.stats())));
        let sum = |f: fn(&mesh_proto::Stats) -> u64| stats.iter().map(f).sum::<u64>();
        let frames = sum(|s| s.frames_sent);
        for (k, v) in [
            ("handshakes", sum(|s| s.handshakes)),
            ("handshakes_v3", sum(|s| s.handshakes_v3)),
            ("tie_breaks", sum(|s| s.tie_breaks)),
            ("restarts_detected", sum(|s| s.restarts_detected)),
            ("gc_removed", sum(|s| s.gc_removed)),
            ("backoffs", sum(|s| s.backoffs)),
            ("slow_reader_closes", sum(|s| s.slow_reader_closes)),
            ("short_id_reassignments", sum(|s| s.short_id_reassignments)),
            ("short_id_invalidations", sum(|s| s.short_id_invalidations)),
            ("unicasts_dropped", sum(|s| s.unicasts_dropped)),
            ("relay_channels_evicted", sum(|s| s.relay_channels_evicted)),
            ("topology_records_sent", sum(|s| s.topology_records_sent)),
            ("sync_messages_sent", sum(|s| s.sync_messages_sent)),
            ("referrals", sum(|s| s.referrals)),
            ("version_jumps_refused", sum(|s| s.version_jumps_refused)),
            ("records_refused", sum(|s| s.records_refused)),
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
        let heal = self.final_heal;
        self.report.convergence_ms = self.stable.map(|(t, _)| (t - heal).as_millis() as u64);
        // The run got here, so nothing panicked.
        self.tally.examined("no_panic", 1);
        if self.sc.planted.is_none() {
            self.tally.not_applicable("planted", "the scenario plants no failing check");
        }
        if self.sc.faults.iter().all(|f| !matches!(f.kind, FaultKind::StopReading { .. })) {
            self.tally.not_applicable("slow_reader", "no peer stopped reading");
        } else {
            let why = format!("no peer stopped reading for {} s", super::SLOW_READER_BOUND.as_secs());
            self.tally.not_applicable("slow_reader", why);
        }
        self.tally.not_applicable("relay_channel_bound", "no peer held a relay-only channel");
        if self.stopped() {
            for (inv, _) in super::INVARIANTS {
                self.tally.not_applicable(inv, "not checked: the run stopped at the first violation");
            }
        }
        self.report.invariants = self.tally.finish();
        self.report.events.insert("name_collisions_refused".into(), collisions);
        self.report.events.insert("handshakes_refused".into(), wrong_pw);
        self.report.messages_per_peer = frames as f64 / n.max(1) as f64;
        self.report.bytes_per_peer = self.sim.bytes_sent.iter().sum::<u64>() as f64 / n.max(1) as f64;
        self.report.virtual_ms = self.ms();
        self.report.digest = format!("{:016x}", self.sim.digest());
        self.report
    }
}
