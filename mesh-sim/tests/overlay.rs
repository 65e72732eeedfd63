//! The overlay extension point in simulated meshes: overlays prove every link of a mesh
//! mixing versions 2 and 3, and an overlay that fails one link closes only that link
//! while the mesh routes around it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::overlay::{Liveness, LivenessConfig};
use mesh_proto::{
    CloseReason, Config, ConnectionState, Event, Overlay, OverlayConnection, OverlayControl, OverlayError,
    OverlayParams, PeerName,
};
use mesh_sim::{NodeId, Sim};

fn config(i: u64, max_version: u8) -> Config {
    let mut c = Config::new(PeerName::from_u64(i).unwrap(), format!("peer{i}"));
    c.password = Some(Bytes::from_static(b"pw"));
    c.max_protocol_version = max_version;
    c.peer_discovery = false;
    c
}

fn liveness() -> Liveness {
    Liveness::new(LivenessConfig { interval: Duration::from_secs(2), timeout: Duration::from_secs(10) })
}

/// A ring of four: two version-2-only peers, two offering version 3. Every connection is
/// established by its liveness overlay, which keeps answering.
#[test]
fn liveness_overlays_prove_every_link_of_a_mixed_version_mesh() {
    let mut sim = Sim::new(11);
    let ids: Vec<NodeId> =
        [(1, 2), (2, 2), (3, 3), (4, 3)].iter().map(|&(i, v)| sim.add_plain_node(config(i, v))).collect();
    for &id in &ids {
        sim.act(id, |n, _, _| n.set_overlay(liveness()));
    }
    for k in 0..4 {
        sim.connect(ids[k], ids[(k + 1) % 4]);
    }
    let took = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.topology_converged(&ids) && s.routes_complete(&ids)
    });
    assert!(took.is_some(), "the mesh did not converge");
    sim.run_for(Duration::from_secs(10));
    for &id in &ids {
        let st = sim.act(id, |n, _, _| n.status()).unwrap();
        let live: Vec<_> = st.connections.iter().filter(|c| c.conn.is_some()).collect();
        assert_eq!(live.len(), 2, "{id:?}: two neighbours");
        for c in live {
            assert_eq!(c.state, ConnectionState::Established, "{id:?}: {c:?}");
            assert!(c.overlay["pongs"].parse::<u64>().unwrap() >= 5, "{id:?}: {:?}", c.overlay);
            assert!(c.overlay.contains_key("rtt_us"), "{:?}", c.overlay);
            let both_v3 = st.name > PeerName::from_u64(2).unwrap()
                && c.remote_name.unwrap() > PeerName::from_u64(2).unwrap();
            assert_eq!(c.protocol_version, Some(if both_v3 { 3 } else { 2 }));
        }
        let stats = sim.node(id).unwrap().stats();
        assert!(stats.overlay_messages_sent >= 10 && stats.overlay_messages_received >= 10, "{stats:?}");
        assert_eq!(stats.overlay_failures, 0);
    }
}

/// Fails, at confirmation, every connection to one peer.
struct FailTo(PeerName);

struct FailToConnection(bool);

impl Overlay for FailTo {
    fn prepare(&mut self, params: OverlayParams) -> Result<Box<dyn OverlayConnection>, OverlayError> {
        Ok(Box::new(FailToConnection(params.remote == self.0)))
    }
}

impl OverlayConnection for FailToConnection {
    fn confirm(&mut self, ctl: &mut OverlayControl) {
        if self.0 {
            ctl.fail("no data plane to that peer");
        } else {
            ctl.established();
        }
    }

    fn control_message(&mut self, _: u8, _: &[u8], _: &mut OverlayControl) {}

    fn attrs(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("name".to_owned(), "failto".to_owned())])
    }
}

/// A triangle whose A cannot run its overlay to C: that link closes with the overlay's
/// reason each time it is dialled, the other two stay, and A reaches C through B.
#[test]
fn an_overlay_failing_one_link_closes_only_that_link() {
    let mut sim = Sim::new(12);
    let ids: Vec<NodeId> = (1..=3).map(|i| sim.add_plain_node(config(i, 3))).collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let c_name = sim.name(c);
    sim.act(a, |n, _, _| n.set_overlay(FailTo(c_name)));
    sim.connect(a, b);
    sim.connect(b, c);
    sim.connect(a, c);
    let took = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.topology_converged(&ids) && s.routes_complete(&ids)
    });
    assert!(took.is_some(), "the mesh did not converge");
    sim.run_for(Duration::from_secs(60));
    let reason = CloseReason::Overlay(OverlayError::Failed("no data plane to that peer".into()));
    let closes: Vec<(Option<PeerName>, CloseReason)> = sim
        .events(a)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ConnectionClosed { peer, reason, .. } => Some((*peer, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(!closes.is_empty());
    assert!(closes.iter().all(|(p, r)| *p == Some(c_name) && *r == reason), "{closes:?}");
    assert!(sim.connected(a, b) && sim.connected(b, c) && !sim.connected(a, c));
    let routes = sim.unicast_routes(a).unwrap();
    assert_eq!(routes.get(&c_name), Some(&sim.name(b)), "A reaches C through B");
    assert_eq!(sim.node(a).unwrap().stats().overlay_failures as usize, closes.len());
}

/// Never reports anything.
struct Silent;

struct SilentConnection;

impl Overlay for Silent {
    fn prepare(&mut self, _: OverlayParams) -> Result<Box<dyn OverlayConnection>, OverlayError> {
        Ok(Box::new(SilentConnection))
    }
}

impl OverlayConnection for SilentConnection {
    fn confirm(&mut self, _: &mut OverlayControl) {}

    fn control_message(&mut self, _: u8, _: &[u8], _: &mut OverlayControl) {}
}

/// As in Go, a connection whose overlay never confirms stays up (heartbeats keep it
/// alive), carries topology, but is never established at that end, so neither end
/// routes over it; a third peer reachable only through it stays unreachable.
#[test]
fn a_connection_whose_overlay_never_confirms_stays_up_but_carries_no_routes() {
    let mut sim = Sim::new(13);
    let ids: Vec<NodeId> = (1..=3).map(|i| sim.add_plain_node(config(i, 3))).collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    sim.act(a, |n, _, _| n.set_overlay(Silent));
    sim.connect(a, b);
    sim.connect(b, c);
    sim.run_for(Duration::from_secs(300));
    assert!(sim.connected(a, b) && sim.connected(b, c));
    assert!(sim.topology_converged(&ids), "topology still flows over the pending link");
    let closes = |id: NodeId| {
        sim.events(id).iter().filter(|(_, e)| matches!(e, Event::ConnectionClosed { .. })).count()
    };
    assert_eq!((closes(a), closes(b)), (0, 0), "five minutes without a close");
    let st = sim.act(a, |n, _, _| n.status()).unwrap();
    let to_b = st.connections.iter().find(|x| x.remote_name == Some(sim.name(b))).unwrap();
    assert_eq!(to_b.state, ConnectionState::Pending);
    assert!(!sim.events(a).iter().any(|(_, e)| matches!(e, Event::ConnectionEstablished { .. })));
    let routes = sim.unicast_routes(a).unwrap();
    assert!(!routes.contains_key(&sim.name(b)) && !routes.contains_key(&sim.name(c)), "{routes:?}");
    let routes = sim.unicast_routes(c).unwrap();
    assert!(routes.contains_key(&sim.name(b)) && !routes.contains_key(&sim.name(a)), "{routes:?}");
}
