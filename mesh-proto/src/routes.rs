//! Routes (docs/protocol-v2.md §18): the breadth-first search shared by every table, unicast
//! next hops, broadcast trees and the weighted neighbour subset used by gossip.
//!
//! Every peer holding the same table computes the same routes: levels are visited in
//! name order and the first discoverer of a peer gives its next hop.

use std::collections::BTreeMap;

use crate::name::PeerName;
use crate::topology::Peers;

/// Which edges a search may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every reported connection, directed as reported. Used to relay gossip.
    All,
    /// Only links both ends report as established. Used for status and for "already
    /// reachable?" at registration.
    EstablishedSymmetric,
}

/// The table's graph with names replaced by slot indices, kept up to date record by
/// record (a change costs the changed records' connections, not the whole table), so
/// that every search is a walk over vectors.
///
/// A slot is given to every name that is in the table or that some record connects to;
/// edges to names not in the table are kept but never followed (the search ignores
/// dangling edges). Searches visit peers in name order, so the result does not depend
/// on which slot a name got.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    slots: Vec<Node>,
    index: BTreeMap<PeerName, u32>,
    free: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
struct Node {
    name: PeerName,
    /// The name has a record in the table.
    present: bool,
    /// How many edges lead here: a slot neither present nor referenced is reused.
    refs: u32,
    /// (neighbour slot, established as its owner reports), sorted by slot.
    edges: Vec<(u32, bool)>,
}

impl Graph {
    /// Builds the graph of `peers`.
    pub fn build(peers: &Peers) -> Graph {
        let mut g = Graph::default();
        g.update(peers, peers.names().copied());
        g
    }

    /// Brings the rows of `changed` names up to date with `peers`.
    pub fn update(&mut self, peers: &Peers, changed: impl IntoIterator<Item = PeerName>) {
        for name in changed {
            let s = self.slot(name);
            for (t, _) in std::mem::take(&mut self.slots[s as usize].edges) {
                self.slots[t as usize].refs -= 1;
                self.release(t);
            }
            let Some(p) = peers.get(&name) else {
                self.slots[s as usize].present = false;
                self.release(s);
                continue;
            };
            let mut edges: Vec<(u32, bool)> =
                p.connections.iter().map(|c| (self.slot(c.name), c.established)).collect();
            edges.sort_unstable_by_key(|e| e.0);
            for (t, _) in &edges {
                self.slots[*t as usize].refs += 1;
            }
            let node = &mut self.slots[s as usize];
            node.present = true;
            node.edges = edges;
        }
    }

    /// The slot of `name`, given one if it has none.
    fn slot(&mut self, name: PeerName) -> u32 {
        if let Some(&s) = self.index.get(&name) {
            return s;
        }
        let node = Node { name, ..Node::default() };
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = node;
                s
            }
            None => {
                self.slots.push(node);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(name, s);
        s
    }

    /// Frees slot `s` if nothing needs it any more.
    fn release(&mut self, s: u32) {
        let node = &self.slots[s as usize];
        if !node.present && node.refs == 0 && node.edges.is_empty() {
            self.index.remove(&node.name);
            self.free.push(s);
        }
    }

    fn index(&self, n: PeerName) -> Option<usize> {
        self.index.get(&n).map(|s| *s as usize).filter(|s| self.slots[*s].present)
    }

    /// Whether the edge `from → to` may be followed in `mode`: `to` is in the table and,
    /// for [`Mode::EstablishedSymmetric`], both ends report the link established.
    fn follows(&self, from: u32, (to, established): (u32, bool), mode: Mode) -> bool {
        let far = &self.slots[to as usize];
        far.present
            && (mode == Mode::All
                || established
                    && far.edges.binary_search_by_key(&from, |e| e.0).is_ok_and(|i| far.edges[i].1))
    }

    /// The search of docs/protocol-v2.md §18.1. Returns whether `stop_at` was dequeued and the
    /// map name → next hop (the start maps to [`PeerName::UNKNOWN`]).
    pub fn search(
        &self,
        start: PeerName,
        stop_at: Option<PeerName>,
        mode: Mode,
    ) -> (bool, BTreeMap<PeerName, PeerName>) {
        let (reached, hops) = self.search_idx(start, stop_at, mode);
        let map = hops
            .iter()
            .enumerate()
            .filter(|(_, h)| **h != NOT_SEEN)
            .map(|(i, h)| {
                let hop = if *h == START { PeerName::UNKNOWN } else { self.slots[*h as usize].name };
                (self.slots[i].name, hop)
            })
            .collect();
        (reached, map)
    }

