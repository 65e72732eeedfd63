//! The recorded traffic of two real Go peers (`tests/vectors/weave-v2/capture-*.json`):
//! every frame of every capture is split out of the raw socket reads, opened with the
//! recorded keys where the connection is encrypted, decoded, and compared field by field
//! with the content the capture file records, which was decoded independently of this
//! crate (see the vectors' README).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use mesh_proto::Instant;
use mesh_proto::counter::Counts;
use mesh_proto::fuzzing::crypto::{self, KeyPair, Session};
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, Progress, Role};
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::features::{self, RemoteFeatures};
use mesh_proto::wire::frame::FrameDecoder;
use mesh_proto::wire::header::Preamble;
use mesh_proto::wire::message::{GossipKind, GossipMessage, Message};
use mesh_proto::wire::topology::{self, ConnectionSummary, PeerRecord, PeerSummary};
use mesh_proto::{PeerName, config::MAX_FRAME_LEN};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/weave-v2/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"))).unwrap()
}

fn name(v: &Value) -> PeerName {
    PeerName::parse(v.as_str().unwrap()).unwrap()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Everything one side wrote, reassembled from the proxy's reads.
fn stream(capture: &Value, dir: &str) -> Vec<u8> {
    let chunks: Vec<&Value> =
        capture["chunks"].as_array().unwrap().iter().filter(|c| c["dir"] == dir).collect();
    assert!(!chunks.is_empty(), "no {dir} chunks");
    chunks
        .iter()
        .flat_map(|c| {
            let bytes = hx(&c["hex"]);
            assert_eq!(bytes.len() as u64, c["len"].as_u64().unwrap());
            bytes
        })
        .collect()
}

/// The frame bodies of a stream (after its preamble, flag and key), fed to the decoder in
/// 13-byte pieces, which cut across every frame boundary the reads had.
fn frame_bodies(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    let mut out = Vec::new();
    for piece in bytes.chunks(13) {
        dec.push(piece);
        while let Some(body) = dec.next_frame().unwrap() {
            out.push(body.to_vec());
        }
    }
    assert_eq!(dec.finish(), Ok(()), "the stream ends on a frame boundary");
    out
}

/// Checks a stream's intro and splits its frames, each checked against the recorded
/// `frame` and `length`. Returns the bodies, sealed as on the wire when encrypted.
fn recorded_frames(capture: &Value, dir: &str, parsed: &Value, encrypted: bool) -> Vec<Vec<u8>> {
    let s = stream(capture, dir);
    assert_eq!(&s[..7], hx(&parsed["header"]).as_slice(), "{dir}");
    assert_eq!(&s[..5], b"weave");
    assert_eq!(u64::from(s[7]), parsed["encryption_flag"].as_u64().unwrap(), "{dir}");
    assert_eq!(s[7], u8::from(encrypted), "{dir}");
    let intro = if encrypted {
        assert_eq!(&s[8..40], hx(&parsed["public_key"]).as_slice(), "{dir}");
        40
    } else {
        assert!(parsed.get("public_key").is_none());
        8
    };
    let bodies = frame_bodies(&s[intro..]);
    let recorded = parsed["frames"].as_array().unwrap();
    assert_eq!(bodies.len(), recorded.len(), "{dir}: frame count");
    for (i, (body, f)) in bodies.iter().zip(recorded).enumerate() {
        assert_eq!(body.len() as u64, f["length"].as_u64().unwrap(), "{dir} frame {i}");
        let mut whole = (body.len() as u32).to_be_bytes().to_vec();
        whole.extend_from_slice(body);
        assert_eq!(whole, hx(&f["frame"]), "{dir} frame {i}");
    }
    bodies
}

fn records(peers: &Value) -> Vec<PeerRecord> {
    let records: Vec<PeerRecord> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PeerRecord {
            summary: PeerSummary {
                name: name(&p["name"]),
                nickname: Bytes::copy_from_slice(text(&p["nickname"]).as_bytes()),
                uid: p["uid"].as_u64().unwrap(),
                version: p["version"].as_u64().unwrap(),
                short_id: p["has_short_id"]
                    .as_bool()
                    .unwrap()
                    .then(|| u16::try_from(p["short_id"].as_u64().unwrap()).unwrap()),
            },
            connections: p["connections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| ConnectionSummary {
                    name: name(&c["to"]),
                    remote_tcp_addr: Bytes::copy_from_slice(text(&c["remote_tcp_addr"]).as_bytes()),
                    outbound: c["outbound"].as_bool().unwrap(),
                    established: c["established"].as_bool().unwrap(),
                })
                .collect(),
        })
        .collect();
    assert!(!records.is_empty());
    records
}

