//! One connection's introduction, as a sans-IO state machine.
//!
//! Create a [`Handshake`] with our side, our features, the optional password, the version
//! range and a random source; send what [`Handshake::take_output`] returns; feed it every
//! byte received; it finishes with an [`Outcome`]: the negotiated version, the remote's
//! validated features, the sealing state and any bytes that arrived after the handshake.
//!
//! Both ends send the 7-byte preamble first. What follows depends on the version it
//! negotiates:
//! - version 2 (docs/protocol-v2.md §2–§7, Go's): the encryption flag, the public key, the features
//!   frame ([`v2`]);
//! - version 3 (docs/protocol-v3.md, ours): a hello carrying the PAKE element, a key
//!   confirmation, then the features frame sealed ([`v3`]).
//!
//! A peer that advertises only version 2 knows the version before the remote answers, so
//! it sends everything that does not need the remote's key at once, as before version 3
//! existed: preamble, flag (and public key) and, on a plaintext connection, the features
//! frame. Go sends each step as soon as it has read our previous one, so this pipelining
//! never waits on Go; a peer that also offers version 3 sends the flag once it has read
//! the remote's preamble.
//!
//! The node enforces [`Handshake::deadline`]: 10 s for the preamble, then 60 s for the
//! rest of a version 2 handshake, as Go does, or 10 s for the rest of a version 3 one.

mod v2;
mod v3;

use bytes::Bytes;

use crate::config::{MAX_HANDSHAKE_FRAME_LEN, PREAMBLE_LEN, PREAMBLE_TIMEOUT};
use crate::crypto::{CryptoError, KeyPair};
use crate::key_schedule::{CONFIRM_LEN, Keys};
use crate::name::PeerName;
use crate::overlay::OverlayKey;
use crate::pake::{Exchange, Mode, PakeError};
use crate::sealing::Sealing;
use crate::time::Instant;
use crate::wire::features::{self, FeaturesError, LocalFeatures, RemoteFeatures};
use crate::wire::frame::{FrameDecoder, FrameError};
use crate::wire::header::{HeaderError, Preamble};

pub use v3::HELLO_LEN;

/// Which end of the TCP connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// We opened the connection (Go: outbound).
    Dialer,
    /// We accepted it.
    Listener,
}

/// Everything a handshake needs to know about our side.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    /// Which end we are.
    pub role: Role,
    /// Our name.
    pub name: PeerName,
    /// Our nickname.
    pub nickname: Bytes,
    /// Our incarnation id.
    pub uid: u64,
    /// Our short id.
    pub short_id: u16,
    /// Whether we trust the remote's address (trusted subnets).
    pub trusts_remote: bool,
    /// `None`: plaintext in version 2, unauthenticated encryption in version 3. `Some`,
    /// even empty: encrypted with that password.
    pub password: Option<Bytes>,
    /// The version range we advertise; [`Preamble::OURS`] unless configured.
    pub versions: Preamble,
}

