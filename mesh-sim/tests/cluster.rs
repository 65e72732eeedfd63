//! Multi-peer behaviour: bootstrap from one peer, counters across a partition, restarts,
//! simultaneous dials, self and name collisions, wrong passwords, slow readers, and
//! determinism.

use std::time::Duration;

use bytes::Bytes;
use mesh_proto::{CloseReason, Config, Event, PeerName};
use mesh_sim::apps::{CounterApp, counter_setup};
use mesh_sim::{Cut, NodeId, Sim};

fn config(i: u64) -> Config {
    Config::new(PeerName::from_u64(0x0a00_0000_0000 + i).unwrap(), format!("peer{i}"))
}

/// `n` counter nodes that each know only the first one.
fn bootstrap(seed: u64, n: usize) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    let mut ids = Vec::new();
    for i in 0..n {
        let peers = if i == 0 { vec![] } else { vec![Sim::address_of(0)] };
        ids.push(sim.add_node(config(i as u64 + 1), counter_setup(peers)));
    }
    (sim, ids)
}

fn converge(sim: &mut Sim, ids: &[NodeId], max: Duration) -> Duration {
    sim.run_until_true(max, Duration::from_millis(250), |s| {
        s.topology_converged(ids) && s.routes_complete(ids)
    })
    .unwrap_or_else(|| panic!("{} peers did not converge within {max:?}", ids.len()))
}

#[test]
fn ten_peers_discover_each_other_from_one() {
    let (mut sim, ids) = bootstrap(10, 10);
    converge(&mut sim, &ids, Duration::from_secs(60));
    // Discovery drives towards a full mesh.
    for a in &ids {
        assert_eq!(sim.node(*a).unwrap().connected_peers().len(), 9);
    }
}

#[test]
fn fifty_peers_discover_each_other_from_one() {
    let (mut sim, ids) = bootstrap(50, 50);
    converge(&mut sim, &ids, Duration::from_secs(120));
}

fn counter_values(sim: &Sim, ids: &[NodeId]) -> Vec<i64> {
    ids.iter().map(|i| sim.app::<CounterApp>(*i).unwrap().counter.value()).collect()
}

fn increment(sim: &mut Sim, id: NodeId) {
    sim.act(id, |n, app, now| app.downcast_ref::<CounterApp>().unwrap().increment(n, now));
}

#[test]
fn counters_converge_and_survive_a_partition() {
    let (mut sim, ids) = bootstrap(3, 8);
    converge(&mut sim, &ids, Duration::from_secs(60));
    for (k, id) in ids.iter().enumerate() {
        for _ in 0..=k {
            increment(&mut sim, *id);
        }
    }
    let total: i64 = (1..=8).sum();
    let ok = sim.run_until_true(Duration::from_secs(5), Duration::from_millis(50), |s| {
        counter_values(s, &ids).iter().all(|v| *v == total)
    });
    assert!(ok.is_some(), "counters: {:?}", counter_values(&sim, &ids));

    // Split into halves; increment on both sides.
    let (left, right) = ids.split_at(4);
    sim.partition(left, right, Cut::Reset);
    sim.run_for(Duration::from_secs(5));
    for id in left.iter().chain(right) {
        increment(&mut sim, *id);
        increment(&mut sim, *id);
    }
    let ok = sim.run_until_true(Duration::from_secs(5), Duration::from_millis(50), |s| {
        counter_values(s, left).iter().all(|v| *v == total + 8)
            && counter_values(s, right).iter().all(|v| *v == total + 8)
    });
    assert!(ok.is_some(), "each side sees its own increments: {:?}", counter_values(&sim, &ids));
    assert!(sim.topology_converged(left) && sim.topology_converged(right));

    sim.heal_all();
    let ok = sim.run_until_true(Duration::from_secs(120), Duration::from_millis(250), |s| {
        counter_values(s, &ids).iter().all(|v| *v == total + 16)
    });
    assert!(ok.is_some(), "after healing: {:?}", counter_values(&sim, &ids));
    converge(&mut sim, &ids, Duration::from_secs(120));
}

