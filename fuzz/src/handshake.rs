//! The `handshake` target: one [`Handshake`] (ours) against an honest remote peer, whose
//! bytes the input delivers, cuts, forges, replays or drops, and after the handshake
//! the read path of a running connection (frames, opening, message decoding).
//!
//! Encoding:
//!
//! - byte 0: bit 0 set if we dial (else we listen); bits 1–2 our [`Password`], bits 3–4
//!   the remote's;
//! - byte 1: the remote's key byte `k`: its secret key is `[k; 32]` (so `0` gives the
//!   all-zero public key of fuzzing builds, which is refused);
//! - then steps to the end of the input, each an opcode byte (taken modulo 8) and its
//!   fields, in the order of [`Step`]'s variants: `Deliver` (`u16`), `Raw` (blob),
//!   `Frame` (blob), `Flip` (blob, `u16`, `u8`), `Replay`, `Skip`, `Advance` (`u32`),
//!   `Close`.
//!
//! Both sides run the real code and offer only version 2 ([`Preamble::V2_ONLY`]), so
//! this target is about version 2 exactly (version 3 has `handshake_v3`); with
//! `--cfg fuzzing` the sealing is the transparent stand-in documented in
//! `mesh_proto::fuzzing::crypto`, so a forged frame needs the right tag.

use bytes::Bytes;
use mesh_proto::config::MAX_FRAME_LEN;
use mesh_proto::fuzzing::crypto::{CryptoError, KeyPair};
use mesh_proto::fuzzing::handshake::{
    Handshake, HandshakeConfig, HandshakeError, Outcome, Progress, Role, Security,
};
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::frame::{FrameDecoder, FrameError};
use mesh_proto::wire::header::Preamble;
use mesh_proto::wire::message::Message;
use mesh_proto::{Instant, PeerName};

use crate::codec::{Reader, Writer};
use crate::remote::Remote;

/// Our peer name.
pub const US: u64 = 0x0a;
/// The remote's peer name.
pub const THEM: u64 = 0x0b;

/// A side's password choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Password {
    /// Plaintext.
    None,
    /// Encrypted with `pw`.
    Pw,
    /// Encrypted with `other`.
    Other,
    /// Encrypted with the empty password (what Go's example uses without `-password`).
    Empty,
}

impl Password {
    /// The choice in the two low bits of `b`.
    pub(crate) fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => Password::None,
            1 => Password::Pw,
            2 => Password::Other,
            _ => Password::Empty,
        }
    }

    /// Its two bits.
    pub(crate) fn bits(self) -> u8 {
        self as u8
    }

    /// The configured password.
    pub fn bytes(self) -> Option<Bytes> {
        match self {
            Password::None => None,
            Password::Pw => Some(Bytes::from_static(b"pw")),
            Password::Other => Some(Bytes::from_static(b"other")),
            Password::Empty => Some(Bytes::new()),
        }
    }
}

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
    /// The remote writes a frame with this body, sealed once it has a session.
    Frame(Vec<u8>),
    /// As `Frame`, with byte `at` (modulo the length) of the sealed body XORed with
    /// `mask` (1 if 0): in the tag the frame no longer opens; past it, it does.
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
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Whether we dial (the remote listens) or listen.
    pub we_dial: bool,
    /// Our password.
    pub ours: Password,
    /// The remote's.
    pub theirs: Password,
    /// The remote's key byte.
    pub their_key: u8,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

impl Input {
    /// Decodes any bytes.
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8().unwrap_or(0);
        let their_key = r.u8().unwrap_or(0);
        let mut steps = Vec::new();
        while let Some(op) = r.u8() {
            let step = match op % 8 {
                0 => r.u16().map(|max| Step::Deliver { max }),
                1 => r.blob().map(Step::Raw),
                2 => r.blob().map(Step::Frame),
                3 => (|| Some(Step::Flip { body: r.blob()?, at: r.u16()?, mask: r.u8()? }))(),
                4 => Some(Step::Replay),
                5 => Some(Step::Skip),
                6 => r.u32().map(|ms| Step::Advance { ms }),
                _ => Some(Step::Close),
            };
            let Some(step) = step else { break };
            steps.push(step);
        }
        Input {
            we_dial: flags & 1 != 0,
            ours: Password::from_bits(flags >> 1),
            theirs: Password::from_bits(flags >> 3),
            their_key,
            steps,
        }
    }

    /// The bytes that decode to `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(u8::from(self.we_dial) | self.ours.bits() << 1 | self.theirs.bits() << 3);
        w.u8(self.their_key);
        for s in &self.steps {
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
            }
        }
        w.out
    }
}

