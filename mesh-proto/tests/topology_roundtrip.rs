//! Go's topology round-trip test: a random graph of 20 peers under 1000 random
//! connection additions and removals; after every step, one peer's full topology applied
//! to an outside peer reproduces that peer's records and connection lists exactly.

use bytes::Bytes;
use mesh_proto::PeerName;
use mesh_proto::fuzzing::topology::{Peers, RemoteConnection};
use mesh_proto::wire::topology::{self, ConnectionSummary, PeerRecord, PeerSummary};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn n(i: u64) -> PeerName {
    PeerName::from_u64(0x0c00_0000_0000 + i).unwrap()
}

fn view(p: &Peers, skip: PeerName) -> Vec<(PeerName, u64, u64, Vec<PeerName>)> {
    p.iter()
        .filter(|r| r.summary.name != skip)
        .map(|r| (r.summary.name, r.summary.uid, r.summary.version, r.connections.names().collect()))
        .collect()
}

#[test]
fn full_topology_round_trips_through_random_changes() {
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    // The owners' own records: name -> (version, connections).
    let mut owners: BTreeMap<PeerName, (u64, BTreeMap<PeerName, bool>)> =
        (1..=20).map(|i| (n(i), (1, BTreeMap::new()))).collect();
    // Peer 1's table, fed by updates as the mesh would feed it.
    let mut table = Peers::new(n(1), Bytes::from_static(b"p1"), 1, 1);
    // A persistent outside peer that receives peer 1's full topology every step.
    let outside_name = n(99);
    let mut persistent = Peers::new(outside_name, Bytes::new(), 99, 99);
    persistent
        .set_our_connection(n(1), RemoteConnection { addr: Bytes::new(), outbound: true, established: true });
    // Another that, as a node does, decodes only the records it could use.
    let mut skimming = Peers::new(outside_name, Bytes::new(), 99, 99);
    skimming
        .set_our_connection(n(1), RemoteConnection { addr: Bytes::new(), outbound: true, established: true });

    for step in 0..1000 {
        let a = n(1 + rng.next_u64() % 20);
        let b = n(1 + rng.next_u64() % 20);
        if a == b {
            continue;
        }
        let (version, conns) = owners.get_mut(&a).unwrap();
        if conns.remove(&b).is_none() {
            conns.insert(b, rng.next_u64() % 2 == 0);
        }
        *version += 1;
        let record = |name: PeerName, (version, conns): &(u64, BTreeMap<PeerName, bool>)| PeerRecord {
            summary: PeerSummary {
                name,
                uid: name.to_u64(),
                version: *version,
                short_id: Some(1),
                nickname: Bytes::new(),
            },
            connections: conns
                .iter()
                .map(|(to, out)| ConnectionSummary {
                    name: *to,
                    remote_tcp_addr: Bytes::from(format!("{to}")),
                    outbound: *out,
                    established: true,
                })
                .collect(),
        };
        if a == n(1) {
            // Our own record is local state, not gossip.
            let (_, conns) = &owners[&a];
            for other in (1..=20).map(n) {
                table.remove_our_connection(other);
            }
            for (to, out) in conns {
                // Registration always binds the remote's record first.
                if !table.contains(to) {
                    table.bind(mesh_proto::fuzzing::topology::Peer::placeholder(*to), true);
                }
                table.set_our_connection(
                    *to,
                    RemoteConnection {
                        addr: Bytes::from(format!("{to}")),
                        outbound: *out,
                        established: true,
                    },
                );
            }
            table.bump_our_version();
        } else {
            table.apply_records(&[record(a, &owners[&a])], mesh_proto::Instant::ZERO);
        }

        // Encode peer 1's full topology, as periodic gossip does.
        let names: Vec<PeerName> = table.names().copied().collect();
        let mut payload = Vec::new();
        topology::encode(&mut payload, &table.records(names.iter()));
        let decoded = topology::decode(&payload).unwrap();

        let mut fresh = Peers::new(outside_name, Bytes::new(), 99, 99);
        fresh.apply_records(&decoded, mesh_proto::Instant::ZERO);
        assert_eq!(view(&fresh, outside_name), view(&table, outside_name), "fresh outside peer, step {step}");
        persistent.apply_records(&decoded, mesh_proto::Instant::ZERO);
        assert_eq!(
            view(&persistent, outside_name),
            view(&table, outside_name),
            "persistent outside peer, step {step}"
        );
        let refs = topology::decode_refs_wanted(&payload, Default::default(), &Default::default(), |s| {
            skimming.wants(s)
        })
        .unwrap();
        skimming.apply(&refs, mesh_proto::Instant::ZERO);
        assert_eq!(view(&skimming, outside_name), view(&table, outside_name), "skimming peer, step {step}");
        // Connection details survive too.
        for r in table.iter() {
            assert_eq!(persistent.get(&r.summary.name).unwrap().connections, r.connections, "step {step}");
            assert_eq!(skimming.get(&r.summary.name).unwrap().connections, r.connections, "step {step}");
        }
    }
}

/// A receiver decodes only the connection lists of records newer than its own; the
/// others are still received (and may be relayed), never adopted, and the stream stays
/// in step across the lists it skipped (their type definitions included).
#[test]
fn records_no_newer_than_ours_are_skimmed() {
    let record = |i: u64, version: u64, to: &[u64]| PeerRecord {
        summary: PeerSummary {
            name: n(i),
            uid: i,
            version,
            short_id: Some(i as u16),
            nickname: Bytes::new(),
        },
        connections: to
            .iter()
            .map(|t| ConnectionSummary {
                name: n(*t),
                remote_tcp_addr: Bytes::from(format!("10.0.0.{t}:6783")),
                outbound: true,
                established: true,
            })
            .collect(),
    };
    let mut ours = Peers::new(n(1), Bytes::new(), 1, 1);
    ours.apply_records(&[record(2, 5, &[3]), record(3, 5, &[2])], mesh_proto::Instant::ZERO);
    // n2 as we know it, n3 newer, and n4 new to us.
    let update = [record(2, 5, &[3, 7]), record(3, 6, &[2, 4]), record(4, 1, &[3])];
    let mut payload = Vec::new();
    topology::encode(&mut payload, &update);
    let refs =
        topology::decode_refs_wanted(&payload, Default::default(), &Default::default(), |s| ours.wants(s))
            .unwrap();
    assert_eq!(refs.iter().map(|r| r.skipped).collect::<Vec<_>>(), [true, false, false]);
    assert!(refs[0].connections.is_empty());
    assert_eq!(refs[1..], topology::decode_refs(&payload, Default::default()).unwrap()[1..]);
    let applied = ours.apply(&refs, mesh_proto::Instant::ZERO);
    assert_eq!(applied.received.len(), 3);
    assert_eq!(applied.improved.into_iter().collect::<Vec<_>>(), [n(3), n(4)]);
    // The skimmed list named n7, which stays unknown (Go would add a placeholder that
    // garbage collection then removes).
    assert!(!ours.contains(&n(7)));
    // A skipped record is never adopted, even if a careless caller skipped a newer one.
    let refs =
        topology::decode_refs_wanted(&payload, Default::default(), &Default::default(), |_| false).unwrap();
    let mut other = Peers::new(n(1), Bytes::new(), 1, 1);
    let applied = other.apply(&refs, mesh_proto::Instant::ZERO);
    assert!(applied.improved.is_empty() && applied.added.is_empty());
    assert_eq!(applied.received.len(), 3);
}
