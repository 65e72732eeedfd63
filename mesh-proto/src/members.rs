//! Membership as an application sees it: every other peer the table holds, whether a
//! route reaches it, and through which neighbour.

use crate::name::PeerName;
use crate::node::Node;

/// Another peer of the mesh.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Member {
    /// Its name.
    pub name: PeerName,
    /// Its nickname, as text (invalid UTF-8 replaced).
    pub nickname: String,
    /// Whether a unicast route reaches it now. A peer stays a member while unreachable
    /// until the table forgets it (it is garbage-collected once nothing connects it).
    pub reachable: bool,
    /// The neighbour a unicast to it goes through (itself when directly connected).
    pub next_hop: Option<PeerName>,
}

impl Node {
    /// Every other peer whose record the table holds, by name, with the routes as the next relay would
    /// use them (recomputed first if the table changed).
    pub fn members(&mut self) -> Vec<Member> {
        let view = self.inspect_routes();
        let us = view.ours().summary.name;
        let routes = view.unicast_routes();
        view.peers()
            // Placeholders (named in someone's connections, record not yet received)
            // are not members yet.
            .filter(|p| p.summary.name != us && p.summary.version > 0)
            .map(|p| {
                let next_hop = routes.get(&p.summary.name).copied();
                Member {
                    name: p.summary.name,
                    nickname: String::from_utf8_lossy(&p.summary.nickname).into_owned(),
                    reachable: next_hop.is_some(),
                    next_hop,
                }
            })
            .collect()
    }
}
