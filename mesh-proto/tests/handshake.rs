//! Two in-memory handshakes against each other: success and every failure mode.

use bytes::Bytes;
use mesh_proto::Instant;
use mesh_proto::PeerName;
use mesh_proto::fuzzing::crypto::CryptoError;
use mesh_proto::fuzzing::handshake::{
    Handshake, HandshakeConfig, HandshakeError, Outcome, Progress, Role, Security, Stage,
};
use mesh_proto::fuzzing::pake::PakeError;
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::features::RemoteFeatures;
use mesh_proto::wire::header::{HeaderError, Preamble};
use mesh_proto::wire::message::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn config(role: Role, n: u64, password: Option<&str>) -> HandshakeConfig {
    config_v(role, n, password, Preamble::V2_ONLY)
}

fn config_v(role: Role, n: u64, password: Option<&str>, versions: Preamble) -> HandshakeConfig {
    HandshakeConfig {
        role,
        name: PeerName::from_u64(n).unwrap(),
        nickname: Bytes::from(format!("peer{n}")),
        uid: 1000 + n,
        short_id: n as u16,
        trusts_remote: n % 2 == 0,
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        versions,
    }
}

type Res = Result<Box<Outcome>, HandshakeError>;

/// Shuttles bytes between two handshakes until both finish. `tamper` may rewrite what
/// the dialer receives. A side that fails closes the connection, which the other side
/// sees as a close unless it has finished or failed already.
fn run(a: HandshakeConfig, b: HandshakeConfig, tamper: impl Fn(&mut Vec<u8>)) -> (Res, Res) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let now = Instant::from_secs(5);
    let mut ha = Handshake::new(a, &mut rng, now);
    let mut hb = Handshake::new(b, &mut rng, now);
    let (mut ra, mut rb): (Option<Res>, Option<Res>) = (None, None);
    let failed = |r: &Option<Res>| matches!(r, Some(Err(_)));
    let feed = |h: &mut Handshake, r: &mut Option<Res>, bytes: &[u8]| {
        if r.is_none() {
            match h.handle_data(bytes, now) {
                Ok(Progress::Done(o)) => *r = Some(Ok(o)),
                Ok(Progress::Pending) => {}
                Err(e) => *r = Some(Err(e)),
            }
        }
    };
    for _ in 0..10 {
        // A side that failed has closed the socket and sends nothing more; one that
        // finished still flushes what it queued.
        let to_b = if failed(&ra) { None } else { ha.take_output() };
        let mut to_a = if failed(&rb) { None } else { hb.take_output() };
        if let Some(bytes) = to_b {
            feed(&mut hb, &mut rb, &bytes);
        }
        if let Some(bytes) = to_a.as_mut() {
            tamper(bytes);
            feed(&mut ha, &mut ra, bytes);
        }
        if failed(&ra) && rb.is_none() {
            rb = Some(Err(hb.handle_closed()));
        }
        if failed(&rb) && ra.is_none() {
            ra = Some(Err(ha.handle_closed()));
        }
        if ra.is_some() && rb.is_some() {
            break;
        }
    }
    (ra.expect("dialer finished"), rb.expect("listener finished"))
}

fn assert_connected(a: Res, b: Res, encrypted: bool) {
    assert_connected_v(a, b, encrypted, 2);
}

fn assert_connected_v(a: Res, b: Res, encrypted: bool, version: u8) {
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.version, b.version), (version, version));
    assert_eq!(a.remote.name, PeerName::from_u64(2).unwrap());
    assert_eq!(b.remote.name, PeerName::from_u64(1).unwrap());
    assert_eq!(&a.remote.nickname[..], b"peer2");
    assert_eq!(a.remote.uid, 1002);
    assert_eq!(a.remote.short_id, Some(2));
    assert!(a.remote.trusts_us && !b.remote.trusts_us);
    assert_eq!(a.conn_key(), b.conn_key(), "both ends compute the same tie-break key");
    assert!(a.leftover.is_empty() && b.leftover.is_empty());
    assert_eq!(a.session.is_some(), encrypted);
    assert_eq!(b.session.is_some(), encrypted);
    if let (Some(sa), Some(sb)) = (a.session.as_mut(), b.session.as_mut()) {
        // Sequence 1 in each direction after the features frame.
        let sealed = sa.frame(&[0]).unwrap();
        assert_eq!(sb.open(&sealed[4..]).unwrap(), [0]);
        let sealed = sb.frame(b"\x00").unwrap();
        assert_eq!(Message::decode(&sa.open(&sealed[4..]).unwrap()).unwrap(), Message::Heartbeat);
    }
}

