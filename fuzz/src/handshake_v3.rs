//! The `handshake_v3` target: one [`Handshake`] (ours) offering protocol version 3
//! against an honest remote peer, whose bytes the input delivers in chunks, forges,
//! replays, drops or overwrites, or against raw bytes; after the handshake, the read path
//! of a running connection (sealed frames opened, messages decoded).
//!
//! Both sides are started as a node starts them, by [`Handshake::new`] with a ChaCha20
//! generator seeded by the side's role: 1 for the dialer, 2 for the listener (the seeds
//! of the v3 test vectors, so a vector's recorded flights are what this harness's remote
//! would send, and our hello is the one the recorded peer in our role sent).
//!
//! Encoding:
//!
//! - byte 0, flags: bit 0 set if we dial (else we listen); bit 1 we have a password,
//!   bit 2 the remote has one; bit 3 we offer only version 3 (`[3, 3]`, else `[2, 3]`);
//!   bit 4 the remote offers only version 2 (`[2, 2]`, else `[2, 3]`); bit 5 raw mode;
//! - our password (a blob) if bit 1, then the remote's if bit 2 (an empty blob is the
//!   empty password, which is not the same as none);
//! - in raw mode, the rest of the input is everything the remote sends, delivered in one
//!   read, and no honest remote's byte reaches us (this reaches the preamble, hello,
//!   element and confirmation checks with no structure in the way);
//! - otherwise steps to the end of the input, each an opcode byte (taken modulo 12) and
//!   its fields, in the order of [`Step`]'s variants: `Deliver` (`u16`), `Raw` (blob),
//!   `Frame` (blob), `Flip` (blob, `u16`, `u8`), `Replay`, `Skip`, `Advance` (`u32`),
//!   `Close`, `Overwrite` (`u16`, blob), `Drop` (`u16`), `Repeat` (`u16`, `u16`),
//!   `Reflect` (`u16`, `u16`).
//!
//! Blobs are a big-endian `u16` length and that many bytes (fewer if the input ends).
//!
//! In fuzzing builds SPAKE2, the key schedule and the confirmations are the real ones;
//! only X25519 (without a password) and the sealing of frames are the transparent
//! stand-ins of `mesh_proto::fuzzing::{crypto, sealing}`. So a forged sealed frame needs
//! the right tag (which the fuzzer can learn from the comparison), but no input can forge
//! a confirmation: unless bytes of the input's choosing reached us where handshake bytes
//! were due (raw bytes, overwritten ones, frames the remote wrote before it could seal,
//! any of which may be a recording of a run with the same seeds), a version 3 handshake
//! with a password that finishes must have had a remote with that password behind it,
//! however its bytes were cut, dropped or repeated and ours reflected. The harness
//! asserts that, and what an untouched run against an honest remote must give.

use bytes::Bytes;
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeError, Progress, Role, Security};
use mesh_proto::wire::header::{Preamble, negotiate_supported};
use mesh_proto::{Instant, PeerName};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::codec::{Reader, Writer};
use crate::handshake::{Local, Report, THEM, US, config, name, read_frames, start_reading};
use crate::remote::Remote;

/// How much of our own handshake output is kept for [`Step::Reflect`].
const OUR_LOG_LIMIT: usize = 4096;

/// The generator seed of the side in `role`.
pub fn rng_seed(role: Role) -> u64 {
    match role {
        Role::Dialer => 1,
        Role::Listener => 2,
    }
}

/// `[3, 3]`: a peer configured with `min_protocol_version = 3`.
pub const V3_ONLY: Preamble = Preamble { min: 3, max: 3 };

