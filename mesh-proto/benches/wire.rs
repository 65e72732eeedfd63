#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Wire-layer benchmarks: sealing, topology encoding, handshakes.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesh_proto::Instant;
use mesh_proto::PeerName;
use mesh_proto::fuzzing::crypto::{Session, TAG_LEN};
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, Progress, Role};
use mesh_proto::fuzzing::sealing::{Direction, Sealing, V3Session};
use mesh_proto::wire::header::Preamble;
use mesh_proto::wire::topology::{self, ConnectionSummary, PeerRecord, PeerSummary};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;

/// Version 2 (XSalsa20-Poly1305, Go's) and version 3 (ChaCha20-Poly1305) frames.
fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal+open/v2");
    for size in [1024usize, 64 * 1024] {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let key = [3u8; 32];
            let mut a = Session::new(&key, true);
            let mut z = Session::new(&key, false);
            let mut buf = vec![0u8; TAG_LEN + size];
            b.iter(|| {
                // Plaintext into the buffer, seal in place, open in place: no allocation.
                buf[TAG_LEN..].fill(0x5a);
                a.sealer.seal_in_place(&mut buf);
                z.opener.open_in_place(&mut buf).unwrap();
                black_box(&buf);
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("seal+open/v3");
    for size in [1024usize, 64 * 1024] {
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (k1, k2) = ([3u8; 32], [4u8; 32]);
            let mut a = Sealing::V3(V3Session { sealer: Direction::new(&k1), opener: Direction::new(&k2) });
            let mut z = Sealing::V3(V3Session { sealer: Direction::new(&k2), opener: Direction::new(&k1) });
            // A whole frame: length prefix, plaintext, room for the tag.
            let mut frame = vec![0u8; 4 + size + TAG_LEN];
            frame[..4].copy_from_slice(&((size + TAG_LEN) as u32).to_be_bytes());
            b.iter(|| {
                frame[4..4 + size].fill(0x5a);
                a.seal_frame(&mut frame).unwrap();
                let range = z.open_body(&mut frame[4..]).unwrap();
                black_box(range);
            });
        });
    }
    g.finish();
}

fn records(peers: u64, degree: u64) -> Vec<PeerRecord> {
    (1..=peers)
        .map(|i| PeerRecord {
            summary: PeerSummary {
                name: PeerName::from_u64(0x0200_0000_0000 + i).unwrap(),
                nickname: Bytes::from(format!("host-{i}")),
                uid: 0x1234_5678_9abc_def0 ^ i,
                version: 40 + i,
                short_id: Some((i % 4096) as u16),
            },
            connections: (1..=degree)
                .map(|d| {
                    let j = (i + d - 1) % peers + 1;
                    ConnectionSummary {
                        name: PeerName::from_u64(0x0200_0000_0000 + j).unwrap(),
                        remote_tcp_addr: Bytes::from(format!("10.0.{}.{}:6783", j / 250, j % 250)),
                        outbound: d % 2 == 0,
                        established: true,
                    }
                })
                .collect(),
        })
        .collect()
}

fn topology_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("topology-100-peers");
    for (label, degree) in [("degree-8", 8), ("full-mesh", 99)] {
        let recs = records(100, degree);
        let mut encoded = Vec::new();
        topology::encode(&mut encoded, &recs);
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_function(BenchmarkId::new("encode", label), |b| {
            let mut out = Vec::with_capacity(encoded.len());
            b.iter(|| {
                out.clear();
                topology::encode(&mut out, black_box(&recs));
            });
        });
        g.bench_function(BenchmarkId::new("decode", label), |b| {
            b.iter(|| black_box(topology::decode(black_box(&encoded)).unwrap()));
        });
        // What the Node does: borrow, copy only what it keeps.
        g.bench_function(BenchmarkId::new("decode-borrowed", label), |b| {
            b.iter(|| black_box(topology::decode_refs(black_box(&encoded), Default::default()).unwrap()));
        });
    }
    g.finish();
}

fn config(role: Role, n: u64, password: Option<&'static str>, versions: Preamble) -> HandshakeConfig {
    HandshakeConfig {
        role,
        name: PeerName::from_u64(n).unwrap(),
        nickname: Bytes::from_static(b"bench"),
        uid: n,
        short_id: 1,
        trusts_remote: false,
        password: password.map(|p| Bytes::from_static(p.as_bytes())),
        versions,
    }
}

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake-pair");
    g.throughput(Throughput::Elements(1));
    for (label, pw, versions) in [
        ("v2-plaintext", None, Preamble::V2_ONLY),
        ("v2-encrypted", Some("s3cret"), Preamble::V2_ONLY),
        ("v3-unauthenticated", None, Preamble::OURS),
        ("v3-password", Some("s3cret"), Preamble::OURS),
    ] {
        g.bench_function(label, |b| {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            b.iter(|| {
                let now = Instant::ZERO;
                let mut a = Handshake::new(config(Role::Dialer, 1, pw, versions), &mut rng, now);
                let mut z = Handshake::new(config(Role::Listener, 2, pw, versions), &mut rng, now);
                let (mut da, mut dz) = (false, false);
                while !(da && dz) {
                    let to_z = a.take_output();
                    let to_a = z.take_output();
                    if let Some(bytes) = to_z {
                        dz |= matches!(z.handle_data(&bytes, now).unwrap(), Progress::Done(_));
                    }
                    if let Some(bytes) = to_a {
                        da |= matches!(a.handle_data(&bytes, now).unwrap(), Progress::Done(_));
                    }
                }
            });
        });
    }
    g.finish();
}

criterion_group!(benches, seal_open, topology_update, handshakes);
criterion_main!(benches);