    /// The search over slots: per slot its next hop's slot, [`START`] or [`NOT_SEEN`].
    fn search_idx(&self, start: PeerName, stop_at: Option<PeerName>, mode: Mode) -> (bool, Vec<u32>) {
        let mut hops = vec![NOT_SEEN; self.slots.len()];
        let Some(s) = self.index(start) else { return (false, hops) };
        let stop = stop_at.and_then(|n| self.index(n));
        hops[s] = START;
        let mut level = vec![s as u32];
        while !level.is_empty() {
            // Each level in name order: the lowest-named discoverer gives the next hop.
            level.sort_unstable_by_key(|i| self.slots[*i as usize].name);
            let mut next = Vec::new();
            for &cur in &level {
                if Some(cur as usize) == stop {
                    return (true, hops);
                }
                for &e in &self.slots[cur as usize].edges {
                    let r = e.0 as usize;
                    if hops[r] != NOT_SEEN || !self.follows(cur, e, mode) {
                        continue;
                    }
                    hops[r] = if cur as usize == s { e.0 } else { hops[cur as usize] };
                    next.push(e.0);
                }
            }
            level = next;
        }
        (false, hops)
    }

    /// The neighbours to pass a broadcast from `source` on to (docs/protocol-v2.md §18.3), with
    /// `us` the local peer, in name order.
    pub fn broadcast_next_hops(&self, us: PeerName, source: PeerName, mode: Mode) -> Vec<PeerName> {
        let Some(u) = self.index(us) else { return Vec::new() };
        if self.index(source).is_none() {
            return Vec::new();
        }
        let (reached_us, reached) = self.search_idx(source, Some(us), mode);
        if !reached_us {
            return Vec::new();
        }
        let mut hops: Vec<PeerName> = self.slots[u]
            .edges
            .iter()
            .filter(|e| self.follows(u as u32, **e, mode) && reached[e.0 as usize] == NOT_SEEN)
            .map(|e| self.slots[e.0 as usize].name)
            .collect();
        hops.sort_unstable();
        hops
    }
}

const NOT_SEEN: u32 = u32::MAX;
const START: u32 = u32::MAX - 1;

/// The search of docs/protocol-v2.md §18.1 over `peers` (builds a graph; use [`Graph`] to
/// search one table many times).
pub fn search(
    peers: &Peers,
    start: PeerName,
    stop_at: Option<PeerName>,
    mode: Mode,
) -> (bool, BTreeMap<PeerName, PeerName>) {
    Graph::build(peers).search(start, stop_at, mode)
}

/// The neighbours to pass a broadcast from `source` on to (docs/protocol-v2.md §18.3).
pub fn broadcast_next_hops(peers: &Peers, source: PeerName, mode: Mode) -> Vec<PeerName> {
    Graph::build(peers).broadcast_next_hops(peers.our_name(), source, mode)
}

/// The route tables, recomputed from the peers table after every change.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// Next hop per destination over established, symmetric links.
    pub unicast: BTreeMap<PeerName, PeerName>,
    /// Next hop per destination over every reported link.
    pub unicast_all: BTreeMap<PeerName, PeerName>,
    graph: Graph,
    us: PeerName,
    broadcast_all: BTreeMap<PeerName, Vec<PeerName>>,
    broadcast: BTreeMap<PeerName, Vec<PeerName>>,
}

impl Routes {
    /// Computes the unicast tables and our own broadcast entries.
    pub fn compute(peers: &Peers) -> Routes {
        Routes::from_graph(peers.our_name(), Graph::build(peers))
    }

    /// The routes after the records of `changed` changed: the graph is updated for those
    /// records only, then searched again.
    pub fn update(self, peers: &Peers, changed: impl IntoIterator<Item = PeerName>) -> Routes {
        let mut graph = self.graph;
        graph.update(peers, changed);
        Routes::from_graph(peers.our_name(), graph)
    }

    fn from_graph(us: PeerName, graph: Graph) -> Routes {
        let mut r = Routes {
            unicast: graph.search(us, None, Mode::EstablishedSymmetric).1,
            unicast_all: graph.search(us, None, Mode::All).1,
            us,
            broadcast_all: BTreeMap::new(),
            broadcast: BTreeMap::new(),
            graph,
        };
        let own = r.graph.broadcast_next_hops(us, us, Mode::EstablishedSymmetric);
        r.broadcast.insert(us, own);
        let own = r.graph.broadcast_next_hops(us, us, Mode::All);
        r.broadcast_all.insert(us, own);
        r
    }