/// One thing that happens on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Up to `max` bytes (all if 0) of what the remote has written reach us.
    Deliver {
        /// How many bytes at most.
        max: u16,
    },
    /// Bytes from nowhere reach us, ahead of anything the remote wrote.
    Raw(Vec<u8>),
    /// The remote writes a frame with this body, sealed once its handshake finished.
    Frame(Vec<u8>),
    /// As `Frame`, with byte `at` (modulo the length) of the sealed body XORed with
    /// `mask` (1 if 0). Version 3's tag follows the plaintext; version 2's leads it.
    Flip {
        /// The body.
        body: Vec<u8>,
        /// Which byte of the sealed body, tag included.
        at: u16,
        /// What it is XORed with.
        mask: u8,
    },
    /// The remote writes its last frame again.
    Replay,
    /// The remote seals an empty frame and never sends it, so the next is out of order.
    Skip,
    /// Time passes.
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// The connection closes; nothing more happens.
    Close,
    /// The remote's undelivered bytes from offset `at` on are replaced by `bytes`, as far
    /// as they reach (nothing is appended).
    Overwrite {
        /// Offset into what the remote has written and we have not received.
        at: u16,
        /// The new bytes.
        bytes: Vec<u8>,
    },
    /// Up to `max` (all if 0) of the remote's undelivered bytes are lost.
    Drop {
        /// How many bytes at most.
        max: u16,
    },
    /// Bytes `from..from + len` (to the end if `len` is 0) of everything the remote's
    /// handshake wrote reach us again, ahead of its undelivered bytes.
    Repeat {
        /// Where in the remote's handshake output.
        from: u16,
        /// How many bytes.
        len: u16,
    },
    /// Bytes `from..from + len` (to the end if `len` is 0) of everything our handshake
    /// wrote come back to us.
    Reflect {
        /// Where in our handshake output.
        from: u16,
        /// How many bytes.
        len: u16,
    },
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Whether we dial (the remote listens) or listen.
    pub we_dial: bool,
    /// Our password.
    pub ours: Option<Vec<u8>>,
    /// The remote's.
    pub theirs: Option<Vec<u8>>,
    /// We offer only version 3.
    pub we_require_v3: bool,
    /// The remote offers only version 2.
    pub they_v2_only: bool,
    /// Raw mode: everything the remote sends, instead of `steps`.
    pub raw: Option<Vec<u8>>,
    /// What happens, in order (empty in raw mode).
    pub steps: Vec<Step>,
}

fn read_step(r: &mut Reader<'_>) -> Option<Step> {
    Some(match r.u8()? % 12 {
        0 => Step::Deliver { max: r.u16()? },
        1 => Step::Raw(r.blob()?),
        2 => Step::Frame(r.blob()?),
        3 => Step::Flip { body: r.blob()?, at: r.u16()?, mask: r.u8()? },
        4 => Step::Replay,
        5 => Step::Skip,
        6 => Step::Advance { ms: r.u32()? },
        7 => Step::Close,
        8 => Step::Overwrite { at: r.u16()?, bytes: r.blob()? },
        9 => Step::Drop { max: r.u16()? },
        10 => Step::Repeat { from: r.u16()?, len: r.u16()? },
        _ => Step::Reflect { from: r.u16()?, len: r.u16()? },
    })
}

fn write_step(w: &mut Writer, s: &Step) {
    match s {
        Step::Deliver { max } => {
            w.u8(0);
            w.u16(*max);
        }
        Step::Raw(b) => {
            w.u8(1);
            w.blob(b);
        }
        Step::Frame(b) => {
            w.u8(2);
            w.blob(b);
        }
        Step::Flip { body, at, mask } => {
            w.u8(3);
            w.blob(body);
            w.u16(*at);
            w.u8(*mask);
        }
        Step::Replay => w.u8(4),
        Step::Skip => w.u8(5),
        Step::Advance { ms } => {
            w.u8(6);
            w.u32(*ms);
        }
        Step::Close => w.u8(7),
        Step::Overwrite { at, bytes } => {
            w.u8(8);
            w.u16(*at);
            w.blob(bytes);
        }
        Step::Drop { max } => {
            w.u8(9);
            w.u16(*max);
        }
        Step::Repeat { from, len } => {
            w.u8(10);
            w.u16(*from);
            w.u16(*len);
        }
        Step::Reflect { from, len } => {
            w.u8(11);
            w.u16(*from);
            w.u16(*len);
        }
    }
}

impl Input {
    /// Decodes any bytes.
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8().unwrap_or(0);
        let ours = if flags & 2 != 0 { Some(r.blob().unwrap_or_default()) } else { None };
        let theirs = if flags & 4 != 0 { Some(r.blob().unwrap_or_default()) } else { None };
        let raw = (flags & 32 != 0).then(|| r.rest());
        let mut steps = Vec::new();
        if raw.is_none() {
            while let Some(step) = read_step(&mut r) {
                steps.push(step);
            }
        }
        Input {
            we_dial: flags & 1 != 0,
            ours,
            theirs,
            we_require_v3: flags & 8 != 0,
            they_v2_only: flags & 16 != 0,
            raw,
            steps,
        }
    }

    /// The bytes that decode to `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(u8::from(self.we_dial)
            | u8::from(self.ours.is_some()) << 1
            | u8::from(self.theirs.is_some()) << 2
            | u8::from(self.we_require_v3) << 3
            | u8::from(self.they_v2_only) << 4
            | u8::from(self.raw.is_some()) << 5);
        for pw in [&self.ours, &self.theirs].into_iter().flatten() {
            w.blob(pw);
        }
        match &self.raw {
            Some(raw) => {
                assert!(self.steps.is_empty(), "a raw input has no steps");
                w.out.extend_from_slice(raw);
            }
            None => {
                for s in &self.steps {
                    write_step(&mut w, s);
                }
            }
        }
        w.out
    }

    /// The ranges both sides offer.
    pub fn versions(&self) -> (Preamble, Preamble) {
        let ours = if self.we_require_v3 { V3_ONLY } else { Preamble::OURS };
        let theirs = if self.they_v2_only { Preamble::V2_ONLY } else { Preamble::OURS };
        (ours, theirs)
    }
}