/// Why the running connection stopped reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// A bad frame.
    Frame(FrameError),
    /// A frame that did not open.
    Crypto(CryptoError),
}

/// What happened, for the seed writer's checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Our handshake finished.
    pub done: bool,
    /// The version and security it finished with.
    pub finished: Option<(u8, Security)>,
    /// Why our handshake failed.
    pub failed: Option<HandshakeError>,
    /// The remote's handshake finished.
    pub remote_done: bool,
    /// Why the remote's handshake failed.
    pub remote_failed: Option<HandshakeError>,
    /// Frames we opened (or read, in plaintext) after the handshake.
    pub frames: usize,
    /// Of which decoded as protocol messages.
    pub messages: usize,
    /// Why we stopped reading after the handshake.
    pub stopped: Option<Stopped>,
}

/// The configuration of a handshake by peer `name` (at most 48 bits).
pub(crate) fn config(
    role: Role,
    name: PeerName,
    uid: u64,
    password: Option<Bytes>,
    versions: Preamble,
) -> HandshakeConfig {
    HandshakeConfig {
        role,
        name,
        nickname: Bytes::from_static(b"fuzz"),
        uid,
        short_id: (name.to_u64() % 4096) as u16,
        trusts_remote: false,
        password,
        versions,
    }
}

pub(crate) fn name(v: u64) -> PeerName {
    PeerName::from_u64(v).expect("a valid peer name")
}

/// Our side.
pub(crate) enum Local {
    Handshaking(Box<Handshake>),
    Running {
        session: Option<Sealing>,
        frames: FrameDecoder,
    },
    /// Failed, closed, or stopped reading.
    Over,
}

