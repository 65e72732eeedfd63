//! Every kind of bad input ends in exactly the typed error it should, and handling it
//! allocates in total no more than a bound proportional to the input: inputs that
//! announce gigabytes must not make us reserve them, and few bytes must not make us
//! allocate many.

// The counting allocator below is the only unsafe code, and only in this test.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use mesh_proto::Instant;
use mesh_proto::config::{MAX_FRAME_LEN, MAX_HANDSHAKE_FRAME_LEN};
use mesh_proto::counter::{Counter, Counts};
use mesh_proto::fuzzing::crypto::{CryptoError, KeyPair, Session};
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeConfig, HandshakeError, Progress, Role, Stage};
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::features::{self, FeaturesError, RemoteFeatures};
use mesh_proto::wire::frame::{FrameDecoder, FrameError};
use mesh_proto::wire::gob::{self, GobError};
use mesh_proto::wire::header::{HeaderError, Preamble};
use mesh_proto::wire::message::{self, GossipKind, Message, MessageError};
use mesh_proto::wire::topology::{self, TopologyError};
use mesh_proto::{CloseReason, Config, ConnId, Event, GossipError, Node, Output};
use mesh_proto::{PeerName, PeerNameError, TextReason};

// ----------------------------------------------------------------------------- the bound

/// Counts, on the current thread and only while armed, every byte allocated: the size of
/// each new block and, for each `realloc` that grows a block, the growth. Frees are not
/// subtracted: the bound is on the work done, not on what is live at the end.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(grown: usize, block: usize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = TOTAL.try_with(|t| t.set(t.get() + grown));
        let _ = LARGEST.try_with(|l| l.set(l.get().max(block)));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()), new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// What handling one input may allocate in total is `K * input_len + C`. K depends on
// what the code under test builds from the input, and each K below is that kind's
// worst case, which a case here comes close to:

/// Buffering (frame decoder, opener, handshake and node receive buffers): each byte is
/// copied once; a buffer's growth may at most double that. Measured: 1.07 (5000
/// heartbeats through a node).
const COPY: usize = 2;
/// Records borrowed from the input, and their owned copies: a topology record is at
/// least 17 bytes on the wire for 80 borrowed plus 88 owned, the vector's doubling can
/// leave it half empty, and a counter entry is 2 bytes for a B-tree slot. Measured:
/// 14.5 (2049 topology records decoded).
const RECORDS: usize = 16;
/// Gob tables: a map of strings is at least 2 bytes per entry for a 32-byte borrowed
/// pair, and the vector may be nearly half empty; a struct definition at least 1 byte
/// per field for a 32-byte entry (at most 64 fields). Measured: 32.0 (a features map
/// of 16385 empty entries).
const TABLES: usize = 32;
/// C for a parser: the few small vectors and error strings one input makes whatever its
/// size (measured at most 330 bytes beyond K per byte).
const FIXED: usize = 512;
/// C for a whole node: the output and event queues, the close bookkeeping (status
/// entry, address strings) that one bad frame on a connection costs (measured at most
/// 1.9 KiB beyond K per byte).
const NODE_FIXED: usize = 3 * 1024;

/// Runs `f` and returns what it gave, the bytes it allocated in total and its largest
/// single allocation.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    TOTAL.with(|t| t.set(0));
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, TOTAL.with(Cell::get), LARGEST.with(Cell::get))
}

/// Runs `f`, which handles `input_len` bytes of input, and checks that it allocated at
/// most `per_byte * input_len + fixed` bytes in total. The largest single allocation is
/// reported too; it needs no bound of its own, being part of the total.
fn bounded_with<T>(what: &str, input_len: usize, per_byte: usize, fixed: usize, f: impl FnOnce() -> T) -> T {
    let (out, total, largest) = measure(f);
    let bound = per_byte * input_len + fixed;
    println!(
        "{what}: {input_len} B in, {total} B allocated ({:.2} per byte), {largest} B at most at once; bound {bound} B",
        total as f64 / input_len.max(1) as f64
    );
    assert!(total <= bound, "{what}: {total} B allocated for {input_len} B of input (bound {bound} B)");
    out
}

/// [`bounded_with`] for a parser handed `input`.
fn bounded<'a, T>(per_byte: usize, what: &str, input: &'a [u8], f: impl FnOnce(&'a [u8]) -> T) -> T {
    bounded_with(what, input.len(), per_byte, FIXED, || f(input))
}

#[test]
fn the_counter_sees_total_allocation_and_growth() {
    // One 1000-byte block grown to 3000 bytes, and a 500-byte block freed: 3500 in
    // total, 3000 at most at once.
    let (v, total, largest) = measure(|| {
        drop(std::hint::black_box(Vec::<u8>::with_capacity(500)));
        let mut v: Vec<u8> = std::hint::black_box(Vec::with_capacity(1000));
        v.reserve_exact(3000);
        v
    });
    assert_eq!(v.capacity(), 3000);
    assert_eq!((total, largest), (3500, 3000));
    // Nothing is counted outside `measure`.
    let _outside = vec![0u8; 4096];
    assert_eq!(measure(|| ()), ((), 0, 0));
}

// ----------------------------------------------------------------------------- helpers

fn config(password: Option<&str>) -> HandshakeConfig {
    HandshakeConfig {
        role: Role::Listener,
        name: PeerName::from_u64(0x0a).unwrap(),
        nickname: Bytes::from_static(b"us"),
        uid: 99,
        short_id: 1,
        trusts_remote: false,
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        versions: Preamble::V2_ONLY,
    }
}

fn fresh(password: Option<&str>) -> Handshake {
    let mut h = Handshake::with_parts(config(password), None, 1, Instant::ZERO);
    h.take_output();
    h
}

fn handshake_err(what: &str, password: Option<&str>, input: &[u8]) -> HandshakeError {
    let mut h = fresh(password);
    bounded(COPY, what, input, |i| h.handle_data(i, Instant::ZERO)).unwrap_err()
}

