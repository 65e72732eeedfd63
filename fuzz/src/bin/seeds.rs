//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` (or the
//! directory given as the only argument): the Go vectors for the parsers, and for the
//! structured targets inputs built from their own types. Each structured seed is
//! encoded, decoded again and run through its target's harness, and the writer fails
//! unless the seed does what it was written for (a finished handshake, a wrong password,
//! a replay refused, a connection closed on a decryption error, ...).
//!
//! The `handshake_v3` seeds also replay the recorded flights of the version 3 vectors,
//! `mesh-proto/tests/vectors/v3/handshake.json` (`MESH_V3_VECTORS` names another file);
//! without the file, equivalent flights are generated here (see [`v3_cases`]).
//!
//! `SEEDS_VERBOSE=1` prints each structured seed's report. It must be built as the
//! targets are (`--cfg fuzzing`, which `run.sh` does through
//! `cargo fuzz build`): the sealed frames in the seeds use the stand-in for the
//! cryptography of fuzzing builds.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use mesh_fuzz::frame;
use mesh_fuzz::handshake::{self as hs, Password, Step, Stopped};
use mesh_fuzz::handshake_v3::{self as v3, Step as Step3};
use mesh_fuzz::node::{self, Op, Versions};
use mesh_proto::counter::Counts;
use mesh_proto::fuzzing::crypto::CryptoError;
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, HandshakeError, Progress, Role, Stage};
use mesh_proto::fuzzing::pake::PakeError;
use mesh_proto::wire::header::HeaderError;
use mesh_proto::wire::header::Preamble;
use mesh_proto::wire::message::Message;
use mesh_proto::wire::{features, topology};
use mesh_proto::{CloseReason, PeerName};
use mesh_proto::{Instant, Security};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex string");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("a hex vector")).collect()
}

fn field(v: &Value, key: &str) -> Vec<u8> {
    hex(v[key].as_str().unwrap_or_else(|| panic!("vector field {key}")))
}

struct Vectors(PathBuf);