#[test]
fn restarted_peer_is_relearnt_without_a_version_war() {
    let (mut sim, ids) = bootstrap(4, 6);
    converge(&mut sim, &ids, Duration::from_secs(60));
    let victim = ids[3];
    let old_uid = sim.node(victim).unwrap().uid();
    sim.restart(victim);
    let new_uid = sim.node(victim).unwrap().uid();
    assert_ne!(old_uid, new_uid);
    converge(&mut sim, &ids, Duration::from_secs(120));
    let name = sim.name(victim);
    for id in &ids {
        assert_eq!(sim.node(*id).unwrap().inspect().peer(&name).unwrap().summary.uid, new_uid);
    }
    // No version war: once converged, the restarted peer's version stays put.
    let v = sim.node(victim).unwrap().inspect().ours().summary.version;
    let t0 = sim.now();
    sim.run_for(Duration::from_secs(120));
    if std::env::var("DBG").is_ok() {
        for id in &ids {
            for (t, e) in sim.events(*id) {
                if *t >= t0 {
                    eprintln!("{id:?} {t} {e:?}");
                }
            }
        }
    }
    assert_eq!(sim.node(victim).unwrap().inspect().ours().summary.version, v);
    assert!(sim.topology_converged(&ids));
    assert!(ids.iter().any(|i| sim.node(*i).unwrap().stats().restarts_detected > 0));
}

#[test]
fn simultaneous_dials_leave_one_connection() {
    for seed in 0..20 {
        let mut sim = Sim::new(seed);
        let a = sim.add_plain_node(config(1));
        let b = sim.add_plain_node(config(2));
        // Each dials the other at the same instant.
        sim.connect(a, b);
        sim.connect(b, a);
        sim.run_for(Duration::from_secs(5));
        assert!(sim.connected(a, b) && sim.connected(b, a), "seed {seed}");
        // The registered connections are the same TCP connection at both ends.
        let sa = sim.act(a, |n, _, _| n.status()).unwrap();
        let sb = sim.act(b, |n, _, _| n.status()).unwrap();
        let est = |s: &mesh_proto::Status| s.connections.iter().filter(|c| c.conn.is_some()).count();
        assert_eq!(est(&sa), 1, "seed {seed}: {:?}", sa.connections);
        assert_eq!(est(&sb), 1, "seed {seed}: {:?}", sb.connections);
        sim.run_for(Duration::from_secs(120));
        assert!(sim.connected(a, b) && sim.topology_converged(&[a, b]), "seed {seed}");
    }
}

fn closes(sim: &Sim, id: NodeId) -> Vec<CloseReason> {
    sim.events(id)
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ConnectionClosed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn dialing_ourselves_is_detected_and_never_retried() {
    let mut sim = Sim::new(5);
    let a = sim.add_plain_node(config(1));
    sim.connect(a, a);
    sim.run_for(Duration::from_secs(600));
    let reasons = closes(&sim, a);
    // One dial: both ends of it (ours and our own listener) see ourselves.
    assert_eq!(reasons.iter().filter(|r| **r == CloseReason::ConnectToSelf).count(), 2, "{reasons:?}");
    let st = sim.act(a, |n, _, _| n.status()).unwrap();
    assert_eq!(st.terminations, 0, "connect-to-self is not counted");
    assert!(
        st.connections
            .iter()
            .any(|c| c.next_try == Some(mesh_proto::NextTry::Never) && c.go_info().contains("never retry")),
        "{:?}",
        st.connections
    );
}

#[test]
fn name_collision_is_detected_and_never_retried() {
    let mut sim = Sim::new(6);
    let a = sim.add_plain_node(config(1));
    let twin = sim.add_plain_node(config(1)); // same name, other process
    sim.connect(a, twin);
    sim.run_for(Duration::from_secs(600));
    let reasons = closes(&sim, a);
    let collisions = reasons.iter().filter(|r| matches!(r, CloseReason::NameCollision(_))).count();
    assert_eq!(collisions, 1, "{reasons:?}");
    assert!(sim.node(a).unwrap().connected_peers().is_empty());
}

#[test]
fn wrong_password_never_joins_and_others_are_unaffected() {
    let mut sim = Sim::new(8);
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut c = config(i + 1);
        c.password = Some(Bytes::from_static(b"right"));
        let peers = if i == 0 { vec![] } else { vec![Sim::address_of(0)] };
        ids.push(sim.add_node(c, counter_setup(peers)));
    }
    let mut bad = config(99);
    bad.password = Some(Bytes::from_static(b"wrong"));
    let intruder = sim.add_node(bad, counter_setup(vec![Sim::address_of(0), Sim::address_of(1)]));
    converge(&mut sim, &ids, Duration::from_secs(60));
    sim.run_for(Duration::from_secs(120));
    assert!(sim.topology_converged(&ids));
    let name = sim.name(intruder);
    for id in &ids {
        assert!(sim.node(*id).unwrap().inspect().peer(&name).is_none(), "intruder known to {id:?}");
    }
    assert!(sim.node(intruder).unwrap().connected_peers().is_empty());
    // The legitimate peers report why.
    let seen: Vec<CloseReason> = closes(&sim, ids[0]);
    assert!(
        seen.iter().any(|r| matches!(r, CloseReason::Handshake(mesh_proto::HandshakeError::WrongPassword))),
        "{seen:?}"
    );
    let st = sim.act(intruder, |n, _, _| n.status()).unwrap();
    assert!(
        st.connections.iter().any(|c| c.last_error.as_deref().is_some_and(|e| e.contains("wrong password"))),
        "{:?}",
        st.connections
    );
}