fn features_body(entries: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    let mut body = Vec::new();
    features::encode_map(&mut body, &entries);
    body
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

const GOOD: [(&str, &str); 5] = [
    ("PeerNameFlavour", "mac"),
    ("Name", "00:00:00:00:00:0b"),
    ("NickName", "them"),
    ("UID", "5"),
    ("ConnID", "6"),
];

fn with(key: &str, value: Option<&'static str>) -> Vec<u8> {
    let mut m: Vec<(&str, &str)> = GOOD.iter().copied().filter(|(k, _)| *k != key).collect();
    if let Some(v) = value {
        m.push((key, v));
    }
    features_body(&m)
}

fn them() -> RemoteFeatures {
    RemoteFeatures {
        name: PeerName::from_u64(0x0b).unwrap(),
        nickname: Bytes::from_static(b"them"),
        uid: 5,
        conn_id: 6,
        short_id: None,
        trusts_us: false,
    }
}

/// A gossip frame body of `kind` on `channel` from peer 0x0b.
fn gossip_body(kind: GossipKind, channel: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    message::encode_gossip(&mut body, kind, channel, PeerName::from_u64(0x0b).unwrap(), payload);
    body
}

/// The definitions of a topology update followed by one minimal record per name, each
/// with an empty connection list.
fn topology_records(names: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = topology::UpdateEncoder::new();
    for n in names {
        let summary = topology::PeerSummary { name: PeerName::from_u64(n).unwrap(), ..Default::default() };
        enc.push(&mut out, &summary, [].iter());
    }
    out
}

fn summary_message(out: &mut Vec<u8>, name: &[u8], short_id: u64) {
    gob::put_message(out, |o| {
        gob::put_int(o, topology::PEER_SUMMARY_TYPE_ID);
        gob::StructWriter::new(o).bytes(0, name).uint(4, short_id).end();
    });
}

// ----------------------------------------------------------------------------- handshake

#[test]
fn handshake_bad_inputs() {
    // Short preamble, then the connection ends.
    let mut h = fresh(None);
    assert!(matches!(
        bounded(COPY, "short preamble", b"wea", |i| h.handle_data(i, Instant::ZERO)),
        Ok(Progress::Pending)
    ));
    assert_eq!(h.handle_closed(), HandshakeError::Closed(Stage::Preamble));

    assert_eq!(
        handshake_err("bad magic", None, b"WEAVE\x02\x02"),
        HandshakeError::Header(HeaderError::BadMagic(*b"WEAVE"))
    );
    for (min, max) in [(0, 0), (1, 1), (0, 1)] {
        assert_eq!(
            handshake_err("old versions", None, &[b'w', b'e', b'a', b'v', b'e', min, max]),
            HandshakeError::Header(HeaderError::Incompatible {
                ours: Preamble::V2_ONLY,
                theirs: Preamble { min, max }
            })
        );
    }
    assert_eq!(handshake_err("bad flag", None, b"weave\x02\x02\x05"), HandshakeError::BadFlag(5));
    assert_eq!(
        handshake_err("plaintext to a password", Some("pw"), b"weave\x02\x02\x00"),
        HandshakeError::EncryptionMismatch { we_encrypt: true, they_encrypt: false }
    );
    assert_eq!(
        handshake_err("a key to no password", None, b"weave\x02\x02\x01"),
        HandshakeError::EncryptionMismatch { we_encrypt: false, they_encrypt: true }
    );
    let mut zero_key = b"weave\x02\x02\x01".to_vec();
    zero_key.extend([0; 32]);
    assert_eq!(
        handshake_err("all-zero key", Some("pw"), &zero_key),
        HandshakeError::Crypto(CryptoError::LowOrderKey)
    );

    // Features frames announcing 4 GiB, and one byte over the handshake limit, before
    // authentication: refused on the prefix.
    for len in [u32::MAX, MAX_HANDSHAKE_FRAME_LEN as u32 + 1] {
        let mut huge = b"weave\x02\x02\x00".to_vec();
        huge.extend(len.to_be_bytes());
        assert_eq!(
            handshake_err("huge features frame", None, &huge),
            HandshakeError::Frame(FrameError::TooLarge { len: len.into(), max: MAX_HANDSHAKE_FRAME_LEN })
        );
    }

    // A tampered sealed features frame, and one shorter than its tag.
    let mut peer = Handshake::with_parts(
        HandshakeConfig { role: Role::Dialer, name: PeerName::from_u64(0x0b).unwrap(), ..config(Some("pw")) },
        Some(KeyPair::from_secret([3; 32])),
        2,
        Instant::ZERO,
    );
    let ours = Handshake::with_parts(config(Some("pw")), None, 1, Instant::ZERO).take_output().unwrap();
    let mut theirs = peer.take_output().unwrap();
    // Our preamble, flag and key are all the peer needs to seal its features.
    assert!(matches!(peer.handle_data(&ours, Instant::ZERO), Ok(Progress::Pending)));
    theirs.extend(peer.take_output().unwrap());
    let last = theirs.len() - 1;
    theirs[last] ^= 1;
    assert_eq!(handshake_err("tampered features", Some("pw"), &theirs), HandshakeError::WrongPassword);
    let mut short = theirs[..40].to_vec();
    short.extend(framed(&[0; 15]));
    assert_eq!(
        handshake_err("sealed features under 16 bytes", Some("pw"), &short),
        HandshakeError::WrongPassword
    );

    // Features that are not a features map at all, inside a valid frame.
    let mut garbage = b"weave\x02\x02\x00".to_vec();
    garbage.extend(framed(&[0xff, 0xff, 0xff]));
    assert_eq!(
        handshake_err("garbage features", None, &garbage),
        HandshakeError::Features(FeaturesError::Gob(GobError::TooLong {
            what: "message",
            len: 255,
            remaining: 1
        }))
    );
    // A well-formed map missing a key.
    let mut missing = b"weave\x02\x02\x00".to_vec();
    missing.extend(framed(&with("UID", None)));
    assert_eq!(
        handshake_err("features without UID", None, &missing),
        HandshakeError::Features(FeaturesError::Missing("UID"))
    );

    // The costliest features frame under the limit: empty entries (see TABLES), after
    // the handshake buffered them (COPY).
    let empty: Vec<(&[u8], &[u8])> = vec![(b"", b""); 16385];
    let mut body = Vec::new();
    features::encode_map(&mut body, &empty);
    let mut costly = b"weave\x02\x02\x00".to_vec();
    costly.extend(framed(&body));
    let mut h = fresh(None);
    let got = bounded(COPY + TABLES, "features of 16385 empty entries", &costly, |i| {
        h.handle_data(i, Instant::ZERO)
    });
    assert_eq!(got.unwrap_err(), HandshakeError::Features(FeaturesError::Missing("PeerNameFlavour")));

    // Truncated features frame, then the connection ends.
    let mut h = fresh(None);
    let truncated = b"weave\x02\x02\x00\x00\x00\x01\x00\x01";
    assert!(matches!(
        bounded(COPY, "truncated features", truncated, |i| h.handle_data(i, Instant::ZERO)),
        Ok(Progress::Pending)
    ));
    assert_eq!(h.handle_closed(), HandshakeError::Closed(Stage::Features));
    // Input after a failure is refused, not processed.
    assert_eq!(
        bounded(COPY, "after the failure", b"more", |i| h.handle_data(i, Instant::ZERO)).unwrap_err(),
        HandshakeError::AlreadyFailed
    );
}

// ----------------------------------------------------------------------------- frames

#[test]
fn frame_bad_inputs() {
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    let over = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    let got = bounded(COPY, "oversize frame", &over, |i| {
        d.push(i);
        d.next_frame()
    });
    assert_eq!(got, Err(FrameError::TooLarge { len: MAX_FRAME_LEN as u64 + 1, max: MAX_FRAME_LEN }));

    // A frame announcing 10 MiB with only a few bytes of it: nothing is reserved ahead.
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    let mut partial = (MAX_FRAME_LEN as u32).to_be_bytes().to_vec();
    partial.extend(b"abc");
    let got = bounded(COPY, "10 MiB announced, 3 B sent", &partial, |i| {
        d.push(i);
        d.next_frame()
    });
    assert_eq!(got, Ok(None));
    assert_eq!(d.finish(), Err(FrameError::Truncated { have: 7, need: 4 + MAX_FRAME_LEN }));

    // A long run of good frames, then an oversize one: the buffer grows with the input
    // only.
    let mut stream = Vec::new();
    for _ in 0..2000 {
        stream.extend(framed(b"heartbeat"));
    }
    stream.extend(u32::MAX.to_be_bytes());
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    let (frames, err) = bounded(COPY, "2000 frames, then 4 GiB announced", &stream, |i| {
        d.push(i);
        let mut n = 0;
        loop {
            match d.next_frame() {
                Ok(Some(_)) => n += 1,
                Ok(None) => return (n, None),
                Err(e) => return (n, Some(e)),
            }
        }
    });
    assert_eq!(frames, 2000);
    assert_eq!(err, Some(FrameError::TooLarge { len: u32::MAX.into(), max: MAX_FRAME_LEN }));
}

// ----------------------------------------------------------------------------- sealed frames

#[test]
fn sealed_frame_bad_inputs() {
    let key = [9u8; 32];
    let mut a = Session::new(&key, true);
    let mut b = Session::new(&key, false);
    let f0 = a.sealer.seal(b"zero");
    let f1 = a.sealer.seal(b"one");
    // Reordered: frame 1 arrives first.
    assert_eq!(bounded(COPY, "reordered", &f1, |i| b.opener.open(i)), Err(CryptoError::Open { seq: 0 }));
    assert_eq!(bounded(COPY, "in order", &f0, |i| b.opener.open(i)), Ok(b"zero".to_vec()));
    // Replayed: frame 0 again where 1 is due.
    assert_eq!(bounded(COPY, "replayed", &f0, |i| b.opener.open(i)), Err(CryptoError::Open { seq: 1 }));
    // Tampered, in the tag and in the ciphertext.
    for at in [3, 17] {
        let mut t = f1.clone();
        t[at] ^= 0x80;
        assert_eq!(bounded(COPY, "tampered", &t, |i| b.opener.open(i)), Err(CryptoError::Open { seq: 1 }));
    }
    // Cut short by one byte.
    assert_eq!(
        bounded(COPY, "truncated", &f1[..f1.len() - 1], |i| b.opener.open(i)),
        Err(CryptoError::Open { seq: 1 })
    );
    assert_eq!(bounded(COPY, "after the failures", &f1, |i| b.opener.open(i)), Ok(b"one".to_vec()));
    for len in [0, 1, 15] {
        let short = vec![0; len];
        assert_eq!(
            bounded(COPY, "shorter than the tag", &short, |i| b.opener.open(i)),
            Err(CryptoError::Short { len })
        );
        let mut in_place = short.clone();
        assert_eq!(
            bounded(COPY, "shorter than the tag, in place", &short, |_| b
                .opener
                .open_in_place(&mut in_place)),
            Err(CryptoError::Short { len })
        );
    }
    // Only a tag, no ciphertext: a valid seal of the empty message, checked as any other.
    let mut t = a.sealer.seal(b"");
    assert_eq!(t.len(), 16);
    t[0] ^= 1;
    assert_eq!(
        bounded(COPY, "tag only, tampered", &t, |i| b.opener.open(i)),
        Err(CryptoError::Open { seq: 2 })
    );
    // Another key entirely.
    let mut other = Session::new(&[8u8; 32], true);
    let foreign = other.sealer.seal(b"two");
    assert_eq!(bounded(COPY, "wrong key", &foreign, |i| b.opener.open(i)), Err(CryptoError::Open { seq: 2 }));

    // A frame sealed by the listener opens only as the listener's.
    let from_listener = b.sealer.seal(b"x");
    let mut dialer = Session::new(&key, true);
    assert_eq!(
        bounded(COPY, "listener's frame", &from_listener, |i| dialer.opener.open(i)),
        Ok(b"x".to_vec())
    );
    let mut listener = Session::new(&key, false);
    assert_eq!(
        bounded(COPY, "listener's frame as the dialer's", &from_listener, |i| listener.opener.open(i)),
        Err(CryptoError::Open { seq: 0 })
    );
}

// ----------------------------------------------------------------------------- features

#[test]
fn features_bad_inputs() {
    let decode = |what: &str, body: Vec<u8>| bounded(TABLES, what, &body, features::decode);
    for key in ["PeerNameFlavour", "Name", "NickName", "UID", "ConnID"] {
        assert_eq!(decode("missing key", with(key, None)), Err(FeaturesError::Missing(key)));
    }
    let bad = |key: &str, value: &'static str| decode("bad value", with(key, Some(value))).unwrap_err();
    assert_eq!(bad("PeerNameFlavour", "hash"), FeaturesError::Flavour("hash".into()));
    assert_eq!(
        bad("Name", "00:00:00:00:00:0b\0x"),
        FeaturesError::Name(PeerNameError::Text {
            input: "00:00:00:00:00:0b\0x".into(),
            reason: TextReason::Nul
        })
    );
    assert_eq!(bad("Name", "00:00:00:00:00:00"), FeaturesError::ZeroName);
    assert_eq!(bad("UID", "0"), FeaturesError::ZeroUid);
    let number = |key, value: &str, max| FeaturesError::Number { key, value: value.into(), max };
    assert_eq!(bad("UID", "18446744073709551616"), number("UID", "18446744073709551616", u64::MAX));
    assert_eq!(bad("ConnID", "0x1"), number("ConnID", "0x1", u64::MAX));
    assert_eq!(bad("ShortID", "-1"), number("ShortID", "-1", 4095));
    assert_eq!(bad("ShortID", "4096"), number("ShortID", "4096", 4095));
    // The value quoted in the error is cut to 32 characters, however long the input.
    let long: &'static str = "9".repeat(5000).leak();
    assert_eq!(bad("UID", long), number("UID", &long[..32], u64::MAX));
    assert_eq!(bad("Trusted", "yes"), FeaturesError::Trusted("yes".into()));

    // An unknown key is ignored; everything else is as sent.
    assert_eq!(decode("unknown key", with("X-Overlay", Some("anything"))), Ok(them()));
    assert_eq!(
        decode(
            "short id and trust",
            features_body(&[GOOD.as_slice(), &[("ShortID", "7"), ("Trusted", "1")]].concat())
        ),
        Ok(RemoteFeatures { short_id: Some(7), trusts_us: true, ..them() })
    );

    // The map's values must be strings.
    let mut ints = Vec::new();
    gob::put_map_definition(&mut ints, 65, gob::STRING, gob::INT);
    gob::put_message(&mut ints, |o| {
        gob::put_int(o, 65);
        o.push(0);
        gob::put_uint(o, 1);
        gob::put_bytes(o, b"UID");
        gob::put_int(o, 5);
    });
    assert_eq!(
        decode("integer values", ints),
        Err(FeaturesError::Gob(GobError::TypeMismatch { expected: "string", found: gob::INT }))
    );
    // A second value after the map.
    let mut twice = with("X", None);
    gob::put_top_uint(&mut twice, 1);
    assert_eq!(decode("trailing value", twice), Err(FeaturesError::Gob(GobError::TrailingBytes(0))));

    // Empty entries, one more than a power of two, so the vector holding them is nearly
    // half empty: the largest per-byte cost of any decoder (see TABLES). And the most
    // that fit a frame under the handshake limit.
    for n in [16385, (MAX_HANDSHAKE_FRAME_LEN - 32) / 2] {
        let empty: Vec<(&[u8], &[u8])> = vec![(b"", b""); n];
        let mut body = Vec::new();
        features::encode_map(&mut body, &empty);
        assert!(body.len() <= MAX_HANDSHAKE_FRAME_LEN);
        assert_eq!(decode("a map of empty entries", body), Err(FeaturesError::Missing("PeerNameFlavour")));
    }
}

// ----------------------------------------------------------------------------- gob

#[test]
fn gob_bad_inputs() {
    let map = |what: &str, s: &[u8]| bounded(TABLES, what, s, |i| features::decode_map(i).map(|e| e.len()));

    // A value of type 70, never defined.
    let mut s = Vec::new();
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 70);
        o.push(0);
        o.push(0);
    });
    assert_eq!(map("undefined type", &s), Err(GobError::UnknownType(70)));

    // A message length larger than the input.
    let s = [0xfc, 0x40, 0, 0, 0, 0x0c];
    assert_eq!(
        map("message longer than the input", &s),
        Err(GobError::TooLong { what: "message", len: 0x4000_0000, remaining: 1 })
    );
    // A message length of 2^64 - 1.
    let s = [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        map("message of 2^64 bytes", &s),
        Err(GobError::TooLong { what: "message", len: u64::MAX, remaining: 0 })
    );
    // An empty input, and a message with no type id.
    assert_eq!(map("empty", &[]), Err(GobError::Truncated("the features map")));
    assert_eq!(map("no type id", &[0x00]), Err(GobError::NoTypeId));

    // A string length larger than the input.
    let s = [0x04, 0x0c, 0x00, 0x7f, 0x41];
    let got = bounded(TABLES, "string longer than the input", &s, |i| {
        gob::Stream::new(i).next_value().unwrap().unwrap().string().map(<[u8]>::to_vec)
    });
    assert_eq!(got, Err(GobError::TooLong { what: "string or byte slice", len: 0x7f, remaining: 1 }));

    // A map count larger than the input.
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 65);
        o.push(0);
        gob::put_uint(o, u64::MAX);
    });
    assert_eq!(
        map("map of 2^64 entries", &s),
        Err(GobError::TooLong { what: "map entry count", len: u64::MAX, remaining: 0 })
    );

    // A definition reusing a built-in id, and a redefinition.
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 6, gob::STRING, gob::STRING);
    assert_eq!(map("built-in id defined", &s), Err(GobError::BadDefinitionId(6)));
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    gob::put_map_definition(&mut s, 65, gob::STRING, gob::STRING);
    assert_eq!(map("redefinition", &s), Err(GobError::Redefined(65)));

    // More definitions than the limit (32).
    let mut s = Vec::new();
    for id in 0..33 {
        gob::put_slice_definition(&mut s, 100 + id, gob::UINT);
    }
    assert_eq!(map("33 definitions", &s), Err(GobError::TooManyTypes(32)));

    // Slices of slices 20 deep: refused at depth 16, before any element is read.
    let mut s = Vec::new();
    gob::put_slice_definition(&mut s, 100, gob::UINT);
    for id in 101..120 {
        gob::put_slice_definition(&mut s, id, id - 1);
    }
    gob::put_map_definition(&mut s, 65, gob::STRING, 119);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 65);
        o.push(0);
        gob::put_uint(o, 1);
        gob::put_bytes(o, b"k");
        o.extend([1; 40]);
    });
    assert_eq!(map("20 nested slices", &s), Err(GobError::TypeMismatch { expected: "string", found: 119 }));
    let mut deep = Vec::new();
    gob::put_slice_definition(&mut deep, 100, gob::UINT);
    for id in 101..120 {
        gob::put_slice_definition(&mut deep, id, id - 1);
    }
    gob::put_message(&mut deep, |o| {
        gob::put_int(o, 119);
        o.push(0);
        o.extend([1; 40]);
    });
    let got = bounded(TABLES, "20 nested slices, skipped", &deep, |i| {
        gob::Stream::new(i).next_value().unwrap().unwrap().decode(|_| Ok(()))
    });
    assert_eq!(got, Err(GobError::TooDeep(16)));

    // A struct definition announcing 2^40 fields in a few bytes.
    let mut s = Vec::new();
    gob::put_message(&mut s, |o| {
        gob::put_int(o, -66);
        o.extend([0x03, 0x01]); // field 2 (StructT), then its field 0 (CommonType)...
        o.push(0); // ... which is empty,
        o.push(0x01); // then field 1 (the field list)
        gob::put_uint(o, 1 << 40);
    });
    assert_eq!(
        map("struct of 2^40 fields", &s),
        Err(GobError::TooLong { what: "struct field list", len: 1 << 40, remaining: 0 })
    );

    // An unsigned integer announcing 9 bytes.
    let s = [0xf7, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    assert_eq!(
        bounded(TABLES, "nine-byte integer", &s, |i| gob::Reader::new(i).uint()),
        Err(GobError::BadUint(9))
    );
}