/// The stage a handshake was in, for errors and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for the remote's 7 bytes.
    Preamble,
    /// Version 2: waiting for the encryption flag.
    Flag,
    /// Version 2: waiting for the 32-byte public key.
    PublicKey,
    /// Version 3: waiting for the remote's hello (mode, connection id, PAKE element).
    Hello,
    /// Version 3: waiting for the remote's key confirmation.
    Confirmation,
    /// Waiting for the features frame.
    Features,
    /// Finished.
    Done,
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum HandshakeError {
    /// The preamble was refused.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The flag byte was neither 0 nor 1.
    #[error("bad encryption flag {0:#04x}")]
    BadFlag(u8),
    /// One side has a password and the other has none.
    #[error("encryption mismatch: we {}, the remote {}", if *.we_encrypt { "require encryption" } else { "have no password" }, if *.they_encrypt { "encrypts" } else { "sends plaintext" })]
    EncryptionMismatch {
        /// Whether we have a password.
        we_encrypt: bool,
        /// Whether the remote sent flag 1.
        they_encrypt: bool,
    },
    /// Version 3: the hello's mode byte names no mode.
    #[error("bad version 3 key exchange mode {0:#04x}")]
    BadMode(u8),
    /// Version 3: one side has a password and the other has none.
    #[error("password mismatch: we {}, the remote {}", if *.we_have { "have a password" } else { "have none" }, if *.they_have { "has one" } else { "has none" })]
    PasswordMismatch {
        /// Whether we have a password.
        we_have: bool,
        /// Whether the remote's hello says it has one.
        they_have: bool,
    },
    /// Version 3: the remote's PAKE element was refused.
    #[error(transparent)]
    Pake(#[from] PakeError),
    /// Version 3 without a password: the remote's key confirmation did not match, so the
    /// handshake was tampered with on the way.
    #[error("the remote's key confirmation does not match: the handshake was tampered with")]
    ConfirmationFailed,
    /// Version 3: the connection id in the sealed features differs from the hello's.
    #[error("the remote's features name connection id {features}, its hello {hello}")]
    ConnIdMismatch {
        /// The hello's.
        hello: u64,
        /// The features'.
        features: u64,
    },
    /// The remote's public key was refused, or a sealed frame failed to open after the
    /// password was confirmed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The password is not the remote's: in version 2 the features frame could not be
    /// opened (or was tampered with), in version 3 the key confirmation did not match.
    #[error("wrong password: the remote proved a different one (or the handshake was tampered with)")]
    WrongPassword,
    /// The features frame is too large.
    #[error("features frame: {0}")]
    Frame(#[from] FrameError),
    /// The features were refused.
    #[error("bad features: {0}")]
    Features(#[from] FeaturesError),
    /// The deadline passed.
    #[error("handshake timed out waiting for the {0:?} stage")]
    Timeout(Stage),
    /// The connection ended first.
    #[error("connection closed during the handshake ({0:?} stage)")]
    Closed(Stage),
    /// The handshake had already failed; no more input is taken.
    #[error("the handshake already failed")]
    AlreadyFailed,
}

/// What protects a connection's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Security {
    /// Version 2 without a password: nothing.
    Plaintext,
    /// Version 2 with a password: Go's XSalsa20-Poly1305 under SHA-256(X25519 ‖ password).
    /// A recording of one handshake lets its maker test password guesses offline.
    V2Password,
    /// Version 3 with a password: SPAKE2 and ChaCha20-Poly1305. Only a peer with the
    /// password completes the handshake, and each handshake tests one guess.
    V3Password,
    /// Version 3 without a password: ephemeral X25519 and ChaCha20-Poly1305.
    /// Confidential against eavesdroppers, authenticating nothing.
    V3Unauthenticated,
}

impl Security {
    /// Whether frames are encrypted.
    pub fn encrypted(self) -> bool {
        self != Security::Plaintext
    }

    /// Whether the remote proved it holds our password.
    pub fn authenticated(self) -> bool {
        matches!(self, Security::V2Password | Security::V3Password)
    }
}

impl core::fmt::Display for Security {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Security::Plaintext => "plaintext",
            Security::V2Password => "encrypted with the password (version 2)",
            Security::V3Password => "encrypted and authenticated by the password (version 3, SPAKE2)",
            Security::V3Unauthenticated => {
                "encrypted without a password (version 3): confidential against eavesdroppers, authenticating nothing"
            }
        })
    }
}

/// What a finished handshake yields.
#[derive(Debug)]
pub struct Outcome {
    /// The negotiated protocol version: 2 or 3.
    pub version: u8,
    /// What protects the connection.
    pub security: Security,
    /// The remote's validated features.
    pub remote: RemoteFeatures,
    /// The connection id we sent.
    pub local_conn_id: u64,
    /// Sealing state, if encrypted; sequence numbers continue from the features frame.
    pub session: Option<Sealing>,
    /// Bytes received after the features frame: the start of the message stream.
    pub leftover: Bytes,
    /// The remote's features map as it arrived (its plaintext gob stream), for an
    /// overlay: decoded again only when one is set ([`features::decode_map`]).
    pub features: Bytes,
    /// Key material for an overlay's own encryption, if the connection is encrypted
    /// ([`OverlayKey`] says which key for which version).
    pub overlay_key: Option<OverlayKey>,
}

impl Outcome {
    /// The tie-break key: both ends compute the same value for the same connection.
    pub fn conn_key(&self) -> u64 {
        self.local_conn_id ^ self.remote.conn_id
    }
}

/// Progress after feeding bytes.
#[derive(Debug)]
pub enum Progress {
    /// More bytes are needed.
    Pending,
    /// The handshake is complete.
    Done(Box<Outcome>),
}

