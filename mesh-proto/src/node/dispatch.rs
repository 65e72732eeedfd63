//! Gossip dispatch (docs/protocol-v2.md §19.3): a received gossip message goes to its channel's
//! gossiper, to the topology, onwards towards a unicast's destination, or to a bounded
//! relay-only channel for names nobody registered; what a gossiper returns is relayed.
//! Also the periodic gossip of every channel (§19.5).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::routing::Relay;
use super::timers::Timer;
use super::{Node, TOPOLOGY_CHANNEL};
use crate::config::ROUTES_RECALC_DELAY;
use crate::connection::ConnId;
use crate::event::{CloseReason, Event, Output};
use crate::gossip::{CallbackEnv, ErasedEmit, GossipError, RelayChannel, RelayMemory, Slot};
use crate::name::PeerName;
use crate::sabotage::Sabotage;
use crate::time::Instant;
use crate::wire::message::{GossipKind, GossipMessage};
use crate::wire::topology::SummaryRef;

impl Node {
    /// A gossip message arrived on `id`; `body` is the whole message (relayed as is).
    pub(super) fn on_gossip(&mut self, id: ConnId, body: &Bytes, g: GossipMessage<'_>, now: Instant) {
        if let GossipKind::Unicast { destination } = g.kind {
            if destination != self.config.name {
                return self.relay_unicast(destination, body);
            }
        }
        if g.channel == TOPOLOGY_CHANNEL {
            return self.on_topology(id, g, now);
        }
        if !self.channels.contains_key(g.channel) && !self.make_channel(g.channel) {
            self.add_relay_channel(g.channel, now);
        }
        if g.kind == GossipKind::Gossip && self.broken(Sabotage::IgnoreGossip) {
            return;
        }
        let dedupe = !self.broken(Sabotage::NoRelayDedupe);
        let Some(ch) = self.channels.get_mut(g.channel) else { return };
        let repeat = |m: &mut RelayMemory| !m.first_sight(g.channel, g.payload, now);
        if g.kind == GossipKind::Gossip && ch.is_relay() && dedupe && repeat(&mut self.relay_memory) {
            return;
        }
        let mut emits = Vec::new();
        match self.deliver(g, now, &mut emits) {
            Ok(relay) => {
                if let Some(relay) = relay {
                    self.relay(relay, now);
                }
                self.perform_emits(g.channel, emits, now);
            }
            Err(error) => {
                let channel = String::from_utf8_lossy(g.channel).into_owned();
                self.close(id, CloseReason::Gossiper { channel, error }, now);
            }
        }
    }

    /// Hands `g` to its channel; what the channel returns to pass on.
    fn deliver(
        &mut self,
        g: GossipMessage<'_>,
        now: Instant,
        emits: &mut Vec<ErasedEmit>,
    ) -> Result<Option<Relay>, GossipError> {
        let env = &mut CallbackEnv { us: self.config.name, now, emits };
        let Some(ch) = self.channels.get_mut(g.channel) else { return Ok(None) };
        let channel = Bytes::copy_from_slice(g.channel);
        let relay = match g.kind {
            GossipKind::Unicast { .. } => {
                return ch.on_unicast(env, g.source, g.payload).map(|()| None);
            }
            // Our own broadcast came back: Go would re-send it.
            GossipKind::Broadcast if g.source == self.config.name => return Ok(None),
            GossipKind::Broadcast => {
                let data = ch.on_broadcast(env, g.source, g.payload)?;
                let slot = Slot::Broadcast(g.source);
                let data = data.filter(|_| !self.broken(Sabotage::NoBroadcastRelay));
                data.map(|data| Relay::Channel { channel, slot, exclude: g.source, data })
            }
            GossipKind::Gossip => {
                let delta = ch.on_gossip(env, g.payload)?;
                delta.map(|data| Relay::Channel { channel, slot: Slot::Gossip, exclude: g.source, data })
            }
        };
        Ok(relay)
    }