    /// The next hop towards `dest` over every reported link (what mesh relays with).
    pub fn next_hop(&self, dest: PeerName) -> Option<PeerName> {
        self.unicast_all.get(&dest).copied().filter(|h| !h.is_unknown())
    }

    /// Whether `name` is reachable over established, symmetric links.
    pub fn reachable_established(&self, name: PeerName) -> bool {
        self.unicast.contains_key(&name)
    }

    /// Where to relay a broadcast from `source` (cached per source until recomputed).
    pub fn broadcast_all(&mut self, source: PeerName) -> &[PeerName] {
        let (graph, us) = (&self.graph, self.us);
        self.broadcast_all.entry(source).or_insert_with(|| graph.broadcast_next_hops(us, source, Mode::All))
    }

    /// The cached hops of `source` ([`Routes::broadcast_all`] fills them).
    pub fn broadcast_cached(&self, source: PeerName) -> &[PeerName] {
        self.broadcast_all.get(&source).map_or(&[], Vec::as_slice)
    }

    /// Where to relay a broadcast from `source`, without filling the cache (for
    /// read-only views; the same answer as [`Routes::broadcast_all`]).
    pub fn broadcast_hops(&self, source: PeerName) -> Vec<PeerName> {
        match self.broadcast_all.get(&source) {
            Some(hops) => hops.clone(),
            None => self.graph.broadcast_next_hops(self.us, source, Mode::All),
        }
    }

    /// The established & symmetric broadcast entries computed so far (for status).
    pub fn broadcast_established(&self) -> &BTreeMap<PeerName, Vec<PeerName>> {
        &self.broadcast
    }

    /// The weighted neighbour subset of docs/protocol-v2.md §18.5, excluding `exclude`. `random`
    /// returns a uniform number below its argument.
    pub fn neighbour_subset(&self, exclude: PeerName, mut random: impl FnMut(u64) -> u64) -> Vec<PeerName> {
        let mut weights: BTreeMap<PeerName, u64> = BTreeMap::new();
        for hop in self.unicast_all.values() {
            if !hop.is_unknown() && *hop != exclude {
                *weights.entry(*hop).or_default() += 1;
            }
        }
        let n = self.unicast_all.len() as u64;
        let count = fanout(n, weights.len() as u64);
        let mut pool: Vec<(PeerName, u64)> = weights.into_iter().collect();
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let total: u64 = pool.iter().map(|(_, w)| w).sum();
            if total == 0 {
                break;
            }
            let mut pick = random(total);
            let idx = pool
                .iter()
                .position(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(pool.len() - 1);
            chosen.push(pool.remove(idx).0);
        }
        chosen
    }
}