/// The longest fixed-size handshake field: the version 3 hello.
const FIELD_MAX: usize = HELLO_LEN;
const _: () = assert!(PREAMBLE_LEN <= FIELD_MAX && CONFIRM_LEN <= FIELD_MAX);

/// Version 3 state between the hellos and the confirmation.
#[derive(Debug)]
struct V3State {
    /// Our half of the key exchange, until the remote's hello finishes it.
    exchange: Option<Exchange>,
    /// The hello we sent.
    hello: [u8; HELLO_LEN],
    /// The keys, once the exchange finished.
    keys: Option<Keys>,
    /// The connection id the remote's hello carried.
    remote_conn_id: u64,
}

/// One connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    config: HandshakeConfig,
    stage: Stage,
    failed: bool,
    /// The negotiated version, once the remote's preamble is in.
    version: Option<u8>,
    /// The remote's preamble bytes (version 3 hashes them).
    remote_preamble: [u8; PREAMBLE_LEN],
    /// Version 2 key pair, with a password.
    keys: Option<KeyPair>,
    /// Whether the version 2 flag (and key) went out with the preamble.
    v2_pipelined: bool,
    /// Version 3 state, when we offer version 3.
    v3: Option<V3State>,
    local_conn_id: u64,
    features_plain: Vec<u8>,
    /// The part of the current fixed-size field received so far; what follows the
    /// fields goes to `frames`.
    field: heapless::Vec<u8, FIELD_MAX>,
    frames: FrameDecoder,
    out: Vec<u8>,
    deadline: Instant,
    session: Option<Sealing>,
    /// Key material for an overlay, once the session key is known.
    overlay_key: Option<OverlayKey>,
}

impl Handshake {
    /// Starts a handshake at `now`; the first bytes to send are ready at once.
    pub fn new<R: rand_core::CryptoRng + ?Sized>(config: HandshakeConfig, rng: &mut R, now: Instant) -> Self {
        Self::with_features(config, &[], rng, now)
    }

    /// Starts a handshake whose features map also carries `extra` entries (an overlay's;
    /// see [`features::encode_with`] for which are left out).
    pub fn with_features<R: rand_core::CryptoRng + ?Sized>(
        config: HandshakeConfig,
        extra: &[(&[u8], &[u8])],
        rng: &mut R,
        now: Instant,
    ) -> Self {
        let local_conn_id = rng.next_u64();
        let keys = config.password.as_ref().map(|_| KeyPair::generate(rng));
        let exchange = (config.versions.max >= 3).then(|| Exchange::start(config.password.as_deref(), rng));
        Self::build(config, extra, keys, exchange, local_conn_id, now)
    }

    /// Starts a handshake with a given version 2 key pair and connection id instead of
    /// random ones (for test vectors and fuzzing). `keys` is ignored without a password;
    /// with one, a missing key pair is replaced by a fixed one, and a version 3 exchange
    /// (if offered) is drawn from a generator seeded by `local_conn_id`: only fit for
    /// tests.
    pub fn with_parts(
        config: HandshakeConfig,
        keys: Option<KeyPair>,
        local_conn_id: u64,
        now: Instant,
    ) -> Self {
        let keys = config.password.as_ref().map(|_| keys.unwrap_or_else(|| KeyPair::from_secret([7; 32])));
        let exchange = (config.versions.max >= 3).then(|| {
            use rand_core::SeedableRng;
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(local_conn_id);
            Exchange::start(config.password.as_deref(), &mut rng)
        });
        Self::build(config, &[], keys, exchange, local_conn_id, now)
    }

