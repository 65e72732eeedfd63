//! Every kind of bad input ends in a typed error, and nothing allocates beyond a bound
//! while handling it: inputs that announce gigabytes must not make us reserve them.

// The counting allocator below is the only unsafe code, and only in this test.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use mesh_proto::crypto::{CryptoError, Session};
use mesh_proto::handshake::{Handshake, HandshakeConfig, HandshakeError, Progress, Role, Stage};
use mesh_proto::name::{PeerName, PeerNameError};
use mesh_proto::time::Instant;
use mesh_proto::wire::features::{self, FeaturesError};
use mesh_proto::wire::frame::{FrameDecoder, FrameError};
use mesh_proto::wire::gob::{self, GobError};
use mesh_proto::wire::header::{HeaderError, Preamble};
use mesh_proto::wire::message::{Message, MessageError};
use mesh_proto::wire::topology::{self, TopologyError};

/// Records the largest single allocation made by the current thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most any single allocation may take while handling one bad input.
const BOUND: usize = 80 * 1024;

fn bounded<T>(f: impl FnOnce() -> T) -> T {
    LARGEST.with(|l| l.set(0));
    let out = f();
    let largest = LARGEST.with(|l| l.get());
    assert!(largest <= BOUND, "allocated {largest} bytes at once (bound {BOUND})");
    out
}

fn config(password: Option<&str>) -> HandshakeConfig {
    HandshakeConfig {
        role: Role::Listener,
        name: PeerName::from_u64(0x0a).unwrap(),
        nickname: Bytes::from_static(b"us"),
        uid: 99,
        short_id: 1,
        trusts_remote: false,
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        versions: Preamble::OURS,
    }
}

fn handshake_with(password: Option<&str>, input: &[u8]) -> Result<Progress, HandshakeError> {
    let mut h = Handshake::with_parts(config(password), None, 1, Instant::ZERO);
    h.take_output();
    h.handle_data(input, Instant::ZERO)
}

fn features_frame(entries: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    let mut body = Vec::new();
    features::encode_map(&mut body, &entries);
    body
}

const GOOD: [(&str, &str); 5] = [
    ("PeerNameFlavour", "mac"),
    ("Name", "00:00:00:00:00:0b"),
    ("NickName", "them"),
    ("UID", "5"),
    ("ConnID", "6"),
];

fn with(key: &str, value: Option<&'static str>) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> =
        GOOD.iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(v) = value {
        m.push((key.to_string(), v.to_string()));
    }
    m
}

fn decode_features(m: &[(String, String)]) -> Result<features::RemoteFeatures, FeaturesError> {
    let refs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    features::decode(&features_frame(&refs))
}

#[test]
fn handshake_bad_inputs() {
    let err = |password, input: &[u8]| bounded(|| handshake_with(password, input).unwrap_err());

    // Short preamble, then the connection ends.
    let mut h = Handshake::with_parts(config(None), None, 1, Instant::ZERO);
    assert!(matches!(bounded(|| h.handle_data(b"wea", Instant::ZERO)), Ok(Progress::Pending)));
    assert_eq!(h.handle_closed(), HandshakeError::Closed(Stage::Preamble));

    assert_eq!(err(None, b"WEAVE\x02\x02"), HandshakeError::Header(HeaderError::BadMagic(*b"WEAVE")));
    for (min, max) in [(0, 0), (1, 1), (0, 1)] {
        assert!(matches!(
            err(None, &[b'w', b'e', b'a', b'v', b'e', min, max]),
            HandshakeError::Header(HeaderError::Incompatible { .. })
        ));
    }
    assert_eq!(err(None, b"weave\x02\x02\x05"), HandshakeError::BadFlag(5));
    let mut zero_key = b"weave\x02\x02\x01".to_vec();
    zero_key.extend([0; 32]);
    assert_eq!(err(Some("pw"), &zero_key), HandshakeError::Crypto(CryptoError::LowOrderKey));

    // A features frame announcing 4 GiB before authentication.
    let huge = b"weave\x02\x02\x00\xff\xff\xff\xff";
    assert!(matches!(err(None, huge), HandshakeError::Frame(FrameError::TooLarge { len: 0xffff_ffff, .. })));

    // A tampered sealed features frame.
    let mut peer = Handshake::with_parts(
        HandshakeConfig { role: Role::Dialer, name: PeerName::from_u64(0x0b).unwrap(), ..config(Some("pw")) },
        None,
        2,
        Instant::ZERO,
    );
    let mut us = Handshake::with_parts(config(Some("pw")), None, 1, Instant::ZERO);
    let ours = us.take_output().unwrap();
    let mut theirs = peer.take_output().unwrap();
    assert!(matches!(peer.handle_data(&ours, Instant::ZERO), Ok(Progress::Done(_)) | Ok(Progress::Pending)));
    theirs.extend(peer.take_output().unwrap());
    let last = theirs.len() - 1;
    theirs[last] ^= 1;
    assert_eq!(
        bounded(|| us.handle_data(&theirs, Instant::ZERO).unwrap_err()),
        HandshakeError::WrongPassword
    );

    // Features that are not a features map at all, inside a valid frame.
    let mut garbage = b"weave\x02\x02\x00\x00\x00\x00\x03".to_vec();
    garbage.extend([0xff, 0xff, 0xff]);
    assert!(matches!(err(None, &garbage), HandshakeError::Features(FeaturesError::Gob(_))));

    // Truncated features frame, then the connection ends.
    let mut h = Handshake::with_parts(config(None), None, 1, Instant::ZERO);
    assert!(matches!(
        h.handle_data(b"weave\x02\x02\x00\x00\x00\x01\x00\x01", Instant::ZERO),
        Ok(Progress::Pending)
    ));
    assert_eq!(h.handle_closed(), HandshakeError::Closed(Stage::Features));
    // Input after a failure is refused, not processed.
    assert_eq!(h.handle_data(b"more", Instant::ZERO).unwrap_err(), HandshakeError::AlreadyFailed);
}