#[test]
fn a_peer_that_stops_reading_is_disconnected_and_the_rest_converge() {
    let (mut sim, ids) = bootstrap(9, 5);
    converge(&mut sim, &ids, Duration::from_secs(60));
    let slow = ids[4];
    sim.set_reading(slow, false);
    // Keep traffic flowing towards it: counter broadcasts carry growing state.
    let start = sim.now();
    for _ in 0..200 {
        for id in &ids[..4] {
            increment(&mut sim, *id);
        }
        sim.run_for(Duration::from_millis(500));
    }
    let bound = mesh_proto::config::SEND_TIMEOUT + mesh_proto::config::RECEIVE_TIMEOUT;
    for id in &ids[..4] {
        let closed_at = sim.events(*id).iter().find_map(|(t, e)| match e {
            Event::ConnectionClosed { peer: Some(p), reason, .. } if *p == sim.name(slow) && *t > start => {
                Some((*t, reason.clone()))
            }
            _ => None,
        });
        let (t, reason) = closed_at.unwrap_or_else(|| panic!("{id:?} kept its connection to the slow peer"));
        assert!(t - start <= bound, "closed after {:?}: {reason}", t - start);
    }
    let rest = &ids[..4];
    assert!(counter_values(&sim, rest).iter().all(|v| *v == 800), "{:?}", counter_values(&sim, rest));
    sim.run_for(Duration::from_secs(10));
    assert!(rest.iter().all(|a| rest.iter().all(|b| a == b || sim.connected(*a, *b))));
}

#[test]
fn same_seed_same_digest_other_seed_differs() {
    let run = |seed| {
        let (mut sim, ids) = bootstrap(seed, 6);
        sim.run_for(Duration::from_secs(20));
        increment(&mut sim, ids[2]);
        sim.partition(&ids[..3], &ids[3..], Cut::Stall);
        sim.run_for(Duration::from_secs(70));
        sim.heal_all();
        sim.run_for(Duration::from_secs(40));
        sim.digest()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn a_peer_restarted_right_after_its_crash_gets_the_full_state() {
    // Regression: within 100 ms of the old connection closing, stale routes still showed
    // the old incarnation as reachable, and the newcomer got no full state.
    let mut sim = Sim::new(31);
    let a = sim.add_node(config(1), counter_setup(vec![]));
    let b = sim.add_node(config(2), counter_setup(vec![Sim::address_of(0)]));
    sim.run_for(Duration::from_secs(2));
    increment(&mut sim, a);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(counter_values(&sim, &[b]), [1]);
    sim.restart(b);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(counter_values(&sim, &[b]), [1], "the restarted peer must get the counter at once");
}

/// Regression (steady-100 churned for ever): peers beyond the connection limit redialled
/// every full peer with back-off, and each full peer accepted, referred and closed them,
/// every few seconds for the life of the mesh. A refused peer is now left alone while it
/// stays full and reachable, so once formed the mesh makes no more connections.
#[test]
fn a_formed_mesh_beyond_the_limit_stops_dialling_full_peers() {
    let mut sim = Sim::new(1);
    let mut ids = Vec::new();
    for i in 0..100u64 {
        let mut c = config(i + 1);
        c.conn_limit = 64;
        ids.push(sim.add_plain_node(c));
    }
    for id in &ids[1..] {
        sim.act(*id, |node, _, now| node.initiate_connections(&[Sim::address_of(0)], false, now));
    }
    converge(&mut sim, &ids, Duration::from_secs(120));
    sim.run_for(Duration::from_secs(30));
    let handshakes = |sim: &Sim| ids.iter().map(|i| sim.node(*i).unwrap().stats().handshakes).sum::<u64>();
    let before = handshakes(&sim);
    sim.run_for(Duration::from_secs(120));
    assert_eq!(handshakes(&sim), before, "connections keep being made in a formed mesh");
    assert!(sim.topology_converged(&ids));
}