/// What a capture holds, counted over the frames compared, so that a test cannot pass on
/// a file that lost its content.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    features: usize,
    heartbeats: usize,
    topology: usize,
    counter_gossip: usize,
    counter_broadcasts: usize,
}

/// The keys a decoded frame may carry in a capture file; any other would go unchecked.
const FRAME_KEYS: [&str; 14] = [
    "frame",
    "length",
    "seq",
    "nonce",
    "plaintext",
    "kind",
    "features",
    "tag",
    "channel",
    "src",
    "dst",
    "payload",
    "decoded_topology",
    "decoded_counter_map",
];

/// Compares one frame's plaintext, decoded by us, with the capture's record `f` of it.
/// The older captures list a topology update's records sorted by name, the newer in wire
/// order (`wire_order`).
fn check_frame(what: &str, f: &Value, plain: &[u8], first: bool, wire_order: bool, seen: &mut Seen) {
    let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(keys.iter().all(|k| FRAME_KEYS.contains(k)), "{what}: unknown keys in {keys:?}");
    if first {
        assert_eq!(f["kind"], "features", "{what}");
        let recorded: BTreeMap<&str, &str> =
            f["features"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), text(v))).collect();
        let entries = features::decode_map(plain).unwrap();
        let got: BTreeMap<&str, &str> = entries
            .iter()
            .map(|(k, v)| (std::str::from_utf8(k).unwrap(), std::str::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(entries.len(), got.len(), "{what}: a key repeated");
        assert_eq!(got, recorded, "{what}");
        let expected = RemoteFeatures {
            name: PeerName::parse(recorded["Name"]).unwrap(),
            nickname: Bytes::copy_from_slice(recorded["NickName"].as_bytes()),
            uid: recorded["UID"].parse().unwrap(),
            conn_id: recorded["ConnID"].parse().unwrap(),
            short_id: Some(recorded["ShortID"].parse().unwrap()),
            trusts_us: recorded["Trusted"].parse().unwrap(),
        };
        assert_eq!(features::decode(plain), Ok(expected), "{what}");
        seen.features += 1;
        return;
    }
    assert!(f.get("kind").is_none() && f.get("features").is_none(), "{what}");
    let tag = u8::try_from(f["tag"].as_u64().expect("a tag")).unwrap();
    let message = Message::decode(plain).unwrap();
    // Our encoder writes the message back exactly as Go sent it.
    let mut again = Vec::new();
    message.encode(&mut again);
    assert_eq!(again, plain, "{what}");
    let g = match message {
        Message::Heartbeat => {
            assert_eq!((tag, plain), (0, &[0][..]), "{what}");
            let plain_keys = ["frame", "length", "seq", "nonce", "plaintext", "tag"];
            assert!(keys.iter().all(|k| plain_keys.contains(k)), "{what}: {keys:?}");
            seen.heartbeats += 1;
            return;
        }
        Message::Gossip(g) => g,
        other => panic!("{what}: unexpected {other:?}"),
    };
    let kind = match tag {
        4 => GossipKind::Gossip,
        5 => GossipKind::Unicast { destination: name(&f["dst"]) },
        6 => GossipKind::Broadcast,
        other => panic!("{what}: tag {other}"),
    };
    if tag != 5 {
        assert!(f.get("dst").is_none(), "{what}");
    }
    let payload = hx(&f["payload"]);
    let expected = GossipMessage {
        kind,
        channel: text(&f["channel"]).as_bytes(),
        source: name(&f["src"]),
        payload: &payload,
    };
    assert_eq!(g, expected, "{what}");
    match g.channel {
        b"topology" => {
            assert!(f.get("decoded_counter_map").is_none(), "{what}");
            let got = topology::decode(g.payload).unwrap();
            let mut recorded = records(&f["decoded_topology"]);
            if wire_order {
                assert_eq!(got, recorded, "{what}");
            }
            let mut got = got;
            got.sort_by_key(|r| r.summary.name);
            recorded.sort_by_key(|r| r.summary.name);
            assert_eq!(got, recorded, "{what}");
            seen.topology += 1;
        }
        b"default" => {
            assert!(f.get("decoded_topology").is_none(), "{what}");
            let recorded = Counts(
                f["decoded_counter_map"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, n)| (PeerName::parse(k).unwrap(), n.as_i64().unwrap()))
                    .collect(),
            );
            assert_eq!(Counts::decode_payload(g.payload), Ok(recorded), "{what}");
            match kind {
                GossipKind::Broadcast => seen.counter_broadcasts += 1,
                _ => seen.counter_gossip += 1,
            }
        }
        other => panic!("{what}: channel {other:?}"),
    }
}