/// A struct definition of `n` unnamed fields (one byte each), as type `id`.
fn struct_of_unnamed_fields(out: &mut Vec<u8>, id: i64, n: usize) {
    gob::put_message(out, |o| {
        gob::put_int(o, -id);
        // wireType field 2 (StructT); its field 0 (an empty CommonType); its field 1,
        // the field list: the count, then each field an empty struct.
        o.extend([0x03, 0x01, 0x00, 0x01]);
        gob::put_uint(o, n as u64);
        o.extend(std::iter::repeat_n(0u8, n));
        o.extend([0, 0]);
    });
}

/// Struct definitions whose field lists are as long as the input allows: refused past 64
/// fields, which cost a 32-byte entry each for one byte of input.
#[test]
fn gob_struct_definitions_of_many_fields() {
    let mut s = Vec::new();
    struct_of_unnamed_fields(&mut s, 66, 40_000);
    let got = bounded(TABLES, "struct of 40000 unnamed fields", &s, features::decode_map);
    assert_eq!(got, Err(GobError::BadDefinition("a struct of more than 64 fields")));
    let mut s = Vec::new();
    struct_of_unnamed_fields(&mut s, 66, 65);
    let got = bounded(TABLES, "struct of 65 unnamed fields", &s, features::decode_map);
    assert_eq!(got, Err(GobError::BadDefinition("a struct of more than 64 fields")));
    // The most a stream may define: 32 structs of 64 fields, then no value.
    let mut s = Vec::new();
    for id in 0..32 {
        struct_of_unnamed_fields(&mut s, 100 + id, 64);
    }
    let got = bounded(TABLES, "32 structs of 64 unnamed fields", &s, features::decode_map);
    assert_eq!(got, Err(GobError::Truncated("the features map")));
}

