//! Protocol version 2 encryption (docs/protocol-v2.md §6).
//!
//! Each connection makes a fresh X25519 key pair. The NaCl box precomputation (HSalsa20
//! over the raw X25519 result) gives a shared key; the session key is
//! `SHA-256(shared ‖ password)`. Frames are sealed with XSalsa20-Poly1305 in NaCl's
//! layout (tag, then ciphertext) under a nonce made of a polarity byte and a per-direction
//! sequence number; the nonce never travels.
//!
//! Unlike Go, a low-order public key (all-zero X25519 result) is refused: it would make
//! the session key the same for every victim (docs/protocol-v2.md §14, item 2).
//!
//! Sealing works in place: the caller leaves [`TAG_LEN`] bytes in front of the plaintext
//! and gets the sealed body back in the same buffer, with no allocation per frame.
//!
//! # Fuzzing builds
//!
//! With `--cfg fuzzing` (set by cargo-fuzz, never by a normal build) the cryptography is
//! replaced by a transparent stand-in, so that fuzzed bytes reach the parsers behind
//! decryption while every way a frame can fail to open stays reachable and cheap to hit:
//!
//! - the public key of a secret is the secret itself;
//! - the shared key is HSalsa20 over `our public XOR their public`, so both ends agree;
//!   an all-zero remote key is still refused as low-order. The session key is the real
//!   `SHA-256(shared ‖ password)`, so a different password gives a different key;
//! - frames are not encrypted: the sealed body is the 16-byte tag, then the plaintext;
//! - the tag is `check` (8 bytes, little-endian) then `seq` (8 bytes, big-endian), where
//!   `check` is the first 8 bytes of the session key read little-endian, XORed with the
//!   nonce's first byte (the direction: 0x40 from the listener, 0xc0 from the dialer);
//! - a body opens if and only if its tag is the one the opener expects (one `memcmp`,
//!   which libFuzzer's comparison tracing sees and solves). So a wrong password, a
//!   frame reflected back to its sender and a damaged tag fail to open, and so do a
//!   replayed, reordered or dropped frame, because the opener's sequence number must
//!   match; a changed plaintext byte goes unnoticed.

#[cfg(not(fuzzing))]
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
#[cfg(not(fuzzing))]
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use salsa20::cipher::consts::U10;
use sha2::{Digest, Sha256};
#[cfg(not(fuzzing))]
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

pub use crate::config::{NONCE_LEN, PUBLIC_KEY_LEN, SESSION_KEY_LEN, TAG_LEN};

/// Why a cryptographic step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum CryptoError {
    /// The remote's public key is of low order (for example all zeros).
    #[error("remote public key is of low order; refusing a key exchange that authenticates nothing")]
    LowOrderKey,
    /// A frame failed authentication: wrong password, tampering, replay or reordering.
    #[error("frame {seq} failed to open (wrong password, tampered, replayed or reordered)")]
    Open {
        /// The sequence number it was expected to carry.
        seq: u64,
    },
    /// A version 3 direction sealed as many frames as it may; the connection must close
    /// (the next one has fresh keys).
    #[error(
        "{limit} frames sealed in one direction: the connection must be renewed before its counter could wrap"
    )]
    Exhausted {
        /// The limit.
        limit: u64,
    },
    /// The AEAD refused to seal (a message beyond its length limit); nothing was sent.
    #[error("the cipher refused to seal a frame of {len} bytes")]
    Seal {
        /// The plaintext's length.
        len: usize,
    },
    /// A sealed frame is shorter than its tag.
    #[error("sealed frame of {len} bytes is shorter than the 16-byte tag")]
    Short {
        /// Its length.
        len: usize,
    },
}