/// Runs `input`, asserting what must hold whatever the bytes are, and reports.
pub fn run(input: &Input) -> Report {
    let mut now = Instant::from_secs(1);
    let (ours, theirs) =
        if input.we_dial { (Role::Dialer, Role::Listener) } else { (Role::Listener, Role::Dialer) };
    let v2 = Preamble::V2_ONLY;
    let mut us = Handshake::with_parts(config(ours, name(US), 11, input.ours.bytes(), v2), None, 0x5eed, now);
    let them_keys = KeyPair::from_secret([input.their_key; 32]);
    let them = config(theirs, name(THEM), 22, input.theirs.bytes(), v2);
    let mut remote = Remote::new(Handshake::with_parts(them, Some(them_keys), 0xc0de, now));
    let mut report = Report::default();
    let mut our_outcome_key = None;
    // Only the remote's own bytes, in order and untouched, have reached us.
    let mut clean = true;
    if let Some(out) = us.take_output() {
        remote.receive(&out, now);
    }
    let mut local = Local::Handshaking(Box::new(us));

    for step in &input.steps {
        let mut incoming = Vec::new();
        match step {
            Step::Deliver { max } => incoming = remote.deliver(*max),
            Step::Raw(b) => {
                clean = false;
                incoming = b.clone();
            }
            Step::Frame(body) => {
                if !remote.seals() && input.theirs != Password::None {
                    // An unsealed frame where a sealed one is due.
                    clean = false;
                }
                let f = remote.frame(body);
                remote.write(f);
            }
            Step::Flip { body, at, mask } => {
                clean = false;
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
        }
        if incoming.is_empty() {
            continue;
        }
        match &mut local {
            Local::Handshaking(h) => {
                let r = h.handle_data(&incoming, now);
                if let Some(out) = h.take_output() {
                    remote.receive(&out, now);
                }
                match r {
                    Ok(Progress::Pending) => {}
                    Ok(Progress::Done(outcome)) => {
                        assert_eq!(outcome.version, 2);
                        let security = if input.ours == Password::None {
                            Security::Plaintext
                        } else {
                            Security::V2Password
                        };
                        assert_eq!(outcome.security, security);
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

    // What an honest remote alone must get.
    if clean {
        let same = input.ours == input.theirs;
        if report.done {
            assert!(same, "a handshake with {:?} against {:?} succeeded", input.ours, input.theirs);
            assert_eq!(report.stopped, None, "an in-order frame from the remote did not open");
        }
        if let Some(e) = &report.failed {
            let expected = match e {
                HandshakeError::Timeout(_) | HandshakeError::Closed(_) => true,
                HandshakeError::WrongPassword => !same,
                HandshakeError::EncryptionMismatch { .. } => {
                    (input.ours == Password::None) != (input.theirs == Password::None)
                }
                HandshakeError::Crypto(CryptoError::LowOrderKey) => input.their_key == 0,
                _ => false,
            };
            assert!(expected, "an honest remote got us {e:?} ({:?} against {:?})", input.ours, input.theirs);
        }
    }
    if let (Some((key, name)), Some(theirs)) = (our_outcome_key, &remote.outcome)
        && clean
    {
        assert_eq!(key, theirs.conn_key(), "the two ends disagree on the connection key");
        assert_eq!(name, self::name(THEM));
    }
    report
}

/// The running connection after a finished handshake: its sealing, and the leftover
/// bytes as the start of its stream.
pub(crate) fn start_reading(outcome: Outcome) -> Local {
    let mut frames = FrameDecoder::new(MAX_FRAME_LEN);
    frames.push(&outcome.leftover);
    Local::Running { session: outcome.session, frames }
}

/// The sequence number the next received frame must carry.
fn opener_seq(s: &Sealing) -> u64 {
    match s {
        Sealing::V2(s) => s.opener.seq(),
        Sealing::V3(s) => s.opener.seq(),
    }
}

/// Reads what frames are complete, as a running connection does; any failure is final.
pub(crate) fn read_frames(local: &mut Local, report: &mut Report) {
    let Local::Running { session, frames } = local else { return };
    loop {
        let mut body = match frames.next_frame() {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                report.stopped = Some(Stopped::Frame(e));
                break;
            }
        };
        let records = matches!(session, Some(Sealing::V3(_)));
        let plain: &[u8] = match session.as_mut() {
            Some(s) => {
                let seq = opener_seq(s);
                match s.open_body(&mut body) {
                    Ok(range) => {
                        assert_eq!(
                            opener_seq(s),
                            seq + 1,
                            "an opened frame did not move the sequence number"
                        );
                        &body[range]
                    }
                    Err(e) => {
                        assert_eq!(opener_seq(s), seq, "a failed open moved the sequence number");
                        report.stopped = Some(Stopped::Crypto(e));
                        break;
                    }
                }
            }
            None => &body,
        };
        report.frames += 1;
        for m in messages_of(plain, records) {
            match m {
                Ok(m) if Message::decode(m).is_ok() => report.messages += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    *local = Local::Over;
}

/// The messages of an opened frame: the frame itself in version 2, the inner frames of
/// a record (4-byte length, body) in version 3; an error ends a malformed record.
pub(crate) fn messages_of(plain: &[u8], records: bool) -> impl Iterator<Item = Result<&[u8], ()>> {
    let mut rest = Some(plain);
    std::iter::from_fn(move || {
        let r = rest?;
        if !records {
            rest = None;
            return Some(Ok(r));
        }
        if r.is_empty() {
            return None;
        }
        let Some(len) = r.get(..4).map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize) else {
            rest = None;
            return Some(Err(()));
        };
        match r.get(4..4 + len) {
            Some(m) => {
                rest = Some(&r[4 + len..]);
                Some(Ok(m))
            }
            None => {
                rest = None;
                Some(Err(()))
            }
        }
    })
}