// ----------------------------------------------------------------------------- messages

#[test]
fn message_bad_inputs() {
    fn decode<'a>(what: &str, body: &'a [u8]) -> Result<Message<'a>, MessageError> {
        bounded(COPY, what, body, Message::decode)
    }

    // A gossip envelope whose source does not fit in 48 bits.
    let mut body = vec![4];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1 << 50);
    gob::put_top_bytes(&mut body, b"");
    assert_eq!(
        decode("source over 48 bits", &body),
        Err(MessageError::Name(PeerNameError::TooLarge(1 << 50)))
    );
    // A unicast whose destination does not fit.
    let mut body = vec![5];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    gob::put_top_uint(&mut body, u64::MAX);
    gob::put_top_bytes(&mut body, b"");
    assert_eq!(
        decode("destination over 48 bits", &body),
        Err(MessageError::Name(PeerNameError::TooLarge(u64::MAX)))
    );
    // A unicast missing its destination and payload.
    let mut body = vec![5];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    assert_eq!(
        decode("unicast without destination", &body),
        Err(MessageError::Gob(GobError::Truncated("the destination name")))
    );
    // A broadcast without its payload, and one with nothing at all.
    let mut body = vec![6];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    assert_eq!(
        decode("broadcast without payload", &body),
        Err(MessageError::Gob(GobError::Truncated("the payload")))
    );
    assert_eq!(decode("bare tag", &[6]), Err(MessageError::Gob(GobError::Truncated("the channel name"))));
    // Wrong kinds: the channel sent as bytes, the source as a string, the payload as a uint.
    let mut body = vec![6];
    gob::put_top_bytes(&mut body, b"ch");
    assert_eq!(
        decode("channel as bytes", &body),
        Err(MessageError::Gob(GobError::TypeMismatch { expected: "string", found: gob::BYTES }))
    );
    let mut body = vec![4];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_string(&mut body, b"00:00:00:00:00:01");
    assert_eq!(
        decode("source as a string", &body),
        Err(MessageError::Gob(GobError::TypeMismatch { expected: "uint", found: gob::STRING }))
    );
    let mut body = vec![4];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    gob::put_top_uint(&mut body, 7);
    assert_eq!(
        decode("payload as a uint", &body),
        Err(MessageError::Gob(GobError::TypeMismatch { expected: "[]byte", found: gob::UINT }))
    );
    // A channel name announcing 2^62 bytes, and an envelope message as long.
    let mut body = vec![4, 0x0d, 0x0c, 0x00, 0xf8, 0x40, 0, 0, 0, 0, 0, 0, 0];
    body.extend(b"ch");
    assert_eq!(
        decode("channel of 2^62 bytes", &body),
        Err(MessageError::Gob(GobError::TooLong {
            what: "string or byte slice",
            len: 1 << 62,
            remaining: 2
        }))
    );
    let body = [4, 0xf8, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x0c];
    assert_eq!(
        decode("envelope of 2^62 bytes", &body),
        Err(MessageError::Gob(GobError::TooLong { what: "message", len: 1 << 62, remaining: 1 }))
    );
    // A gob value with a user type where the channel should be.
    let mut body = vec![4];
    gob::put_map_definition(&mut body, 65, gob::STRING, gob::STRING);
    gob::put_message(&mut body, |o| {
        gob::put_int(o, 65);
        o.extend([0, 0]);
    });
    assert_eq!(
        decode("map for a channel", &body),
        Err(MessageError::Gob(GobError::TypeMismatch { expected: "string", found: 65 }))
    );

    // Not errors, but not gossip either: tags Go ignores.
    assert_eq!(decode("empty body", &[]), Ok(Message::Empty));
    assert_eq!(decode("unknown tag", &[200, 1, 2]), Ok(Message::Unknown { tag: 200, payload: &[1, 2] }));
    assert_eq!(decode("overlay tag", &[7, 1]), Ok(Message::Overlay { tag: 7, payload: &[1] }));

    // Relaying reads the unicast destination with the same checks.
    let mut body = vec![5];
    gob::put_top_string(&mut body, b"ch");
    gob::put_top_uint(&mut body, 1);
    gob::put_top_uint(&mut body, 1 << 48);
    assert_eq!(
        bounded(COPY, "relayed unicast", &body, message::unicast_destination),
        Err(MessageError::Name(PeerNameError::TooLarge(1 << 48)))
    );
}