#[test]
fn frame_bad_inputs() {
    let mut d = FrameDecoder::new(mesh_proto::config::MAX_FRAME_LEN);
    bounded(|| d.push(&(10 * 1024 * 1024 + 1u32).to_be_bytes()));
    assert_eq!(
        d.next_frame().unwrap_err(),
        FrameError::TooLarge { len: 10 * 1024 * 1024 + 1, max: mesh_proto::config::MAX_FRAME_LEN }
    );
    // A frame announcing 10 MiB with only a few bytes of it: nothing is reserved ahead.
    let mut d = FrameDecoder::new(mesh_proto::config::MAX_FRAME_LEN);
    bounded(|| {
        d.push(&(10u32 * 1024 * 1024).to_be_bytes());
        d.push(b"abc");
        assert_eq!(d.next_frame(), Ok(None));
    });
    assert_eq!(d.finish(), Err(FrameError::Truncated { have: 7, need: 4 + 10 * 1024 * 1024 }));
}

#[test]
fn sealed_frame_bad_inputs() {
    let key = [9u8; 32];
    let mut a = Session::new(&key, true);
    let mut b = Session::new(&key, false);
    let f0 = a.sealer.seal(b"zero");
    let f1 = a.sealer.seal(b"one");
    // Reordered: frame 1 arrives first.
    assert_eq!(b.opener.open(&f1), Err(CryptoError::Open { seq: 0 }));
    assert_eq!(b.opener.open(&f0).unwrap(), b"zero");
    // Replayed: frame 0 again where 1 is due.
    assert_eq!(b.opener.open(&f0), Err(CryptoError::Open { seq: 1 }));
    // Tampered.
    let mut t = f1.clone();
    t[17] ^= 0x80;
    assert_eq!(b.opener.open(&t), Err(CryptoError::Open { seq: 1 }));
    assert_eq!(b.opener.open(&f1).unwrap(), b"one");
    assert_eq!(b.opener.open(&[0; 15]), Err(CryptoError::Short { len: 15 }));
    // A frame sealed by the listener cannot be opened as the dialer's.
    let mut c = Session::new(&key, true);
    let from_listener = b.sealer.seal(b"x");
    assert!(c.opener.open(&from_listener).is_ok());
    let mut d = Session::new(&key, false);
    assert_eq!(d.opener.open(&from_listener), Err(CryptoError::Open { seq: 0 }));
}

