//! Topology update decoding, then applying it to a peers table that already holds
//! records, then garbage collection and routes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mesh_proto::PeerName;
use mesh_proto::fuzzing::routes::Routes;
use mesh_proto::fuzzing::topology::{Peers, RemoteConnection};
use mesh_proto::wire::topology::{self, ConnectionSummary, PeerRecord, PeerSummary};

fuzz_target!(|data: &[u8]| {
    let Ok(records) = topology::decode_refs(data, Default::default()) else { return };
    let n = |v| PeerName::from_u64(v).unwrap();
    let mut peers = Peers::new(n(1), Bytes::from_static(b"us"), 11, 1);
    peers
        .set_our_connection(n(2), RemoteConnection { addr: Bytes::new(), outbound: true, established: true });
    peers.apply_records(
        &[PeerRecord {
            summary: PeerSummary { name: n(2), uid: 22, version: 3, short_id: Some(2), ..Default::default() },
            connections: vec![ConnectionSummary { name: n(1), established: true, ..Default::default() }],
        }],
        mesh_proto::Instant::ZERO,
    );
    let applied = peers.apply(&records, mesh_proto::Instant::ZERO);
    assert!(applied.improved.is_subset(&applied.received));
    let routes = Routes::compute(&peers);
    assert!(routes.unicast_all.contains_key(&n(1)));
    peers.garbage_collect();
    let _ = Routes::compute(&peers);
    if !peers.own_short_id_held() {
        peers.reassign_short_id(|m| m / 2);
    }
    // What we would gossip decodes again.
    let names: Vec<PeerName> = peers.names().copied().collect();
    let mut out = Vec::new();
    topology::encode(&mut out, &peers.records(names.iter()));
    topology::decode(&out).unwrap();
});