// ----------------------------------------------------------------------------- topology

#[test]
fn topology_bad_inputs() {
    let decode = |what: &str, s: &[u8]| bounded(RECORDS, what, s, |i| topology::decode(i).map(|r| r.len()));

    // A record whose name is 5 bytes: the definitions of a real update, then the bad
    // summary and its (empty) list.
    let defs = topology_records(std::iter::once(1));
    let summary_start = 1 + defs[0] as usize;
    let mut bad = defs[..summary_start].to_vec();
    summary_message(&mut bad, &[1, 2, 3, 4, 5], 0);
    bad.extend_from_slice(&[0x04, 0xff, 0x88, 0x00, 0x00]);
    assert_eq!(decode("5-byte name", &bad), Err(TopologyError::Name(PeerNameError::ByteLength(5))));

    // A short id over 12 bits.
    let mut bad = defs[..summary_start].to_vec();
    summary_message(&mut bad, &[0, 0, 0, 0, 0, 1], 4096);
    bad.extend_from_slice(&[0x04, 0xff, 0x88, 0x00, 0x00]);
    assert_eq!(decode("short id 4096", &bad), Err(TopologyError::ShortId(4096)));

    // A connection list announcing 2^60 entries.
    let mut enc = topology::UpdateEncoder::new();
    let mut full = Vec::new();
    enc.push(&mut full, &topology::PeerSummary::default(), [].iter());
    // `full` holds: summary definition, summary, list definitions, list. Replace the
    // list value (its last 5 bytes) by one with a hostile count.
    let mut hostile = full[..full.len() - 5].to_vec();
    gob::put_message(&mut hostile, |o| {
        gob::put_int(o, topology::CONNECTION_LIST_TYPE_ID);
        o.push(0);
        gob::put_uint(o, 1 << 60);
    });
    assert_eq!(
        decode("2^60 connections", &hostile),
        Err(TopologyError::Gob(GobError::TooLong {
            what: "slice element count",
            len: 1 << 60,
            remaining: 0
        }))
    );

    // A connection whose name is 7 bytes.
    let conn = topology::ConnectionSummary {
        name: PeerName::from_u64(2).unwrap(),
        remote_tcp_addr: Bytes::from_static(b"127.0.0.1:1"),
        outbound: true,
        established: true,
    };
    let summary = topology::PeerSummary { name: PeerName::from_u64(1).unwrap(), ..Default::default() };
    let mut good = Vec::new();
    topology::UpdateEncoder::new().push(&mut good, &summary, [conn].iter());
    // The connection's NameByte is the 6 bytes 00 00 00 00 00 02 after its length 06.
    let at = good.windows(7).position(|w| w == [6, 0, 0, 0, 0, 0, 2]).unwrap();
    let mut bad = good[..at].to_vec();
    bad.extend([7, 0, 0, 0, 0, 0, 0, 2]);
    bad.extend(&good[at + 7..]);
    // One byte longer: the list message's length and the outer lengths do not change, so
    // fix the list message's length prefix (one byte, before its type id ff 88).
    let list_at = bad.windows(2).rposition(|w| w == [0xff, 0x88]).unwrap() - 1;
    bad[list_at] += 1;
    assert_eq!(
        decode("7-byte connection name", &bad),
        Err(TopologyError::Name(PeerNameError::ByteLength(7)))
    );

    // A summary where a connection list should be.
    let mut bad = full[..full.len() - 5].to_vec();
    summary_message(&mut bad, &[0, 0, 0, 0, 0, 1], 0);
    assert_eq!(
        decode("summary for a list", &bad),
        Err(TopologyError::Gob(GobError::TypeMismatch {
            expected: "a slice",
            found: topology::PEER_SUMMARY_TYPE_ID
        }))
    );

    // Many good records, then a bad one: what the good ones cost grows with the input.
    let mut many = topology_records(1..=3000);
    summary_message(&mut many, &[1, 2, 3, 4, 5], 0);
    many.extend_from_slice(&[0x04, 0xff, 0x88, 0x00, 0x00]);
    assert_eq!(
        decode("3000 records, then a bad name", &many),
        Err(TopologyError::Name(PeerNameError::ByteLength(5)))
    );
    // Good records decoded in full (owned copies too), one more than a power of two so
    // that the vector of borrowed records is nearly half empty: the worst case of RECORDS.
    let good = topology_records(1..=2049);
    assert_eq!(decode("2049 good records", &good), Ok(2049));
}