#[test]
fn features_bad_inputs() {
    for key in ["PeerNameFlavour", "Name", "NickName", "UID", "ConnID"] {
        assert_eq!(bounded(|| decode_features(&with(key, None))).unwrap_err(), FeaturesError::Missing(key));
    }
    let bad =
        |key: &str, value: &'static str| bounded(|| decode_features(&with(key, Some(value)))).unwrap_err();
    assert!(matches!(bad("PeerNameFlavour", "hash"), FeaturesError::Flavour(_)));
    assert!(matches!(bad("Name", "00:00:00:00:00:0b\0x"), FeaturesError::Name(_)));
    assert_eq!(bad("Name", "00:00:00:00:00:00"), FeaturesError::ZeroName);
    assert_eq!(bad("UID", "0"), FeaturesError::ZeroUid);
    assert!(matches!(bad("UID", "18446744073709551616"), FeaturesError::Number { key: "UID", .. }));
    assert!(matches!(bad("ConnID", "0x1"), FeaturesError::Number { key: "ConnID", .. }));
    assert!(matches!(bad("ShortID", "-1"), FeaturesError::Number { key: "ShortID", .. }));
    assert!(matches!(bad("Trusted", "yes"), FeaturesError::Trusted(_)));
    assert!(decode_features(&with("X-Overlay", Some("anything"))).is_ok());
}

#[test]
fn gob_bad_inputs() {
    // A value of type 70, never defined.
    let mut s = Vec::new();
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 70);
        o.push(0);
        o.push(0);
    });
    assert_eq!(bounded(|| features::decode_map(&s)).unwrap_err(), GobError::UnknownType(70));

    // A message length larger than the input.
    let s = [0xfc, 0x40, 0, 0, 0, 0x0c];
    assert!(matches!(
        bounded(|| features::decode_map(&s)).unwrap_err(),
        GobError::TooLong { what: "message", .. }
    ));

    // A string length larger than the input.
    let s = [0x04, 0x0c, 0x00, 0x7f, 0x41];
    let got = bounded(|| gob::Stream::new(&s).next_value().unwrap().unwrap().string().map(<[u8]>::to_vec));
    assert!(matches!(got.unwrap_err(), GobError::TooLong { .. }));

    // A map count larger than the input.
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 65);
        o.push(0);
        gob::put_uint(o, u64::MAX);
    });
    assert!(matches!(bounded(|| features::decode_map(&s)).unwrap_err(), GobError::TooLong { .. }));

    // A definition reusing a built-in id, and a redefinition.
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 6, gob::STRING, gob::STRING);
    assert_eq!(features::decode_map(&s).unwrap_err(), GobError::BadDefinitionId(6));
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    assert_eq!(features::decode_map(&s).unwrap_err(), GobError::Redefined(65));

    // An unsigned integer announcing 9 bytes.
    assert_eq!(gob::Reader::new(&[0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9]).uint(), Err(GobError::BadUint(9)));
}

#[test]
fn message_and_topology_bad_inputs() {
    // A gossip envelope whose source does not fit in 48 bits.
    let mut body = vec![4];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1 << 50);
    gob::put_top_bytes(&mut body, b"");
    assert!(matches!(Message::decode(&body), Err(MessageError::Name(PeerNameError::TooLarge(_)))));
    // A unicast missing its destination and payload.
    let mut body = vec![5];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    assert!(matches!(Message::decode(&body), Err(MessageError::Gob(GobError::Truncated(_)))));
    // Wrong kinds: the channel sent as bytes.
    let mut body = vec![6];
    gob::put_top_bytes(&mut body, b"ch");
    assert!(matches!(Message::decode(&body), Err(MessageError::Gob(GobError::TypeMismatch { .. }))));

    // A topology record whose name is 5 bytes.
    let mut enc = Vec::new();
    let rec = topology::PeerRecord::default();
    topology::encode(&mut enc, &[rec]);
    // Keep the summary's definition (its one-byte length, then the body) and replace the
    // summary by one whose NameByte has 5 bytes.
    let summary_start = 1 + enc[0] as usize;
    let mut bad = enc[..summary_start].to_vec();
    gob::put_message(&mut bad, |o| {
        gob::put_int(o, topology::PEER_SUMMARY_TYPE_ID);
        gob::StructWriter::new(o).bytes(0, &[1, 2, 3, 4, 5]).end();
    });
    bad.extend_from_slice(&[0x04, 0xff, 0x88, 0x00, 0x00]);
    assert_eq!(
        bounded(|| topology::decode(&bad)).unwrap_err(),
        TopologyError::Name(PeerNameError::ByteLength(5))
    );
}
