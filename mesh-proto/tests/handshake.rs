//! Two in-memory handshakes against each other: success and every failure mode.

use bytes::Bytes;
use mesh_proto::Instant;
use mesh_proto::PeerName;
use mesh_proto::fuzzing::handshake::{
    Handshake, HandshakeConfig, HandshakeError, Outcome, Progress, Role, Stage,
};
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