impl Vectors {
    fn load(&self, name: &str) -> Value {
        let text = fs::read_to_string(self.0.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// Writes seeds into one directory per target, counting them.
struct Corpus {
    root: PathBuf,
    written: BTreeMap<&'static str, usize>,
    /// Print what each structured seed did (`SEEDS_VERBOSE=1`).
    verbose: bool,
}

impl Corpus {
    fn put(&mut self, target: &'static str, name: &str, data: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        fs::write(dir.join(format!("seed-{name}")), data).unwrap_or_else(|e| panic!("{name}: {e}"));
        *self.written.entry(target).or_default() += 1;
    }
}

/// The Go streams of a capture, one direction's chunks as read.
fn capture_chunks(capture: &Value, dir: &str) -> Vec<Vec<u8>> {
    capture["chunks"]
        .as_array()
        .expect("capture chunks")
        .iter()
        .filter(|c| c["dir"] == dir)
        .map(|c| field(c, "hex"))
        .collect()
}

/// Protocol messages of the gossip vectors, by case name.
fn gossip_messages(gossip: &Value) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for c in gossip["cases"].as_array().expect("gossip cases") {
        let name = c["name"].as_str().expect("case name").to_owned();
        let mut msgs = Vec::new();
        if c.get("protocol_msg").is_some() {
            msgs.push(field(c, "protocol_msg"));
        }
        let listed = c.get("msgs").and_then(Value::as_array).cloned().unwrap_or_default();
        for m in listed.iter().chain(c.get("msg")) {
            msgs.push(field(m, "protocol_msg"));
        }
        out.insert(name, msgs);
    }
    out
}

/// One of each version 3 topology synchronisation message, naming peers 0x0a to 0x0c.
fn sync_messages() -> Vec<Vec<u8>> {
    use mesh_proto::wire::sync::{self, Entry};
    let name = |n| mesh_proto::PeerName::from_u64(n).expect("48 bits");
    let mut summary = Vec::new();
    sync::encode_summary(&mut summary, 3, 0x5eed);
    let mut buckets = Vec::new();
    sync::encode_buckets(&mut buckets, 1, 3, &[1, 2]);
    let mut entries = Vec::new();
    sync::encode_entries_start(&mut entries, 1);
    let e = |n, version| Entry { name: name(n), uid: n * 1000 + 1, version, short_id: Some(n as u16) };
    sync::encode_group(&mut entries, 0, &[e(0x0a, 7), e(0x0c, 1)]);
    sync::encode_group(&mut entries, 1, &[]);
    let mut want = Vec::new();
    sync::encode_want(&mut want, &[name(0x0a), name(0x0b)]);
    let mut have = Vec::new();
    sync::encode_have(&mut have, &[e(0x0b, 3)]);
    for m in [&summary, &buckets, &entries, &want, &have] {
        assert!(matches!(sync::Sync::decode(m[0], &m[1..]), Some(Ok(_))), "a sync seed decodes");
    }
    vec![summary, buckets, entries, want, have]
}

fn raw_seeds(v: &Vectors, c: &mut Corpus) {
    for (i, m) in sync_messages().iter().enumerate() {
        c.put("message", &format!("sync{i}"), m);
    }
    let header = v.load("header.json");
    for (i, n) in header["negotiation"].as_array().expect("negotiation").iter().enumerate() {
        let mut s = field(n, "a_sends");
        s.extend_from_slice(&[2, 2]);
        c.put("preamble", &format!("neg{i}"), &s);
    }

    let feats = v.load("features.json");
    for (i, p) in feats["peers"].as_array().expect("peers").iter().enumerate() {
        let gob = field(p, "gob_canonical");
        features::decode(&gob).expect("the features vector decodes");
        c.put("features", &format!("peer{i}"), &gob);
        c.put("gob", &format!("features{i}"), &gob);
        let stream = field(p, "v2_frame_unencrypted");
        let (frames, end) =
            frame::run(&frame::Input { limit: u16::MAX, cuts: vec![2, 9], stream: stream.clone() });
        assert_eq!((frames.len(), end), (1, Ok(())));
        c.put(
            "frame",
            &format!("features{i}"),
            &frame::Input { limit: u16::MAX, cuts: vec![2, 9], stream }.to_bytes(),
        );
    }
    let random = field(&feats["peers"][0], "gob_go_sample_random_order");
    features::decode(&random).expect("Go's random-order features decode");
    c.put("features", "random_order", &random);
    c.put("features", "v1", &field(&feats["v1"], "gob_unencrypted"));

    let gossip = v.load("gossip.json");
    for (name, msgs) in gossip_messages(&gossip) {
        for (j, m) in msgs.iter().enumerate() {
            Message::decode(m).expect("a gossip vector decodes");
            c.put("message", &format!("{name}_{j}"), m);
            let mut f = (m.len() as u32).to_be_bytes().to_vec();
            f.extend_from_slice(m);
            c.put(
                "frame",
                &format!("{name}_{j}"),
                &frame::Input { limit: 4096, cuts: vec![3], stream: f }.to_bytes(),
            );
        }
    }
    for (k, p) in gossip["app_payloads"].as_object().expect("payloads") {
        if p.get("gob").is_some() {
            let gob = field(p, "gob");
            Counts::decode_payload(&gob).expect("a counter payload decodes");
            c.put("gob", &format!("counter_{k}"), &gob);
        }
    }

    let topo = v.load("topology.json");
    for (k, t) in topo.as_object().expect("topology") {
        if t.get("gob").is_some() {
            let gob = field(t, "gob");
            topology::decode(&gob).expect("a topology vector decodes");
            c.put("topology", k, &gob);
            c.put("gob", &format!("topology_{k}"), &gob);
        }
    }

    let prims = v.load("gob-primitives.json");
    for kind in ["uint", "int", "bool", "string", "bytes"] {
        for (i, p) in prims[kind].as_array().expect("primitives").iter().enumerate() {
            c.put("gob", &format!("{kind}{i}"), &field(p, "top_level_message"));
        }
    }

    for cap in ["capture-unencrypted.json", "capture-unencrypted-65s.json"] {
        let capture = v.load(cap);
        for dir in ["D2L", "L2D"] {
            let chunks = capture_chunks(&capture, dir);
            let whole: Vec<u8> = chunks.concat();
            // After the 7-byte preamble and the flag, the stream is frames; cut it where
            // Go's reads ended, and once with a limit that the topology frames exceed.
            let mut cuts = Vec::new();
            let mut at = 0;
            for ch in &chunks {
                at += ch.len();
                if at > 8 {
                    cuts.push((at - 8) as u16);
                }
            }
            let stream = whole[8..].to_vec();
            let full = frame::Input { limit: u16::MAX, cuts: cuts.clone(), stream: stream.clone() };
            let (frames, end) = frame::run(&full);
            assert!(frames.len() >= 5 && end.is_ok(), "{cap} {dir}: {} frames, {end:?}", frames.len());
            c.put("frame", &format!("{cap}_{dir}"), &full.to_bytes());
            let small = frame::Input { limit: 200, cuts, stream };
            assert!(frame::run(&small).1.is_err());
            c.put("frame", &format!("{cap}_{dir}_limit"), &small.to_bytes());
        }
    }
}

/// A handshake seed and what running it must report.
fn handshake_seed(c: &mut Corpus, name: &str, input: hs::Input, check: impl Fn(&hs::Report) -> bool) {
    let bytes = input.to_bytes();
    assert_eq!(hs::Input::from_bytes(&bytes), input, "handshake seed {name} does not decode to itself");
    let report = hs::run(&input);
    if c.verbose {
        println!("handshake/{name}: {report:?}");
    }
    assert!(check(&report), "handshake seed {name} did not do what it was written for: {report:?}");
    c.put("handshake", name, &bytes);
}

fn handshake_seeds(v: &Vectors, c: &mut Corpus) {
    let gossip = gossip_messages(&v.load("gossip.json"));
    let heartbeat = vec![0u8];
    let broadcast = gossip["broadcast_local_origin"][0].clone();
    let ok = |frames: usize| {
        move |r: &hs::Report| r.done && r.remote_done && r.frames == frames && r.stopped.is_none()
    };
    let open_failed = |frames: usize, seq: u64| {
        move |r: &hs::Report| {
            r.done && r.frames == frames && r.stopped == Some(Stopped::Crypto(CryptoError::Open { seq }))
        }
    };
    let input = |we_dial: bool, ours: Password, theirs: Password, steps: Vec<Step>| hs::Input {
        we_dial,
        ours,
        theirs,
        their_key: 0x21,
        steps,
    };
    use Password::{Empty, Other, Pw};

    for (we_dial, role) in [(true, "dial"), (false, "listen")] {
        let frames = vec![
            Step::Deliver { max: 0 },
            Step::Frame(heartbeat.clone()),
            Step::Frame(broadcast.clone()),
            Step::Deliver { max: 0 },
        ];
        for (pw, label) in [(Password::None, "plain"), (Pw, "pw"), (Empty, "empty")] {
            handshake_seed(c, &format!("{role}_{label}"), input(we_dial, pw, pw, frames.clone()), ok(2));
        }
        // The remote's bytes one at a time, then in odd pieces.
        let mut steps: Vec<Step> = (0..12).map(|_| Step::Deliver { max: 1 }).collect();
        steps.extend([Step::Deliver { max: 30 }, Step::Deliver { max: 7 }, Step::Deliver { max: 0 }]);
        handshake_seed(c, &format!("{role}_pw_chunked"), input(we_dial, Pw, Pw, steps), ok(0));
        handshake_seed(
            c,
            &format!("{role}_wrong_password"),
            input(we_dial, Pw, Other, frames.clone()),
            |r| r.failed == Some(HandshakeError::WrongPassword) && !r.done,
        );
        handshake_seed(
            c,
            &format!("{role}_theirs_plain"),
            input(we_dial, Pw, Password::None, frames.clone()),
            |r| {
                r.failed == Some(HandshakeError::EncryptionMismatch { we_encrypt: true, they_encrypt: false })
            },
        );
        handshake_seed(
            c,
            &format!("{role}_ours_plain"),
            input(we_dial, Password::None, Pw, frames.clone()),
            |r| {
                r.failed == Some(HandshakeError::EncryptionMismatch { we_encrypt: false, they_encrypt: true })
            },
        );
        let mut zero = input(we_dial, Pw, Pw, frames.clone());
        zero.their_key = 0;
        handshake_seed(c, &format!("{role}_low_order_key"), zero, |r| {
            r.failed == Some(HandshakeError::Crypto(CryptoError::LowOrderKey))
        });
        // After the features (sequence number 0) and a heartbeat (1), frame 2 is due.
        let after = |extra: Vec<Step>| {
            let mut s = vec![Step::Deliver { max: 0 }, Step::Frame(heartbeat.clone())];
            s.extend(extra);
            s.push(Step::Deliver { max: 0 });
            input(we_dial, Pw, Pw, s)
        };
        handshake_seed(c, &format!("{role}_replay"), after(vec![Step::Replay]), open_failed(1, 2));
        handshake_seed(
            c,
            &format!("{role}_reorder"),
            after(vec![Step::Skip, Step::Frame(broadcast.clone())]),
            open_failed(1, 2),
        );
        handshake_seed(
            c,
            &format!("{role}_bad_tag"),
            after(vec![Step::Flip { body: broadcast.clone(), at: 3, mask: 0x80 }]),
            open_failed(1, 2),
        );
        handshake_seed(
            c,
            &format!("{role}_bad_seq"),
            after(vec![Step::Flip { body: broadcast.clone(), at: 15, mask: 1 }]),
            open_failed(1, 2),
        );
        // Past the tag the stand-in notices nothing (real AEAD would).
        handshake_seed(
            c,
            &format!("{role}_changed_body"),
            after(vec![Step::Flip { body: heartbeat.clone(), at: 16, mask: 1 }]),
            |r| r.done && r.frames == 2 && r.stopped.is_none(),
        );
        handshake_seed(
            c,
            &format!("{role}_preamble_timeout"),
            input(we_dial, Pw, Pw, vec![Step::Advance { ms: 10_001 }]),
            |r| r.failed == Some(HandshakeError::Timeout(Stage::Preamble)),
        );
        handshake_seed(
            c,
            &format!("{role}_key_timeout"),
            input(we_dial, Pw, Pw, vec![Step::Deliver { max: 8 }, Step::Advance { ms: 60_000 }]),
            |r| r.failed == Some(HandshakeError::Timeout(Stage::PublicKey)),
        );
        handshake_seed(
            c,
            &format!("{role}_closed"),
            input(we_dial, Password::None, Password::None, vec![Step::Deliver { max: 7 }, Step::Close]),
            |r| r.failed == Some(HandshakeError::Closed(Stage::Flag)),
        );
        handshake_seed(
            c,
            &format!("{role}_garbage_first"),
            input(we_dial, Pw, Pw, vec![Step::Raw(b"weave\x02\x02\x07".to_vec()), Step::Deliver { max: 0 }]),
            |r| r.failed == Some(HandshakeError::BadFlag(7)),
        );
    }

    // A recorded Go dialer's whole stream, as Go's reads cut it, to our plaintext
    // listener: the handshake and every frame after it.
    let capture = v.load("capture-unencrypted.json");
    let steps = capture_chunks(&capture, "D2L").into_iter().map(Step::Raw).collect();
    handshake_seed(c, "go_dialer_capture", input(false, Password::None, Password::None, steps), |r| {
        r.done && r.frames >= 3 && r.frames == r.messages && r.stopped.is_none()
    });
    let steps = capture_chunks(&capture, "L2D").into_iter().map(Step::Raw).collect();
    handshake_seed(c, "go_listener_capture", input(true, Password::None, Password::None, steps), |r| {
        r.done && r.frames >= 3 && r.frames == r.messages && r.stopped.is_none()
    });
    // Go's really encrypted streams: the stand-in cannot open them, so they end at the
    // features frame as a wrong password would.
    let crypto = v.load("crypto.json");
    for (key, we_dial) in [("a_full_stream", false), ("b_full_stream", true)] {
        let steps = vec![Step::Raw(field(&crypto, key))];
        handshake_seed(c, &format!("go_{key}"), input(we_dial, Pw, Pw, steps), |r| {
            r.failed == Some(HandshakeError::WrongPassword)
        });
    }
}

/// A heartbeat's body: version 3's carries how many heartbeats were read (here none),
/// version 2's is the tag alone.
fn heartbeat_body(v3: bool) -> Vec<u8> {
    if v3 { vec![0, 0] } else { vec![0] }
}

/// A node seed and what running it must report.
fn node_seed(c: &mut Corpus, name: &str, input: node::Input, check: impl Fn(&node::Report) -> bool) {
    let bytes = input.to_bytes();
    assert_eq!(node::Input::from_bytes(&bytes), input, "node seed {name} does not decode to itself");
    let report = node::run(&input);
    if c.verbose {
        println!("node/{name}: {report:?}");
    }
    assert!(check(&report), "node seed {name} did not do what it was written for: {report:?}");
    c.put("node", name, &bytes);
}

fn node_seeds(v: &Vectors, c: &mut Corpus) {
    let gossip = gossip_messages(&v.load("gossip.json"));
    let topo = v.load("topology.json");
    let topology_frame = field(&topo["full_update"], "as_gossip_frame_from_one");
    let topology_body = topology_frame[4..].to_vec();
    let a = PeerName::from_u64(0x0a).expect("a name");
    let b = PeerName::from_u64(0x0b).expect("a name");
    let us = PeerName::from_u64(node::US).expect("a name");
    // The vectors' counter payloads merged ({0a: 1}, then {0a: 3, 0b: 2}), and our increment.
    let merged = Counts([(us, 1), (a, 3), (b, 2)].into());
    // Version 3 sessions also get every topology synchronisation message (version 2
    // ones ignore them as unknown tags).
    let good: Vec<Vec<u8>> =
        ["gossip", "broadcast_local_origin", "broadcast_relayed", "unicast", "gossip_counter_empty_map"]
            .iter()
            .flat_map(|k| gossip[*k].clone())
            .chain([topology_body])
            .chain(sync_messages())
            .collect();
    let frames = |conn: u8, bodies: &[Vec<u8>]| -> Vec<Op> {
        let mut ops: Vec<Op> = bodies.iter().map(|b| Op::Frame { conn, body: b.clone() }).collect();
        ops.push(Op::Deliver { conn, max: 0 });
        ops
    };
    let only_close =
        |reason: CloseReason| move |r: &node::Report| r.established == 1 && r.closes == [reason.clone()];
    let input = |encrypted: bool, discovery: bool, ops: Vec<Op>| node::Input {
        encrypted,
        discovery,
        conn_limit: 7,
        versions: Versions::Both,
        overlay: false,
        ops,
    };

    // A recorded Go dialer's stream as Go's reads cut it, with no honest remote (Go's
    // [1, 2] gets version 2 from the node's [2, 3]).
    let capture = v.load("capture-unencrypted.json");
    let mut ops = vec![Op::Accept { ip: 3, port: 40_000 }];
    ops.extend(capture_chunks(&capture, "D2L").into_iter().map(|bytes| Op::Data { conn: 0, bytes }));
    ops.push(Op::Advance { ms: 2_000 });
    node_seed(c, "go_dialer_capture", input(false, true, ops), |r| r.established == 1 && r.closes.is_empty());
    let mut ops = vec![
        Op::Initiate { replace: false, peers: vec![b"10.9.0.10:6783".to_vec()] },
        Op::Dialed { conn: 0 },
    ];
    ops.extend(capture_chunks(&capture, "L2D").into_iter().map(|bytes| Op::Data { conn: 0, bytes }));
    node_seed(c, "go_listener_capture", input(false, true, ops), |r| {
        r.established == 1 && r.closes.is_empty()
    });

    // Every honest-remote seed twice: the remote offers [2, 3] as a current Rust peer
    // does, so the node speaks version 3 with it, and (`v2_` seeds) only version 2.
    for (v2_only, v) in [(false, ""), (true, "v2_")] {
        // Version 3's heartbeat carries the count of heartbeats read (none here).
        let heartbeat = heartbeat_body(!v2_only);
        let hello = |conn: u8, name: u64, password: Password| Op::Hello {
            conn,
            name,
            uid: name * 1000 + 1,
            password,
            v2_only,
            key: 0x30 + name as u8,
        };
        // Version 3 takes one more round trip than version 2 (the confirmations) before the
        // remote has finished and seals its frames: two deliveries, the second idle in
        // version 2.
        let session = |encrypted: bool, pw: Password, extra: Vec<Op>| {
            let mut ops = vec![
                Op::Accept { ip: 2, port: 50_000 },
                hello(0, 0x0a, pw),
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 0, max: 0 },
            ];
            ops.extend(extra);
            input(encrypted, true, ops)
        };

        for (encrypted, pw, label) in [(false, Password::None, "plain"), (true, Password::Pw, "pw")] {
            // Gossip, broadcasts (ours and relayed), a unicast for someone else, a heartbeat
            // and a topology update; then the timers, writes and the application's calls.
            let mut extra = frames(0, &[good.clone(), vec![heartbeat.clone()]].concat());
            extra.extend([
                Op::Advance { ms: 1_100 },
                Op::Written { conn: 0, n: 0 },
                Op::Increment,
                Op::Gossip,
                Op::Unicast { dst: 0x0a, bytes: b"hi".to_vec() },
                Op::Advance { ms: 30_000 },
                Op::Written { conn: 0, n: 0 },
                Op::Status,
            ]);
            extra.extend(frames(0, std::slice::from_ref(&heartbeat)));
            node_seed(c, &format!("{v}{label}_session"), session(encrypted, pw, extra), |r| {
                // The peers the topology named are dialled and never answer: those dials
                // are given up at the connect timeout, and nothing else closes.
                let only_dials = r.closes.iter().all(|c| matches!(c, CloseReason::DialTimeout(_)));
                r.established == 1 && only_dials && r.checked >= 5 && r.counts == merged
            });
            // With the liveness overlay: a ping the remote sends as an overlay control
            // message (tag 7) is answered with a pong the remote opens and decodes.
            let ping: Vec<u8> = [&[7u8][..], b"LV", &[0], &42u64.to_be_bytes()].concat();
            let mut overlaid = session(encrypted, pw, frames(0, &[ping]));
            overlaid.overlay = true;
            node_seed(c, &format!("{v}{label}_overlay_ping"), overlaid, |r| {
                r.established == 1 && r.closes.is_empty() && r.checked >= 3
            });
            // We dial; the remote listens.
            let ops = vec![
                Op::Initiate { replace: true, peers: vec![b"10.9.0.11:6783".to_vec()] },
                Op::Dialed { conn: 0 },
                hello(0, 0x0b, pw),
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 0, max: 0 },
                Op::Frame { conn: 0, body: heartbeat.clone() },
                Op::Deliver { conn: 0, max: 0 },
                Op::Forget { peers: vec![b"10.9.0.11:6783".to_vec()] },
            ];
            node_seed(c, &format!("{v}{label}_dialled"), input(encrypted, false, ops), |r| {
                r.established == 1 && r.closes.is_empty()
            });
            // Two peers through us: a broadcast from one is relayed to the other.
            let mut ops = vec![
                Op::Accept { ip: 2, port: 50_000 },
                Op::Accept { ip: 3, port: 50_001 },
                hello(0, 0x0a, pw),
                hello(1, 0x0b, pw),
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 1, max: 0 },
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 1, max: 0 },
            ];
            ops.extend(frames(0, &gossip["broadcast_local_origin"]));
            ops.extend([Op::Advance { ms: 1_200 }, Op::Unicast { dst: 0x0b, bytes: b"x".to_vec() }]);
            node_seed(c, &format!("{v}{label}_two_peers"), input(encrypted, true, ops), |r| {
                r.established == 2 && r.closes.is_empty() && r.checked >= 4
            });
            // A second connection from the same peer: the tie-break closes one of them.
            let ops = vec![
                Op::Accept { ip: 2, port: 50_000 },
                Op::Accept { ip: 2, port: 50_001 },
                hello(0, 0x0a, pw),
                Op::Hello { conn: 1, name: 0x0a, uid: 0x0a * 1000 + 1, password: pw, v2_only, key: 0x55 },
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 1, max: 0 },
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 1, max: 0 },
            ];
            node_seed(c, &format!("{v}{label}_duplicate"), input(encrypted, true, ops), |r| {
                r.closes.iter().any(|c| matches!(c, CloseReason::Duplicate(n) if *n == a))
            });
            // A remote that sends nothing after its handshake.
            node_seed(
                c,
                &format!("{v}{label}_silent"),
                session(encrypted, pw, vec![Op::Advance { ms: 61_000 }]),
                |r| r.established == 1 && r.closes.len() == 1,
            );
            // Gossip the counter cannot take closes the connection; a relay-only channel
            // and an envelope from the all-zero name do not.
            for (case, refused) in [
                ("gossip_empty_payload", true),
                ("gossip_three_chunks", true),
                ("gossip_src_zero_name", false),
                ("broadcast_long_channel_big_payload", false),
            ] {
                let s = session(encrypted, pw, frames(0, &gossip[case]));
                node_seed(c, &format!("{v}{label}_{case}"), s, |r| {
                    let closed = matches!(&r.closes[..], [CloseReason::Gossiper { channel, .. }] if channel == "default");
                    r.established == 1 && if refused { closed } else { r.closes.is_empty() }
                });
            }
        }

        // Encrypted failures: each closes the one connection, for the reason it was
        // written for.
        let pw = Password::Pw;
        node_seed(c, &format!("{v}wrong_password"), session(true, Password::Other, vec![]), |r| {
            r.established == 0 && r.closes == [CloseReason::Handshake(HandshakeError::WrongPassword)]
        });
        // Version 2 learns of a password on one side only from the flag, version 3 from
        // the hello's mode byte.
        let one_sided = |we: bool| {
            CloseReason::Handshake(if v2_only {
                HandshakeError::EncryptionMismatch { we_encrypt: we, they_encrypt: !we }
            } else {
                HandshakeError::PasswordMismatch { we_have: we, they_have: !we }
            })
        };
        node_seed(c, &format!("{v}remote_plain"), session(true, Password::None, vec![]), |r| {
            r.closes == [one_sided(true)]
        });
        node_seed(c, &format!("{v}remote_encrypts"), session(false, pw, vec![]), |r| {
            r.closes == [one_sided(false)]
        });
        // The remote's features are frame 0 and a heartbeat frame 1, so frame 2 is due.
        let due = CloseReason::Crypto(CryptoError::Open { seq: 2 });
        let after_heartbeat = |extra: Vec<Op>| {
            let mut ops = frames(0, std::slice::from_ref(&heartbeat));
            ops.extend(extra);
            ops.push(Op::Deliver { conn: 0, max: 0 });
            session(true, pw, ops)
        };
        node_seed(
            c,
            &format!("{v}replayed_frame"),
            after_heartbeat(vec![Op::Replay { conn: 0 }]),
            only_close(due.clone()),
        );
        node_seed(
            c,
            &format!("{v}reordered_frame"),
            after_heartbeat(vec![Op::Skip { conn: 0 }, Op::Frame { conn: 0, body: heartbeat.clone() }]),
            only_close(due.clone()),
        );
        // A tag byte: version 2's tag leads the sealed body, version 3's follows the
        // record (the message's 4-byte inner prefix, then the message).
        let body = gossip["gossip"][0].clone();
        let at = if v2_only { 0 } else { body.len() as u16 + 4 };
        node_seed(
            c,
            &format!("{v}tampered_tag"),
            after_heartbeat(vec![Op::Flip { conn: 0, body, at, mask: 0x40 }]),
            only_close(due.clone()),
        );
        node_seed(
            c,
            &format!("{v}forged_frame"),
            after_heartbeat(vec![Op::Data { conn: 0, bytes: [&[0, 0, 0, 17][..], &[0; 17]].concat() }]),
            only_close(due),
        );
    }

    // The node's own version settings: capped at 2 it speaks version 2 with a [2, 3]
    // remote; requiring 3 it refuses a version-2-only one.
    let hello = |v2_only: bool| Op::Hello {
        conn: 0,
        name: 0x0a,
        uid: 0x0a * 1000 + 1,
        password: Password::Pw,
        v2_only,
        key: 0x3a,
    };
    let versioned = |versions: Versions, v2_only: bool| node::Input {
        encrypted: true,
        discovery: true,
        conn_limit: 7,
        versions,
        overlay: false,
        ops: [
            vec![
                Op::Accept { ip: 2, port: 50_000 },
                hello(v2_only),
                Op::Deliver { conn: 0, max: 0 },
                Op::Deliver { conn: 0, max: 0 },
            ],
            frames(0, &[heartbeat_body(versions != Versions::V2Only && !v2_only)]),
        ]
        .concat(),
    };
    node_seed(c, "node_v2_only", versioned(Versions::V2Only, false), |r| {
        r.established == 1 && r.closes.is_empty() && r.checked >= 1
    });
    node_seed(c, "node_v3_only", versioned(Versions::V3Only, false), |r| {
        r.established == 1 && r.closes.is_empty() && r.checked >= 1
    });
    node_seed(c, "node_v3_only_remote_v2", versioned(Versions::V3Only, true), |r| {
        r.established == 0
            && r.closes
                == [CloseReason::Handshake(HandshakeError::Header(HeaderError::BelowMinimum {
                    remote_max: 2,
                    our_min: 3,
                }))]
    });
}

