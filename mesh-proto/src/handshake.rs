//! One connection's introduction, as a sans-IO state machine (wire.md §2–§7, §5).
//!
//! Create a [`Handshake`] with our side, our features, the optional password and a
//! random source; send what [`Handshake::take_output`] returns; feed it every byte
//! received; it finishes with an [`Outcome`]: the negotiated version, the remote's
//! validated features, the sealing state and any bytes that arrived after the handshake.
//!
//! We advertise versions [2, 2], so the version is known before the remote answers and
//! everything that does not need the remote's key is sent at once: preamble, flag (and
//! public key) and, on a plaintext connection, the features frame. Go sends each step as
//! soon as it has read our previous one, so this pipelining never waits on Go.
//!
//! The driver enforces [`Handshake::deadline`]: 10 s for the preamble, then 60 s for the
//! rest, as Go does.

use bytes::Bytes;

use crate::config::{
    HANDSHAKE_READ_TIMEOUT, MAX_HANDSHAKE_FRAME_LEN, PREAMBLE_LEN, PREAMBLE_TIMEOUT, PUBLIC_KEY_LEN, TAG_LEN,
};
use crate::crypto::{self, CryptoError, KeyPair, Session};
use crate::name::PeerName;
use crate::time::Instant;
use crate::wire::features::{self, FeaturesError, LocalFeatures, RemoteFeatures};
use crate::wire::frame::{FrameDecoder, FrameError, LEN_PREFIX};
use crate::wire::header::{self, FLAG_ENCRYPTED, FLAG_PLAINTEXT, HeaderError, Preamble};

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
    /// `None`: plaintext. `Some`, even empty: encrypted, as Go.
    pub password: Option<Bytes>,
    /// The version range we advertise; [`Preamble::OURS`] unless testing.
    pub versions: Preamble,
}

/// The stage a handshake was in, for errors and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the remote's 7 bytes.
    Preamble,
    /// Waiting for the encryption flag.
    Flag,
    /// Waiting for the 32-byte public key.
    PublicKey,
    /// Waiting for the features frame.
    Features,
    /// Finished.
    Done,
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
    /// The remote's public key was refused.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The features frame could not be opened: almost always a wrong password.
    #[error("could not decrypt the remote's features: wrong password (or a tampered frame)")]
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

/// What a finished handshake yields.
#[derive(Debug)]
pub struct Outcome {
    /// The negotiated protocol version (always 2).
    pub version: u8,
    /// The remote's validated features.
    pub remote: RemoteFeatures,
    /// The connection id we sent.
    pub local_conn_id: u64,
    /// Sealing state, if encrypted; sequence numbers continue from the features frame.
    pub session: Option<Session>,
    /// Bytes received after the features frame: the start of the message stream.
    pub leftover: Bytes,
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

/// The longest fixed-size handshake field.
const FIELD_MAX: usize = if PREAMBLE_LEN > PUBLIC_KEY_LEN { PREAMBLE_LEN } else { PUBLIC_KEY_LEN };

/// One connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    config: HandshakeConfig,
    stage: Stage,
    failed: bool,
    keys: Option<KeyPair>,
    local_conn_id: u64,
    features_plain: Vec<u8>,
    /// The part of the current fixed-size field (preamble, flag, public key) received so
    /// far; what follows the fields goes to `frames`.
    field: heapless::Vec<u8, FIELD_MAX>,
    frames: FrameDecoder,
    out: Vec<u8>,
    deadline: Instant,
    session: Option<Session>,
}

impl Handshake {
    /// Starts a handshake at `now`; the first bytes to send are ready at once.
    pub fn new<R: rand_core::CryptoRng + ?Sized>(config: HandshakeConfig, rng: &mut R, now: Instant) -> Self {
        let local_conn_id = rng.next_u64();
        let keys = config.password.as_ref().map(|_| KeyPair::generate(rng));
        Self::with_parts(config, keys, local_conn_id, now)
    }