/// `floor(min(2·log2 n, k))`, computed exactly as `min(floor(log2(n²)), k)`.
pub fn fanout(n: u64, k: u64) -> usize {
    if n < 2 {
        return 0;
    }
    let two_log = (u128::from(n) * u128::from(n)).ilog2() as u64;
    two_log.min(k) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::RemoteConnection;
    use crate::wire::topology::{ConnectionSummary, PeerRecord, PeerSummary};
    use bytes::Bytes;
    use std::collections::BTreeSet;

    fn n(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    /// A table seen from peer 1 with the given directed edges (all established).
    fn graph(edges: &[(u64, u64)], peers_count: u64) -> Peers {
        let mut p = Peers::new(n(1), Bytes::new(), 1, 1);
        let mut recs = Vec::new();
        for i in 2..=peers_count {
            recs.push(PeerRecord {
                summary: PeerSummary { name: n(i), uid: i, version: 1, ..PeerSummary::default() },
                connections: edges
                    .iter()
                    .filter(|(a, _)| *a == i)
                    .map(|(_, b)| ConnectionSummary { name: n(*b), established: true, ..Default::default() })
                    .collect(),
            });
        }
        p.apply_records(&recs, crate::Instant::ZERO);
        for (a, b) in edges {
            if *a == 1 {
                p.set_our_connection(
                    n(*b),
                    RemoteConnection { addr: Bytes::new(), outbound: true, established: true },
                );
            }
        }
        p
    }

    fn sym(pairs: &[(u64, u64)]) -> Vec<(u64, u64)> {
        pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect()
    }

    #[test]
    fn next_hop_is_the_lowest_named_discoverer() {
        // 1 - 3 - 4, 1 - 2 - 4: peer 4 is at distance 2 via 2 and via 3; 2 sorts first.
        let p = graph(&sym(&[(1, 3), (1, 2), (3, 4), (2, 4)]), 4);
        let r = Routes::compute(&p);
        assert_eq!(r.next_hop(n(4)), Some(n(2)));
        assert_eq!(r.next_hop(n(3)), Some(n(3)));
        assert_eq!(r.next_hop(n(1)), None, "unicast to ourselves has no next hop");
        assert_eq!(r.unicast, r.unicast_all);
    }

    #[test]
    fn symmetric_mode_needs_both_ends() {
        // 1 -> 2 reported by us only; 2 reports nothing back.
        let p = graph(&[(1, 2), (2, 3), (3, 2)], 3);
        let r = Routes::compute(&p);
        assert!(r.unicast_all.contains_key(&n(3)));
        assert!(!r.unicast.contains_key(&n(2)));
        assert!(!r.reachable_established(n(3)));
    }

    #[test]
    fn broadcast_trees_deliver_exactly_once() {
        // A ring of 6 with a chord; every peer computes its relays from the same table.
        let edges = sym(&[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1), (2, 5)]);
        for source in 1..=6u64 {
            let mut received = BTreeMap::new();
            let mut frontier = vec![(n(source), n(source))];
            received.insert(n(source), 1);
            while let Some((at, src)) = frontier.pop() {
                // Compute `at`'s relays from `at`'s own point of view.
                let view = view_from(&edges, at.to_u64(), 6);
                for hop in broadcast_next_hops(&view, src, Mode::All) {
                    *received.entry(hop).or_insert(0) += 1;
                    frontier.push((hop, src));
                }
            }
            assert_eq!(received.len(), 6, "source {source}");
            assert!(received.values().all(|c| *c == 1), "source {source}: {received:?}");
        }
    }

    /// The same graph as seen from `me`.
    fn view_from(edges: &[(u64, u64)], me: u64, count: u64) -> Peers {
        let mut p = Peers::new(n(me), Bytes::new(), me, 1);
        let recs: Vec<PeerRecord> = (1..=count)
            .filter(|i| *i != me)
            .map(|i| PeerRecord {
                summary: PeerSummary { name: n(i), uid: i, version: 1, ..PeerSummary::default() },
                connections: edges
                    .iter()
                    .filter(|(a, _)| *a == i)
                    .map(|(_, b)| ConnectionSummary { name: n(*b), established: true, ..Default::default() })
                    .collect(),
            })
            .collect();
        p.apply_records(&recs, crate::Instant::ZERO);
        for (a, b) in edges {
            if *a == me {
                p.set_our_connection(
                    n(*b),
                    RemoteConnection { addr: Bytes::new(), outbound: true, established: true },
                );
            }
        }
        p
    }

    #[test]
    fn fanout_examples() {
        let expect = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 3),
            (8, 6),
            (10, 6),
            (16, 8),
            (50, 11),
            (100, 13),
            (200, 15),
            (1000, 19),
        ];
        for (n, f) in expect {
            assert_eq!(fanout(n, n - 1), f, "N={n}");
        }
    }

    #[test]
    fn neighbour_subset_is_fair_and_excludes() {
        // (peers, neighbours): every peer is reachable through neighbour (i mod k) + 1.
        for (peers, k) in [(1u64, 0u64), (2, 1), (3, 2), (10, 2), (10, 3), (10, 9), (100, 2), (100, 99)] {
            let mut r = Routes::default();
            r.unicast_all.insert(n(1), PeerName::UNKNOWN);
            for i in 2..=peers {
                let hop = if i <= k + 1 { i } else { (i % k) + 2 };
                r.unicast_all.insert(n(i), n(hop));
            }
            let mut counts: BTreeMap<PeerName, u64> = BTreeMap::new();
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let draws = 5000;
            let exclude = n(2);
            for _ in 0..draws {
                let subset = r.neighbour_subset(exclude, |m| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % m
                });
                let weighted: BTreeSet<PeerName> =
                    r.unicast_all.values().filter(|h| !h.is_unknown() && **h != exclude).copied().collect();
                assert_eq!(subset.len(), fanout(peers, weighted.len() as u64), "({peers},{k})");
                assert!(!subset.contains(&exclude));
                for s in subset {
                    *counts.entry(s).or_default() += 1;
                }
            }
            if counts.len() > 1 {
                let mean = counts.values().sum::<u64>() as f64 / counts.len() as f64;
                assert!(
                    counts.values().all(|c| (*c as f64 - mean).abs() <= 0.2 * mean),
                    "({peers},{k}): {counts:?}"
                );
            }
        }
    }

    #[test]
    fn symmetric_broadcasts_skip_one_way_links() {
        // We (1) report links to 2 and 3; only 2 reports one back.
        let p = graph(&[(1, 2), (2, 1), (1, 3)], 3);
        assert_eq!(broadcast_next_hops(&p, n(1), Mode::All), [n(2), n(3)]);
        assert_eq!(broadcast_next_hops(&p, n(1), Mode::EstablishedSymmetric), [n(2)]);
    }

    #[test]
    fn a_search_says_whether_it_reached_its_stop() {
        // 1 - 2 - 3, and 4 alone.
        let p = graph(&sym(&[(1, 2), (2, 3)]), 4);
        let (reached, hops) = search(&p, n(1), Some(n(3)), Mode::All);
        assert!(reached);
        assert_eq!(hops[&n(1)], PeerName::UNKNOWN, "the start has no next hop");
        assert_eq!(hops[&n(3)], n(2));
        let (reached, hops) = search(&p, n(1), Some(n(4)), Mode::All);
        assert!(!reached);
        assert_eq!(hops.keys().copied().collect::<Vec<_>>(), [n(1), n(2), n(3)]);
    }

    #[test]
    fn route_tables_answer_for_reachability_and_broadcasts() {
        // 1 - 2 - 3 established both ways; 1 -> 4 reported by us only.
        let p = graph(&[(1, 2), (2, 1), (2, 3), (3, 2), (1, 4)], 4);
        let mut r = Routes::compute(&p);
        assert!(r.reachable_established(n(3)));
        assert!(!r.reachable_established(n(4)), "one-way");
        // Our own broadcasts go to both neighbours over every link, to 2 only over
        // established symmetric ones; 3's broadcasts reach us through 2 and go on to 4,
        // which only we reach, and 2's go to 4 too.
        assert_eq!(r.broadcast_all(n(1)), [n(2), n(4)]);
        assert_eq!(r.broadcast_all(n(3)), [n(4)]);
        assert_eq!(r.broadcast_all(n(2)), [n(4)]);
        assert_eq!(r.broadcast_established(), &BTreeMap::from([(n(1), vec![n(2)])]));
    }

    proptest::proptest! {
        /// Routes updated record by record equal routes computed from scratch, after any
        /// sequence of records changing, appearing (with placeholders) and being
        /// collected.
        #[test]
        fn incremental_routes_equal_routes_from_scratch(
            steps in proptest::collection::vec(
                (2u64..12, 0u64..4, proptest::collection::vec((1u64..14, proptest::bool::ANY), 0..5), proptest::bool::ANY),
                1..25,
            )
        ) {
            let mut p = Peers::new(n(1), Bytes::new(), 1, 1);
            let mut routes = Routes::default();
            for (version, (name, uid, conns, gc)) in (2u64..).zip(steps) {
                let rec = PeerRecord {
                    summary: PeerSummary { name: n(name), uid: uid + 1, version, ..PeerSummary::default() },
                    connections: conns
                        .iter()
                        .map(|(to, est)| ConnectionSummary { name: n(*to), established: *est, ..Default::default() })
                        .collect(),
                };
                p.apply_records(&[rec], crate::Instant::ZERO);
                if name % 3 == 0 {
                    p.set_our_connection(n(name), RemoteConnection { addr: Bytes::new(), outbound: true, established: gc });
                } else if gc {
                    p.remove_our_connection(n(name));
                    p.garbage_collect();
                }
                let changes = p.take_changes();
                routes = routes.update(&p, changes);
                let mut fresh = Routes::compute(&p);
                proptest::prop_assert_eq!(&routes.unicast, &fresh.unicast);
                proptest::prop_assert_eq!(&routes.unicast_all, &fresh.unicast_all);
                proptest::prop_assert_eq!(routes.broadcast_established(), fresh.broadcast_established());
                for source in 1..14 {
                    let hops = fresh.broadcast_all(n(source)).to_vec();
                    proptest::prop_assert_eq!(routes.broadcast_all(n(source)), hops.as_slice());
                }
            }
        }
    }
}