#[test]
fn plaintext() {
    let (a, b) = run(config(Role::Dialer, 1, None), config(Role::Listener, 2, None), |_| {});
    assert_connected(a, b, false);
}

#[test]
fn with_password() {
    let (a, b) =
        run(config(Role::Dialer, 1, Some("s3cret")), config(Role::Listener, 2, Some("s3cret")), |_| {});
    assert_connected(a, b, true);
}

#[test]
fn with_empty_password_still_encrypts() {
    let (a, b) = run(config(Role::Dialer, 1, Some("")), config(Role::Listener, 2, Some("")), |_| {});
    assert_connected(a, b, true);
}

#[test]
fn wrong_password_fails_on_both_sides() {
    let (a, b) = run(config(Role::Dialer, 1, Some("one")), config(Role::Listener, 2, Some("two")), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::WrongPassword);
    assert_eq!(b.unwrap_err(), HandshakeError::WrongPassword);
}

#[test]
fn password_on_one_side_only_fails_on_both_sides() {
    let (a, b) = run(config(Role::Dialer, 1, Some("x")), config(Role::Listener, 2, None), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::EncryptionMismatch { we_encrypt: true, they_encrypt: false });
    assert_eq!(b.unwrap_err(), HandshakeError::EncryptionMismatch { we_encrypt: false, they_encrypt: true });
    let (a, b) = run(config(Role::Dialer, 1, None), config(Role::Listener, 2, Some("")), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::EncryptionMismatch { we_encrypt: false, they_encrypt: true });
    assert_eq!(b.unwrap_err(), HandshakeError::EncryptionMismatch { we_encrypt: true, they_encrypt: false });
}

#[test]
fn bad_flag_fails_the_receiver_and_the_sender_sees_the_close() {
    let (a, b) = run(config(Role::Dialer, 1, None), config(Role::Listener, 2, None), |bytes| {
        if bytes.len() > 7 && &bytes[..5] == b"weave" {
            bytes[7] = 0x02;
        }
    });
    assert_eq!(a.unwrap_err(), HandshakeError::BadFlag(2));
    // The listener had all it needed from the dialer and finished: the refusal shows up
    // for it as the connection closing right after (as with Go).
    let b = b.unwrap();
    assert_eq!((b.version, b.session.is_none(), b.leftover.len()), (2, true, 0));
    let dialer = RemoteFeatures {
        name: PeerName::from_u64(1).unwrap(),
        nickname: Bytes::from_static(b"peer1"),
        uid: 1001,
        conn_id: b.remote.conn_id,
        short_id: Some(1),
        trusts_us: false,
    };
    assert_eq!(b.remote, dialer);
}

#[test]
fn incompatible_versions_fail_on_both_sides() {
    let mut old = config(Role::Listener, 2, None);
    old.versions = Preamble { min: 1, max: 1 };
    let (a, b) = run(config(Role::Dialer, 1, None), old, |_| {});
    let ours = Preamble::V2_ONLY;
    let theirs = Preamble { min: 1, max: 1 };
    assert_eq!(a.unwrap_err(), HandshakeError::Header(HeaderError::Incompatible { ours, theirs }));
    assert_eq!(
        b.unwrap_err(),
        HandshakeError::Header(HeaderError::Incompatible { ours: theirs, theirs: ours })
    );
}

#[test]
fn closing_early_is_reported_with_the_stage() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut h = Handshake::new(config(Role::Dialer, 1, None), &mut rng, Instant::ZERO);
    assert!(matches!(h.handle_data(b"weav", Instant::ZERO), Ok(Progress::Pending)));
    assert_eq!(h.handle_closed(), HandshakeError::Closed(Stage::Preamble));
}

#[test]
fn bytes_after_the_features_are_handed_over() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut a = Handshake::new(config(Role::Dialer, 1, None), &mut rng, Instant::ZERO);
    let mut b = Handshake::new(config(Role::Listener, 2, None), &mut rng, Instant::ZERO);
    let mut from_b = b.take_output().unwrap();
    from_b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0]); // a heartbeat frame and a partial prefix
    let _ = a.take_output();
    let Progress::Done(o) = a.handle_data(&from_b, Instant::ZERO).unwrap() else { panic!("not done") };
    assert_eq!(&o.leftover[..], &[0, 0, 0, 1, 0, 0, 0]);
}

