//! The status snapshot: our record, every peer's, the routes, every connection and every
//! target not currently connected.

use std::collections::{BTreeMap, BTreeSet};

use super::Node;
use crate::connection::Phase;
use crate::name::PeerName;
use crate::status::{
    self, ConnectionState, ConnectionStatus, NextTry, PeerConnectionStatus, PeerStatus, Status,
};

/// Wire bytes (nicknames, addresses, channel names) as text, invalid UTF-8 replaced.
pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Node {
    /// A diagnostic snapshot.
    pub fn status(&mut self) -> Status {
        self.ensure_routes();
        let me = self.peers.ours();
        let routes = &self.routing.routes;
        Status {
            protocol: "weave".to_owned(),
            protocol_versions: (self.config.min_protocol_version, self.config.max_protocol_version),
            encryption: self.config.password.is_some(),
            peer_discovery: self.config.peer_discovery,
            name: self.config.name,
            nickname: text(&self.config.nickname),
            uid: self.uid,
            short_id: self.peers.our_short_id(),
            version: me.summary.version,
            port: self.config.port,
            peers: self.peer_statuses(),
            unicast_routes: routes.unicast.iter().map(|(d, h)| (*d, *h)).collect(),
            broadcast_routes: routes.broadcast_established().iter().map(|(s, v)| (*s, v.clone())).collect(),
            connections: self.connection_statuses(),
            terminations: self.terminations,
            targets: self.connector.direct_peers(false),
            trusted_subnets: self.config.trusted_subnets.clone(),
            overlay: self.overlay_diagnostics(),
            relay_channels: self
                .channels
                .iter()
                .filter(|(_, c)| c.is_relay())
                .map(|(n, _)| text(n))
                .collect(),
        }
    }

    fn peer_statuses(&self) -> Vec<PeerStatus> {
        let names: BTreeMap<PeerName, &[u8]> =
            self.peers.iter().map(|p| (p.summary.name, &p.summary.nickname[..])).collect();
        let connection = |c: crate::connection_list::Connection<'_>| PeerConnectionStatus {
            name: c.name,
            nickname: names.get(&c.name).map(|nick| text(nick)).unwrap_or_default(),
            addr: text(&c.addr.text()),
            outbound: c.outbound,
            established: c.established,
        };
        self.peers
            .iter()
            .map(|p| PeerStatus {
                name: p.summary.name,
                nickname: text(&p.summary.nickname),
                uid: p.summary.uid,
                // No short id shows as 0, as Go shows a peer that never had one.
                short_id: p.summary.short_id.unwrap_or(0),
                version: p.summary.version,
                connections: p.connections.iter().map(connection).collect(),
            })
            .collect()
    }

    /// Our connections, then the targets we hold no connection to, by address.
    fn connection_statuses(&self) -> Vec<ConnectionStatus> {
        let mut connections: Vec<ConnectionStatus> = Vec::new();
        for (id, c) in &self.conns {
            let running = c.running();
            let state = match &c.phase {
                Phase::Running(r) if r.established && self.by_name.get(&r.remote.name) == Some(id) => {
                    ConnectionState::Established
                }
                Phase::Dialing { .. } => ConnectionState::Connecting,
                _ => ConnectionState::Pending,
            };
            connections.push(ConnectionStatus {
                addr: c.addr.clone(),
                outbound: c.outbound,
                state,
                conn: Some(*id),
                protocol_version: running.map(|r| r.version),
                security: running.map(|r| r.security),
                trusted: running.is_some_and(|r| c.trusts_remote && r.remote.trusts_us),
                remote_name: running.map(|r| r.remote.name),
                remote_nickname: running.map(|r| text(&r.remote.nickname)),
                last_error: None,
                next_try: None,
                overlay: running.and_then(|r| r.overlay.as_ref()).map(|o| o.attrs()).unwrap_or_default(),
            });
        }
        let live_addrs: BTreeSet<&str> = self.conns.values().map(|c| c.addr.as_str()).collect();
        for (addr, t) in self.connector.targets() {
            if live_addrs.contains(addr.as_str()) {
                continue;
            }
            let Some(state) = status::target_state(t.state, t.last_error.is_some()) else { continue };
            connections.push(ConnectionStatus {
                addr: addr.clone(),
                outbound: true,
                state,
                conn: None,
                protocol_version: None,
                security: None,
                trusted: false,
                remote_name: None,
                remote_nickname: None,
                last_error: t.last_error.clone(),
                next_try: Some(t.try_after.map_or(NextTry::Never, NextTry::At)),
                overlay: BTreeMap::new(),
            });
        }
        connections.sort_by(|a, b| (&a.addr, a.conn).cmp(&(&b.addr, b.conn)));
        connections
    }
}
