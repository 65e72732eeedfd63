//! Dialling (docs/protocol-v2.md §20): the connector decides which targets to dial within what
//! the connection limit leaves; the node turns its decisions into dial outputs.

use std::net::{IpAddr, SocketAddr};

use super::Node;
use super::timers::Timer;
use crate::config::DISCOVERY_SHARE;
use crate::connection::{ConnId, Connection, Phase};
use crate::connector::{DialBudget, LiveConnection};
use crate::event::Output;
use crate::time::Instant;

impl Node {
    /// A fresh connection id.
    pub(super) fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    /// Whether `ip` is in a trusted subnet (no encryption towards it if it trusts us).
    pub(super) fn trusts(&self, ip: IpAddr) -> bool {
        self.config.trusted_subnets.iter().any(|s| s.contains(ip))
    }

    /// Our registered connections, for the connector.
    pub(super) fn live_connections(&self) -> Vec<LiveConnection> {
        self.by_name
            .iter()
            .filter_map(|(name, id)| {
                let c = self.conns.get(id)?;
                Some(LiveConnection { name: *name, addr: c.addr.clone(), outbound: c.outbound })
            })
            .collect()
    }

    /// What the connection limit leaves for new dials. Dials in progress count, so a
    /// burst of targets cannot overshoot the limit (weaveworks/weave#444); and once we
    /// know more peers than the limit allows, discovery keeps to its share of outbound
    /// connections so that newcomers find room (weaveworks/weave#426).
    fn dial_budget(&self) -> DialBudget {
        let limit = self.config.conn_limit;
        if limit == 0 {
            return DialBudget::UNLIMITED;
        }
        // A running connection is registered: registration ends the handshake.
        let attempts = self.conns.values().filter(|c| c.outbound && c.running().is_none()).count();
        let outbound = self.conns.values().filter(|c| c.outbound).count();
        let any = limit.saturating_sub(self.by_name.len() + attempts);
        // Other peers we know of: in the table, or only remembered as targets.
        let known = (self.peers.len() - 1).max(self.connector.targets().len());
        let share = if known >= limit { (limit / DISCOVERY_SHARE).max(1) } else { limit };
        DialBudget { any, discovered: any.min(share.saturating_sub(outbound)) }
    }

    /// Asks the connector what to dial now and arms [`Timer::Connector`] for its next
    /// check.
    pub(super) fn run_connector(&mut self, now: Instant) {
        let live = self.live_connections();
        let budget = self.dial_budget();
        self.ensure_routes();
        let routes = &self.routing.routes;
        let (dials, next) = self.connector.check(
            now,
            &live,
            &self.peers,
            budget,
            |n| self.rng.below(n),
            |p| routes.reachable_established(p),
        );
        self.timers.set(Timer::Connector, next);
        for d in dials {
            let id = self.new_conn_id();
            let trusts = d.addr.parse::<SocketAddr>().is_ok_and(|a| self.trusts(a.ip()));
            let dialing = Phase::Dialing { deadline: now + self.config.connect_timeout };
            let mut conn = Connection::new(d.addr.clone(), true, d.accept_new_peer, trusts, dialing);
            conn.expected_peer = d.expected;
            self.conns.insert(id, conn);
            self.outputs.push_back(Output::Dial { conn: id, addr: d.addr });
        }
    }
}