// ----------------------------------------------------------------------------- version 3

fn v3(role: Role, n: u64, password: Option<&str>) -> HandshakeConfig {
    config_v(role, n, password, Preamble::OURS)
}

#[test]
fn v3_completes_with_a_password_an_empty_one_and_none() {
    for (pw, security) in [
        (Some("s3cret"), Security::V3Password),
        (Some(""), Security::V3Password),
        (None, Security::V3Unauthenticated),
    ] {
        let (a, b) = run(v3(Role::Dialer, 1, pw), v3(Role::Listener, 2, pw), |_| {});
        let (sa, sb) = (a.as_ref().unwrap().security, b.as_ref().unwrap().security);
        assert_eq!((sa, sb), (security, security), "{pw:?}");
        assert!(matches!(a.as_ref().unwrap().session, Some(Sealing::V3(_))), "{pw:?}");
        assert_connected_v(a, b, true, 3);
    }
}

#[test]
fn v3_offered_to_a_version_2_peer_gives_version_2() {
    for pw in [None, Some("s3cret")] {
        let (a, b) = run(v3(Role::Dialer, 1, pw), config(Role::Listener, 2, pw), |_| {});
        assert_connected_v(a, b, pw.is_some(), 2);
        let (a, b) = run(config(Role::Dialer, 1, pw), v3(Role::Listener, 2, pw), |_| {});
        assert_connected_v(a, b, pw.is_some(), 2);
    }
}

#[test]
fn v3_wrong_password_fails_in_the_handshake_on_both_sides() {
    let (a, b) = run(v3(Role::Dialer, 1, Some("one")), v3(Role::Listener, 2, Some("two")), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::WrongPassword);
    assert_eq!(b.unwrap_err(), HandshakeError::WrongPassword);
    // An empty password is a password, and not another one.
    let (a, b) = run(v3(Role::Dialer, 1, Some("")), v3(Role::Listener, 2, Some(" ")), |_| {});
    assert_eq!(
        (a.unwrap_err(), b.unwrap_err()),
        (HandshakeError::WrongPassword, HandshakeError::WrongPassword)
    );
}

#[test]
fn v3_password_on_one_side_only_fails_on_both_sides() {
    let (a, b) = run(v3(Role::Dialer, 1, Some("x")), v3(Role::Listener, 2, None), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::PasswordMismatch { we_have: true, they_have: false });
    assert_eq!(b.unwrap_err(), HandshakeError::PasswordMismatch { we_have: false, they_have: true });
    let (a, b) = run(v3(Role::Dialer, 1, None), v3(Role::Listener, 2, Some("")), |_| {});
    assert_eq!(a.unwrap_err(), HandshakeError::PasswordMismatch { we_have: false, they_have: true });
    assert_eq!(b.unwrap_err(), HandshakeError::PasswordMismatch { we_have: true, they_have: false });
}

#[test]
fn min_version_3_refuses_a_version_2_peer_on_both_sides() {
    let v3_only = Preamble { min: 3, max: 3 };
    for pw in [None, Some("pw")] {
        let (a, b) = run(config_v(Role::Dialer, 1, pw, v3_only), config(Role::Listener, 2, pw), |_| {});
        assert_eq!(
            a.unwrap_err(),
            HandshakeError::Header(HeaderError::BelowMinimum { remote_max: 2, our_min: 3 })
        );
        assert_eq!(
            b.unwrap_err(),
            HandshakeError::Header(HeaderError::Incompatible { ours: Preamble::V2_ONLY, theirs: v3_only })
        );
        // And a Go peer's range.
        let mut go = config(Role::Listener, 2, pw);
        go.versions = Preamble { min: 1, max: 2 };
        let (a, _) = run(config_v(Role::Dialer, 1, pw, v3_only), go, |_| {});
        assert_eq!(
            a.unwrap_err(),
            HandshakeError::Header(HeaderError::BelowMinimum { remote_max: 2, our_min: 3 })
        );
        // Against a peer offering [2, 3], version 3.
        let (a, b) = run(config_v(Role::Dialer, 1, pw, v3_only), v3(Role::Listener, 2, pw), |_| {});
        assert_connected_v(a, b, true, 3);
    }
}