/// The handshake of one side: `role`, the peer name and uid, and the generator seeded
/// for the role.
pub fn start(role: Role, peer: PeerName, uid: u64, password: Option<&[u8]>, versions: Preamble) -> Handshake {
    let mut rng = ChaCha20Rng::seed_from_u64(rng_seed(role));
    let pw = password.map(Bytes::copy_from_slice);
    Handshake::new(config(role, peer, uid, pw, versions), &mut rng, Instant::from_secs(1))
}

/// Runs `input`, asserting what must hold whatever the bytes are, and reports.
pub fn run(input: &Input) -> Report {
    let mut now = Instant::from_secs(1);
    let (ours, theirs) =
        if input.we_dial { (Role::Dialer, Role::Listener) } else { (Role::Listener, Role::Dialer) };
    let (our_versions, their_versions) = input.versions();
    let mut us = start(ours, name(US), 11, input.ours.as_deref(), our_versions);
    let mut remote = Remote::new(start(theirs, name(THEM), 22, input.theirs.as_deref(), their_versions));
    let mut report = Report::default();
    let mut our_outcome_key = None;
    // What our handshake wrote, for reflections.
    let mut our_log = Vec::new();
    // Only the remote's own bytes, in order and untouched, have reached us.
    let mut clean = input.raw.is_none();
    // Bytes of the input's choosing reached us where handshake bytes may be due: raw
    // bytes, overwritten ones, or a frame the remote could not seal yet (such bytes can be
    // a recording of another run with the same generator seeds).
    let mut forged = input.raw.is_some();
    if let Some(out) = us.take_output() {
        wrote(&mut our_log, &out, &mut remote, now);
    }
    let mut local = Local::Handshaking(Box::new(us));
    let expected_version = negotiate_supported(our_versions, their_versions);
    // A plaintext version 2 remote sent its features with its preamble: any frame it
    // writes later is in order.
    let early_frames_ok = expected_version == Ok(2) && input.theirs.is_none();

    let raw_steps;
    let steps = match &input.raw {
        Some(raw) => {
            raw_steps = [Step::Raw(raw.clone())];
            &raw_steps[..]
        }
        None => &input.steps[..],
    };
    for step in steps {
        let mut incoming = Vec::new();
        match step {
            Step::Deliver { max } => incoming = remote.deliver(*max),
            Step::Raw(b) => {
                clean = false;
                forged = true;
                incoming = b.clone();
            }
            Step::Frame(body) => {
                if !remote.seals() && !early_frames_ok {
                    // An unsealed frame where the handshake's bytes or a sealed frame are due.
                    clean = false;
                    forged = true;
                }
                let f = remote.frame(body);
                remote.write(f);
            }
            Step::Flip { body, at, mask } => {
                clean = false;
                forged |= !remote.seals();
                let f = remote.flipped(body, *at, *mask);
                remote.write(f);
            }
            Step::Replay => {
                clean = false;
                remote.replay();
            }
            Step::Skip => {
                clean = false;
                let _ = remote.frame(&[]);
            }
            Step::Advance { ms } => {
                now += std::time::Duration::from_millis(u64::from(*ms));
                if let Local::Handshaking(h) = &mut local
                    && let Err(e) = h.handle_timeout(now)
                {
                    report.failed = Some(e);
                    local = Local::Over;
                }
            }
            Step::Close => {
                if let Local::Handshaking(h) = &mut local {
                    report.failed = Some(h.handle_closed());
                }
                break;
            }
            Step::Overwrite { at, bytes } => {
                if remote.overwrite(*at, bytes) {
                    clean = false;
                    forged = true;
                }
            }
            Step::Drop { max } => {
                if !remote.deliver(*max).is_empty() {
                    clean = false;
                }
            }
            Step::Repeat { from, len } => {
                clean = false;
                incoming = slice(remote.handshake_log(), *from, *len).to_vec();
            }
            Step::Reflect { from, len } => {
                clean = false;
                incoming = slice(&our_log, *from, *len).to_vec();
            }
        }
        if incoming.is_empty() {
            continue;
        }
        match &mut local {
            Local::Handshaking(h) => {
                let r = h.handle_data(&incoming, now);
                if let Some(out) = h.take_output() {
                    wrote(&mut our_log, &out, &mut remote, now);
                }
                match r {
                    Ok(Progress::Pending) => {}
                    Ok(Progress::Done(outcome)) => {
                        let security = expected_security(outcome.version, input.ours.is_some());
                        assert_eq!(outcome.security, security, "version {}", outcome.version);
                        assert_eq!(outcome.session.is_some(), security.encrypted());
                        if outcome.version == 3 && input.ours.is_some() && !forged {
                            // However the remote's bytes were cut, dropped or repeated, or
                            // ours reflected, no confirmation can be forged: a version 3
                            // handshake with our password finishes only if the remote knew it.
                            assert_eq!(
                                input.ours, input.theirs,
                                "a version 3 handshake finished with a wrong password"
                            );
                        }
                        report.done = true;
                        report.finished = Some((outcome.version, outcome.security));
                        our_outcome_key = Some((outcome.conn_key(), outcome.remote.name));
                        local = start_reading(*outcome);
                        read_frames(&mut local, &mut report);
                    }
                    Err(e) => {
                        report.failed = Some(e);
                        local = Local::Over;
                    }
                }
            }
            Local::Running { frames, .. } => {
                frames.push(&incoming);
                read_frames(&mut local, &mut report);
            }
            Local::Over => {}
        }
    }
    report.remote_done = remote.done();
    report.remote_failed = remote.failed.clone();

    if clean {
        check_honest(input, &report, &expected_version);
        if let (Some((key, peer)), Some(theirs)) = (our_outcome_key, &remote.outcome) {
            assert_eq!(key, theirs.conn_key(), "the two ends disagree on the connection key");
            assert_eq!(peer, name(THEM));
        }
    }
    report
}

