//! IPv6, accept pacing, relay-only channels, three-router convergence and forgetting.

use std::time::Duration;

use mesh_proto::{Config, Event, PeerName};
use mesh_sim::apps::{Ids, TrackerApp, counter_setup, tracker_setup};
use mesh_sim::{Cut, NodeId, Sim};

fn config(i: u64) -> Config {
    Config::new(PeerName::from_u64(0x0b00_0000_0000 + i).unwrap(), format!("n{i}"))
}

#[test]
fn ipv6_peers_discover_each_other_through_inbound_connections() {
    let mut sim = Sim::new(21);
    sim.use_ipv6(true);
    let ids: Vec<NodeId> = (0..8)
        .map(|i| {
            let peers = if i == 0 { vec![] } else { vec![Sim::address_of_v6(0)] };
            sim.add_node(config(i as u64 + 1), counter_setup(peers))
        })
        .collect();
    let ok = sim.run_until_true(Duration::from_secs(60), Duration::from_millis(250), |s| {
        s.topology_converged(&ids) && ids.iter().all(|i| s.node(*i).unwrap().connected_peers().len() == 7)
    });
    assert!(ok.is_some(), "IPv6 mesh did not become a full mesh");
}

#[test]
fn accepts_are_paced_by_the_token_bucket() {
    let mut sim = Sim::new(22);
    let hub = sim.add_plain_node(config(1));
    let spokes: Vec<NodeId> = (0..40)
        .map(|i| {
            sim.add_plain_node({
                let mut c = config(100 + i);
                c.peer_discovery = false;
                c
            })
        })
        .collect();
    for s in &spokes {
        sim.connect(*s, hub);
    }
    sim.run_for(Duration::from_secs(10));
    let times: Vec<_> = sim
        .events(hub)
        .iter()
        .filter_map(|(t, e)| matches!(e, Event::ConnectionEstablished { .. }).then_some(*t))
        .collect();
    assert_eq!(times.len(), 40);
    let first = times[0];
    // docs/protocol-v2.md §16.2's bucket: a full bucket's earliest token is 20 × 50 ms in the
    // past, so 22 handshakes start at once (100 arrivals take about 4 s), then one per
    // 50 ms.
    assert!(times[21] - first < Duration::from_millis(10), "{:?}", times[21] - first);
    assert!(times[22] - first >= Duration::from_millis(45), "{:?}", times[22] - first);
    let last = times[39] - first;
    assert!(
        last >= Duration::from_millis(18 * 50 - 5) && last < Duration::from_millis(18 * 50 + 50),
        "{last:?}"
    );
}

/// A line whose middle node has no gossiper for the ends' channel.
#[test]
fn a_peer_without_the_channel_relays_it() {
    let mut sim = Sim::new(23);
    let mk = |i: u64| {
        let mut c = config(i);
        c.peer_discovery = false;
        c
    };
    let a = sim.add_node(mk(1), tracker_setup(vec![Sim::address_of(1)]));
    let b = sim.add_plain_node(mk(2));
    let c = sim.add_node(mk(3), tracker_setup(vec![Sim::address_of(1)]));
    let ok = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.topology_converged(&[a, b, c])
    });
    assert!(ok.is_some());
    for (from, to, id) in [(a, c, 1u64), (c, a, 2)] {
        sim.act(from, |n, app, now| {
            let app = app.downcast_ref::<TrackerApp>().unwrap();
            n.broadcast(&app.channel, Ids([id].into()), now);
        });
        sim.run_for(Duration::from_secs(1));
        let got = sim.app::<TrackerApp>(to).unwrap().tracker.lock().broadcasts.get(&id).copied();
        assert_eq!(got, Some((sim.name(from), 1)));
    }
    assert_eq!(sim.node(b).unwrap().inspect().relay_channel_count(), 1);
}