/// Byte offsets of the dialer's view of the listener's stream in version 3: preamble
/// (7), hello (41), confirmation (32), then the sealed features frame.
const HELLO_AT: usize = 7;
const CONFIRM_AT: usize = 7 + 41;
const FEATURES_AT: usize = 7 + 41 + 32;

/// Runs a version 3 handshake whose listener→dialer stream is rewritten by `tamper`,
/// given the offset in that stream where each flight starts.
fn v3_tampered(pw: Option<&str>, tamper: impl Fn(usize, &mut Vec<u8>)) -> (Res, Res) {
    let offset = std::cell::Cell::new(0usize);
    run(v3(Role::Dialer, 1, pw), v3(Role::Listener, 2, pw), |bytes| {
        let at = offset.get();
        offset.set(at + bytes.len());
        tamper(at, bytes);
    })
}

/// Flips one bit at stream offset `target`, whichever flight carries it.
fn flip(target: usize) -> impl Fn(usize, &mut Vec<u8>) {
    move |at, bytes| {
        if (at..at + bytes.len()).contains(&target) {
            bytes[target - at] ^= 0x10;
        }
    }
}

#[test]
fn v3_a_tampered_handshake_ends_with_a_typed_error_on_both_sides() {
    for pw in [Some("pw"), None] {
        // A rewritten preamble (max 3 → still 3, min changed): the transcripts differ,
        // so the confirmations fail.
        let (a, b) = v3_tampered(pw, |at, bytes| {
            if at == 0 {
                bytes[5] = 3;
            }
        });
        let expected =
            if pw.is_some() { HandshakeError::WrongPassword } else { HandshakeError::ConfirmationFailed };
        assert_eq!(a.unwrap_err(), expected, "{pw:?}: preamble");
        assert!(b.is_err(), "{pw:?}: preamble");
        // The hello's connection id, its element, the confirmation.
        for (what, target) in
            [("conn id", HELLO_AT + 3), ("element", HELLO_AT + 20), ("confirmation", CONFIRM_AT + 5)]
        {
            let (a, b) = v3_tampered(pw, flip(target));
            let a = a.unwrap_err();
            assert!(a == expected || matches!(a, HandshakeError::Pake(_)), "{pw:?} {what}: {a:?}");
            assert!(b.is_err(), "{pw:?} {what}: the listener sees the close");
        }
        // The sealed features: the password was confirmed, so this is tampering.
        let (a, b) = v3_tampered(pw, flip(FEATURES_AT + 10));
        assert_eq!(a.unwrap_err(), HandshakeError::Crypto(CryptoError::Open { seq: 0 }), "{pw:?}");
        assert!(b.is_ok() || b.is_err_and(|e| matches!(e, HandshakeError::Closed(_))));
    }
}

#[test]
fn v3_a_truncated_replayed_or_reordered_features_frame_fails() {
    // Truncated: the length prefix is authenticated, so a frame cut short (its prefix
    // rewritten to match) does not open.
    let (a, _) = v3_tampered(Some("pw"), |at, bytes| {
        if (at..at + bytes.len()).contains(&FEATURES_AT) {
            let i = FEATURES_AT - at;
            let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
            bytes[i..i + 4].copy_from_slice(&(len - 1).to_be_bytes());
            bytes.truncate(i + 4 + len as usize - 1);
        }
    });
    assert_eq!(a.unwrap_err(), HandshakeError::Crypto(CryptoError::Open { seq: 0 }));
    // Replayed from another connection with the same password and peers (`run` seeds
    // its generator with 7): other keys.
    let (_, recorded) = capture_listener_stream(Some("pw"), 8);
    let (a, _) = v3_tampered(Some("pw"), |at, bytes| {
        if (at..at + bytes.len()).contains(&FEATURES_AT) {
            let i = FEATURES_AT - at;
            bytes.truncate(i);
            bytes.extend_from_slice(&recorded[FEATURES_AT..]);
        }
    });
    assert_eq!(a.unwrap_err(), HandshakeError::Crypto(CryptoError::Open { seq: 0 }));
    // A running session: a replayed, reordered or truncated data frame fails with the
    // sequence number it should have had.
    let (a, b) = run(v3(Role::Dialer, 1, Some("pw")), v3(Role::Listener, 2, Some("pw")), |_| {});
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    let (sa, sb) = (a.session.as_mut().unwrap(), b.session.as_mut().unwrap());
    let f1 = sa.frame(b"one").unwrap();
    let f2 = sa.frame(b"two").unwrap();
    assert_eq!(sb.open(&f2[4..]), Err(CryptoError::Open { seq: 1 }), "reordered");
    assert_eq!(sb.open(&f1[4..f1.len() - 1]), Err(CryptoError::Open { seq: 1 }), "truncated");
    assert_eq!(sb.open(&f1[4..]).unwrap(), b"one");
    assert_eq!(sb.open(&f1[4..]), Err(CryptoError::Open { seq: 2 }), "replayed");
    assert_eq!(sa.open(&f1[4..]), Err(CryptoError::Open { seq: 1 }), "reflected to its sender");
}