/// An ephemeral X25519 key pair.
pub struct KeyPair {
    #[cfg(not(fuzzing))]
    secret: StaticSecret,
    public: [u8; PUBLIC_KEY_LEN],
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyPair").field("public", &self.public).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// The key pair with this secret scalar (clamped by X25519 as NaCl does).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        #[cfg(fuzzing)]
        return KeyPair { public: secret };
        #[cfg(not(fuzzing))]
        {
            let secret = StaticSecret::from(secret);
            let public = PublicKey::from(&secret).to_bytes();
            KeyPair { secret, public }
        }
    }

    /// A fresh key pair from `rng`.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        Self::from_secret(*secret)
    }

    /// The public key, as sent on the wire.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// NaCl's `crypto_box_beforenm`: HSalsa20 over the X25519 result. Refuses low-order
    /// remote keys.
    pub fn shared_key(
        &self,
        remote_public: &[u8; PUBLIC_KEY_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        self.raw_shared(remote_public).map(|raw| hsalsa_beforenm(&raw))
    }

    /// The raw X25519 result with `remote_public` (version 3 feeds it to its key
    /// schedule). Refuses low-order remote keys.
    pub fn raw_shared(
        &self,
        remote_public: &[u8; PUBLIC_KEY_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        #[cfg(fuzzing)]
        return bypass::mixed(&self.public, remote_public);
        #[cfg(not(fuzzing))]
        {
            let raw = self.secret.diffie_hellman(&PublicKey::from(*remote_public));
            if !raw.was_contributory() {
                return Err(CryptoError::LowOrderKey);
            }
            Ok(Zeroizing::new(*raw.as_bytes()))
        }
    }
}

/// HSalsa20 with a zero input block: NaCl's box precomputation over a raw X25519 result.
pub fn hsalsa_beforenm(raw: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let out = salsa20::hsalsa::<U10>(raw.into(), &Default::default());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&out);
    key
}

/// `SHA-256(shared ‖ password)`.
pub fn session_key(shared: &[u8; 32], password: &[u8]) -> Zeroizing<[u8; SESSION_KEY_LEN]> {
    let mut h = Sha256::new();
    h.update(shared);
    h.update(password);
    let mut key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    key.copy_from_slice(&h.finalize());
    key
}

/// The nonce of frame `seq` sent by the dialer (`from_dialer`) or the listener.
pub fn nonce(from_dialer: bool, seq: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    // Bit 6 marks TCP control traffic; bit 7 the dialer's direction.
    n[0] = 0x40 | if from_dialer { 0x80 } else { 0 };
    n[16..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// Seals the frames of one direction, numbering them from 0.
pub struct Sealer {
    #[cfg(not(fuzzing))]
    cipher: XSalsa20Poly1305,
    #[cfg(fuzzing)]
    check: u64,
    from_dialer: bool,
    seq: u64,
}

/// Opens the frames of one direction, expecting them numbered from 0.
pub struct Opener {
    #[cfg(not(fuzzing))]
    cipher: XSalsa20Poly1305,
    #[cfg(fuzzing)]
    check: u64,
    from_dialer: bool,
    seq: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer").field("from_dialer", &self.from_dialer).field("seq", &self.seq).finish()
    }
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener").field("from_dialer", &self.from_dialer).field("seq", &self.seq).finish()
    }
}

impl Sealer {
    /// The sequence number the next frame will carry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Seals in place. `buf` holds [`TAG_LEN`] bytes of room followed by the plaintext;
    /// afterwards it holds the sealed body (tag, then ciphertext).
    pub fn seal_in_place(&mut self, buf: &mut [u8]) {
        debug_assert!(buf.len() >= TAG_LEN);
        let n = nonce(self.from_dialer, self.seq);
        self.seq += 1;
        #[cfg(fuzzing)]
        buf[..TAG_LEN].copy_from_slice(&bypass::tag(self.check, &n));
        #[cfg(not(fuzzing))]
        {
            let (tag_slot, msg) = buf.split_at_mut(TAG_LEN);
            // Fails only at a length limit far above the 10 MiB frame limit; should it,
            // the plaintext is wiped (fail closed) and the frame goes out unopenable.
            match self.cipher.encrypt_in_place_detached(Nonce::from_slice(&n), b"", msg) {
                Ok(tag) => tag_slot.copy_from_slice(&tag),
                Err(_) => {
                    msg.fill(0);
                    tag_slot.fill(0);
                }
            }
        }
    }

    /// Seals `plaintext` into a new sealed body.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; TAG_LEN + plaintext.len()];
        buf[TAG_LEN..].copy_from_slice(plaintext);
        self.seal_in_place(&mut buf);
        buf
    }
}