#[test]
fn relay_only_channels_are_bounded() {
    let mut sim = Sim::new(24);
    let mut c = config(1);
    c.max_relay_channels = 4;
    let a = sim.add_plain_node(c);
    let b = sim.add_plain_node(config(2));
    let d = sim.add_plain_node(config(3));
    sim.connect(b, a);
    sim.connect(d, a);
    sim.run_for(Duration::from_secs(5));
    // b sends on many channels nobody has; a relays to d through relay-only channels.
    for k in 0..20u64 {
        let ch = sim
            .act(b, |n, _, _| {
                n.register_channel(format!("ch{k}"), mesh_sim::apps::TrackerGossiperFactory::make())
            })
            .unwrap()
            .unwrap();
        sim.act(b, |n, _, now| n.broadcast(&ch, Ids([k].into()), now));
        sim.run_for(Duration::from_millis(100));
        assert!(sim.node(a).unwrap().inspect().relay_channel_count() <= 4);
    }
    assert_eq!(sim.node(a).unwrap().inspect().relay_channel_count(), 4);
    assert!(sim.node(a).unwrap().stats().relay_channels_evicted >= 16);
}

#[test]
fn three_routers_line_then_triangle_then_one_isolated() {
    let mut sim = Sim::new(25);
    let mk = |i: u64| {
        let mut c = config(i);
        c.peer_discovery = false;
        c
    };
    let a = sim.add_plain_node(mk(1));
    let b = sim.add_plain_node(mk(2));
    let c = sim.add_plain_node(mk(3));
    sim.connect(a, b);
    sim.connect(b, c);
    let all = [a, b, c];
    assert!(
        sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| s
            .topology_converged(&all))
            .is_some()
    );
    sim.connect(c, a);
    assert!(
        sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
            s.topology_converged(&all) && s.connected(a, c)
        })
        .is_some()
    );
    // Remove every link of c: a and b forget it. (c's own links are gone too, so its
    // immediate GC leaves it alone with its own record.)
    sim.cut(c, a, Cut::Reset);
    sim.cut(c, b, Cut::Reset);
    sim.act(c, |n, _, now| n.forget_connections(&[Sim::address_of(0)], now));
    assert!(
        sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| s
            .topology_converged(&[a, b]))
            .is_some()
    );
    let cn = sim.name(c);
    assert!(sim.node(a).unwrap().inspect().peer(&cn).is_none());
    assert!(sim.node(b).unwrap().inspect().peer(&cn).is_none());
    assert_eq!(sim.node(c).unwrap().inspect().peers().map(|p| p.summary.name).collect::<Vec<_>>(), [cn]);
    assert!(sim.node(c).unwrap().connected_peers().is_empty());
}

#[test]
fn trusted_subnets_are_announced_both_ways() {
    let mut sim = Sim::new(26);
    let mk = |i: u64| {
        let mut c = config(i);
        c.password = Some(bytes::Bytes::from_static(b"pw"));
        c.trusted_subnets = vec!["10.0.0.0/24".parse().unwrap()];
        c
    };
    let a = sim.add_plain_node(mk(1));
    let b = sim.add_plain_node(mk(2));
    let mut third = mk(3);
    third.trusted_subnets.clear();
    let c = sim.add_plain_node(third);
    sim.connect(a, b);
    sim.connect(a, c);
    sim.run_for(Duration::from_secs(5));
    let st = sim.act(a, |n, _, _| n.status()).unwrap();
    let row = |peer: NodeId| {
        let name = sim.name(peer);
        st.connections.iter().find(|x| x.remote_name == Some(name)).unwrap().clone()
    };
    // Trusted both ways: the overlay would skip encryption; mesh traffic stays sealed.
    assert!(row(b).trusted, "{:?}", row(b));
    assert!(!row(c).trusted, "{:?}", row(c));
    // Go's wording says the same.
    assert!(row(b).go_info().starts_with("unencrypted"), "{}", row(b).go_info());
    assert!(row(c).go_info().starts_with("encrypted"), "{}", row(c).go_info());
}