    fn build(
        config: HandshakeConfig,
        extra: &[(&[u8], &[u8])],
        keys: Option<KeyPair>,
        exchange: Option<(Exchange, [u8; crate::pake::ELEMENT_LEN])>,
        local_conn_id: u64,
        now: Instant,
    ) -> Self {
        let mut features_plain = Vec::with_capacity(192);
        features::encode_with(
            &mut features_plain,
            &LocalFeatures {
                name: config.name,
                nickname: config.nickname.clone(),
                uid: config.uid,
                short_id: config.short_id,
                conn_id: local_conn_id,
                trusts_remote: config.trusts_remote,
            },
            extra,
        );
        let v3 = exchange.map(|(exchange, element)| V3State {
            hello: v3::hello(exchange.mode(), local_conn_id, &element),
            exchange: Some(exchange),
            keys: None,
            remote_conn_id: 0,
        });
        let mut h = Handshake {
            stage: Stage::Preamble,
            failed: false,
            version: None,
            remote_preamble: [0; PREAMBLE_LEN],
            keys,
            v2_pipelined: false,
            v3,
            local_conn_id,
            features_plain,
            field: heapless::Vec::new(),
            frames: FrameDecoder::new(MAX_HANDSHAKE_FRAME_LEN),
            out: Vec::with_capacity(256),
            deadline: now + PREAMBLE_TIMEOUT,
            session: None,
            overlay_key: None,
            config,
        };
        h.out.extend_from_slice(&h.config.versions.encode());
        if h.config.versions.max <= 2 {
            // Only version 2 is possible: say everything it needs now.
            h.v2_pipelined = true;
            h.send_v2_intro();
        }
        h
    }

    /// Bytes to send, if any (in order; call after every input).
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() { None } else { Some(core::mem::take(&mut self.out)) }
    }

    /// The stage we are waiting in.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Our side of the connection.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// The negotiated version, once the remote's preamble is in.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// When the handshake must have progressed past its current stage.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Fails the handshake if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if !self.failed && self.stage != Stage::Done && now >= self.deadline {
            self.failed = true;
            return Err(HandshakeError::Timeout(self.stage));
        }
        Ok(())
    }

    /// The connection closed before the handshake finished.
    pub fn handle_closed(&mut self) -> HandshakeError {
        self.failed = true;
        HandshakeError::Closed(self.stage)
    }

    /// Feeds received bytes.
    pub fn handle_data(&mut self, data: &[u8], now: Instant) -> Result<Progress, HandshakeError> {
        if self.failed || self.stage == Stage::Done {
            return Err(HandshakeError::AlreadyFailed);
        }
        let r = self.advance(data, now);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn advance(&mut self, data: &[u8], now: Instant) -> Result<Progress, HandshakeError> {
        let mut rest = data;
        loop {
            match self.stage {
                Stage::Preamble => {
                    let Some(bytes) = self.take_field::<PREAMBLE_LEN>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    self.on_preamble(bytes, now)?;
                }
                Stage::Flag => {
                    let Some([flag]) = self.take_field::<1>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    self.on_flag(flag)?;
                }
                Stage::PublicKey => {
                    let Some(remote) = self.take_field::<{ crate::config::PUBLIC_KEY_LEN }>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    self.on_public_key(&remote)?;
                }
                Stage::Hello => {
                    let Some(hello) = self.take_field::<HELLO_LEN>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    self.on_hello(&hello)?;
                }
                Stage::Confirmation => {
                    let Some(tag) = self.take_field::<CONFIRM_LEN>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    self.on_confirmation(&tag)?;
                }
                Stage::Features => {
                    self.start_frames(&mut rest);
                    let Some(mut body) = self.frames.next_frame()? else {
                        return Ok(Progress::Pending);
                    };
                    return self.on_features(&mut body).map(|o| Progress::Done(Box::new(o)));
                }
                Stage::Done => return Err(HandshakeError::AlreadyFailed),
            }
            if self.stage == Stage::Features {
                self.start_frames(&mut rest);
            }
        }
    }

    /// The remote's preamble: negotiate, then start the version's exchange.
    fn on_preamble(&mut self, bytes: [u8; PREAMBLE_LEN], now: Instant) -> Result<(), HandshakeError> {
        let theirs = Preamble::decode(&bytes)?;
        let version = crate::wire::header::negotiate_supported(self.config.versions, theirs)?;
        self.remote_preamble = bytes;
        self.version = Some(version);
        if version == 3 {
            self.deadline = now + crate::config::V3_HANDSHAKE_TIMEOUT;
            self.start_v3();
        } else {
            self.deadline = now + crate::config::HANDSHAKE_READ_TIMEOUT;
            if !self.v2_pipelined {
                self.send_v2_intro();
            }
            self.stage = Stage::Flag;
        }
        Ok(())
    }

    /// The features frame's body: open it, check it, finish.
    fn on_features(&mut self, body: &mut [u8]) -> Result<Outcome, HandshakeError> {
        let version = self.version.unwrap_or(2);
        let plain: &[u8] = match &mut self.session {
            Some(s) => {
                let range = s.open_body(body).map_err(|e| match version {
                    // Version 2 learns whether the password matched only here.
                    2 => HandshakeError::WrongPassword,
                    _ => HandshakeError::Crypto(e),
                })?;
                &body[range]
            }
            None => body,
        };
        let remote = features::decode(plain)?;
        let all = Bytes::copy_from_slice(plain);
        let security = match (&self.v3, version) {
            (Some(v3), 3) => {
                if remote.conn_id != v3.remote_conn_id {
                    return Err(HandshakeError::ConnIdMismatch {
                        hello: v3.remote_conn_id,
                        features: remote.conn_id,
                    });
                }
                if self.config.password.is_some() {
                    Security::V3Password
                } else {
                    Security::V3Unauthenticated
                }
            }
            _ if self.config.password.is_some() => Security::V2Password,
            _ => Security::Plaintext,
        };
        self.stage = Stage::Done;
        Ok(Outcome {
            version,
            security,
            remote,
            local_conn_id: self.local_conn_id,
            session: self.session.take(),
            leftover: self.frames.take_remaining(),
            features: all,
            overlay_key: self.overlay_key.take(),
        })
    }

    /// Completes the current fixed-size field of `N` bytes from `rest`, consuming what
    /// it takes; `None` until all `N` bytes are in.
    fn take_field<const N: usize>(&mut self, rest: &mut &[u8]) -> Option<[u8; N]> {
        const { assert!(N <= FIELD_MAX) };
        let take = (N - self.field.len()).min(rest.len());
        let (head, tail) = rest.split_at(take);
        *rest = tail;
        // Cannot overflow: the field holds fewer than N <= FIELD_MAX bytes before this.
        let _ = self.field.extend_from_slice(head);
        if self.field.len() < N {
            return None;
        }
        let mut a = [0u8; N];
        a.copy_from_slice(&self.field);
        self.field.clear();
        Some(a)
    }

    /// Hands what follows the fixed-size fields to the frame decoder.
    fn start_frames(&mut self, rest: &mut &[u8]) {
        if !rest.is_empty() {
            self.frames.push(rest);
            *rest = &[];
        }
    }

    /// Appends one features frame to the output, sealed by the session if there is one.
    fn send_features(&mut self) -> Result<(), HandshakeError> {
        let frame = match &mut self.session {
            Some(s) => s.frame(&self.features_plain)?,
            None => {
                let mut f = Vec::with_capacity(4 + self.features_plain.len());
                f.extend_from_slice(&(self.features_plain.len() as u32).to_be_bytes());
                f.extend_from_slice(&self.features_plain);
                f
            }
        };
        self.out.extend_from_slice(&frame);
        Ok(())
    }
}