/// A version 3 handshake seed and what running it must report.
fn v3_seed(c: &mut Corpus, name: &str, input: v3::Input, check: impl Fn(&hs::Report) -> bool) {
    let bytes = input.to_bytes();
    assert_eq!(v3::Input::from_bytes(&bytes), input, "handshake_v3 seed {name} does not decode to itself");
    let report = v3::run(&input);
    if c.verbose {
        println!("handshake_v3/{name}: {report:?}");
    }
    assert!(check(&report), "handshake_v3 seed {name} did not do what it was written for: {report:?}");
    c.put("handshake_v3", name, &bytes);
}

/// Runs a dialer and a listener against each other, each flight delivered whole: the
/// flights in order, each with whether the dialer sent it.
fn pump(mut d: Handshake, mut l: Handshake) -> Vec<(bool, Vec<u8>)> {
    let mut flights = Vec::new();
    let (mut d_done, mut l_done) = (false, false);
    for turn in 0..12 {
        let from_dialer = turn % 2 == 0;
        let (from, to, done) =
            if from_dialer { (&mut d, &mut l, &mut l_done) } else { (&mut l, &mut d, &mut d_done) };
        if let Some(flight) = from.take_output() {
            match to.handle_data(&flight, Instant::from_secs(1)) {
                Ok(Progress::Pending) => {}
                Ok(Progress::Done(_)) => *done = true,
                Err(e) => panic!("an honest handshake failed: {e}"),
            }
            flights.push((from_dialer, flight));
        }
        if d_done && l_done {
            return flights;
        }
    }
    panic!("an honest handshake did not finish");
}