// ----------------------------------------------------------------------------- counter

#[test]
fn counter_payload_bad_inputs() {
    let decode = |what: &str, s: &[u8]| bounded(RECORDS, what, s, Counts::decode_payload);
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 69, gob::UINT, gob::INT);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 69);
        o.push(0);
        gob::put_uint(o, 1);
        gob::put_uint(o, 1 << 48);
        gob::put_int(o, 1);
    });
    assert_eq!(
        decode("key over 48 bits", &s),
        Err(GossipError::new(GobError::TypeMismatch { expected: "a 48-bit name", found: gob::UINT }))
    );
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 69, gob::STRING, gob::INT);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 69);
        o.push(0);
        gob::put_uint(o, 1);
        gob::put_bytes(o, b"a");
        gob::put_int(o, 1);
    });
    assert_eq!(
        decode("string keys", &s),
        Err(GossipError::new(GobError::TypeMismatch { expected: "uint", found: gob::INT }))
    );
    assert_eq!(decode("empty payload", &[]), Err(GossipError::new(GobError::Truncated("the counter map"))));

    // Many distinct entries, then a bad one.
    let mut s = Vec::new();
    gob::put_map_definition(&mut s, 69, gob::UINT, gob::INT);
    gob::put_message(&mut s, |o| {
        gob::put_int(o, 69);
        o.push(0);
        gob::put_uint(o, 5001);
        for k in 1..=5000u64 {
            gob::put_uint(o, k);
            gob::put_int(o, 1);
        }
        gob::put_uint(o, u64::MAX);
        gob::put_int(o, 1);
    });
    assert_eq!(
        decode("5000 entries, then a bad key", &s),
        Err(GossipError::new(GobError::TypeMismatch { expected: "a 48-bit name", found: gob::UINT }))
    );
}

// ----------------------------------------------------------------------------- a whole node

const US: u64 = 0x0a;
const THEM: u64 = 0x0b;

/// A node (alpha, with a counter on `default`) and one established connection from peer
/// 0x0b, set up outside the bound; the returned session is the peer's when `password`.
fn node_with_peer(password: Option<&str>) -> (Node, ConnId, Option<Session>) {
    node_with_peer_configured(password, |_| {})
}

/// [`node_with_peer`], with the node's configuration changed by `tweak` first.
fn node_with_peer_configured(
    password: Option<&str>,
    tweak: impl FnOnce(&mut Config),
) -> (Node, ConnId, Option<Session>) {
    let mut config = Config::new(PeerName::from_u64(US).unwrap(), "alpha");
    config.peer_discovery = false;
    config.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    tweak(&mut config);
    let t0 = Instant::from_secs(1);
    let mut node = Node::new(config, Node::seed_from_u64(5), t0).unwrap();
    let counter = Counter::new(PeerName::from_u64(US).unwrap());
    node.register_channel("default", counter.gossiper()).unwrap();
    let conn = node.handle_accepted("127.0.0.1:40000".parse().unwrap(), t0);
    let mut peer = Handshake::with_parts(
        HandshakeConfig {
            role: Role::Dialer,
            name: PeerName::from_u64(THEM).unwrap(),
            nickname: Bytes::from_static(b"them"),
            uid: 77,
            short_id: 7,
            trusts_remote: false,
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            versions: Preamble::V2_ONLY,
        },
        Some(KeyPair::from_secret([4; 32])),
        3,
        t0,
    );
    let mut outcome = None;
    for _ in 0..4 {
        if let Some(out) = peer.take_output() {
            node.handle_data(conn, &out, t0);
        }
        let from_node = transmitted(&mut node);
        if outcome.is_none() && !from_node.is_empty() {
            if let Progress::Done(o) = peer.handle_data(&from_node, t0).unwrap() {
                outcome = Some(o);
            }
        }
    }
    let outcome = outcome.expect("the peer's handshake completes");
    assert_eq!(outcome.remote.name, PeerName::from_u64(US).unwrap());
    assert_eq!(node.connected_peers(), vec![PeerName::from_u64(THEM).unwrap()]);
    let session = outcome.session.map(|s| match s {
        Sealing::V2(s) => s,
        Sealing::V3(_) => panic!("a version 2 peer"),
    });
    (node, conn, session)
}

fn transmitted(node: &mut Node) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(o) = node.poll_output() {
        if let Output::Transmit { data, .. } = o {
            out.extend_from_slice(&data);
        }
    }
    out
}

/// Feeds `input` to the node under the bound and returns why it closed the connection.
fn node_closes(what: &str, node: &mut Node, conn: ConnId, input: &[u8]) -> CloseReason {
    bounded_with(what, input.len(), COPY, NODE_FIXED, || {
        node.handle_data(conn, input, Instant::from_secs(2))
    });
    close_reason(what, node, conn)
}

/// Why the node closed `conn`, from its events; fails if it did not.
fn close_reason(what: &str, node: &mut Node, conn: ConnId) -> CloseReason {
    let mut reason = None;
    while let Some(o) = node.poll_output() {
        if let Output::Event(Event::ConnectionClosed { conn: c, reason: r, .. }) = o {
            assert_eq!(c, conn);
            reason = Some(r);
        }
    }
    let reason = reason.unwrap_or_else(|| panic!("{what}: the connection stayed open"));
    assert!(node.connected_peers().is_empty(), "{what}");
    reason
}