    /// Starts a handshake with a given key pair and connection id instead of random ones
    /// (for test vectors and fuzzing). `keys` is ignored without a password; with one, a
    /// missing key pair is replaced by a fixed one, which is only fit for tests.
    pub fn with_parts(
        config: HandshakeConfig,
        keys: Option<KeyPair>,
        local_conn_id: u64,
        now: Instant,
    ) -> Self {
        let keys = config.password.as_ref().map(|_| keys.unwrap_or_else(|| KeyPair::from_secret([7; 32])));
        let mut features_plain = Vec::with_capacity(192);
        features::encode(
            &mut features_plain,
            &LocalFeatures {
                name: config.name,
                nickname: config.nickname.clone(),
                uid: config.uid,
                short_id: config.short_id,
                conn_id: local_conn_id,
                trusts_remote: config.trusts_remote,
            },
        );
        let mut out =
            Vec::with_capacity(PREAMBLE_LEN + 1 + PUBLIC_KEY_LEN + LEN_PREFIX + features_plain.len());
        out.extend_from_slice(&config.versions.encode());
        match &keys {
            Some(k) => {
                out.push(FLAG_ENCRYPTED);
                out.extend_from_slice(&k.public());
            }
            None => {
                out.push(FLAG_PLAINTEXT);
                // Plaintext features need nothing from the remote: send them now.
                out.extend_from_slice(&(features_plain.len() as u32).to_be_bytes());
                out.extend_from_slice(&features_plain);
            }
        }
        Handshake {
            config,
            stage: Stage::Preamble,
            failed: false,
            keys,
            local_conn_id,
            features_plain,
            field: heapless::Vec::new(),
            frames: FrameDecoder::new(MAX_HANDSHAKE_FRAME_LEN),
            out,
            deadline: now + PREAMBLE_TIMEOUT,
            session: None,
        }
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
                    let theirs = Preamble::decode(&bytes)?;
                    header::negotiate_supported(self.config.versions, theirs)?;
                    self.deadline = now + HANDSHAKE_READ_TIMEOUT;
                    self.stage = Stage::Flag;
                }
                Stage::Flag => {
                    let Some([flag]) = self.take_field::<1>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    let we_encrypt = self.keys.is_some();
                    let they_encrypt = match flag {
                        FLAG_PLAINTEXT => false,
                        FLAG_ENCRYPTED => true,
                        other => return Err(HandshakeError::BadFlag(other)),
                    };
                    if we_encrypt != they_encrypt {
                        return Err(HandshakeError::EncryptionMismatch { we_encrypt, they_encrypt });
                    }
                    self.stage = if they_encrypt { Stage::PublicKey } else { Stage::Features };
                    if self.stage == Stage::Features {
                        self.start_frames(&mut rest);
                    }
                }
                Stage::PublicKey => {
                    let Some(remote) = self.take_field::<PUBLIC_KEY_LEN>(&mut rest) else {
                        return Ok(Progress::Pending);
                    };
                    let (Some(keys), Some(password)) = (&self.keys, &self.config.password) else {
                        return Err(HandshakeError::AlreadyFailed);
                    };
                    let shared = keys.shared_key(&remote)?;
                    let key = crypto::session_key(&shared, password);
                    let mut session = Session::new(&key, self.config.role == Role::Dialer);
                    let mut frame = Vec::with_capacity(LEN_PREFIX + TAG_LEN + self.features_plain.len());
                    frame.extend_from_slice(&((TAG_LEN + self.features_plain.len()) as u32).to_be_bytes());
                    frame.extend_from_slice(&[0; TAG_LEN]);
                    frame.extend_from_slice(&self.features_plain);
                    session.sealer.seal_in_place(&mut frame[LEN_PREFIX..]);
                    self.out.extend_from_slice(&frame);
                    self.session = Some(session);
                    self.stage = Stage::Features;
                    self.start_frames(&mut rest);
                }
                Stage::Features => {
                    self.start_frames(&mut rest);
                    let Some(mut body) = self.frames.next_frame()? else {
                        return Ok(Progress::Pending);
                    };
                    let plain: &[u8] = match &mut self.session {
                        Some(s) => {
                            s.opener.open_in_place(&mut body).map_err(|_| HandshakeError::WrongPassword)?;
                            &body[TAG_LEN..]
                        }
                        None => &body,
                    };
                    let remote = features::decode(plain)?;
                    self.stage = Stage::Done;
                    return Ok(Progress::Done(Box::new(Outcome {
                        version: crate::config::PROTOCOL_MAX_VERSION,
                        remote,
                        local_conn_id: self.local_conn_id,
                        session: self.session.take(),
                        leftover: self.frames.take_remaining(),
                    })));
                }
                Stage::Done => return Err(HandshakeError::AlreadyFailed),
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn config(role: Role, name: u64, password: Option<&str>) -> HandshakeConfig {
        HandshakeConfig {
            role,
            name: PeerName::from_u64(name).unwrap(),
            nickname: Bytes::from_static(b"nick"),
            uid: name * 1000 + 1,
            short_id: (name % 4096) as u16,
            trusts_remote: false,
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            versions: Preamble::OURS,
        }
    }