    /// A topology message arrived on `id` (docs/protocol-v2.md §17.3–§17.4).
    fn on_topology(&mut self, id: ConnId, g: GossipMessage<'_>, now: Instant) {
        if matches!(g.kind, GossipKind::Unicast { .. }) {
            return self.close(id, CloseReason::TopologyUnicast, now);
        }
        let peers = &self.peers;
        let wanted = |s: &SummaryRef<'_>| peers.wants(s);
        let bounds = &self.config.record_limits;
        let records =
            match crate::wire::topology::decode_refs_wanted(g.payload, Default::default(), bounds, wanted) {
                Ok(r) => r,
                Err(e) => {
                    self.stats.records_refused += u64::from(e.is_over_bound());
                    return self.close(id, CloseReason::Topology(e), now);
                }
            };
        let applied = self.peers.apply(&records, now);
        if let Some(entries) = applied.table_full {
            self.stats.records_refused += 1;
            let max = self.config.record_limits.max_peers;
            return self.close(id, CloseReason::TableFull { entries, max }, now);
        }
        self.stats.version_jumps_refused += applied.version_jumps_refused;
        self.requests_answered(&applied.received);
        for name in &applied.added {
            self.outputs.push_back(Output::Event(Event::PeerAdded(*name)));
        }
        if applied.bumped_self {
            self.schedule_forced_update(now);
        }
        if applied.short_id_displaced {
            self.reassign_short_id(now);
        }
        // An update that changed nothing cannot have made anything unreachable: in a
        // steady mesh every periodic gossip would otherwise cost a search of the graph.
        if !applied.improved.is_empty() || !applied.added.is_empty() {
            self.schedule_gc(now);
        }
        if !applied.improved.is_empty() {
            self.routes_changed(now);
            // Re-check targets with the routes, at most every 100 ms.
            self.timers.arm_by(Timer::Connector, now + ROUTES_RECALC_DELAY);
        }
        let relay = match g.kind {
            GossipKind::Gossip if !applied.improved.is_empty() => {
                Relay::Topology { slot: Slot::Gossip, exclude: g.source, names: applied.improved }
            }
            // Older peers broadcast updates (tag 6): relay every received name down
            // the source's tree.
            GossipKind::Broadcast if !applied.received.is_empty() && g.source != self.config.name => {
                let slot = Slot::Broadcast(g.source);
                Relay::Topology { slot, exclude: g.source, names: applied.received }
            }
            _ => return,
        };
        self.relay(relay, now);
    }

    /// A channel nobody registered: the application's maker may serve it, within
    /// `max_made_channels`. False if there is no maker, it declined or the bound is
    /// reached.
    fn make_channel(&mut self, name: &[u8]) -> bool {
        if self.stats.channels_made >= self.config.max_made_channels as u64 {
            return false;
        }
        let Some(made) = self.maker.as_mut().and_then(|m| m.make(name)) else { return false };
        self.channels.insert(Bytes::copy_from_slice(name), made.0);
        self.stats.channels_made += 1;
        true
    }

    /// A channel nobody registered: relay it, within `max_relay_channels` (the least
    /// recently used is evicted).
    fn add_relay_channel(&mut self, name: &[u8], now: Instant) {
        if self.relay_channel_count() >= self.config.max_relay_channels
            && !self.broken(Sabotage::NoRelayEviction)
        {
            let lru = self
                .channels
                .iter()
                .filter(|(_, c)| c.is_relay())
                .min_by_key(|(n, c)| (c.last_used(), (*n).clone()))
                .map(|(n, _)| n.clone());
            if let Some(n) = lru {
                self.channels.remove(&n);
                self.stats.relay_channels_evicted += 1;
            }
        }
        if self.config.max_relay_channels > 0 {
            self.channels.insert(Bytes::copy_from_slice(name), Box::new(RelayChannel::new(now)));
        }
    }

    /// A unicast for another peer: onwards to its next hop, as it came.
    fn relay_unicast(&mut self, dest: PeerName, body: &Bytes) {
        match self.send_to_hop(dest, |out| out.extend_from_slice(body)) {
            Ok(()) => self.stats.unicasts_relayed += 1,
            Err(_) => self.stats.unicasts_dropped += 1,
        }
    }

    /// [`Timer::Gossip`] passed: our whole table and every channel's complete state to a
    /// neighbour subset (docs/protocol-v2.md §19.5).
    pub(super) fn periodic_gossip(&mut self, now: Instant) {
        let us = self.config.name;
        let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
        self.relay(Relay::Periodic { exclude: us, names: all }, now);
        let names: Vec<Bytes> = self.channels.keys().cloned().collect();
        for channel in names {
            let Some(ch) = self.channels.get_mut(&channel) else { continue };
            if let Some(data) = ch.gossip() {
                self.relay(Relay::Channel { channel, slot: Slot::Gossip, exclude: us, data }, now);
            }
        }
    }
}
