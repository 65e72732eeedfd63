//! Byte-exact tests against the vectors produced by the real Go library
//! (`tests/vectors/weave-v2`, copied from the project's shared vectors).

use bytes::Bytes;
use mesh_proto::Instant;
use mesh_proto::fuzzing::crypto::{self, CryptoError, KeyPair, Session};
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, HandshakeError, Progress, Role};
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::features::{self, FeaturesError, LocalFeatures, RemoteFeatures};
use mesh_proto::wire::frame::{self, FrameDecoder};
use mesh_proto::wire::gob::{self, Scalar, Stream};
use mesh_proto::wire::header::{self, Preamble};
use mesh_proto::wire::message::{self, GossipKind, GossipMessage, Message};
use mesh_proto::wire::topology::{self, ConnectionSummary, PeerRecord, PeerSummary};
use mesh_proto::{PeerName, PeerNameError, TextReason};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/weave-v2/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn name(v: &Value) -> PeerName {
    PeerName::parse(v.as_str().unwrap()).unwrap()
}

fn u64v(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

// ----------------------------------------------------------------------------- header

#[test]
fn header_every_negotiation_case() {
    let v = load("header.json");
    assert_eq!(hx(&v["go_peer_header"]), Preamble { min: 1, max: 2 }.encode());
    let cases = v["negotiation"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    let range = |r: &Value| Preamble { min: r[0].as_u64().unwrap() as u8, max: r[1].as_u64().unwrap() as u8 };
    for c in cases {
        let (a, b) = (range(&c["a_range"]), range(&c["b_range"]));
        let (a_sends, b_sends) = (hx(&c["a_sends"]), hx(&c["b_sends"]));
        assert_eq!(a.encode().as_slice(), a_sends.as_slice());
        // One case corrupts B's magic on the wire: B still encodes its range normally.
        if b.encode().as_slice() != b_sends.as_slice() {
            assert_eq!(&b_sends[5..], &b.encode()[5..]);
        }
        for (ours, theirs_bytes, expect) in [(a, &b_sends, &c["a_result"]), (b, &a_sends, &c["b_result"])] {
            let got = Preamble::decode(theirs_bytes.as_slice().try_into().unwrap())
                .and_then(|theirs| header::negotiate(ours, theirs));
            match expect {
                Value::Number(n) => assert_eq!(got, Ok(n.as_u64().unwrap() as u8), "{c}"),
                Value::String(s) => {
                    let err = got.expect_err(s);
                    assert_eq!(format!("error: {err}"), *s, "{c}");
                }
                _ => unreachable!(),
            }
        }
    }
    // Our own range never reaches version 0 or 1 with any of these peers.
    for c in cases {
        for r in [&c["a_range"], &c["b_range"]] {
            let theirs = range(r);
            if let Ok(v) = header::negotiate_supported(Preamble::OURS, theirs) {
                // Version 3 only with a range that offers it (no Go peer's does).
                assert_eq!(v, if theirs.max >= 3 { 3 } else { 2 }, "{theirs:?}");
            }
            if let Ok(v) = header::negotiate_supported(Preamble::V2_ONLY, theirs) {
                assert_eq!(v, 2);
            }
        }
    }
    assert_eq!(hx(&v["v2_encryption_flag"]["unencrypted"]), [header::FLAG_PLAINTEXT]);
}

// ----------------------------------------------------------------------------- peer names

#[test]
fn peername_from_string_matches_go_except_documented_quirks() {
    let v = load("peername.json");
    for c in v["from_string"].as_array().unwrap() {
        let input = c["input"].as_str().unwrap();
        let ours = PeerName::parse(input);
        let quirk = input.starts_with([' ', '\t']) || input.contains(": ") || input.contains('\0');
        if c["ok"].as_bool().unwrap() && quirk {
            // Go's leniency: we reject it with a precise reason.
            match ours {
                Err(PeerNameError::Text { reason: TextReason::Whitespace | TextReason::Nul, .. }) => {}
                other => panic!("{input:?}: expected a whitespace/NUL rejection, got {other:?}"),
            }
        } else if c["ok"].as_bool().unwrap() {
            let n = ours.unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(n.to_u64(), u64v(&c["uint64"]), "{input:?}");
            assert_eq!(n.to_bytes().as_slice(), hx(&c["bytes"]).as_slice());
            assert_eq!(n.to_string(), c["string"].as_str().unwrap());
        } else {
            assert!(ours.is_err(), "{input:?} should be rejected");
        }
    }
}

#[test]
fn peername_from_bytes_six_exactly() {
    let v = load("peername.json");
    for c in v["from_bytes"].as_array().unwrap() {
        let bytes = hx(&c["bytes"]);
        match PeerName::from_bytes(&bytes) {
            Ok(n) => {
                assert_eq!(bytes.len(), 6);
                assert_eq!(n.to_u64(), u64v(&c["uint64"]));
                assert_eq!(n.to_string(), c["string"].as_str().unwrap());
                assert_eq!(n.to_bytes().as_slice(), hx(&c["bytes_again"]).as_slice());
            }
            Err(e) => assert_eq!(e, PeerNameError::ByteLength(bytes.len())),
        }
    }
    for c in v["gob_top_level_value"].as_array().unwrap() {
        let mut out = Vec::new();
        gob::put_top_uint(&mut out, name(&c["name"]).to_u64());
        assert_eq!(out, hx(&c["gob_top_level"]));
        let mut s = Stream::new(&out);
        assert_eq!(s.next_value().unwrap().unwrap().uint().unwrap(), name(&c["name"]).to_u64());
    }
}

// ----------------------------------------------------------------------------- gob

#[test]
fn gob_primitives() {
    let v = load("gob-primitives.json");
    for c in v["uint"].as_array().unwrap() {
        let x = u64v(&c["value"]);
        let mut enc = Vec::new();
        gob::put_uint(&mut enc, x);
        assert_eq!(enc, hx(&c["encoding"]));
        let mut top = Vec::new();
        gob::put_top_uint(&mut top, x);
        assert_eq!(top, hx(&c["top_level_message"]));
        assert_eq!(Stream::new(&top).next_value().unwrap().unwrap().uint().unwrap(), x);
    }
    for c in v["int"].as_array().unwrap() {
        let x = c["value"].as_i64().unwrap();
        let mut enc = Vec::new();
        gob::put_int(&mut enc, x);
        assert_eq!(enc, hx(&c["encoding"]));
        let mut top = Vec::new();
        gob::put_top_int(&mut top, x);
        assert_eq!(top, hx(&c["top_level_message"]));
        assert_eq!(Stream::new(&top).next_value().unwrap().unwrap().int().unwrap(), x);
    }
    for c in v["bool"].as_array().unwrap() {
        let x = c["value"].as_bool().unwrap();
        let mut top = Vec::new();
        gob::put_message(&mut top, |o| {
            gob::put_int(o, gob::BOOL);
            o.push(0);
            gob::put_bool(o, x);
        });
        assert_eq!(top, hx(&c["top_level_message"]));
        let got = Stream::new(&top).next_value().unwrap().unwrap().decode(|f| f.bool()).unwrap();
        assert_eq!(got, x);
    }
    for (kind, put, id) in [
        ("string", gob::put_top_string as fn(&mut Vec<u8>, &[u8]), gob::STRING),
        ("bytes", gob::put_top_bytes, gob::BYTES),
    ] {
        for c in v[kind].as_array().unwrap() {
            let x: Vec<u8> = match &c["value"] {
                Value::String(s) if kind == "string" => s.as_bytes().to_vec(),
                other => hex::decode(other.as_str().unwrap()).unwrap(),
            };
            let mut top = Vec::new();
            put(&mut top, &x);
            assert_eq!(top, hx(&c["top_level_message"]), "{kind} {c}");
            let mut stream = Stream::new(&top);
            let val = stream.next_value().unwrap().unwrap();
            assert_eq!(val.type_id(), id);
            assert_eq!(
                val.decode(|f| f.scalar()).unwrap(),
                if id == gob::STRING { Scalar::String(&x) } else { Scalar::Bytes(&x) }
            );
        }
    }
    let ids = &v["type_ids"];
    for (k, id) in [
        ("bool", gob::BOOL),
        ("int", gob::INT),
        ("uint", gob::UINT),
        ("float", gob::FLOAT),
        ("bytes", gob::BYTES),
        ("string", gob::STRING),
        ("first_user_type", gob::FIRST_USER_ID),
    ] {
        assert_eq!(ids[k].as_i64().unwrap(), id, "{k}");
    }
}

// ----------------------------------------------------------------------------- features

fn local_features(inputs: &Value) -> LocalFeatures {
    LocalFeatures {
        name: name(&inputs["name"]),
        nickname: Bytes::copy_from_slice(inputs["nickname"].as_str().unwrap().as_bytes()),
        uid: u64v(&inputs["uid"]),
        short_id: u64v(&inputs["short_id"]) as u16,
        conn_id: u64v(&inputs["conn_id"]),
        trusts_remote: inputs["trust_remote"].as_bool().unwrap(),
    }
}

#[test]
fn features_encode_and_decode() {
    let v = load("features.json");
    assert_eq!(v["map_type_id"].as_i64().unwrap(), features::FEATURES_MAP_TYPE_ID);
    for p in v["peers"].as_array().unwrap() {
        let mut gob_bytes = Vec::new();
        features::encode(&mut gob_bytes, &local_features(&p["inputs"]));
        assert_eq!(gob_bytes, hx(&p["gob_canonical"]));
        let msgs: Vec<u8> = p["gob_canonical_messages"].as_array().unwrap().iter().flat_map(hx).collect();
        assert_eq!(gob_bytes, msgs);
        let mut frame = Vec::new();
        frame::put_frame(&mut frame, &gob_bytes, mesh_proto::config::MAX_FRAME_LEN).unwrap();
        assert_eq!(frame, hx(&p["v2_frame_unencrypted"]));

        let parsed = &p["as_parsed_by_go_receiver"];
        let mut samples = vec![gob_bytes.clone()];
        if let Some(s) = p.get("gob_go_sample_random_order") {
            samples.push(hx(s));
        }
        for sample in samples {
            let r = features::decode(&sample).unwrap();
            assert_eq!(r.name, name(&parsed["name"]));
            assert_eq!(&r.nickname[..], parsed["nickname"].as_str().unwrap().as_bytes());
            assert_eq!(r.uid, u64v(&parsed["uid"]));
            assert_eq!(r.short_id.is_some(), parsed["has_short_id"].as_bool().unwrap());
            assert_eq!(r.short_id, Some(u64v(&parsed["short_id"]) as u16));
            assert_eq!(r.trusts_us, parsed["trusted_by_remote"].as_bool().unwrap());
            assert_eq!(
                u64v(&parsed["local_conn_id"]) ^ r.conn_id,
                u64v(&parsed["combined_conn_uid_after_xor"])
            );
            // The map as received matches the map Go built.
            let entries = features::decode_map(&sample).unwrap();
            let obj = p["features"].as_object().unwrap();
            assert_eq!(entries.len(), obj.len());
            for (k, val) in entries {
                assert_eq!(obj[std::str::from_utf8(k).unwrap()].as_str().unwrap().as_bytes(), val);
            }
        }
    }
}

#[test]
fn features_parse_cases_match_go_verdicts() {
    type Map = Vec<(String, String)>;
    let v = load("features.json");
    let base: Vec<(String, String)> = v["peers"][0]["features"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let edited = |edit: &dyn Fn(&mut Map)| {
        let mut m = base.clone();
        edit(&mut m);
        let mut out = Vec::new();
        let entries: Vec<(&[u8], &[u8])> = m.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        features::encode_map(&mut out, &entries);
        features::decode(&out)
    };
    let set = |key: &'static str, val: &'static str| {
        move |m: &mut Vec<(String, String)>| {
            m.retain(|(k, _)| k != key);
            m.push((key.to_owned(), val.to_owned()));
        }
    };
    // The unedited map, as decoded (features_encode_and_decode checks it against Go).
    let unedited = edited(&|_| {}).unwrap();
    let cases = v["parse_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for c in cases {
        let case = c["case"].as_str().unwrap();
        let result = match case {
            "missing ConnID" => edited(&|m| m.retain(|(k, _)| k != "ConnID")),
            "missing ShortID and Trusted (optional keys)" => {
                edited(&|m| m.retain(|(k, _)| k != "ShortID" && k != "Trusted"))
            }
            "PeerNameFlavour=hash" => edited(&set("PeerNameFlavour", "hash")),
            "ShortID=4096 (13 bits)" => edited(&set("ShortID", "4096")),
            "ShortID=4095" => edited(&set("ShortID", "4095")),
            "Trusted=1" => edited(&set("Trusted", "1")),
            "Trusted=yes" => edited(&set("Trusted", "yes")),
            "UID=-1" => edited(&set("UID", "-1")),
            "Name=::a (short form)" => edited(&set("Name", "::a")),
            "Name=not-a-mac" => edited(&set("Name", "not-a-mac")),
            "extra unknown key X-Foo" => edited(&set("X-Foo", "bar")),
            other => panic!("unknown parse case {other}"),
        };
        let go = c["result"].as_str().unwrap();
        if go == "accepted" {
            let f = result.unwrap_or_else(|e| panic!("{case}: {e}"));
            let want = match case {
                "missing ShortID and Trusted (optional keys)" => {
                    RemoteFeatures { short_id: None, trusts_us: false, ..unedited.clone() }
                }
                "ShortID=4095" => RemoteFeatures { short_id: Some(4095), ..unedited.clone() },
                "Trusted=1" => RemoteFeatures { trusts_us: true, ..unedited.clone() },
                "Name=::a (short form)" => {
                    RemoteFeatures { name: PeerName::from_u64(0xa).unwrap(), ..unedited.clone() }
                }
                "extra unknown key X-Foo" => unedited.clone(),
                other => panic!("{other}: no expectation for a case Go accepts"),
            };
            assert_eq!(f, want, "{case}");
        } else {
            let err = result.expect_err(case);
            let number = |key, value: &str, max| FeaturesError::Number { key, value: value.into(), max };
            let want = match case {
                "missing ConnID" => FeaturesError::Missing("ConnID"),
                "PeerNameFlavour=hash" => FeaturesError::Flavour("hash".into()),
                "ShortID=4096 (13 bits)" => number("ShortID", "4096", 4095),
                "Trusted=yes" => FeaturesError::Trusted("yes".into()),
                "UID=-1" => number("UID", "-1", u64::MAX),
                "Name=not-a-mac" => FeaturesError::Name(PeerNameError::Text {
                    input: "not-a-mac".into(),
                    reason: TextReason::BadCharacter('n'),
                }),
                other => panic!("{other}: no expectation for a case Go refuses"),
            };
            assert_eq!(err, want, "{case}: Go said {go:?}");
        }
    }
}

#[test]
fn features_v1_map_decodes_with_the_same_decoder() {
    let v = load("features.json");
    let f = features::decode(&hx(&v["v1"]["gob_unencrypted"])).unwrap();
    assert_eq!(f.name.to_string(), "00:00:00:00:00:0a");
    assert_eq!(f.short_id, None);
}

// ----------------------------------------------------------------------------- crypto

#[test]
fn crypto_keys_and_sealed_frames() {
    let v = load("crypto.json");
    let a = KeyPair::from_secret(hx(&v["a_private"]).try_into().unwrap());
    let b = KeyPair::from_secret(hx(&v["b_private"]).try_into().unwrap());
    assert_eq!(a.public().as_slice(), hx(&v["a_public"]).as_slice());
    assert_eq!(b.public().as_slice(), hx(&v["b_public"]).as_slice());
    let raw: [u8; 32] = hx(&v["x25519_raw_shared"]).try_into().unwrap();
    assert_eq!(*crypto::hsalsa_beforenm(&raw), hx(&v["shared_key"]).as_slice());
    let shared_ab = a.shared_key(&b.public()).unwrap();
    let shared_ba = b.shared_key(&a.public()).unwrap();
    assert_eq!(*shared_ab, hx(&v["shared_key"]).as_slice());
    assert_eq!(shared_ab, shared_ba);
    for sk in v["session_keys"].as_array().unwrap() {
        let key = crypto::session_key(&shared_ab, sk["password"].as_str().unwrap().as_bytes());
        assert_eq!(*key, hx(&sk["session_key"]).as_slice());
    }
    let key = crypto::session_key(&shared_ab, v["frames_use_password"].as_str().unwrap().as_bytes());
    let mut a_sess = Session::new(&key, true);
    let mut b_sess = Session::new(&key, false);
    for (frames, sender, receiver, from_dialer) in [
        (&v["a_to_b_frames"], &mut a_sess.sealer, &mut b_sess.opener, true),
        (&v["b_to_a_frames"], &mut b_sess.sealer, &mut a_sess.opener, false),
    ] {
        for f in frames.as_array().unwrap() {
            let seq = u64v(&f["seq"]);
            assert_eq!(crypto::nonce(from_dialer, seq).as_slice(), hx(&f["nonce"]).as_slice());
            let plain = hx(&f["plaintext"]);
            let sealed = sender.seal(&plain);
            assert_eq!(sealed, hx(&f["sealed"]), "seq {seq}");
            let mut fr = Vec::new();
            frame::put_frame(&mut fr, &sealed, mesh_proto::config::MAX_FRAME_LEN).unwrap();
            assert_eq!(fr, hx(&f["frame"]));
            assert_eq!(receiver.open(&sealed).unwrap(), plain);
        }
    }
    let zero = &v["all_zero_peer_public_key"];
    assert_eq!(*crypto::hsalsa_beforenm(&[0; 32]), hx(&zero["shared_key"]).as_slice());
    let zero_shared: [u8; 32] = hx(&zero["shared_key"]).try_into().unwrap();
    assert_eq!(*crypto::session_key(&zero_shared, b"s3cret"), hx(&zero["session_key_s3cret"]).as_slice());
    // Go accepts that key; we refuse it.
    assert_eq!(a.shared_key(&[0; 32]), Err(CryptoError::LowOrderKey));
}

/// The Go peer in crypto.json: `a` is alpha (dialer), `b` is bravo (listener).
fn vector_handshake(side: &str, password: &str, now: Instant) -> Handshake {
    let f = load("features.json");
    let c = load("crypto.json");
    let idx = if side == "a" { 0 } else { 1 };
    let inputs = &f["peers"][idx]["inputs"];
    let local = local_features(inputs);
    let config = HandshakeConfig {
        role: if side == "a" { Role::Dialer } else { Role::Listener },
        name: local.name,
        nickname: local.nickname.clone(),
        uid: local.uid,
        short_id: local.short_id,
        trusts_remote: local.trusts_remote,
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
        versions: Preamble { min: 1, max: 2 },
    };
    let key = KeyPair::from_secret(hx(&c[format!("{side}_private")]).try_into().unwrap());
    Handshake::with_parts(config, Some(key), local.conn_id, now)
}

#[test]
fn handshake_reproduces_go_streams_byte_for_byte() {
    let c = load("crypto.json");
    for (side, other, frames_out, frames_in) in
        [("a", "b", "a_to_b_frames", "b_to_a_frames"), ("b", "a", "b_to_a_frames", "a_to_b_frames")]
    {
        let now = Instant::from_secs(1);
        let mut h = vector_handshake(side, "s3cret", now);
        let full = hx(&c[format!("{side}_full_stream")]);
        let their_stream = hx(&c[format!("{other}_full_stream")]);
        let first = h.take_output().unwrap();
        // preamble (7) + flag (1) + key (32)
        assert_eq!(first, full[..40]);
        // Feed the remote's stream one byte at a time: the outcome must not depend on it.
        let mut sent = first;
        let mut outcome = None;
        for (i, byte) in their_stream.iter().enumerate() {
            match h.handle_data(std::slice::from_ref(byte), now).unwrap() {
                Progress::Pending => {}
                Progress::Done(o) => {
                    outcome = Some((o, i + 1));
                    break;
                }
            }
            if let Some(out) = h.take_output() {
                sent.extend(out);
            }
        }
        let (mut o, used) = outcome.expect("handshake completes");
        let our_features_frame = hx(&c[frames_out][0]["frame"]);
        assert_eq!(sent, [&full[..40], &our_features_frame[..]].concat());
        assert_eq!(o.version, 2);
        assert_eq!(
            o.remote.name.to_string(),
            if other == "a" { "00:00:00:00:00:0a" } else { "00:00:00:00:00:0b" }
        );
        // The remaining frames of the remote (heartbeat and a gossip message) follow.
        let mut rest = FrameDecoder::new(mesh_proto::config::MAX_FRAME_LEN);
        rest.push(&o.leftover);
        rest.push(&their_stream[used..]);
        let Some(Sealing::V2(session)) = o.session.as_mut() else { panic!("a version 2 session") };
        // Their frames 1 and 2: a heartbeat, then "hello from A" gossiped by A or
        // broadcast by B (README: crypto.json).
        let (kind, source, payload): (_, u64, &[u8]) = if other == "a" {
            (GossipKind::Gossip, 0x0a, b"hello from A")
        } else {
            (GossipKind::Broadcast, 0x0b, b"hello from B")
        };
        let gossip =
            GossipMessage { kind, channel: b"default", source: PeerName::from_u64(source).unwrap(), payload };
        for (expected, message) in
            c[frames_in].as_array().unwrap()[1..].iter().zip([Message::Heartbeat, Message::Gossip(gossip)])
        {
            let mut body = rest.next_frame().unwrap().unwrap();
            session.opener.open_in_place(&mut body).unwrap();
            assert_eq!(&body[16..], hx(&expected["plaintext"]).as_slice());
            assert_eq!(Message::decode(&body[16..]), Ok(message));
        }
        assert_eq!(rest.next_frame(), Ok(None));
        // And what we seal next continues the sequence as Go's frames 1 and 2.
        for expected in &c[frames_out].as_array().unwrap()[1..] {
            let sealed = session.sealer.seal(&hx(&expected["plaintext"]));
            assert_eq!(sealed, hx(&expected["sealed"]));
        }
    }
}

#[test]
fn handshake_wrong_password_against_go_stream() {
    let c = load("crypto.json");
    assert_eq!(c["wrong_password_on_first_frame"], "rejected: Unable to decrypt TCP msg");
    let now = Instant::from_secs(1);
    let mut h = vector_handshake("a", "not-s3cret", now);
    let err = h.handle_data(&hx(&c["b_full_stream"]), now).unwrap_err();
    assert_eq!(err, HandshakeError::WrongPassword);
}

// ----------------------------------------------------------------------------- gossip

fn check_gossip_msg(m: &Value) {
    let tag = m["tag"].as_u64().unwrap() as u8;
    let channel = m["channel"].as_str().unwrap().as_bytes();
    let src = name(&m["src"]);
    assert_eq!(src.to_u64(), u64v(&m["src_uint64"]));
    let payload = hx(&m["payload"]);
    let kind = match tag {
        4 => GossipKind::Gossip,
        6 => GossipKind::Broadcast,
        5 => GossipKind::Unicast { destination: name(&m["dst"]) },
        _ => unreachable!(),
    };
    let mut body = Vec::new();
    message::encode_gossip(&mut body, kind, channel, src, &payload);
    assert_eq!(body, hx(&m["protocol_msg"]));
    assert_eq!(&body[1..], hx(&m["envelope_gob"]).as_slice());
    let msgs: Vec<u8> = m["envelope_gob_messages"].as_array().unwrap().iter().flat_map(hx).collect();
    assert_eq!(&body[1..], msgs.as_slice());
    let mut fr = Vec::new();
    frame::put_frame(&mut fr, &body, mesh_proto::config::MAX_FRAME_LEN).unwrap();
    assert_eq!(fr, hx(&m["frame"]));
    let decoded = Message::decode(&body).unwrap();
    assert_eq!(decoded, Message::Gossip(GossipMessage { kind, channel, source: src, payload: &payload }));
}

#[test]
fn gossip_envelopes_and_frames() {
    let v = load("gossip.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for c in cases {
        if c["name"] == "heartbeat" {
            let mut body = Vec::new();
            Message::Heartbeat.encode(&mut body);
            assert_eq!(body, hx(&c["protocol_msg"]));
            let mut fr = Vec::new();
            frame::put_frame(&mut fr, &body, 16).unwrap();
            assert_eq!(fr, hx(&c["frame"]));
            assert_eq!(Message::decode(&body).unwrap(), Message::Heartbeat);
        } else if let Some(msgs) = c.get("msgs") {
            let mut all = Vec::new();
            for m in msgs.as_array().unwrap() {
                check_gossip_msg(m);
                all.extend(hx(&m["frame"]));
            }
            assert_eq!(all, hx(&c["frames_concatenated"]));
        } else {
            check_gossip_msg(&c["msg"]);
        }
    }
}

#[test]
fn counter_app_payloads() {
    let v = load("gossip.json");
    for case in ["one_entry", "two_entries", "empty"] {
        let c = &v["app_payloads"][case];
        let mut entries: Vec<(u64, i64)> = c["map"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (PeerName::parse(k).unwrap().to_u64(), n.as_i64().unwrap()))
            .collect();
        entries.sort();
        let mut out = Vec::new();
        gob::put_map_definition(&mut out, 69, gob::UINT, gob::INT);
        gob::put_message(&mut out, |o| {
            gob::put_int(o, 69);
            o.push(0);
            gob::put_uint(o, entries.len() as u64);
            for (k, n) in &entries {
                gob::put_uint(o, *k);
                gob::put_int(o, *n);
            }
        });
        assert_eq!(out, hx(&c["gob"]), "{case}");
        let mut decoded = Vec::new();
        Stream::new(&out)
            .next_value()
            .unwrap()
            .unwrap()
            .decode(|f| {
                f.map(|k, v| {
                    let Scalar::Uint(k) = k else { panic!() };
                    decoded.push((k, v.int()?));
                    Ok(())
                })
            })
            .unwrap();
        assert_eq!(decoded, entries);
    }
}

// ----------------------------------------------------------------------------- topology

fn records(peers: &Value) -> Vec<PeerRecord> {
    peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PeerRecord {
            summary: PeerSummary {
                name: name(&p["name"]),
                nickname: Bytes::copy_from_slice(p["nickname"].as_str().unwrap().as_bytes()),
                uid: u64v(&p["uid"]),
                version: u64v(&p["version"]),
                short_id: p["has_short_id"].as_bool().unwrap().then(|| u64v(&p["short_id"]) as u16),
            },
            connections: p["connections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| ConnectionSummary {
                    name: name(&c["to"]),
                    remote_tcp_addr: Bytes::copy_from_slice(
                        c["remote_tcp_addr"].as_str().unwrap().as_bytes(),
                    ),
                    outbound: c["outbound"].as_bool().unwrap(),
                    established: c["established"].as_bool().unwrap(),
                })
                .collect(),
        })
        .collect()
}

#[test]
fn topology_updates_encode_byte_exact_and_decode() {
    let v = load("topology.json");
    for scenario in ["full_update", "incremental_update", "unknown_connection_target", "placeholder_summary"]
    {
        let s = &v[scenario];
        let recs = records(&s["peers"]);
        let mut out = Vec::new();
        topology::encode(&mut out, &recs);
        assert_eq!(out, hx(&s["gob"]), "{scenario}");
        let per_peer: Vec<u8> = s["per_peer"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                let mut b: Vec<u8> = p["summary_messages"].as_array().unwrap().iter().flat_map(hx).collect();
                b.extend(p["connections_messages"].as_array().unwrap().iter().flat_map(hx));
                b
            })
            .collect();
        assert_eq!(out, per_peer, "{scenario}");
        assert_eq!(topology::decode(&out).unwrap(), recs, "{scenario}");
    }
    let framed = hx(&v["full_update"]["as_gossip_frame_from_one"]);
    let mut dec = FrameDecoder::new(mesh_proto::config::MAX_FRAME_LEN);
    dec.push(&framed);
    let body = dec.next_frame().unwrap().unwrap();
    let Message::Gossip(m) = Message::decode(&body).unwrap() else { panic!() };
    assert_eq!(m.kind, GossipKind::Gossip);
    assert_eq!(m.channel, b"topology");
    assert_eq!(m.source.to_string(), "12:34:56:78:9a:01");
    assert_eq!(topology::decode(m.payload).unwrap(), records(&v["full_update"]["peers"]));
}

