//! Two and three peers: agreement, routing through a middle peer, exactly-once broadcast.

use std::time::Duration;

use bytes::Bytes;
use mesh_proto::{Config, PeerName};
use mesh_sim::apps::{Ids, TrackerApp, tracker_setup};
use mesh_sim::{NodeId, Sim};

fn config(i: u64, password: Option<&str>) -> Config {
    let mut c = Config::new(PeerName::from_u64(i).unwrap(), format!("peer{i}"));
    c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    c
}

fn two_peers(password: Option<&str>) {
    let mut sim = Sim::new(1);
    let a = sim.add_plain_node(config(1, password));
    let b = sim.add_plain_node(config(2, password));
    sim.connect(a, b);
    let took = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.topology_converged(&[a, b]) && s.connected(a, b) && s.connected(b, a)
    });
    assert!(took.is_some(), "two peers did not converge");
    let mut sim2 = sim;
    assert!(sim2.routes_complete(&[a, b]));
    let st = sim2.act(a, |n, _, _| n.status()).unwrap();
    assert_eq!(st.encryption, password.is_some());
    assert_eq!(st.peers.len(), 2);
    let to_b =
        st.connections.iter().find(|c| c.remote_name == Some(sim2.name(b))).expect("a connection to b");
    assert_eq!(to_b.state, mesh_proto::ConnectionState::Established);
    assert_eq!(to_b.remote_nickname.as_deref(), Some("peer2"));
    assert!(to_b.go_info().ends_with("none 00:00:00:00:00:02(peer2)"), "{}", to_b.go_info());
    let expected = if password.is_some() { "encrypted v3 none" } else { "encrypted v3 unauthenticated none" };
    assert!(to_b.go_info().starts_with(expected), "{}", to_b.go_info());
    // Both records show one established connection each way.
    for p in &st.peers {
        assert_eq!(p.connections.len(), 1);
        assert!(p.connections[0].established);
    }
}

#[test]
fn two_peers_plaintext() {
    two_peers(None);
}

#[test]
fn two_peers_with_password() {
    two_peers(Some("s3cret"));
}

#[test]
fn two_peers_with_empty_password() {
    two_peers(Some(""));
}

fn line() -> (Sim, NodeId, NodeId, NodeId) {
    let mut sim = Sim::new(7);
    let mut c = config(1, None);
    c.peer_discovery = false;
    let a = sim.add_node(c, tracker_setup(vec![Sim::address_of(1)]));
    let mut c = config(2, None);
    c.peer_discovery = false;
    let b = sim.add_node(c, tracker_setup(vec![Sim::address_of(2)]));
    let mut c = config(3, None);
    c.peer_discovery = false;
    let cc = sim.add_node(c, tracker_setup(vec![]));
    let ok = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.topology_converged(&[a, b, cc])
    });
    assert!(ok.is_some(), "line did not converge");
    assert!(!sim.connected(a, cc), "A and C must not be directly connected");
    (sim, a, b, cc)
}

#[test]
fn line_unicast_reaches_the_far_end_through_the_middle() {
    let (mut sim, a, b, c) = line();
    let c_name = sim.name(c);
    let r = sim.act(a, |n, app, now| {
        let app = app.downcast_ref::<TrackerApp>().unwrap();
        n.unicast(&app.channel, c_name, b"hello C", now)
    });
    assert_eq!(r, Some(Ok(())));
    sim.run_for(Duration::from_millis(50));
    let got = sim.app::<TrackerApp>(c).unwrap().tracker.lock().unicasts.clone();
    assert_eq!(got, vec![(sim.name(a), Bytes::from_static(b"hello C"))]);
    assert!(sim.app::<TrackerApp>(b).unwrap().tracker.lock().unicasts.is_empty());
    assert_eq!(sim.node(b).unwrap().stats().unicasts_relayed, 1);
}

#[test]
fn line_broadcast_reaches_each_peer_exactly_once() {
    let (mut sim, a, b, c) = line();
    sim.act(a, |n, app, now| {
        let app = app.downcast_ref::<TrackerApp>().unwrap();
        n.broadcast(&app.channel, Ids([42].into()), now);
    });
    sim.run_for(Duration::from_secs(5));
    for id in [b, c] {
        let d = sim.app::<TrackerApp>(id).unwrap().tracker.lock().broadcasts.clone();
        assert_eq!(d.get(&42), Some(&(sim.name(a), 1)), "node {id:?}");
    }
    assert!(sim.app::<TrackerApp>(a).unwrap().tracker.lock().broadcasts.is_empty());
}

#[test]
fn simulated_addresses_are_valid_and_distinct_for_thousands_of_nodes() {
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..5000 {
        let a: std::net::SocketAddr = Sim::address_of(i).parse().expect("valid address");
        assert!(seen.insert(a), "duplicate address for node {i}");
    }
}

/// Forty peers draw 12-bit short ids at random; with this seed two collide, the
/// higher-named one moves, and every peer that saw a short id change hands raised Go's
/// short-id invalidation.
#[test]
fn a_short_id_collision_is_resolved_and_raises_invalidations() {
    let sc = mesh_sim::scenario::Scenario::parse(
        r#"name = "short-ids"
        seed = 11
        nodes = 40
        topology = { kind = "star" }
        duration_ms = 60000
        quiet_ms = 30000
        expect_formed = true"#,
    )
    .expect("valid scenario");
    let r = mesh_sim::runner::run(&sc, &mesh_sim::runner::RunOptions::default());
    assert!(r.passed(), "{:#?}", r.violations);
    assert!(r.events["short_id_reassignments"] >= 1, "the seed has a collision: {:?}", r.events);
    assert!(r.events["short_id_invalidations"] >= 1, "{:?}", r.events);
}

/// Go's `GossiperMaker` down a line A–B–C: only A registered channel `made`; B and C make
/// a gossiper for it when the first broadcast arrives (B's made channel relays it on to
/// C), once each, and each delivers both broadcasts exactly once.
#[test]
fn peers_make_a_gossiper_once_for_a_channel_only_the_sender_registered() {
    use mesh_sim::apps::{Tracker, TrackerGossiper, TrackerGossiperFactory};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (mut sim, a, b, c) = line();
    let ch =
        sim.act(a, |n, _, _| n.register_channel("made", TrackerGossiperFactory::make())).unwrap().unwrap();
    let mut made = Vec::new();
    for id in [b, c] {
        let (tracker, asked) = (Tracker::default(), Arc::new(AtomicUsize::new(0)));
        let (t, k) = (tracker.clone(), asked.clone());
        sim.act(id, move |n, _, _| {
            n.set_gossiper_maker(move |channel: &[u8]| {
                k.fetch_add(1, Ordering::SeqCst);
                (channel == b"made").then(|| mesh_proto::MadeChannel::new(TrackerGossiper::new(t.clone())))
            })
        });
        made.push((id, tracker, asked));
    }
    for x in [7, 8] {
        sim.act(a, |n, _, now| n.broadcast(&ch, Ids([x].into()), now));
        sim.run_for(Duration::from_secs(2));
    }
    for (id, tracker, asked) in made {
        assert_eq!(asked.load(Ordering::SeqCst), 1, "node {id:?}: asked once");
        let d = tracker.lock().broadcasts.clone();
        for x in [7, 8] {
            assert_eq!(d.get(&x), Some(&(sim.name(a), 1)), "node {id:?}, broadcast {x}");
        }
        assert_eq!(sim.node(id).unwrap().stats().channels_made, 1);
        assert!(sim.node(id).unwrap().channel::<Ids>(b"made").is_some(), "found by name");
    }
}