#[test]
fn node_bad_inputs_after_a_plaintext_handshake() {
    let them = PeerName::from_u64(THEM).unwrap();
    let cases: Vec<(&str, Vec<u8>, CloseReason)> = vec![
        (
            "frame over 10 MiB",
            (MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec(),
            CloseReason::Frame(FrameError::TooLarge { len: MAX_FRAME_LEN as u64 + 1, max: MAX_FRAME_LEN }),
        ),
        (
            "source over 48 bits",
            framed(&{
                let mut body = vec![6];
                gob::put_top_string(&mut body, b"default");
                gob::put_top_uint(&mut body, 1 << 48);
                gob::put_top_bytes(&mut body, b"");
                body
            }),
            CloseReason::Message(MessageError::Name(PeerNameError::TooLarge(1 << 48))),
        ),
        (
            "truncated envelope",
            framed(&[4, 0x05, 0x0c]),
            CloseReason::Message(MessageError::Gob(GobError::TooLong {
                what: "message",
                len: 5,
                remaining: 1,
            })),
        ),
        (
            "topology with a 5-byte name",
            framed(&gossip_body(GossipKind::Gossip, b"topology", &{
                let defs = topology_records(std::iter::once(1));
                let mut bad = defs[..1 + defs[0] as usize].to_vec();
                summary_message(&mut bad, &[1, 2, 3, 4, 5], 0);
                bad
            })),
            CloseReason::Topology(TopologyError::Name(PeerNameError::ByteLength(5))),
        ),
        (
            "topology with 2^60 connections",
            framed(&gossip_body(GossipKind::Gossip, b"topology", &{
                let mut full = Vec::new();
                let s = topology::PeerSummary {
                    name: PeerName::from_u64(0x0c).unwrap(),
                    uid: 1,
                    ..Default::default()
                };
                topology::UpdateEncoder::new().push(&mut full, &s, [].iter());
                full.truncate(full.len() - 5);
                gob::put_message(&mut full, |o| {
                    gob::put_int(o, topology::CONNECTION_LIST_TYPE_ID);
                    o.push(0);
                    gob::put_uint(o, 1 << 60);
                });
                full
            })),
            CloseReason::Topology(TopologyError::Gob(GobError::TooLong {
                what: "slice element count",
                len: 1 << 60,
                remaining: 0,
            })),
        ),
        (
            "topology unicast to us",
            framed(&gossip_body(
                GossipKind::Unicast { destination: PeerName::from_u64(US).unwrap() },
                b"topology",
                b"",
            )),
            CloseReason::TopologyUnicast,
        ),
        (
            "counter payload that is not a map",
            framed(&gossip_body(GossipKind::Broadcast, b"default", b"\x03\x06\x00\x01")),
            CloseReason::Gossiper {
                channel: "default".into(),
                error: GossipError::new(GobError::TypeMismatch { expected: "a map", found: gob::UINT }),
            },
        ),
    ];
    for (what, input, expected) in cases {
        let (mut node, conn, session) = node_with_peer(None);
        assert!(session.is_none());
        assert_eq!(node_closes(what, &mut node, conn, &input), expected, "{what}");
        assert!(node.inspect().peer(&them).is_none_or(|p| p.summary.uid == 77), "{what}");
    }

    // A long run of heartbeats, then an oversize frame, in one read.
    let (mut node, conn, _) = node_with_peer(None);
    let mut input = Vec::new();
    for _ in 0..5000 {
        input.extend(framed(&[0]));
    }
    input.extend(u32::MAX.to_be_bytes());
    assert_eq!(
        node_closes("5000 heartbeats, then 4 GiB announced", &mut node, conn, &input),
        CloseReason::Frame(FrameError::TooLarge { len: u32::MAX.into(), max: MAX_FRAME_LEN })
    );
}

/// A topology update (gossip on `topology`, framed) of one record with no connections.
fn forged_record(name: u64, uid: u64, version: u64) -> Vec<u8> {
    let mut update = Vec::new();
    let summary =
        topology::PeerSummary { name: PeerName::from_u64(name).unwrap(), uid, version, ..Default::default() };
    topology::UpdateEncoder::new().push(&mut update, &summary, [].iter());
    framed(&gossip_body(GossipKind::Gossip, b"topology", &update))
}

#[test]
fn a_forged_record_about_us_cannot_freeze_our_version() {
    use mesh_proto::version_growth::{VERSION_BURST, VERSION_REFILL_PER_SEC};
    // Measured against earlier builds: our version went from 460 to u64::MAX at once.
    let (mut node, conn, _) = node_with_peer(None);
    let us = PeerName::from_u64(US).unwrap();
    let version = |node: &Node| node.inspect().peer(&us).unwrap().summary.version;
    let before = version(&node);
    let t = Instant::from_secs(2);
    for (uid, v) in [(666, u64::MAX - 1), (667, u64::MAX), (node.uid(), u64::MAX)] {
        node.handle_data(conn, &forged_record(US, uid, v), t);
    }
    assert!(node.connected_peers().contains(&PeerName::from_u64(THEM).unwrap()), "the connection stays");
    assert_eq!(version(&node), before + VERSION_BURST, "the burst, and no more, however often");
    assert_eq!(node.stats().version_jumps_refused, 3);
    // A second later the refill is all a forgery gains.
    node.handle_data(conn, &forged_record(US, 668, u64::MAX), t + std::time::Duration::from_secs(1));
    assert_eq!(version(&node), before + VERSION_BURST + VERSION_REFILL_PER_SEC);
    // A record of another peer that leaps past its budget is not taken either.
    let other = 0x0c;
    node.handle_data(conn, &forged_record(other, 5, 10), t);
    node.handle_data(conn, &forged_record(other, 5, u64::MAX), t);
    let held = node.inspect().peer(&PeerName::from_u64(other).unwrap()).map(|p| p.summary.version);
    assert_eq!(held, Some(10));
    assert_eq!(node.stats().version_jumps_refused, 5);
}

/// A framed topology update of one record of `name` with `nickname` and `connections`
/// to distinct unknown peers.
fn costly_record(name: u64, nickname: &[u8], connections: u64) -> Vec<u8> {
    let summary = topology::PeerSummary {
        name: PeerName::from_u64(name).unwrap(),
        nickname: Bytes::copy_from_slice(nickname),
        uid: 9,
        version: 1,
        ..Default::default()
    };
    let conns: Vec<topology::ConnectionSummary> = (0..connections)
        .map(|i| topology::ConnectionSummary {
            name: PeerName::from_u64((name << 20) + i).unwrap(),
            remote_tcp_addr: Bytes::from_static(b"10.0.0.1:6783"),
            outbound: true,
            established: true,
        })
        .collect();
    let mut update = Vec::new();
    topology::UpdateEncoder::new().push(&mut update, &summary, conns.iter());
    framed(&gossip_body(GossipKind::Gossip, b"topology", &update))
}

#[test]
fn records_over_a_bound_are_refused_and_close_the_connection() {
    use mesh_proto::config::RecordLimits;
    let d = RecordLimits::default();
    let c = PeerName::from_u64(0x0c).unwrap();
    // The two costly records measured against earlier builds (+81 MB and +52 MB on the
    // target, spreading mesh-wide): 100,000 connections to unknown peers, and a huge
    // nickname (2 MiB here, within the frame limit).
    let cases = [
        (
            "10,001 connections",
            costly_record(0x0c, b"c", 10_001),
            TopologyError::TooManyConnections { name: c, count: 10_001, max: d.max_connections },
        ),
        (
            "100,000 connections",
            costly_record(0x0c, b"c", 100_000),
            // 28 bytes a connection on the wire, and the record's summary.
            TopologyError::RecordTooLarge { name: c, len: 2_800_123, max: d.max_record_len },
        ),
        (
            "a 2 MiB nickname",
            costly_record(0x0c, &vec![b'n'; 2 << 20], 0),
            TopologyError::NicknameTooLong { name: c, len: 2 << 20, max: d.max_nickname_len },
        ),
    ];
    for (what, input, expected) in cases {
        let (mut node, conn, _) = node_with_peer(None);
        // Refused as the bytes arrive: the cost is the bounded decoding, not a table.
        bounded_with(what, input.len(), RECORDS, NODE_FIXED, || {
            node.handle_data(conn, &input, Instant::from_secs(2))
        });
        let reason = close_reason(what, &mut node, conn);
        assert_eq!(reason, CloseReason::Topology(expected), "{what}");
        assert!(node.inspect().peer(&c).is_none(), "{what}: nothing of it was taken");
        assert!(node.inspect().peers().count() <= 2, "{what}: no placeholders");
        assert_eq!(node.stats().records_refused, 1, "{what}");
    }
    // Within the defaults an honest large record is taken; a smaller size bound refuses it.
    let big = costly_record(0x0c, b"c", 5_000);
    let (mut node, conn, _) = node_with_peer(None);
    node.handle_data(conn, &big, Instant::from_secs(2));
    assert_eq!(node.inspect().peer(&c).map(|p| p.connections.len()), Some(5_000));
    let (mut node, conn, _) =
        node_with_peer_configured(None, |cfg| cfg.record_limits.max_record_len = 64 << 10);
    let reason = node_closes("a record over 64 KiB", &mut node, conn, &big);
    assert!(
        matches!(reason, CloseReason::Topology(TopologyError::RecordTooLarge { max: 65536, len, .. }) if len > 65536),
        "{reason:?}"
    );
}

#[test]
fn an_update_that_would_overfill_the_table_is_refused_whole() {
    let (mut node, conn, _) = node_with_peer_configured(None, |cfg| cfg.record_limits.max_peers = 50);
    // Us, them, the record and 40 placeholders: 43 entries fit.
    node.handle_data(conn, &costly_record(0x0c, b"c", 40), Instant::from_secs(2));
    assert_eq!(node.inspect().peers().count(), 43);
    node.handle_data(conn, &costly_record(0x0d, b"d", 7), Instant::from_secs(3));
    let reason = close_reason("an update of 8 more", &mut node, conn);
    assert_eq!(reason, CloseReason::TableFull { entries: 51, max: 50 });
    assert!(node.inspect().peer(&PeerName::from_u64(0x0d).unwrap()).is_none());
    assert_eq!(node.stats().records_refused, 1);
}

#[test]
fn node_bad_inputs_after_an_encrypted_handshake() {
    // A frame sealed out of sequence (seq 2 where 1 is due), a tampered one, a short one.
    let (mut node, conn, session) = node_with_peer(Some("pw"));
    let mut s = session.expect("encrypted");
    let _skipped = s.sealer.seal(&[0]);
    let late = framed(&s.sealer.seal(&[0]));
    assert_eq!(
        node_closes("frame out of sequence", &mut node, conn, &late),
        CloseReason::Crypto(CryptoError::Open { seq: 1 })
    );

    let (mut node, conn, session) = node_with_peer(Some("pw"));
    let mut s = session.expect("encrypted");
    let mut sealed = s.sealer.seal(&gossip_body(GossipKind::Broadcast, b"default", b""));
    sealed[20] ^= 4;
    assert_eq!(
        node_closes("tampered frame", &mut node, conn, &framed(&sealed)),
        CloseReason::Crypto(CryptoError::Open { seq: 1 })
    );

    let (mut node, conn, _) = node_with_peer(Some("pw"));
    assert_eq!(
        node_closes("sealed frame under 16 bytes", &mut node, conn, &framed(&[0; 9])),
        CloseReason::Crypto(CryptoError::Short { len: 9 })
    );

    // A well-sealed frame with a bad envelope inside.
    let (mut node, conn, session) = node_with_peer(Some("pw"));
    let mut s = session.expect("encrypted");
    let sealed = s.sealer.seal(&[5, 0x03, 0x0c, 0x00, 0x00]);
    assert_eq!(
        node_closes("sealed unicast without source", &mut node, conn, &framed(&sealed)),
        CloseReason::Message(MessageError::Gob(GobError::Truncated("the source name")))
    );
}

#[test]
fn node_bad_inputs_during_the_handshake() {
    let cases: Vec<(&str, Vec<u8>, HandshakeError)> = vec![
        ("bad magic", b"WEAVE\x02\x02".to_vec(), HandshakeError::Header(HeaderError::BadMagic(*b"WEAVE"))),
        ("bad flag", b"weave\x02\x02\x07".to_vec(), HandshakeError::BadFlag(7)),
        (
            "features frame of 4 GiB",
            b"weave\x02\x02\x00\xff\xff\xff\xff".to_vec(),
            HandshakeError::Frame(FrameError::TooLarge {
                len: u32::MAX.into(),
                max: MAX_HANDSHAKE_FRAME_LEN,
            }),
        ),
        (
            "features without a name",
            [&b"weave\x02\x02\x00"[..], &framed(&with("Name", None))].concat(),
            HandshakeError::Features(FeaturesError::Missing("Name")),
        ),
    ];
    for (what, input, expected) in cases {
        let mut config = Config::new(PeerName::from_u64(US).unwrap(), "alpha");
        config.peer_discovery = false;
        let t0 = Instant::from_secs(1);
        let mut node = Node::new(config, Node::seed_from_u64(6), t0).unwrap();
        let conn = node.handle_accepted("127.0.0.1:40001".parse().unwrap(), t0);
        transmitted(&mut node);
        assert_eq!(node_closes(what, &mut node, conn, &input), CloseReason::Handshake(expected), "{what}");
    }
}

/// Go's `FetchByShortID` and `OnInvalidateShortIDs`: a lower-named peer that claims our
/// short id takes it (the lowest name is the principal), the mapping's change is raised
/// once for the input, and we move to a free id.
#[test]
fn a_lower_named_claim_on_our_short_id_is_raised_as_an_invalidation() {
    let (mut node, conn, _) = node_with_peer(None);
    let _ = transmitted(&mut node);
    let us = PeerName::from_u64(US).unwrap();
    let ours = node.status().short_id;
    assert_eq!(node.peer_by_short_id(ours), Some(us));
    assert_eq!(
        node.peer_by_short_id(7),
        Some(PeerName::from_u64(THEM).unwrap()),
        "the peer's, from its handshake"
    );
    let lower = PeerName::from_u64(0x05).unwrap();
    let summary =
        topology::PeerSummary { name: lower, uid: 5, version: 1, short_id: Some(ours), ..Default::default() };
    let mut update = Vec::new();
    topology::UpdateEncoder::new().push(&mut update, &summary, [].iter());
    node.handle_data(
        conn,
        &framed(&gossip_body(GossipKind::Gossip, b"topology", &update)),
        Instant::from_secs(2),
    );
    let mut raised = 0;
    while let Some(o) = node.poll_output() {
        raised += usize::from(matches!(o, Output::Event(Event::ShortIdsInvalidated)));
    }
    assert_eq!(raised, 1, "once for the input");
    assert_eq!(node.peer_by_short_id(ours), Some(lower), "the lower name took the id");
    let moved = node.status().short_id;
    assert_ne!(moved, ours, "we moved to a free id");
    assert_eq!(node.peer_by_short_id(moved), Some(us));
    let d = node.peer_descriptions();
    let me = d.iter().find(|p| p.is_self).unwrap();
    assert_eq!((me.name, me.short_id, me.connections), (us, Some(moved), 1));
    let them = d.iter().find(|p| p.name == lower).unwrap();
    assert_eq!((them.uid, them.version, them.short_id, them.is_self), (5, 1, Some(ours), false));
    assert_eq!(d.iter().filter(|p| p.is_self).count(), 1);
    // Nothing changed since: nothing is raised.
    node.handle_timeout(Instant::from_secs(2));
    assert!(
        !std::iter::from_fn(|| node.poll_output())
            .any(|o| matches!(o, Output::Event(Event::ShortIdsInvalidated)))
    );
}
