//! Topology updates (docs/protocol-v2.md §17.5): changes to our record are coalesced for a second
//! and then gossiped with the records that changed; garbage collection of records nobody
//! reaches; our short id when another peer takes it.

use std::collections::BTreeSet;

use super::Node;
use super::routing::Relay;
use super::timers::Timer;
use crate::config::{GC_DELAY, TOPOLOGY_UPDATE_DELAY};
use crate::connection_list::ConnectionList;
use crate::event::{Event, Output};
use crate::gossip::Slot;
use crate::name::PeerName;
use crate::sabotage::Sabotage;
use crate::time::Instant;

/// What the next topology update carries.
#[derive(Debug, Default)]
pub(crate) struct UpdateSchedule {
    /// Records to send besides ours.
    pending: BTreeSet<PeerName>,
    /// The update must carry our record (see [`Node::schedule_forced_update`]).
    forced: bool,
    /// Our connections as of the last update we sent.
    announced: ConnectionList,
}

impl Node {
    /// Schedules an update carrying our record and `names`' within the coalescing delay.
    pub(super) fn schedule_update(&mut self, names: impl IntoIterator<Item = PeerName>, now: Instant) {
        self.updates.pending.extend(names);
        self.timers.arm(Timer::Update, now + TOPOLOGY_UPDATE_DELAY);
    }

    /// Schedules an update that must carry our record even if our connections are as
    /// last announced (our version or short id changed for another reason).
    pub(super) fn schedule_forced_update(&mut self, now: Instant) {
        self.updates.forced = true;
        self.schedule_update([], now);
    }

    /// [`Timer::Update`] passed: gossip what changed.
    pub(super) fn send_topology_update(&mut self, now: Instant) {
        let mut names = std::mem::take(&mut self.updates.pending);
        // Ours: a connection that came and went within the coalescing second (a peer
        // at its limit refused us) changed only our version; announcing it would make
        // every peer apply, relay and re-check for nothing.
        let forced = std::mem::take(&mut self.updates.forced);
        if !forced && self.peers.ours().connections == self.updates.announced {
            return;
        }
        self.updates.announced = self.peers.ours().connections.clone();
        names.insert(self.config.name);
        let us = self.config.name;
        self.relay(Relay::Topology { slot: Slot::Gossip, exclude: us, names }, now);
    }

    /// Collects unreachable records soon, unless a collection is already due.
    pub(super) fn schedule_gc(&mut self, now: Instant) {
        self.timers.arm(Timer::Gc, now + GC_DELAY);
    }

    /// Removes the records nobody reaches (docs/protocol-v2.md §17.6).
    pub(super) fn garbage_collect(&mut self, now: Instant) {
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
        let removed: Vec<PeerName> = removed.into_iter().map(|p| p.summary.name).collect();
        self.stats.gc_removed += removed.len() as u64;
        self.routes_changed(now);
        for name in &removed {
            self.outputs.push_back(Output::Event(Event::PeerRemoved(*name)));
        }
        if !self.peers.own_short_id_held() {
            self.reassign_short_id(now);
        }
    }

    /// Another peer holds our short id: pick a free one and announce it.
    pub(super) fn reassign_short_id(&mut self, now: Instant) {
        if self.peers.reassign_short_id(|n| self.rng.below(u64::from(n)) as u32) {
            self.stats.short_id_reassignments += 1;
            self.schedule_forced_update(now);
        }
    }
}