/// One case of the version 3 vectors: its name, password and flights.
struct V3Case {
    name: String,
    password: Option<Vec<u8>>,
    flights: Vec<(bool, Vec<u8>)>,
}

/// The cases of `mesh-proto/tests/vectors/v3/handshake.json` (or of the file named by
/// `MESH_V3_VECTORS`), and whether they were read from it. Without the file, the same
/// cases are generated here as the file is: an honest dialer and listener from
/// `Handshake::new` with generators seeded 1 and 2, but sealed by this fuzzing build.
fn v3_cases(here: &Path) -> (Vec<V3Case>, bool) {
    let path = std::env::var_os("MESH_V3_VECTORS")
        .map_or_else(|| here.join("../mesh-proto/tests/vectors/v3/handshake.json"), PathBuf::from);
    if let Ok(text) = fs::read_to_string(&path) {
        let file: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cases = file["cases"]
            .as_array()
            .expect("v3 cases")
            .iter()
            .map(|c| {
                assert_eq!((&c["dialer_seed"], &c["listener_seed"]), (&Value::from(1), &Value::from(2)));
                let flights = c["flights"]
                    .as_array()
                    .expect("v3 flights")
                    .iter()
                    .map(|f| (f["from"] == "dialer", field(f, "hex")))
                    .collect();
                V3Case {
                    name: c["name"].as_str().expect("a case name").to_owned(),
                    password: c["password"].as_str().map(|p| p.as_bytes().to_vec()),
                    flights,
                }
            })
            .collect();
        return (cases, true);
    }
    println!("seeds: no version 3 vectors at {}: generating equivalent flights", path.display());
    let peer = |role: Role, n: u64, nick: &'static str, password: Option<&str>| {
        let config = HandshakeConfig {
            role,
            name: PeerName::from_u64(n).expect("a name"),
            nickname: Bytes::from_static(nick.as_bytes()),
            uid: 1000 + n,
            short_id: n as u16,
            trusts_remote: false,
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            versions: Preamble::OURS,
        };
        Handshake::new(config, &mut ChaCha20Rng::seed_from_u64(v3::rng_seed(role)), Instant::from_secs(1))
    };
    let cases = [("password", Some("s3cret")), ("empty-password", Some("")), ("no-password", None)]
        .into_iter()
        .map(|(name, pw)| V3Case {
            name: name.to_owned(),
            password: pw.map(|p| p.as_bytes().to_vec()),
            flights: pump(peer(Role::Dialer, 1, "dialer", pw), peer(Role::Listener, 2, "listener", pw)),
        })
        .collect();
    (cases, false)
}

