//! A `Node` talking to a real Go peer's recorded byte stream, and everything the node
//! sends decoding with the decoders that the Go vectors check.

use std::time::Duration;

use mesh_proto::counter::{Counter, Counts};
use mesh_proto::wire::features;
use mesh_proto::wire::frame::FrameDecoder;
use mesh_proto::wire::message::{GossipKind, Message};
use mesh_proto::wire::topology;
use mesh_proto::{Config, Event, Instant, Node, Output, PeerName};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/weave-v2/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Drains outputs, returning the bytes transmitted and the events.
fn drain(node: &mut Node) -> (Vec<u8>, Vec<Event>) {
    let (mut bytes, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = node.poll_output() {
        match o {
            Output::Transmit { data, .. } => bytes.extend_from_slice(&data),
            Output::Event(e) => events.push(e),
            other => panic!("unexpected output {other:?}"),
        }
    }
    (bytes, events)
}

#[test]
fn node_joins_a_recorded_go_peer() {
    // As a version-2-only peer (everything sent at once, as before version 3), and as a
    // default one offering [2, 3], which waits for Go's preamble to send the rest.
    node_joins_a_recorded_go_peer_offering(2);
    node_joins_a_recorded_go_peer_offering(3);
}

fn node_joins_a_recorded_go_peer_offering(max_version: u8) {
    let capture = load("capture-unencrypted.json");
    let alpha = PeerName::parse("00:00:00:00:00:0a").unwrap();
    let bravo = PeerName::parse("00:00:00:00:00:0b").unwrap();
    let mut config = Config::new(alpha, "alpha-rs");
    config.peer_discovery = false;
    config.max_protocol_version = max_version;
    let t0 = Instant::from_secs(1);
    let mut node = Node::new(config, Node::seed_from_u64(1), t0).unwrap();
    let counter = Counter::new(alpha);
    node.register_channel("default", counter.gossiper()).unwrap();

    let conn = node.handle_accepted("127.0.0.1:50000".parse().unwrap(), t0);
    let (mut hello, _) = drain(&mut node);
    let mut chunks = capture["chunks"].as_array().unwrap().iter().filter(|c| c["dir"] == "D2L");
    if max_version == 3 {
        // Only the preamble until Go's arrives: Go offers at most 2, so version 2 follows.
        assert_eq!(hello, b"weave\x02\x03");
        let first = chunks.next().unwrap();
        node.handle_data(conn, &hex::decode(first["hex"].as_str().unwrap()).unwrap(), t0);
        hello.extend(drain(&mut node).0);
    }
    assert_eq!(&hello[5..8], [2, max_version, 0], "our range, then the plaintext flag");
    let mut ours = FrameDecoder::new(1 << 20);
    ours.push(&hello[8..]);
    let f = features::decode(&ours.next_frame().unwrap().unwrap()).unwrap();
    assert_eq!(f.name, alpha);

    // Everything (else) the Go dialer (bravo) wrote, in the chunks it was read in.
    for c in chunks {
        node.handle_data(conn, &hex::decode(c["hex"].as_str().unwrap()).unwrap(), t0);
    }
    let (sent, events) = drain(&mut node);
    assert!(
        events.iter().any(|e| matches!(e, Event::ConnectionEstablished { peer, .. } if *peer == bravo)),
        "{events:?}"
    );
    let go_uid: u64 =
        capture["dialer_stream_parsed"]["frames"][0]["features"]["UID"].as_str().unwrap().parse().unwrap();
    assert_eq!(node.inspect().peer(&bravo).unwrap().summary.uid, go_uid);
    // bravo's broadcast {0a: 1, 0b: 1} was merged.
    assert_eq!(counter.snapshot(), Counts([(alpha, 1), (bravo, 1)].into()));

    // A second later the coalesced update goes out; then periodic gossip.
    let mut all = sent;
    for s in [2, 40] {
        node.handle_timeout(t0 + Duration::from_secs(s));
        all.extend(drain(&mut node).0);
    }
    ours.push(&all);
    let (mut topologies, mut counters) = (0, Vec::new());
    while let Some(body) = ours.next_frame().unwrap() {
        let Message::Gossip(g) = Message::decode(&body).unwrap() else { continue };
        assert_eq!(g.kind, GossipKind::Gossip);
        assert_eq!(g.source, alpha);
        match g.channel {
            b"topology" => {
                let recs = topology::decode(g.payload).unwrap();
                let names: Vec<PeerName> = recs.iter().map(|r| r.summary.name).collect();
                assert!(names.contains(&alpha));
                topologies += 1;
            }
            b"default" => {
                counters.push(Counts::decode_payload(g.payload).unwrap());
            }
            other => panic!("unexpected channel {other:?}"),
        }
    }
    // Full state down the new connection, the coalesced update, periodic gossip.
    assert!(topologies >= 3, "{topologies}");
    // Our empty state went down the new connection before bravo's broadcast was merged;
    // the periodic gossip carries the merged state.
    assert_eq!(counters, [Counts::default(), counter.snapshot()]);
}

/// A dialler with the wrong password whose public key and sealed features reach us in
/// one read (as when our accept was paced) still gets our sealed features before the
/// close, so it reports "wrong password" too instead of a bare close mid-handshake.
#[test]
fn a_wrong_password_learns_why_even_when_its_features_arrive_with_its_key() {
    use mesh_proto::CloseReason;
    use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, HandshakeError, Progress, Role};
    use mesh_proto::wire::header::Preamble;
    use rand_core::SeedableRng;

    let us = PeerName::from_u64(0x0a).unwrap();
    let mut config = Config::new(us, "right");
    config.password = Some(bytes::Bytes::from_static(b"right"));
    // Version 2's order of events: a version-2-only peer pipelines its key.
    config.max_protocol_version = 2;
    let t0 = Instant::from_secs(1);
    let mut node = Node::new(config, Node::seed_from_u64(3), t0).unwrap();
    let conn = node.handle_accepted("127.0.0.1:50001".parse().unwrap(), t0);
    let (hello, _) = drain(&mut node);

    let intruder_config = HandshakeConfig {
        role: Role::Dialer,
        name: PeerName::from_u64(0x0b).unwrap(),
        nickname: bytes::Bytes::from_static(b"intruder"),
        uid: 77,
        short_id: 7,
        trusts_remote: false,
        password: Some(bytes::Bytes::from_static(b"wrong")),
        versions: Preamble::V2_ONLY,
    };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let mut intruder = Handshake::new(intruder_config, &mut rng, t0);
    let mut sent = intruder.take_output().unwrap();
    assert!(matches!(intruder.handle_data(&hello, t0), Ok(Progress::Pending)));
    sent.extend(intruder.take_output().expect("sealed features"));

    // Key and sealed features in one read: the node fails on the features at once.
    node.handle_data(conn, &sent, t0);
    let (mut reply, mut closed, mut reason) = (Vec::new(), false, None);
    while let Some(o) = node.poll_output() {
        match o {
            Output::Transmit { data, .. } => {
                assert!(!closed, "bytes after the close");
                reply.extend_from_slice(&data);
            }
            Output::Close { .. } => closed = true,
            Output::Event(Event::ConnectionClosed { reason: r, .. }) => reason = Some(r),
            _ => {}
        }
    }
    assert!(closed);
    assert!(matches!(reason, Some(CloseReason::Handshake(HandshakeError::WrongPassword))), "{reason:?}");
    // The intruder reads our features before the close and knows why.
    assert!(!reply.is_empty(), "the node closed without sending its features");
    assert!(matches!(intruder.handle_data(&reply, t0), Err(HandshakeError::WrongPassword)));
}