/// Everything a version 3 listener sent in one honest handshake (seed `seed`).
fn capture_listener_stream(pw: Option<&str>, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let now = Instant::ZERO;
    let mut d = Handshake::new(v3(Role::Dialer, 1, pw), &mut rng, now);
    let mut l = Handshake::new(v3(Role::Listener, 2, pw), &mut rng, now);
    let (mut from_d, mut from_l) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        if let Some(out) = d.take_output() {
            from_d.extend_from_slice(&out);
            let _ = l.handle_data(&out, now);
        }
        if let Some(out) = l.take_output() {
            from_l.extend_from_slice(&out);
            let _ = d.handle_data(&out, now);
        }
    }
    assert_eq!(d.stage(), Stage::Done);
    (from_d, from_l)
}

#[test]
fn v3_a_stalled_handshake_times_out_with_its_stage() {
    let t0 = Instant::ZERO;
    for stage in [Stage::Hello, Stage::Confirmation, Stage::Features] {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut d = Handshake::new(v3(Role::Dialer, 1, Some("pw")), &mut rng, t0);
        let mut l = Handshake::new(v3(Role::Listener, 2, Some("pw")), &mut rng, t0);
        // The listener's bytes, one at a time, stop reaching the dialer once it waits in
        // `stage`.
        let mut pending = std::collections::VecDeque::new();
        for _ in 0..6 {
            if let Some(out) = d.take_output() {
                let _ = l.handle_data(&out, t0);
            }
            pending.extend(l.take_output().unwrap_or_default());
            while d.stage() != stage {
                let Some(byte) = pending.pop_front() else { break };
                assert!(matches!(d.handle_data(&[byte], t0), Ok(Progress::Pending)));
            }
        }
        assert_eq!(d.stage(), stage);
        let deadline = d.deadline();
        assert_eq!(deadline, t0 + mesh_proto::config::V3_HANDSHAKE_TIMEOUT);
        assert!(d.handle_timeout(deadline - std::time::Duration::from_millis(1)).is_ok());
        assert_eq!(d.handle_timeout(deadline), Err(HandshakeError::Timeout(stage)));
    }
}

#[test]
fn v3_hostile_elements_and_bad_modes_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let t0 = Instant::ZERO;
    let mut hello = |mode: u8, element: [u8; 32]| {
        let mut h = Handshake::new(v3(Role::Listener, 2, Some("pw")), &mut rng, t0);
        let mut input = Preamble::OURS.encode().to_vec();
        input.push(mode);
        input.extend_from_slice(&7u64.to_be_bytes());
        input.extend_from_slice(&element);
        h.handle_data(&input, t0).map(|_| ())
    };
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(hello(1, identity), Err(HandshakeError::Pake(PakeError::SmallOrder)));
    assert_eq!(hello(1, [0; 32]), Err(HandshakeError::Pake(PakeError::SmallOrder)));
    assert_eq!(hello(7, identity), Err(HandshakeError::BadMode(7)));
    assert_eq!(hello(0, identity), Err(HandshakeError::PasswordMismatch { we_have: true, they_have: false }));
    let mut h = Handshake::new(v3(Role::Listener, 2, None), &mut rng, t0);
    let mut input = Preamble::OURS.encode().to_vec();
    input.push(0);
    input.extend_from_slice(&[0; 8 + 32]);
    assert_eq!(h.handle_data(&input, t0).map(|_| ()), Err(HandshakeError::Pake(PakeError::LowOrderKey)));
}