fn v3_seeds(here: &Path, v: &Vectors, c: &mut Corpus) {
    let gossip = gossip_messages(&v.load("gossip.json"));
    let heartbeat = vec![0u8];
    let broadcast = gossip["broadcast_local_origin"][0].clone();
    let pw = || Some(b"pw".to_vec());
    let other = || Some(b"other".to_vec());
    let input = |we_dial: bool, ours: Option<Vec<u8>>, theirs: Option<Vec<u8>>, steps: Vec<Step3>| {
        v3::Input { we_dial, ours, theirs, we_require_v3: false, they_v2_only: false, raw: None, steps }
    };
    let raw = |we_dial: bool, ours: Option<Vec<u8>>, bytes: Vec<u8>| v3::Input {
        we_dial,
        ours,
        theirs: None,
        we_require_v3: false,
        they_v2_only: false,
        raw: Some(bytes),
        steps: Vec::new(),
    };
    let finished = |security: Security, frames: usize| {
        move |r: &hs::Report| {
            r.done
                && r.remote_done
                && r.finished == Some((3, security))
                && r.frames == frames
                && r.stopped.is_none()
        }
    };
    let failed = |e: HandshakeError| move |r: &hs::Report| !r.done && r.failed.as_ref() == Some(&e);
    let open_failed = |frames: usize, seq: u64| {
        move |r: &hs::Report| {
            r.done && r.frames == frames && r.stopped == Some(Stopped::Crypto(CryptoError::Open { seq }))
        }
    };
    let identity = {
        let mut e = [0u8; 32];
        e[0] = 1;
        e
    };
    assert_eq!(CompressedEdwardsY(identity).decompress(), Some(EdwardsPoint::default()));
    let preamble = Preamble::OURS.encode();
    let hello = |mode: u8, element: &[u8; 32]| [&[mode][..], &7u64.to_be_bytes(), element].concat();
    let valid = ED25519_BASEPOINT_POINT.compress().to_bytes();

    for (we_dial, role) in [(true, "dial"), (false, "listen")] {
        let (ours, theirs) =
            if we_dial { (Role::Dialer, Role::Listener) } else { (Role::Listener, Role::Dialer) };
        // The honest remote's flights with a password, to find its confirmation and the
        // tag of its features frame.
        let start = |r: Role, peer: u64, uid: u64| {
            v3::start(r, PeerName::from_u64(peer).expect("a name"), uid, Some(b"pw"), Preamble::OURS)
        };
        let mut us = Some(start(ours, hs::US, 11));
        let mut them = Some(start(theirs, hs::THEM, 22));
        let (d, l) = if we_dial { (us.take(), them.take()) } else { (them.take(), us.take()) };
        let flights = pump(d.expect("a dialer"), l.expect("a listener"));
        let remote: Vec<&Vec<u8>> = flights.iter().filter(|(fd, _)| *fd != we_dial).map(|(_, f)| f).collect();
        // After the first delivery the remote has written its confirmation and its sealed
        // features: as listener in its second flight, as dialer its second's end and its third.
        let (confirmation, features_len) = if we_dial {
            (remote[1][..32].to_vec(), remote[1].len() - 32)
        } else {
            (remote[1][41..].to_vec(), remote[2].len())
        };
        assert_eq!(confirmation.len(), 32);
        let tag_at = (32 + features_len - 16) as u16;
        // The remote's connection id, from its hello, and where its decimal digits lie in
        // its features (the frame after its 32-byte confirmation).
        let all: Vec<u8> = remote.iter().flat_map(|f| f.iter().copied()).collect();
        let conn_id = u64::from_be_bytes(all[8..16].try_into().expect("8 bytes"));
        let digits = conn_id.to_string().into_bytes();
        let after_confirmation = [&confirmation[..], &all[all.len() - features_len..]].concat();
        let digits_at = after_confirmation
            .windows(digits.len())
            .position(|w| w == digits)
            .expect("the connection id in the remote's features");
        let last_digit = digits_at + digits.len() - 1;
        let other_digit = if digits[digits.len() - 1] == b'0' { b'1' } else { b'0' };
        let mut other_id = digits.clone();
        *other_id.last_mut().expect("a digit") = other_digit;
        let other_id: u64 = String::from_utf8(other_id).expect("digits").parse().expect("a number");

        let frames = vec![
            Step3::Deliver { max: 0 },
            Step3::Deliver { max: 0 },
            Step3::Frame(heartbeat.clone()),
            Step3::Frame(broadcast.clone()),
            Step3::Deliver { max: 0 },
        ];
        for (password, label, security) in [
            (pw(), "pw", Security::V3Password),
            (Some(Vec::new()), "empty", Security::V3Password),
            (None, "none", Security::V3Unauthenticated),
        ] {
            v3_seed(
                c,
                &format!("{role}_{label}"),
                input(we_dial, password.clone(), password.clone(), frames.clone()),
                finished(security, 2),
            );
            // The remote's bytes one at a time, then in odd pieces.
            let mut steps: Vec<Step3> = (0..50).map(|_| Step3::Deliver { max: 1 }).collect();
            steps.extend([Step3::Deliver { max: 30 }, Step3::Deliver { max: 7 }, Step3::Deliver { max: 0 }]);
            steps.extend([Step3::Deliver { max: 5 }, Step3::Deliver { max: 0 }]);
            v3_seed(
                c,
                &format!("{role}_{label}_chunked"),
                input(we_dial, password.clone(), password, steps),
                finished(security, 0),
            );
        }
        let mut v3_only = input(we_dial, pw(), pw(), frames.clone());
        v3_only.we_require_v3 = true;
        v3_seed(c, &format!("{role}_we_require_v3"), v3_only, finished(Security::V3Password, 2));
        // A remote capped at version 2: we negotiate version 2 after reading its preamble.
        for (password, label, security) in
            [(pw(), "pw", Security::V2Password), (None, "plain", Security::Plaintext)]
        {
            let mut v2 = input(we_dial, password.clone(), password, frames.clone());
            v2.they_v2_only = true;
            v3_seed(c, &format!("{role}_remote_v2_{label}"), v2, move |r| {
                r.done && r.remote_done && r.finished == Some((2, security)) && r.frames == 2
            });
        }
        let mut below = input(we_dial, pw(), pw(), frames.clone());
        below.we_require_v3 = true;
        below.they_v2_only = true;
        v3_seed(
            c,
            &format!("{role}_remote_v2_below_minimum"),
            below,
            failed(HandshakeError::Header(HeaderError::BelowMinimum { remote_max: 2, our_min: 3 })),
        );
        v3_seed(c, &format!("{role}_wrong_password"), input(we_dial, pw(), other(), frames.clone()), |r| {
            r.failed == Some(HandshakeError::WrongPassword)
                && r.remote_failed == Some(HandshakeError::WrongPassword)
        });
        for (ours, theirs, label) in [
            (pw(), None, "ours_only"),
            (Some(Vec::new()), None, "ours_only_empty"),
            (None, pw(), "theirs_only"),
            (None, Some(Vec::new()), "theirs_only_empty"),
        ] {
            let mismatch =
                HandshakeError::PasswordMismatch { we_have: ours.is_some(), they_have: theirs.is_some() };
            v3_seed(
                c,
                &format!("{role}_{label}"),
                input(we_dial, ours, theirs, frames.clone()),
                failed(mismatch),
            );
        }
        // The remote's hello (preamble, then mode, connection id, element) with its element
        // replaced: the identity, then a zero X25519 key.
        let tampered = |ours: Option<Vec<u8>>, at: u16, bytes: Vec<u8>| {
            let mut steps = vec![Step3::Overwrite { at, bytes }];
            steps.extend(frames.clone());
            input(we_dial, ours.clone(), ours, steps)
        };
        v3_seed(
            c,
            &format!("{role}_identity_element"),
            tampered(pw(), 16, identity.to_vec()),
            failed(HandshakeError::Pake(PakeError::SmallOrder)),
        );
        v3_seed(
            c,
            &format!("{role}_zero_key"),
            tampered(None, 16, vec![0; 32]),
            failed(HandshakeError::Pake(PakeError::LowOrderKey)),
        );
        v3_seed(
            c,
            &format!("{role}_bad_mode"),
            tampered(pw(), 7, vec![2]),
            failed(HandshakeError::BadMode(2)),
        );
        // Its connection id changed: the transcript differs, so the confirmations do too.
        v3_seed(c, &format!("{role}_changed_conn_id"), tampered(pw(), 8, vec![0x55]), |r| {
            r.failed == Some(HandshakeError::WrongPassword) && !r.done
        });
        // Its preamble rewritten to [2, 2]: we speak version 2 to a version 3 remote.
        v3_seed(c, &format!("{role}_downgraded"), tampered(pw(), 6, vec![2]), |r| {
            !r.done && r.failed.is_some() && !r.remote_done && r.remote_failed.is_some()
        });
        // Its confirmation, then the tag of its sealed features, changed after the hellos.
        let after_hellos = |ours: Option<Vec<u8>>, at: u16, bytes: Vec<u8>| {
            let mut steps = vec![Step3::Deliver { max: 0 }, Step3::Overwrite { at, bytes }];
            steps.extend(frames.clone());
            input(we_dial, ours.clone(), ours, steps)
        };
        let flipped = vec![confirmation[0] ^ 1];
        v3_seed(
            c,
            &format!("{role}_tampered_confirmation"),
            after_hellos(pw(), 0, flipped.clone()),
            failed(HandshakeError::WrongPassword),
        );
        v3_seed(
            c,
            &format!("{role}_tampered_confirmation_unauthenticated"),
            after_hellos(None, 0, flipped),
            failed(HandshakeError::ConfirmationFailed),
        );
        v3_seed(
            c,
            &format!("{role}_tampered_features"),
            after_hellos(pw(), tag_at, vec![!0; 3]),
            failed(HandshakeError::Crypto(CryptoError::Open { seq: 0 })),
        );
        // A changed plaintext byte goes unnoticed by the stand-in (real AEAD would notice):
        // its features then name another connection id than its hello.
        v3_seed(
            c,
            &format!("{role}_features_conn_id"),
            after_hellos(pw(), last_digit as u16, vec![other_digit]),
            failed(HandshakeError::ConnIdMismatch { hello: conn_id, features: other_id }),
        );
        // The stand-in notices no change to the plaintext (real AEAD would): a changed gob
        // header byte reaches the features decoder, which refuses it.
        v3_seed(
            c,
            &format!("{role}_changed_features_plaintext"),
            after_hellos(pw(), 32 + 4, vec![0x7f]),
            |r| matches!(r.failed, Some(HandshakeError::Features(_))),
        );
        // Stalls: the remote's preamble alone; its hello, then nothing.
        v3_seed(
            c,
            &format!("{role}_hello_timeout"),
            input(we_dial, pw(), pw(), vec![Step3::Deliver { max: 7 }, Step3::Advance { ms: 10_000 }]),
            failed(HandshakeError::Timeout(Stage::Hello)),
        );
        v3_seed(
            c,
            &format!("{role}_confirmation_timeout"),
            input(we_dial, None, None, vec![Step3::Deliver { max: 48 }, Step3::Advance { ms: 10_000 }]),
            failed(HandshakeError::Timeout(Stage::Confirmation)),
        );
        v3_seed(
            c,
            &format!("{role}_dropped_hello"),
            input(
                we_dial,
                pw(),
                pw(),
                vec![
                    Step3::Deliver { max: 7 },
                    Step3::Drop { max: 41 },
                    Step3::Deliver { max: 0 },
                    Step3::Advance { ms: 10_000 },
                ],
            ),
            failed(HandshakeError::Timeout(Stage::Hello)),
        );
        v3_seed(
            c,
            &format!("{role}_preamble_timeout"),
            input(we_dial, pw(), pw(), vec![Step3::Advance { ms: 10_000 }]),
            failed(HandshakeError::Timeout(Stage::Preamble)),
        );
        v3_seed(
            c,
            &format!("{role}_closed"),
            input(we_dial, None, None, vec![Step3::Deliver { max: 7 }, Step3::Close]),
            failed(HandshakeError::Closed(Stage::Hello)),
        );
        // The remote's hello again where its confirmation is due.
        v3_seed(
            c,
            &format!("{role}_replayed_hello"),
            input(we_dial, pw(), pw(), vec![Step3::Deliver { max: 48 }, Step3::Repeat { from: 7, len: 41 }]),
            failed(HandshakeError::WrongPassword),
        );
        // Our own preamble, hello and confirmation reflected back: symmetric SPAKE2 must
        // not confirm our own messages (the two confirmations have their own labels).
        v3_seed(
            c,
            &format!("{role}_reflected"),
            input(
                we_dial,
                pw(),
                pw(),
                vec![
                    Step3::Reflect { from: 0, len: 7 },
                    Step3::Reflect { from: 7, len: 41 },
                    Step3::Reflect { from: 48, len: 32 },
                ],
            ),
            failed(HandshakeError::WrongPassword),
        );
        // After the handshake: the remote's features are frame 0 and a heartbeat frame 1,
        // so frame 2 is due.
        let after = |extra: Vec<Step3>| {
            let mut s =
                vec![Step3::Deliver { max: 0 }, Step3::Deliver { max: 0 }, Step3::Frame(heartbeat.clone())];
            s.extend(extra);
            s.push(Step3::Deliver { max: 0 });
            input(we_dial, pw(), pw(), s)
        };
        v3_seed(c, &format!("{role}_replay"), after(vec![Step3::Replay]), open_failed(1, 2));
        v3_seed(
            c,
            &format!("{role}_reorder"),
            after(vec![Step3::Skip, Step3::Frame(broadcast.clone())]),
            open_failed(1, 2),
        );
        // Version 3's tag follows the record: the inner prefix (4 bytes), the message.
        let tag = broadcast.len() as u16 + 4;
        v3_seed(
            c,
            &format!("{role}_bad_tag"),
            after(vec![Step3::Flip { body: broadcast.clone(), at: tag, mask: 0x80 }]),
            open_failed(1, 2),
        );
        v3_seed(
            c,
            &format!("{role}_bad_seq"),
            after(vec![Step3::Flip { body: broadcast.clone(), at: tag + 15, mask: 1 }]),
            open_failed(1, 2),
        );
        v3_seed(
            c,
            &format!("{role}_changed_body"),
            // The message's byte, past its inner prefix.
            after(vec![Step3::Flip { body: heartbeat.clone(), at: 4, mask: 1 }]),
            |r| r.done && r.frames == 2 && r.stopped.is_none(),
        );

        // Raw bytes as the remote: a preamble and a hello of our choosing.
        let raw_hello = |ours: Option<Vec<u8>>, mode: u8, element: &[u8; 32], rest: &[u8]| {
            raw(we_dial, ours, [&preamble[..], &hello(mode, element), rest].concat())
        };
        v3_seed(
            c,
            &format!("{role}_raw_identity"),
            raw_hello(pw(), 1, &identity, &[]),
            failed(HandshakeError::Pake(PakeError::SmallOrder)),
        );
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        v3_seed(
            c,
            &format!("{role}_raw_order_two"),
            raw_hello(pw(), 1, &order_two, &[]),
            failed(HandshakeError::Pake(PakeError::SmallOrder)),
        );
        let mixed = (ED25519_BASEPOINT_POINT + EIGHT_TORSION[1]).compress().to_bytes();
        v3_seed(
            c,
            &format!("{role}_raw_mixed_order"),
            raw_hello(pw(), 1, &mixed, &[]),
            failed(HandshakeError::Pake(PakeError::MixedOrder)),
        );
        // y = 1 + p: the identity's y, not reduced.
        let mut unreduced = [0xffu8; 32];
        unreduced[0] = 0xee;
        unreduced[31] = 0x7f;
        v3_seed(
            c,
            &format!("{role}_raw_non_canonical"),
            raw_hello(pw(), 1, &unreduced, &[]),
            failed(HandshakeError::Pake(PakeError::NonCanonical)),
        );
        let not_a_point = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .expect("a y with no x");
        v3_seed(
            c,
            &format!("{role}_raw_not_a_point"),
            raw_hello(pw(), 1, &not_a_point, &[]),
            failed(HandshakeError::Pake(PakeError::NotAPoint)),
        );
        v3_seed(
            c,
            &format!("{role}_raw_zero_key"),
            raw_hello(None, 0, &[0; 32], &[]),
            failed(HandshakeError::Pake(PakeError::LowOrderKey)),
        );
        v3_seed(
            c,
            &format!("{role}_raw_bad_mode"),
            raw_hello(pw(), 9, &valid, &[]),
            failed(HandshakeError::BadMode(9)),
        );
        v3_seed(
            c,
            &format!("{role}_raw_mode_mismatch"),
            raw_hello(pw(), 0, &valid, &[]),
            failed(HandshakeError::PasswordMismatch { we_have: true, they_have: false }),
        );
        v3_seed(
            c,
            &format!("{role}_raw_confirmation"),
            raw_hello(pw(), 1, &valid, &[0x11; 32]),
            failed(HandshakeError::WrongPassword),
        );
        v3_seed(
            c,
            &format!("{role}_raw_confirmation_unauthenticated"),
            raw_hello(None, 0, &valid, &[0x11; 32]),
            failed(HandshakeError::ConfirmationFailed),
        );
        v3_seed(c, &format!("{role}_raw_v1"), raw(we_dial, pw(), b"weave\x01\x01".to_vec()), |r| {
            matches!(r.failed, Some(HandshakeError::Header(HeaderError::Incompatible { .. })))
        });
    }

    // The version 3 vectors' recorded flights, from the remote's side, to our side in the
    // other role: our hello is the one recorded (the same seed), so with a password the
    // recorded confirmation checks, and the features, really sealed, do not open under
    // this build's stand-in; without one the stand-in X25519 key differs from the
    // recorded one, so the confirmation does not check. Flights generated by this build
    // finish. Each once as the recorded reads, once in raw mode.
    let (cases, recorded) = v3_cases(here);
    for case in cases {
        for (we_dial, role) in [(true, "dial"), (false, "listen")] {
            let theirs: Vec<Vec<u8>> =
                case.flights.iter().filter(|(fd, _)| *fd != we_dial).map(|(_, f)| f.clone()).collect();
            let pw = case.password.clone();
            let expected = match (recorded, &pw) {
                (true, Some(_)) => Some(HandshakeError::Crypto(CryptoError::Open { seq: 0 })),
                (true, None) => Some(HandshakeError::ConfirmationFailed),
                (false, _) => None,
            };
            let check = |r: &hs::Report| r.failed == expected && r.done == expected.is_none();
            let steps = theirs.iter().cloned().map(Step3::Raw).collect();
            v3_seed(
                c,
                &format!("vector_{}_{role}", case.name),
                input(we_dial, pw.clone(), pw.clone(), steps),
                check,
            );
            let mut raw = raw(we_dial, pw.clone(), theirs.concat());
            raw.theirs = pw;
            v3_seed(c, &format!("vector_{}_{role}_raw", case.name), raw, check);
        }
    }
}

fn main() {
    if !cfg!(fuzzing) {
        eprintln!("seeds: build with --cfg fuzzing (cargo fuzz build), as the targets are");
        std::process::exit(2);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = std::env::args_os().nth(1).map_or_else(|| here.join("corpus"), PathBuf::from);
    let v = Vectors(here.join("../mesh-proto/tests/vectors/weave-v2"));
    let verbose = std::env::var_os("SEEDS_VERBOSE").is_some_and(|v| v == "1");
    let mut c = Corpus { root, written: BTreeMap::new(), verbose };
    raw_seeds(&v, &mut c);
    handshake_seeds(&v, &mut c);
    v3_seeds(here, &v, &mut c);
    node_seeds(&v, &mut c);
    let summary: Vec<String> = c.written.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!("seeds written to {}: {}", c.root.display(), summary.join(", "));
}