const SIDES: [(&str, &str, bool); 2] =
    [("D2L", "dialer_stream_parsed", true), ("L2D", "listener_stream_parsed", false)];

#[test]
fn unencrypted_captures_decode_to_what_go_sent() {
    for (file, expected) in [
        // 2.5 s: features, the topology exchange, counter gossip, one increment each way.
        (
            "capture-unencrypted.json",
            Seen { features: 1, heartbeats: 0, topology: 2, counter_gossip: 1, counter_broadcasts: 1 },
        ),
        // 65 s: also periodic gossip and the heartbeats at 30 s.
        (
            "capture-unencrypted-65s.json",
            Seen { features: 1, heartbeats: 2, topology: 4, counter_gossip: 3, counter_broadcasts: 0 },
        ),
    ] {
        let v = load(file);
        for (dir, side, _) in SIDES {
            let parsed = &v[side];
            let mut seen = Seen::default();
            let bodies = recorded_frames(&v, dir, parsed, false);
            for (i, (body, f)) in bodies.iter().zip(parsed["frames"].as_array().unwrap()).enumerate() {
                check_frame(&format!("{file} {dir} frame {i}"), f, body, i == 0, false, &mut seen);
            }
            assert_eq!(seen, expected, "{file} {dir}");
        }
    }
}

/// The capture with a password: both sides' key pairs were recorded, so every frame
/// opens, and what it holds is compared as on a plaintext connection.
#[test]
fn encrypted_capture_opens_with_the_recorded_keys() {
    let v = load("capture-encrypted-s3cret.json");
    let password = text(&v["password"]).as_bytes();
    assert_eq!(password, b"s3cret");
    let pair = |keys: &Value| {
        let k = KeyPair::from_secret(hx(&keys["private"]).try_into().unwrap());
        assert_eq!(k.public().as_slice(), hx(&keys["public"]).as_slice());
        k
    };
    let (dialer, listener) = (pair(&v["dialer_keys"]), pair(&v["listener_keys"]));
    let shared = dialer.shared_key(&listener.public()).unwrap();
    assert_eq!(*shared, hx(&v["shared_key"]).as_slice());
    assert_eq!(*listener.shared_key(&dialer.public()).unwrap(), *shared);
    let key = crypto::session_key(&shared, password);
    assert_eq!(*key, hx(&v["session_key"]).as_slice());

    for (dir, side, from_dialer) in SIDES {
        let parsed = &v[side];
        let sender_keys = if from_dialer { &dialer } else { &listener };
        assert_eq!(hx(&parsed["public_key"]), sender_keys.public());
        let bodies = recorded_frames(&v, dir, parsed, true);
        // The receiver's session opens each frame in turn; the sender's seals the same
        // plaintext into the same bytes.
        let mut receiver = Session::new(&key, !from_dialer);
        let mut sender = Session::new(&key, from_dialer);
        let mut seen = Seen::default();
        for (i, (body, f)) in bodies.iter().zip(parsed["frames"].as_array().unwrap()).enumerate() {
            let what = format!("{dir} frame {i}");
            assert_eq!(f["seq"].as_u64(), Some(i as u64), "{what}");
            assert_eq!(crypto::nonce(from_dialer, i as u64).as_slice(), hx(&f["nonce"]).as_slice(), "{what}");
            let plain = receiver.opener.open(body).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(plain, hx(&f["plaintext"]), "{what}");
            assert_eq!(&sender.sealer.seal(&plain), body, "{what}");
            check_frame(&what, f, &plain, i == 0, true, &mut seen);
        }
        // Features, counter gossip, the topology exchange, one increment each way.
        let expected =
            Seen { features: 1, heartbeats: 0, topology: 2, counter_gossip: 1, counter_broadcasts: 1 };
        assert_eq!(seen, expected, "{dir}");
    }
}