/// The mode our version 3 hello announces for `password`.
fn mode_of(password: Option<&Bytes>) -> Mode {
    if password.is_some() { Mode::Password } else { Mode::Unauthenticated }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HANDSHAKE_READ_TIMEOUT, V3_HANDSHAKE_TIMEOUT};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn config(role: Role, name: u64, password: Option<&str>, versions: Preamble) -> HandshakeConfig {
        HandshakeConfig {
            role,
            name: PeerName::from_u64(name).unwrap(),
            nickname: Bytes::from_static(b"nick"),
            uid: name * 1000 + 1,
            short_id: (name % 4096) as u16,
            trusts_remote: false,
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            versions,
        }
    }

    #[test]
    fn timeout_moves_from_ten_to_sixty_seconds_in_v2_and_ten_in_v3() {
        for (versions, remote, rest, next) in [
            (Preamble::V2_ONLY, b"weave\x01\x02", HANDSHAKE_READ_TIMEOUT, Stage::Flag),
            (Preamble::OURS, b"weave\x02\x03", V3_HANDSHAKE_TIMEOUT, Stage::Hello),
        ] {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let t0 = Instant::from_secs(100);
            let mut h = Handshake::new(config(Role::Dialer, 1, None, versions), &mut rng, t0);
            assert_eq!(h.deadline(), t0 + PREAMBLE_TIMEOUT);
            assert!(h.handle_timeout(t0 + PREAMBLE_TIMEOUT - core::time::Duration::from_millis(1)).is_ok());
            let t1 = t0 + core::time::Duration::from_secs(2);
            assert!(matches!(h.handle_data(remote, t1), Ok(Progress::Pending)));
            assert_eq!(h.deadline(), t1 + rest);
            assert_eq!(h.handle_timeout(t1 + rest), Err(HandshakeError::Timeout(next)));
        }
    }

    /// Runs a dialer and a listener against each other, every flight delivered in
    /// pieces of `piece` bytes and `extra` appended to the dialer's last flight; both
    /// outcomes.
    fn pump(password: Option<&str>, versions: Preamble, piece: usize, extra: &[u8]) -> (Outcome, Outcome) {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let t0 = Instant::ZERO;
        let mut d = Handshake::new(config(Role::Dialer, 1, password, versions), &mut rng, t0);
        let mut l = Handshake::new(config(Role::Listener, 2, password, versions), &mut rng, t0);
        let (mut done_d, mut done_l) = (None, None);
        // The dialer's features go out in its first flight (version 2, plaintext), its
        // second (version 2 with a password) or its third (version 3: preamble; hello and
        // confirmation; features): `extra` with them.
        let last = match (versions.max, password) {
            (2, None) => 0,
            (2, Some(_)) => 1,
            _ => 2,
        };
        for round in 0..10 {
            let mut extra = (round == last).then_some(extra);
            deliver(&mut d, &mut l, &mut done_l, piece, &mut extra);
            deliver(&mut l, &mut d, &mut done_d, piece, &mut None);
            if done_d.is_some() && done_l.is_some() {
                break;
            }
        }
        (done_d.expect("dialer done"), done_l.expect("listener done"))
    }

    /// Delivers `from`'s output to `to` in pieces, `extra` after it.
    fn deliver(
        from: &mut Handshake,
        to: &mut Handshake,
        done: &mut Option<Outcome>,
        piece: usize,
        extra: &mut Option<&[u8]>,
    ) {
        let mut flight = from.take_output().unwrap_or_default();
        flight.extend_from_slice(extra.take().unwrap_or_default());
        for chunk in flight.chunks(piece) {
            assert!(done.is_none(), "bytes after completion go to the leftover, not here");
            match to.handle_data(chunk, Instant::ZERO) {
                Ok(Progress::Pending) => {}
                Ok(Progress::Done(o)) => *done = Some(*o),
                Err(e) => panic!("piece {piece}: {e}"),
            }
        }
    }

    #[test]
    fn the_fixed_size_fields_and_features_complete_however_the_bytes_are_cut() {
        for versions in [Preamble::V2_ONLY, Preamble::OURS] {
            for password in [None, Some("pw"), Some("")] {
                let (wd, wl) = pump(password, versions, usize::MAX, b"");
                assert_eq!(wl.remote.name, PeerName::from_u64(1).unwrap());
                assert_eq!(wd.remote.name, PeerName::from_u64(2).unwrap());
                assert_eq!(wd.version, versions.max);
                assert_eq!(wd.conn_key(), wl.conn_key());
                for piece in [1, 2, 3, 5, 7, 8, 31, 32, 33, 40, 41, 42] {
                    let (_, cut) = pump(password, versions, piece, b"");
                    assert_eq!(cut.remote, wl.remote, "piece {piece}, password {password:?}");
                    assert!(cut.leftover.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_security_follows_the_version_and_the_password() {
        let cases = [
            (Preamble::V2_ONLY, None, Security::Plaintext),
            (Preamble::V2_ONLY, Some("pw"), Security::V2Password),
            (Preamble::OURS, None, Security::V3Unauthenticated),
            (Preamble::OURS, Some("pw"), Security::V3Password),
            (Preamble::OURS, Some(""), Security::V3Password),
        ];
        for (versions, pw, security) in cases {
            let (d, l) = pump(pw, versions, usize::MAX, b"");
            assert_eq!((d.security, l.security), (security, security));
            assert_eq!(d.session.is_some(), security.encrypted());
        }
        assert!(
            Security::V3Unauthenticated
                .to_string()
                .contains("confidential against eavesdroppers, authenticating nothing")
        );
    }

    #[test]
    fn bytes_past_the_features_frame_are_left_over_when_they_arrive_with_it() {
        for versions in [Preamble::V2_ONLY, Preamble::OURS] {
            for password in [None, Some("pw")] {
                let (_, o) = pump(password, versions, usize::MAX, b"\x00\x00\x00\x01\x05");
                assert_eq!(&o.leftover[..], b"\x00\x00\x00\x01\x05", "password {password:?}");
            }
        }
    }
}