/// Our handshake wrote `out`: logged for reflections, and received by the remote.
fn wrote(log: &mut Vec<u8>, out: &[u8], remote: &mut Remote, now: Instant) {
    let room = OUR_LOG_LIMIT.saturating_sub(log.len());
    log.extend_from_slice(&out[..out.len().min(room)]);
    remote.receive(out, now);
}

/// Bytes `from..from + len` of `log` (to its end if `len` is 0), clamped to it.
fn slice(log: &[u8], from: u16, len: u16) -> &[u8] {
    let from = usize::from(from).min(log.len());
    let end = if len == 0 { log.len() } else { (from + usize::from(len)).min(log.len()) };
    &log[from..end]
}

/// The security of a finished handshake of `version`, with or without our password.
fn expected_security(version: u8, password: bool) -> Security {
    match (version, password) {
        (3, true) => Security::V3Password,
        (3, false) => Security::V3Unauthenticated,
        (_, true) => Security::V2Password,
        (_, false) => Security::Plaintext,
    }
}

/// What an honest remote alone, its bytes untouched and in order, may get us (and
/// itself).
fn check_honest(
    input: &Input,
    report: &Report,
    expected_version: &Result<u8, mesh_proto::wire::header::HeaderError>,
) {
    let (ours, theirs) = (input.ours.is_some(), input.theirs.is_some());
    let same = input.ours == input.theirs;
    if let Some((version, _)) = report.finished {
        assert!(same, "a handshake with {:?} against {:?} succeeded", input.ours, input.theirs);
        assert_eq!(Ok(version), *expected_version, "the versions offered do not give version {version}");
        assert_eq!(report.stopped, None, "an in-order frame from the remote did not open");
    }
    let acceptable = |e: &HandshakeError, remote: bool| match e {
        HandshakeError::Timeout(_) | HandshakeError::Closed(_) => !remote,
        HandshakeError::Header(h) => match expected_version {
            // The remote refuses what we refuse, in its own words.
            Err(ours_err) => remote || h == ours_err,
            Ok(_) => false,
        },
        HandshakeError::WrongPassword => ours && theirs && !same,
        HandshakeError::EncryptionMismatch { .. } => *expected_version == Ok(2) && ours != theirs,
        HandshakeError::PasswordMismatch { we_have, they_have } => {
            let (we, they) = if remote { (theirs, ours) } else { (ours, theirs) };
            *expected_version == Ok(3) && (*we_have, *they_have) == (we, they) && we != they
        }
        _ => false,
    };
    if let Some(e) = &report.failed {
        assert!(
            acceptable(e, false),
            "an honest remote got us {e:?} ({:?} against {:?})",
            input.ours,
            input.theirs
        );
    }
    if let Some(e) = &report.remote_failed {
        assert!(
            acceptable(e, true),
            "we got an honest remote {e:?} ({:?} against {:?})",
            input.ours,
            input.theirs
        );
    }
    if report.finished.is_some() && report.failed.is_none() {
        // Both version 3 ends finished or are waiting for our features; nothing failed.
        assert_eq!(report.remote_failed, None);
    }
}