/// Our handshake, given the recorded key pair of one Go peer, reads the other Go peer's
/// whole stream: it sends what that Go peer sent first, derives the same session, checks
/// the sealed features, and hands over a session that opens the remaining frames.
#[test]
fn handshake_with_recorded_keys_reads_the_go_stream() {
    let v = load("capture-encrypted-s3cret.json");
    for (our_dir, our_side, we_dial) in SIDES {
        let (their_dir, their_side, _) = SIDES[usize::from(we_dial)];
        let ours = &v[our_side]["frames"][0]["features"];
        let keys = KeyPair::from_secret(
            hx(&v[if we_dial { "dialer_keys" } else { "listener_keys" }]["private"]).try_into().unwrap(),
        );
        let config = HandshakeConfig {
            role: if we_dial { Role::Dialer } else { Role::Listener },
            name: name(&ours["Name"]),
            nickname: Bytes::copy_from_slice(text(&ours["NickName"]).as_bytes()),
            uid: text(&ours["UID"]).parse().unwrap(),
            short_id: text(&ours["ShortID"]).parse().unwrap(),
            trusts_remote: false,
            password: Some(Bytes::copy_from_slice(text(&v["password"]).as_bytes())),
            versions: Preamble { min: 1, max: 2 },
        };
        let conn_id = text(&ours["ConnID"]).parse().unwrap();
        let now = Instant::from_secs(1);
        let mut h = Handshake::with_parts(config, Some(keys), conn_id, now);
        let our_stream = stream(&v, our_dir);
        assert_eq!(h.take_output().unwrap(), our_stream[..40], "{our_dir}: preamble, flag and key");

        let their_stream = stream(&v, their_dir);
        let Progress::Done(mut o) = h.handle_data(&their_stream, now).unwrap() else {
            panic!("{their_dir}: the handshake did not finish")
        };
        let theirs = &v[their_side]["frames"][0]["features"];
        assert_eq!(o.remote.name, name(&theirs["Name"]));
        assert_eq!(o.remote.uid, text(&theirs["UID"]).parse::<u64>().unwrap());
        assert_eq!(o.remote.conn_id, text(&theirs["ConnID"]).parse::<u64>().unwrap());
        // Our sealed features open with the Go peer's session (sequence 0 of our side).
        let sealed = h.take_output().unwrap();
        let mut go_side = Session::new(&hx(&v["session_key"]).try_into().unwrap(), !we_dial);
        let plain = go_side.opener.open(&sealed[4..]).unwrap();
        assert_eq!(features::decode_map(&plain).unwrap().len(), 7);

        let Some(Sealing::V2(session)) = o.session.as_mut() else { panic!("a version 2 session") };
        let mut rest = FrameDecoder::new(MAX_FRAME_LEN);
        rest.push(&o.leftover);
        let recorded = v[their_side]["frames"].as_array().unwrap();
        for f in &recorded[1..] {
            let mut body = rest.next_frame().unwrap().expect("a frame");
            session.opener.open_in_place(&mut body).unwrap();
            assert_eq!(&body[16..], hx(&f["plaintext"]).as_slice(), "{their_dir} seq {}", f["seq"]);
        }
        assert_eq!(rest.next_frame(), Ok(None));
        assert_eq!(session.opener.seq(), recorded.len() as u64);
    }
}

/// The capture made without a password: the example encrypts anyway, and its keys were
/// ephemeral, so only the framing can be checked: every frame is at least a tag and a
/// tag byte long, and is as long as the file says.
#[test]
fn empty_password_capture_frames_and_lengths() {
    let v = load("capture-encrypted-empty-password.json");
    for (dir, side, _) in SIDES {
        let parsed = &v[side];
        let bodies = recorded_frames(&v, dir, parsed, true);
        assert_eq!(bodies.len(), 5, "{dir}");
        assert!(bodies.iter().all(|b| b.len() > 16), "{dir}");
        // The first is the sealed features map: about 160 bytes, and the tag.
        assert!((150..200).contains(&bodies[0].len()), "{dir}: {}", bodies[0].len());
    }
}
