//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` (or the
//! directory given as the only argument): the Go vectors for the parsers, and for the
//! structured targets inputs built from their own types. Each structured seed is
//! encoded, decoded again and run through its target's harness, and the writer fails
//! unless the seed does what it was written for (a finished handshake, a wrong password,
//! a replay refused, a connection closed on a decryption error, ...).
//!
//! `SEEDS_VERBOSE=1` prints each structured seed's report. It must be built as the
//! targets are (`--cfg fuzzing`, which `run.sh` does through
//! `cargo fuzz build`): the sealed frames in the seeds use the stand-in for the
//! cryptography of fuzzing builds.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mesh_fuzz::frame;
use mesh_fuzz::handshake::{self as hs, Password, Step, Stopped};
use mesh_fuzz::node::{self, Op};
use mesh_proto::counter::Counts;
use mesh_proto::fuzzing::crypto::CryptoError;
use mesh_proto::fuzzing::handshake::{HandshakeError, Stage};
use mesh_proto::wire::message::Message;
use mesh_proto::wire::{features, topology};
use mesh_proto::{CloseReason, PeerName};
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

fn raw_seeds(v: &Vectors, c: &mut Corpus) {
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
    let good: Vec<Vec<u8>> =
        ["gossip", "broadcast_local_origin", "broadcast_relayed", "unicast", "gossip_counter_empty_map"]
            .iter()
            .flat_map(|k| gossip[*k].clone())
            .chain([vec![0], topology_body])
            .collect();
    let hello = |conn: u8, name: u64, password: Password| Op::Hello {
        conn,
        name,
        uid: name * 1000 + 1,
        password,
        key: 0x30 + name as u8,
    };
    let frames = |conn: u8, bodies: &[Vec<u8>]| -> Vec<Op> {
        let mut ops: Vec<Op> = bodies.iter().map(|b| Op::Frame { conn, body: b.clone() }).collect();
        ops.push(Op::Deliver { conn, max: 0 });
        ops
    };
    let session = |encrypted: bool, pw: Password, extra: Vec<Op>| {
        let mut ops =
            vec![Op::Accept { ip: 2, port: 50_000 }, hello(0, 0x0a, pw), Op::Deliver { conn: 0, max: 0 }];
        ops.extend(extra);
        node::Input { encrypted, discovery: true, conn_limit: 7, ops }
    };
    let only_close =
        |reason: CloseReason| move |r: &node::Report| r.established == 1 && r.closes == [reason.clone()];

    for (encrypted, pw, label) in [(false, Password::None, "plain"), (true, Password::Pw, "pw")] {
        // Gossip, broadcasts (ours and relayed), a unicast for someone else, a heartbeat and
        // a topology update; then the timers, writes and the application's calls.
        let mut extra = frames(0, &good);
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
        extra.extend(frames(0, &[vec![0]]));
        node_seed(c, &format!("{label}_session"), session(encrypted, pw, extra), |r| {
            // The peers the topology named are dialled and never answer: those dials are
            // given up at the connect timeout, and nothing else closes.
            let only_dials = r.closes.iter().all(|c| matches!(c, CloseReason::DialTimeout(_)));
            r.established == 1 && only_dials && r.checked >= 5 && r.counts == merged
        });
        // A recorded Go dialer's stream as Go's reads cut it, with no honest remote.
        let capture = v.load("capture-unencrypted.json");
        if !encrypted {
            let mut ops = vec![Op::Accept { ip: 3, port: 40_000 }];
            ops.extend(capture_chunks(&capture, "D2L").into_iter().map(|bytes| Op::Data { conn: 0, bytes }));
            ops.push(Op::Advance { ms: 2_000 });
            node_seed(
                c,
                "go_dialer_capture",
                node::Input { encrypted, discovery: true, conn_limit: 7, ops },
                |r| r.established == 1 && r.closes.is_empty(),
            );
            let mut ops = vec![
                Op::Initiate { replace: false, peers: vec![b"10.9.0.10:6783".to_vec()] },
                Op::Dialed { conn: 0 },
            ];
            ops.extend(capture_chunks(&capture, "L2D").into_iter().map(|bytes| Op::Data { conn: 0, bytes }));
            node_seed(
                c,
                "go_listener_capture",
                node::Input { encrypted, discovery: true, conn_limit: 7, ops },
                |r| r.established == 1 && r.closes.is_empty(),
            );
        }
        // We dial; the remote listens.
        let ops = vec![
            Op::Initiate { replace: true, peers: vec![b"10.9.0.11:6783".to_vec()] },
            Op::Dialed { conn: 0 },
            hello(0, 0x0b, pw),
            Op::Deliver { conn: 0, max: 0 },
            Op::Frame { conn: 0, body: vec![0] },
            Op::Deliver { conn: 0, max: 0 },
            Op::Forget { peers: vec![b"10.9.0.11:6783".to_vec()] },
        ];
        node_seed(
            c,
            &format!("{label}_dialled"),
            node::Input { encrypted, discovery: false, conn_limit: 7, ops },
            |r| r.established == 1 && r.closes.is_empty(),
        );
        // Two peers through us: a broadcast from one is relayed to the other.
        let mut ops = vec![
            Op::Accept { ip: 2, port: 50_000 },
            Op::Accept { ip: 3, port: 50_001 },
            hello(0, 0x0a, pw),
            hello(1, 0x0b, pw),
            Op::Deliver { conn: 0, max: 0 },
            Op::Deliver { conn: 1, max: 0 },
        ];
        ops.extend(frames(0, &gossip["broadcast_local_origin"]));
        ops.extend([Op::Advance { ms: 1_200 }, Op::Unicast { dst: 0x0b, bytes: b"x".to_vec() }]);
        node_seed(
            c,
            &format!("{label}_two_peers"),
            node::Input { encrypted, discovery: true, conn_limit: 7, ops },
            |r| r.established == 2 && r.closes.is_empty() && r.checked >= 4,
        );
        // A second connection from the same peer: the tie-break closes one of them.
        let ops = vec![
            Op::Accept { ip: 2, port: 50_000 },
            Op::Accept { ip: 2, port: 50_001 },
            hello(0, 0x0a, pw),
            Op::Hello { conn: 1, name: 0x0a, uid: 0x0a * 1000 + 1, password: pw, key: 0x55 },
            Op::Deliver { conn: 0, max: 0 },
            Op::Deliver { conn: 1, max: 0 },
        ];
        node_seed(
            c,
            &format!("{label}_duplicate"),
            node::Input { encrypted, discovery: true, conn_limit: 7, ops },
            |r| r.closes.iter().any(|c| matches!(c, CloseReason::Duplicate(n) if *n == a)),
        );
        // A remote that sends nothing after its handshake.
        node_seed(
            c,
            &format!("{label}_silent"),
            session(encrypted, pw, vec![Op::Advance { ms: 61_000 }]),
            |r| r.established == 1 && r.closes.len() == 1,
        );
        // Gossip the counter cannot take closes the connection; a relay-only channel and
        // an envelope from the all-zero name do not.
        for (case, refused) in [
            ("gossip_empty_payload", true),
            ("gossip_three_chunks", true),
            ("gossip_src_zero_name", false),
            ("broadcast_long_channel_big_payload", false),
        ] {
            node_seed(c, &format!("{label}_{case}"), session(encrypted, pw, frames(0, &gossip[case])), |r| {
                let closed =
                    matches!(&r.closes[..], [CloseReason::Gossiper { channel, .. }] if channel == "default");
                r.established == 1 && if refused { closed } else { r.closes.is_empty() }
            });
        }
    }

    // Encrypted failures: each closes the one connection, for the reason it was written for.
    let pw = Password::Pw;
    node_seed(c, "wrong_password", session(true, Password::Other, vec![]), |r| {
        r.established == 0 && r.closes == [CloseReason::Handshake(HandshakeError::WrongPassword)]
    });
    node_seed(c, "remote_plain", session(true, Password::None, vec![]), |r| {
        r.closes
            == [CloseReason::Handshake(HandshakeError::EncryptionMismatch {
                we_encrypt: true,
                they_encrypt: false,
            })]
    });
    node_seed(c, "remote_encrypts", session(false, pw, vec![]), |r| {
        r.closes
            == [CloseReason::Handshake(HandshakeError::EncryptionMismatch {
                we_encrypt: false,
                they_encrypt: true,
            })]
    });
    // The remote's features are frame 0 and a heartbeat frame 1, so frame 2 is due.
    let due = CloseReason::Crypto(CryptoError::Open { seq: 2 });
    let after_heartbeat = |extra: Vec<Op>| {
        let mut ops = frames(0, &[vec![0]]);
        ops.extend(extra);
        ops.push(Op::Deliver { conn: 0, max: 0 });
        session(true, pw, ops)
    };
    node_seed(c, "replayed_frame", after_heartbeat(vec![Op::Replay { conn: 0 }]), only_close(due.clone()));
    node_seed(
        c,
        "reordered_frame",
        after_heartbeat(vec![Op::Skip { conn: 0 }, Op::Frame { conn: 0, body: vec![0] }]),
        only_close(due.clone()),
    );
    node_seed(
        c,
        "tampered_tag",
        after_heartbeat(vec![Op::Flip { conn: 0, body: gossip["gossip"][0].clone(), at: 0, mask: 0x40 }]),
        only_close(due.clone()),
    );
    node_seed(
        c,
        "forged_frame",
        after_heartbeat(vec![Op::Data { conn: 0, bytes: [&[0, 0, 0, 17][..], &[0; 17]].concat() }]),
        only_close(due),
    );
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
    node_seeds(&v, &mut c);
    let summary: Vec<String> = c.written.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!("seeds written to {}: {}", c.root.display(), summary.join(", "));
}