#[test]
fn a_silently_stalled_link_is_closed_by_the_timeouts() {
    let mut sim = Sim::new(27);
    let a = sim.add_plain_node(config(1));
    let b = sim.add_plain_node(config(2));
    sim.connect(a, b);
    sim.run_for(Duration::from_secs(5));
    assert!(sim.connected(a, b));
    // A quiet link stays up through heartbeats.
    sim.run_for(Duration::from_secs(300));
    assert!(sim.connected(a, b));
    let cut_at = sim.now();
    sim.cut(a, b, Cut::Stall);
    sim.run_for(Duration::from_secs(65));
    for (x, y) in [(a, b), (b, a)] {
        let closed = sim.events(x).iter().find_map(|(t, e)| match e {
            Event::ConnectionClosed { peer: Some(p), reason, .. } if *p == sim.name(y) && *t > cut_at => {
                Some((*t, reason.clone()))
            }
            _ => None,
        });
        let (t, reason) = closed.expect("stalled connection closed");
        assert!(t - cut_at <= Duration::from_secs(61), "{:?}", t - cut_at);
        assert!(
            matches!(reason, mesh_proto::CloseReason::ReceiveTimeout | mesh_proto::CloseReason::SendTimeout),
            "{reason}"
        );
    }
}

#[test]
fn the_connection_limit_is_respected_and_refusals_are_reported() {
    let mut sim = Sim::new(28);
    let ids: Vec<NodeId> = (0..8)
        .map(|i| {
            let mut c = config(i as u64 + 1);
            c.conn_limit = 3;
            let peers = if i == 0 { vec![] } else { vec![Sim::address_of(0)] };
            sim.add_node(c, counter_setup(peers))
        })
        .collect();
    for _ in 0..60 {
        sim.run_for(Duration::from_secs(5));
        for id in &ids {
            assert!(sim.node(*id).unwrap().connected_peers().len() <= 3);
        }
    }
    let refused = sim
        .events(ids[0])
        .iter()
        .filter(|(_, e)| {
            matches!(e, Event::ConnectionClosed { reason: mesh_proto::CloseReason::ConnectionLimit(3), .. })
        })
        .count();
    assert!(refused > 0);
    // The peers that got in agree among themselves, and refused handshakes leave no
    // phantom records behind.
    let group: Vec<NodeId> =
        ids.iter().copied().filter(|i| !sim.node(*i).unwrap().connected_peers().is_empty()).collect();
    assert!(group.len() >= 4, "{group:?}");
    assert!(sim.topology_converged(&group));
}

#[test]
fn a_flood_of_unicasts_to_a_stalled_peer_is_refused_not_fatal() {
    // Regression: the frame admitted right at the queue limit used to close the
    // connection.
    let mut sim = Sim::new(29);
    let a = sim.add_node(config(1), tracker_setup(vec![]));
    let b = sim.add_node(config(2), tracker_setup(vec![Sim::address_of(0)]));
    sim.run_for(Duration::from_secs(2));
    sim.set_reading(b, false);
    let dest = sim.name(b);
    let payload = vec![0u8; 1024];
    let mut congested = 0;
    for _ in 0..40_000 {
        let r = sim.act(a, |n, app, now| {
            let app = app.downcast_ref::<TrackerApp>().unwrap();
            n.unicast(&app.channel, dest, &payload, now)
        });
        if let Some(Err(mesh_proto::NodeError::Congested(_))) = r {
            congested += 1;
        }
    }
    assert!(congested > 0);
    assert!(sim.connected(a, b), "still connected until the send timeout");
    sim.set_reading(b, true);
    sim.run_for(Duration::from_secs(5));
    assert!(sim.connected(a, b));
    let delivered = sim.app::<TrackerApp>(b).unwrap().tracker.lock().unicasts.len();
    assert_eq!(delivered, 40_000 - congested);
}