impl Opener {
    /// The sequence number the next frame must carry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Opens a sealed body in place; the plaintext is `body[TAG_LEN..]` afterwards. A
    /// failure is final for the connection: there is no resynchronisation.
    pub fn open_in_place(&mut self, body: &mut [u8]) -> Result<(), CryptoError> {
        if body.len() < TAG_LEN {
            return Err(CryptoError::Short { len: body.len() });
        }
        let n = nonce(self.from_dialer, self.seq);
        #[cfg(fuzzing)]
        if !bypass::tag_matches(self.check, &n, &body[..TAG_LEN]) {
            return Err(CryptoError::Open { seq: self.seq });
        }
        #[cfg(not(fuzzing))]
        {
            let (tag, msg) = body.split_at_mut(TAG_LEN);
            let tag = *Tag::from_slice(tag);
            self.cipher
                .decrypt_in_place_detached(Nonce::from_slice(&n), b"", msg, &tag)
                .map_err(|_| CryptoError::Open { seq: self.seq })?;
        }
        self.seq += 1;
        Ok(())
    }

    /// Opens a sealed body into a new plaintext.
    pub fn open(&mut self, body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = body.to_vec();
        self.open_in_place(&mut buf)?;
        buf.drain(..TAG_LEN);
        Ok(buf)
    }
}

/// Both directions of an encrypted connection.
#[derive(Debug)]
pub struct Session {
    /// Seals what we send.
    pub sealer: Sealer,
    /// Opens what we receive.
    pub opener: Opener,
}

impl Session {
    /// The session for `key`, seen from the dialer (`we_dialed`) or the listener.
    pub fn new(key: &[u8; SESSION_KEY_LEN], we_dialed: bool) -> Self {
        #[cfg(fuzzing)]
        {
            let check = bypass::key_check(key);
            Session {
                sealer: Sealer { check, from_dialer: we_dialed, seq: 0 },
                opener: Opener { check, from_dialer: !we_dialed, seq: 0 },
            }
        }
        #[cfg(not(fuzzing))]
        {
            let cipher = XSalsa20Poly1305::new(key.into());
            Session {
                sealer: Sealer { cipher: cipher.clone(), from_dialer: we_dialed, seq: 0 },
                opener: Opener { cipher, from_dialer: !we_dialed, seq: 0 },
            }
        }
    }
}

/// The stand-in for the cryptography in fuzzing builds; the format is in the module
/// documentation. Nothing here is compiled into a normal build.
#[cfg(fuzzing)]
mod bypass {
    use super::{CryptoError, NONCE_LEN, PUBLIC_KEY_LEN, SESSION_KEY_LEN, TAG_LEN};
    use zeroize::Zeroizing;

    /// The stand-in's raw key agreement: `ours XOR theirs`; an all-zero key is low-order.
    pub(super) fn mixed(
        ours: &[u8; PUBLIC_KEY_LEN],
        theirs: &[u8; PUBLIC_KEY_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        if theirs == &[0; PUBLIC_KEY_LEN] {
            return Err(CryptoError::LowOrderKey);
        }
        let mut mixed = Zeroizing::new([0u8; 32]);
        for (m, (a, b)) in mixed.iter_mut().zip(ours.iter().zip(theirs)) {
            *m = a ^ b;
        }
        Ok(mixed)
    }

    /// What identifies the session key in every tag.
    pub(super) fn key_check(key: &[u8; SESSION_KEY_LEN]) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&key[..8]);
        u64::from_le_bytes(first)
    }

    /// The tag of a frame sealed under `nonce`.
    pub(super) fn tag(check: u64, nonce: &[u8; NONCE_LEN]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        // The key check and the direction, then the sequence number as it ends the nonce.
        tag[..8].copy_from_slice(&(check ^ u64::from(nonce[0])).to_le_bytes());
        tag[8..].copy_from_slice(&nonce[NONCE_LEN - 8..]);
        tag
    }

    /// Whether `tag` is the one [`tag`] gives. The length is hidden from the optimiser so
    /// that this stays one call to `memcmp`, which libFuzzer hooks: it sees the whole
    /// expected tag and can write it into an input in one mutation (two inlined 8-byte
    /// comparisons would each need their own lucky mutation).
    pub(super) fn tag_matches(check: u64, nonce: &[u8; NONCE_LEN], tag: &[u8]) -> bool {
        let expected = self::tag(check, nonce);
        let n = core::hint::black_box(TAG_LEN);
        tag.get(..n) == expected.get(..n)
    }
}
