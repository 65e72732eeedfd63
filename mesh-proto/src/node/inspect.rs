//! A read-only view of a node's internal state, for simulators, tests and diagnostics.
//! Nothing here is needed to drive a node, and nothing here can change one.

use std::collections::BTreeMap;

use super::Node;
use crate::connection::{ConnId, Connection};
use crate::name::PeerName;
use crate::sabotage::Sabotage;
use crate::topology::Peer;

/// A read-only view of a [`Node`]: its peers table, its routes, its queues. Take it
/// with [`Node::inspect`], or with [`Node::inspect_routes`] to see routes that reflect
/// every change to the table.
#[derive(Clone, Copy, Debug)]
pub struct Inspect<'a> {
    node: &'a Node,
}

impl Node {
    /// A read-only view of the node's state. Routes are as last computed: the node
    /// recomputes them at most every 100 ms after the table changes.
    pub fn inspect(&self) -> Inspect<'_> {
        Inspect { node: self }
    }

    /// A read-only view with the routes recomputed first if the table changed since they
    /// were, as the node's next relay would. This advances the node's route cache, the
    /// only state an observation may touch.
    pub fn inspect_routes(&mut self) -> Inspect<'_> {
        self.ensure_routes();
        Inspect { node: self }
    }

    /// The registered neighbours among `hops`, our next hops on `source`'s broadcast
    /// tree (every neighbour but `source` when broadcasts are sabotaged to flood).
    pub(super) fn registered_hops(&self, source: PeerName, hops: &[PeerName]) -> Vec<PeerName> {
        if self.broken(Sabotage::FloodBroadcasts) {
            return self.by_name.keys().copied().filter(|n| *n != source).collect();
        }
        hops.iter().copied().filter(|n| self.by_name.contains_key(n)).collect()
    }
}

impl<'a> Inspect<'a> {
    /// Every record of the peers table (ours included), by name.
    pub fn peers(&self) -> impl Iterator<Item = &'a Peer> + 'a {
        self.node.peers.iter()
    }

    /// A number that grows with every change to the table's records (ours included,
    /// so every registered or closed connection too), and only then: observers can
    /// recompute what they derive from the table only when it moved.
    pub fn table_generation(&self) -> u64 {
        self.node.peers.generation()
    }

    /// The record of `name`.
    pub fn peer(&self, name: &PeerName) -> Option<&'a Peer> {
        self.node.peers.get(name)
    }

    /// Our own record.
    pub fn ours(&self) -> &'a Peer {
        self.node.peers.ours()
    }

    /// Number of records, ours included.
    pub fn peer_count(&self) -> usize {
        self.node.peers.len()
    }

    /// Unicast next hops over established, symmetric links: destination → next hop.
    pub fn unicast_routes(&self) -> &'a BTreeMap<PeerName, PeerName> {
        &self.node.routing.routes.unicast
    }

    /// Unicast next hops over every reported link (the table relayed unicasts use).
    pub fn unicast_routes_all(&self) -> &'a BTreeMap<PeerName, PeerName> {
        &self.node.routing.routes.unicast_all
    }

    /// The neighbours a broadcast from `source` is relayed to when it reaches us: the
    /// registered connections among our next hops on `source`'s tree (relaying uses
    /// exactly this).
    pub fn broadcast_relays(&self, source: PeerName) -> Vec<PeerName> {
        self.node.registered_hops(source, &self.node.routing.routes.broadcast_hops(source))
    }

    /// Bytes handed to the driver for `conn` and not yet reported written, plus bytes
    /// built and not yet handed over.
    pub fn queued_bytes(&self, conn: ConnId) -> usize {
        self.node.conns.get(&conn).map_or(0, Connection::queued)
    }

    /// Number of relay-only channels held.
    pub fn relay_channel_count(&self) -> usize {
        self.node.relay_channel_count()
    }
}