mod common;

/// A plaintext version 2 frame holding one message: `tag` and `payload`.
fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(tag);
    f.extend_from_slice(payload);
    f
}

/// The recorded Go dialer's stream, with overlay control messages appended as Go's
/// `SendControlMessage` would frame them (no capture has any: Go's example uses the null
/// overlay), fed to a node: with an overlay, they reach it, with the remote's features;
/// with none, they are ignored and the connection stays.
#[test]
fn overlay_control_messages_in_a_go_stream_reach_the_overlay() {
    use common::probe::{OnConfirm, PROBE_FEATURE, Probe};
    let capture = load("capture-unencrypted.json");
    let alpha = PeerName::parse("00:00:00:00:00:0a").unwrap();
    let bravo = PeerName::parse("00:00:00:00:00:0b").unwrap();
    for with_overlay in [true, false] {
        let mut config = Config::new(alpha, "alpha-rs");
        config.peer_discovery = false;
        config.max_protocol_version = 2;
        let t0 = Instant::from_secs(1);
        let mut node = Node::new(config, Node::seed_from_u64(1), t0).unwrap();
        let (probe, log) = Probe::new(OnConfirm::Establish);
        if with_overlay {
            node.set_overlay(probe);
        }
        let conn = node.handle_accepted("127.0.0.1:50000".parse().unwrap(), t0);
        let (hello, _) = drain(&mut node);
        let mut ours = FrameDecoder::new(1 << 20);
        ours.push(&hello[8..]);
        let first = ours.next_frame().unwrap().unwrap();
        let sent = features::decode_map(&first).unwrap();
        let announced = sent.iter().any(|(k, v)| *k == PROBE_FEATURE.as_bytes() && *v == b"v1");
        assert_eq!(announced, with_overlay, "our features carry the overlay's");
        let mut stream: Vec<u8> = capture["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["dir"] == "D2L")
            .flat_map(|c| hex::decode(c["hex"].as_str().unwrap()).unwrap())
            .collect();
        stream.extend(frame(7, b"from go"));
        stream.extend(frame(1, b"sleeve"));
        stream.extend(frame(7, b""));
        node.handle_data(conn, &stream, t0);
        let (_, events) = drain(&mut node);
        assert!(
            events.iter().any(|e| matches!(e, Event::ConnectionEstablished { peer, .. } if *peer == bravo))
        );
        assert!(!events.iter().any(|e| matches!(e, Event::ConnectionClosed { .. })), "{events:?}");
        let log = log.lock().unwrap();
        if !with_overlay {
            assert!(log.prepared.is_empty() && log.received.is_empty());
            continue;
        }
        let expected =
            [(bravo, 7, b"from go".to_vec()), (bravo, 1, b"sleeve".to_vec()), (bravo, 7, Vec::new())];
        assert_eq!(log.received, expected);
        let params = &log.prepared[0];
        assert_eq!(params.features.get("PeerNameFlavour").map(String::as_str), Some("mac"));
        assert_eq!(params.features.get("NickName").map(String::as_str), Some("bravo"));
        assert!(params.key.is_none(), "plaintext");
        assert_eq!(node.stats().overlay_messages_received, 3);
    }
}
