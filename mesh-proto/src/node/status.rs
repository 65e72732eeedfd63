//! The status snapshot: our record, every peer's, the routes, every connection and every
//! target not currently connected.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::Node;
use crate::connection::Phase;
use crate::handshake::Security;
use crate::name::PeerName;
use crate::status::{self, ConnectionState, ConnectionStatus, PeerConnectionStatus, PeerStatus, Status};

impl Node {
    /// A diagnostic snapshot.
    pub fn status(&mut self) -> Status {
        self.ensure_routes();
        let me = self.peers.ours();
        let routes = &self.routing.routes;
        Status {
            protocol: "weave",
            protocol_versions: (self.config.min_protocol_version, self.config.max_protocol_version),
            encryption: self.config.password.is_some(),
            peer_discovery: self.config.peer_discovery,
            name: self.config.name,
            nickname: self.config.nickname.clone(),
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
            relay_channels: self
                .channels
                .iter()
                .filter(|(_, c)| c.is_relay())
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    fn peer_statuses(&self) -> Vec<PeerStatus> {
        let names: BTreeMap<PeerName, Bytes> =
            self.peers.iter().map(|p| (p.summary.name, p.summary.nickname.clone())).collect();
        let connection = |(n, c): (&PeerName, &crate::topology::RemoteConnection)| PeerConnectionStatus {
            name: *n,
            nickname: names.get(n).cloned().unwrap_or_default(),
            addr: c.addr.clone(),
            outbound: c.outbound,
            established: c.established,
        };
        self.peers
            .iter()
            .map(|p| PeerStatus {
                name: p.summary.name,
                nickname: p.summary.nickname.clone(),
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
            let negotiated = c.running().map(|r| (r.version, r.security));
            let (state, info) = match &c.phase {
                Phase::Running(r) if self.by_name.get(&r.remote.name) == Some(id) => {
                    // Go's wording ("unencrypted": both ends trust each other, so an
                    // overlay may skip its own encryption; mesh traffic stays sealed),
                    // and the version 3 marks.
                    let trusted = c.trusts_remote && r.remote.trusts_us;
                    let enc = match (r.security, trusted) {
                        (Security::Plaintext, _) => "",
                        (Security::V2Password, false) => "encrypted ",
                        (Security::V2Password, true) => "unencrypted ",
                        (Security::V3Password, false) => "encrypted v3 ",
                        (Security::V3Password, true) => "unencrypted v3 ",
                        (Security::V3Unauthenticated, _) => "encrypted v3 unauthenticated ",
                    };
                    let nickname = String::from_utf8_lossy(&r.remote.nickname);
                    (ConnectionState::Established, format!("{enc}none {}({nickname})", r.remote.name))
                }
                Phase::Dialing { .. } => (ConnectionState::Connecting, String::new()),
                _ => (ConnectionState::Pending, String::new()),
            };
            let conn = Some(*id);
            connections.push(ConnectionStatus {
                addr: c.addr.clone(),
                outbound: c.outbound,
                state,
                info,
                conn,
                protocol_version: negotiated.map(|n| n.0),
                security: negotiated.map(|n| n.1),
            });
        }
        let live_addrs: BTreeSet<&str> = self.conns.values().map(|c| c.addr.as_str()).collect();
        for (addr, t) in self.connector.targets() {
            if live_addrs.contains(addr.as_str()) {
                continue;
            }
            let Some(state) = status::target_state(t.state, t.last_error.is_some()) else { continue };
            let retry = match t.try_after {
                Some(at) => format!("retry at {at}"),
                None => "never retry".to_owned(),
            };
            let info = match &t.last_error {
                Some(e) => format!("{e}, {retry}"),
                None => retry,
            };
            connections.push(ConnectionStatus {
                addr: addr.clone(),
                outbound: true,
                state,
                info,
                conn: None,
                protocol_version: None,
                security: None,
            });
        }
        connections.sort_by(|a, b| (&a.addr, a.conn).cmp(&(&b.addr, b.conn)));
        connections
    }
}
