//! Protocol version 2 encryption (wire.md §6).
//!
//! Each connection makes a fresh X25519 key pair. The NaCl box precomputation (HSalsa20
//! over the raw X25519 result) gives a shared key; the session key is
//! `SHA-256(shared ‖ password)`. Frames are sealed with XSalsa20-Poly1305 in NaCl's
//! layout (tag, then ciphertext) under a nonce made of a polarity byte and a per-direction
//! sequence number; the nonce never travels.
//!
//! Unlike Go, a low-order public key (all-zero X25519 result) is refused: it would make
//! the session key the same for every victim (wire.md §17, item 2).
//!
//! Sealing works in place: the caller leaves [`TAG_LEN`] bytes in front of the plaintext
//! and gets the sealed body back in the same buffer, with no allocation per frame.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use salsa20::cipher::consts::U10;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

pub use crate::config::{NONCE_LEN, PUBLIC_KEY_LEN, SESSION_KEY_LEN, TAG_LEN};

/// Why a cryptographic step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
    /// A sealed frame is shorter than its tag.
    #[error("sealed frame of {len} bytes is shorter than the 16-byte tag")]
    Short {
        /// Its length.
        len: usize,
    },
}

/// An ephemeral X25519 key pair.
pub struct KeyPair {
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
        let public = if cfg!(fuzzing) {
            // Fuzzing builds only: no scalar multiplication (see `shared_key`).
            secret
        } else {
            PublicKey::from(&StaticSecret::from(secret)).to_bytes()
        };
        KeyPair { secret: StaticSecret::from(secret), public }
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
        if cfg!(fuzzing) {
            // Fuzzing builds only: a cheap stand-in for X25519 that still refuses the
            // all-zero key, so the fuzzer spends its time in the parsers.
            if remote_public == &[0; PUBLIC_KEY_LEN] {
                return Err(CryptoError::LowOrderKey);
            }
            return Ok(hsalsa_beforenm(remote_public));
        }
        let raw = self.secret.diffie_hellman(&PublicKey::from(*remote_public));
        if !raw.was_contributory() {
            return Err(CryptoError::LowOrderKey);
        }
        Ok(hsalsa_beforenm(raw.as_bytes()))
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
    cipher: XSalsa20Poly1305,
    from_dialer: bool,
    seq: u64,
}

/// Opens the frames of one direction, expecting them numbered from 0.
pub struct Opener {
    cipher: XSalsa20Poly1305,
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
        if cfg!(fuzzing) {
            // Fuzzing builds only: no encryption, an all-zero tag (see `open_in_place`).
            buf[..TAG_LEN].fill(0);
            return;
        }
        let (tag_slot, msg) = buf.split_at_mut(TAG_LEN);
        // Encryption with an in-memory buffer cannot fail; the error case is a length
        // limit far above the 10 MiB frame limit.
        if let Ok(tag) = self.cipher.encrypt_in_place_detached(Nonce::from_slice(&n), b"", msg) {
            tag_slot.copy_from_slice(&tag);
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
        if cfg!(fuzzing) {
            // Fuzzing builds only (cargo-fuzz sets `--cfg fuzzing`): frames are not
            // encrypted and tags are not checked, so fuzzed bytes reach the parsers
            // behind decryption, as rustls and quinn do. Normal builds never take this.
            self.seq += 1;
            return Ok(());
        }
        let (tag, msg) = body.split_at_mut(TAG_LEN);
        let tag = *Tag::from_slice(tag);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&n), b"", msg, &tag)
            .map_err(|_| CryptoError::Open { seq: self.seq })?;
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
        let cipher = XSalsa20Poly1305::new(key.into());
        Session {
            sealer: Sealer { cipher: cipher.clone(), from_dialer: we_dialed, seq: 0 },
            opener: Opener { cipher, from_dialer: !we_dialed, seq: 0 },
        }
    }
}