    #[test]
    fn timeout_moves_from_ten_to_sixty_seconds() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let t0 = Instant::from_secs(100);
        let mut h = Handshake::new(config(Role::Dialer, 1, None), &mut rng, t0);
        assert_eq!(h.deadline(), t0 + PREAMBLE_TIMEOUT);
        assert!(h.handle_timeout(t0 + PREAMBLE_TIMEOUT - core::time::Duration::from_millis(1)).is_ok());
        let t1 = t0 + core::time::Duration::from_secs(2);
        assert!(matches!(h.handle_data(b"weave\x01\x02", t1), Ok(Progress::Pending)));
        assert_eq!(h.deadline(), t1 + HANDSHAKE_READ_TIMEOUT);
        assert_eq!(h.handle_timeout(t1 + HANDSHAKE_READ_TIMEOUT), Err(HandshakeError::Timeout(Stage::Flag)));
    }

    /// Runs a listener against a dialer's whole first flight (plus `extra` bytes after
    /// it) delivered in pieces of `piece` bytes; the listener's outcome.
    fn listen_in_pieces(password: Option<&str>, piece: usize, extra: &[u8]) -> Outcome {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let t0 = Instant::ZERO;
        let mut d = Handshake::new(config(Role::Dialer, 1, password), &mut rng, t0);
        let mut l = Handshake::new(config(Role::Listener, 2, password), &mut rng, t0);
        let mut flight = d.take_output().unwrap();
        if password.is_some() {
            // The dialer seals its features once it has the listener's key.
            let reply = l.take_output().unwrap();
            assert!(matches!(d.handle_data(&reply, t0), Ok(Progress::Pending)));
            flight.extend_from_slice(&d.take_output().unwrap());
        }
        flight.extend_from_slice(extra);
        let mut done = None;
        for chunk in flight.chunks(piece) {
            assert!(done.is_none(), "bytes after completion go to the leftover, not here");
            match l.handle_data(chunk, t0) {
                Ok(Progress::Pending) => {}
                Ok(Progress::Done(o)) => done = Some(*o),
                Err(e) => panic!("piece {piece}: {e}"),
            }
        }
        done.unwrap_or_else(|| panic!("piece {piece}: not done"))
    }

    #[test]
    fn the_fixed_size_fields_and_features_complete_however_the_bytes_are_cut() {
        for password in [None, Some("pw")] {
            let whole = listen_in_pieces(password, usize::MAX, b"");
            assert_eq!(whole.remote.name, PeerName::from_u64(1).unwrap());
            for piece in [1, 2, 3, 5, 7, 8, 31, 32, 33, 40] {
                let cut = listen_in_pieces(password, piece, b"");
                assert_eq!(cut.remote, whole.remote, "piece {piece}, password {password:?}");
                assert!(cut.leftover.is_empty());
            }
        }
    }

    #[test]
    fn bytes_past_the_features_frame_are_left_over_when_they_arrive_with_it() {
        for password in [None, Some("pw")] {
            let o = listen_in_pieces(password, usize::MAX, b"\x00\x00\x00\x01\x05");
            assert_eq!(&o.leftover[..], b"\x00\x00\x00\x01\x05", "password {password:?}");
        }
    }
}