#[test]
fn topology_truncated_after_summary_drops_the_last_record() {
    let v = load("topology.json");
    let s = &v["full_update"];
    let mut bytes = hx(&s["gob"]);
    // Append one more summary (its definition is already in the stream) with no list.
    gob::put_message(&mut bytes, |o| {
        gob::put_int(o, topology::PEER_SUMMARY_TYPE_ID);
        gob::StructWriter::new(o).bytes(0, &[1, 2, 3, 4, 5, 6]).end();
    });
    assert_eq!(topology::decode(&bytes).unwrap(), records(&s["peers"]));
}

// Captures of real Go traffic are checked frame by frame in tests/captures.rs.

// ----------------------------------------------------------------------------- apply rules

fn table_as_records(peers: &mesh_proto::fuzzing::topology::Peers) -> Vec<PeerRecord> {
    let others: Vec<PeerName> = peers.names().copied().filter(|n| *n != peers.our_name()).collect();
    peers.records(others.iter())
}

fn names(v: &Value) -> std::collections::BTreeSet<PeerName> {
    v.as_array().unwrap().iter().map(name).collect()
}

#[test]
fn topology_apply_matches_the_go_receiver() {
    use mesh_proto::fuzzing::topology::Peers;
    let v = load("topology.json");
    let receiver = name(&v["full_update"]["go_receiver"]["receiver_name"]);
    let mut table = Peers::new(receiver, Bytes::from_static(b"receiver"), 42, 4000);
    let steps = [
        ("full_update", "go_receiver"),
        ("incremental_update", "go_receiver_after_full_update"),
        ("full_update", "stale"),
        ("unknown_connection_target", "go_receiver_after_incremental"),
    ];
    for (scenario, outcome) in steps {
        let update = topology::decode(&hx(&v[scenario]["gob"])).unwrap();
        let applied = table.apply_records(&update, mesh_proto::Instant::ZERO);
        if outcome == "stale" {
            assert_eq!(applied.improved, names(&v["stale_resend_of_full_update"]["new_or_improved"]));
            continue;
        }
        let go = &v[scenario][outcome];
        assert_eq!(applied.received, names(&go["update_names"]), "{scenario}");
        assert_eq!(applied.improved, names(&go["new_or_improved"]), "{scenario}");
        assert_eq!(table_as_records(&table), records(&go["peers_after"]), "{scenario}");
    }
    // A placeholder summary sent by Go is a new record to a fresh receiver.
    let mut fresh = Peers::new(receiver, Bytes::new(), 42, 4000);
    let s = &v["placeholder_summary"];
    let applied = fresh.apply_records(&topology::decode(&hx(&s["gob"])).unwrap(), mesh_proto::Instant::ZERO);
    assert_eq!(applied.improved, names(&s["go_receiver_fresh"]["new_or_improved"]));
    assert_eq!(table_as_records(&fresh), records(&s["go_receiver_fresh"]["peers_after"]));
}
