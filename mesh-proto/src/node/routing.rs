//! Routes as the node uses them (docs/protocol-v2.md §18.4–§18.5): recalculated at most every
//! 100 ms after the table changes, and relays (neighbour-subset gossip, broadcast trees)
//! that must see every change applied before them wait for that recalculation.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::Node;
use super::timers::Timer;
use crate::config::ROUTES_RECALC_DELAY;
use crate::connection::ConnId;
use crate::gossip::{Erased, Slot};
use crate::name::PeerName;
use crate::routes::Routes;
use crate::sabotage::Sabotage;
use crate::time::Instant;

/// Data waiting for routes to be recalculated before it is queued.
pub(crate) enum Relay {
    /// Records to describe, by name.
    Topology { slot: Slot, exclude: PeerName, names: BTreeSet<PeerName> },
    /// Periodic topology gossip: the records of `names` (the whole table) to version 2
    /// links, our summary to version 3 ones.
    Periodic { exclude: PeerName, names: BTreeSet<PeerName> },
    /// A channel's data.
    Channel { channel: Bytes, slot: Slot, exclude: PeerName, data: Erased },
}

/// The routes and whether they still reflect the table.
#[derive(Default)]
pub(crate) struct RouteCache {
    pub(crate) routes: Routes,
    /// The table changed since `routes` were computed.
    dirty: bool,
    /// Relays waiting for [`Timer::Routes`].
    waiting: Vec<Relay>,
}

impl RouteCache {
    /// A cache that computes on first use.
    pub(crate) fn stale() -> Self {
        RouteCache { dirty: true, ..RouteCache::default() }
    }
}

impl Node {
    /// The table changed: recalculate within [`ROUTES_RECALC_DELAY`].
    pub(super) fn routes_changed(&mut self, now: Instant) {
        self.routing.dirty = true;
        self.timers.arm(Timer::Routes, now + ROUTES_RECALC_DELAY);
    }

    /// Recomputes the routes if the table changed since they were.
    pub(super) fn ensure_routes(&mut self) {
        if self.routing.dirty {
            // Only the records that changed since the last recalculation are re-read.
            let old = std::mem::take(&mut self.routing.routes);
            let stale =
                self.broken(Sabotage::StaleRoutes).then(|| (old.unicast.clone(), old.unicast_all.clone()));
            let changes = self.peers.take_changes();
            let mut fresh = old.update(&self.peers, changes);
            if let Some((unicast, unicast_all)) = stale {
                fresh.unicast.extend(unicast);
                fresh.unicast_all.extend(unicast_all);
            }
            self.routing.routes = fresh;
            self.routing.dirty = false;
        }
    }

    /// [`Timer::Routes`] passed: recalculate and queue what waited.
    pub(super) fn recalculate_routes(&mut self, now: Instant) {
        self.ensure_routes();
        for r in std::mem::take(&mut self.routing.waiting) {
            self.relay(r, now);
        }
    }

    /// Queues data for a neighbour subset (gossip slot) or down a broadcast tree. Waits
    /// for the coalesced route recalculation if the table changed since the last one,
    /// so relays always use routes that include every change applied before them.
    pub(super) fn relay(&mut self, r: Relay, now: Instant) {
        if self.routing.dirty {
            self.timers.arm(Timer::Routes, now + ROUTES_RECALC_DELAY);
            self.routing.waiting.push(r);
            return;
        }
        match r {
            Relay::Topology { slot, exclude, names } => {
                let conns = self.relay_conns(slot, exclude);
                // Version 3 links are offered changed records by digest (§12.3).
                let (v3, v2) =
                    if slot == Slot::Gossip { self.split_by_digest(conns) } else { (Vec::new(), conns) };
                for id in v3 {
                    self.queue_sync_have(id, &names);
                }
                self.queue_topology(&v2, slot, &names);
            }
            Relay::Periodic { exclude, names } => {
                let conns = self.relay_conns(Slot::Gossip, exclude);
                let (v3, v2) = self.split_by_digest(conns);
                for id in v3 {
                    self.queue_sync_summary(id);
                }
                self.queue_topology(&v2, Slot::Gossip, &names);
            }
            Relay::Channel { channel, slot, exclude, data } => {
                let conns = self.relay_conns(slot, exclude);
                self.queue_channel(&channel, &conns, slot, &data);
            }
        }
    }

    fn relay_conns(&mut self, slot: Slot, exclude: PeerName) -> Vec<ConnId> {
        let hops = match slot {
            Slot::Gossip => {
                self.ensure_routes();
                self.routing.routes.neighbour_subset(exclude, |n| self.rng.below(n))
            }
            Slot::Broadcast(source) => self.broadcast_relays(source),
        };
        hops.iter().filter_map(|n| self.by_name.get(n).copied()).collect()
    }

    /// The registered connections among our next hops on `source`'s broadcast tree,
    /// from the routes' cache.
    fn broadcast_relays(&mut self, source: PeerName) -> Vec<PeerName> {
        self.ensure_routes();
        // Filled once per source into the routes' cache; the view above cannot cache.
        self.routing.routes.broadcast_all(source);
        self.registered_hops(source, self.routing.routes.broadcast_cached(source))
    }
}
