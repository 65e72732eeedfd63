//! A connection's frame sealing, for either protocol version.
//!
//! - Version 2 ([`crate::crypto`]): XSalsa20-Poly1305, the tag in front of the
//!   ciphertext, the length prefix not authenticated (Go's layout).
//! - Version 3 (docs/protocol-v3.md §7): ChaCha20-Poly1305 with one key per direction;
//!   a frame is `length ‖ ciphertext ‖ tag`, the 4-byte length is the associated data,
//!   and the nonce is 4 zero bytes then the direction's frame counter (big-endian),
//!   starting at 0 with the features frame. After it, a frame's plaintext is a record:
//!   one or more messages, each as an inner frame (4-byte length, message), sealed
//!   together (§7.3). A direction seals at most
//!   [`V3_FRAME_LIMIT`] frames; the connection is then closed
//!   ([`CryptoError::Exhausted`]) and the next one starts with fresh keys, long before a
//!   counter could wrap.
//!
//! # Fuzzing builds
//!
//! With `--cfg fuzzing` version 3 frames use the same transparent stand-in as version 2
//! (crate::crypto's module documentation): no encryption, and the 16-byte tag, at the end
//! here, is `check` (the first 8 bytes of the direction's key, little-endian) then the
//! counter (big-endian), compared with one `memcmp`.

use core::ops::Range;

#[cfg(not(fuzzing))]
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};

use crate::crypto::{self, CryptoError, TAG_LEN};
use crate::wire::frame::LEN_PREFIX;

/// The frames one direction of a version 3 connection may seal (2^48: eight years at a
/// million frames a second) before the connection is closed and redialled.
pub const V3_FRAME_LIMIT: u64 = 1 << 48;

/// Length of a ChaCha20-Poly1305 nonce.
const V3_NONCE_LEN: usize = 12;

/// The nonce of frame `seq`: 4 zero bytes, then `seq` big-endian.
fn v3_nonce(seq: u64) -> [u8; V3_NONCE_LEN] {
    let mut n = [0u8; V3_NONCE_LEN];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// One direction of a version 3 connection.
pub struct Direction {
    #[cfg(not(fuzzing))]
    cipher: ChaCha20Poly1305,
    #[cfg(fuzzing)]
    check: u64,
    seq: u64,
}

impl core::fmt::Debug for Direction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Direction").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Direction {
    /// The direction keyed by `key`, its counter at 0.
    pub fn new(key: &[u8; 32]) -> Self {
        #[cfg(fuzzing)]
        {
            let mut first = [0u8; 8];
            first.copy_from_slice(&key[..8]);
            Direction { check: u64::from_le_bytes(first), seq: 0 }
        }
        #[cfg(not(fuzzing))]
        Direction { cipher: ChaCha20Poly1305::new(key.into()), seq: 0 }
    }

    /// The counter of the next frame.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves the counter (tests of the frame limit only).
    #[cfg(any(test, fuzzing, feature = "test-internals"))]
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Takes the next counter, refusing one at the limit.
    fn next_seq(&mut self) -> Result<u64, CryptoError> {
        if self.seq >= V3_FRAME_LIMIT {
            return Err(CryptoError::Exhausted { limit: V3_FRAME_LIMIT });
        }
        self.seq += 1;
        Ok(self.seq - 1)
    }

    /// Seals `frame` in place: the 4-byte length, the plaintext, then [`TAG_LEN`] bytes
    /// of room for the tag.
    pub fn seal_frame(&mut self, frame: &mut [u8]) -> Result<(), CryptoError> {
        if frame.len() < LEN_PREFIX + TAG_LEN {
            return Err(CryptoError::Short { len: frame.len().saturating_sub(LEN_PREFIX) });
        }
        let seq = self.next_seq()?;
        let (aad, rest) = frame.split_at_mut(LEN_PREFIX);
        let (msg, tag_slot) = rest.split_at_mut(rest.len() - TAG_LEN);
        #[cfg(fuzzing)]
        {
            let _ = (aad, msg);
            tag_slot.copy_from_slice(&stand_in_tag(self.check, seq));
        }
        #[cfg(not(fuzzing))]
        {
            let nonce = v3_nonce(seq);
            // Fails only above ChaCha20-Poly1305's 256 GiB message limit, far above any
            // frame; should it, nothing of the plaintext is left to go out.
            match self.cipher.encrypt_inout_detached(&Nonce::from(nonce), aad, msg.into()) {
                Ok(tag) => tag_slot.copy_from_slice(&tag),
                Err(_) => {
                    msg.fill(0);
                    return Err(CryptoError::Seal { len: msg.len() });
                }
            }
        }
        Ok(())
    }

    /// Opens a frame body (what followed its length prefix) in place; the plaintext is
    /// `body[..body.len() - TAG_LEN]` afterwards. A failure is final.
    pub fn open_body(&mut self, body: &mut [u8]) -> Result<(), CryptoError> {
        if body.len() < TAG_LEN {
            return Err(CryptoError::Short { len: body.len() });
        }
        let seq = self.seq;
        if seq >= V3_FRAME_LIMIT {
            return Err(CryptoError::Exhausted { limit: V3_FRAME_LIMIT });
        }
        let aad = (body.len() as u32).to_be_bytes();
        let split = body.len() - TAG_LEN;
        let (msg, tag) = body.split_at_mut(split);
        #[cfg(fuzzing)]
        {
            let _ = (aad, msg);
            let expected = stand_in_tag(self.check, seq);
            let n = core::hint::black_box(TAG_LEN);
            if tag.get(..n) != expected.get(..n) {
                return Err(CryptoError::Open { seq });
            }
        }
        #[cfg(not(fuzzing))]
        {
            let mut t = Tag::default();
            t.copy_from_slice(tag);
            self.cipher
                .decrypt_inout_detached(&Nonce::from(v3_nonce(seq)), &aad, msg.into(), &t)
                .map_err(|_| CryptoError::Open { seq })?;
        }
        self.seq += 1;
        Ok(())
    }
}

/// The fuzzing stand-in's tag: the key check, then the counter.
#[cfg(fuzzing)]
fn stand_in_tag(check: u64, seq: u64) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag[..8].copy_from_slice(&check.to_le_bytes());
    tag[8..].copy_from_slice(&v3_nonce(seq)[4..]);
    tag
}

/// Both directions of a version 3 connection.
#[derive(Debug)]
pub struct V3Session {
    /// Seals what we send.
    pub sealer: Direction,
    /// Opens what we receive.
    pub opener: Direction,
}

/// How a connection's frames are sealed.
#[derive(Debug)]
pub enum Sealing {
    /// Version 2: Go's XSalsa20-Poly1305 session.
    V2(crypto::Session),
    /// Version 3: ChaCha20-Poly1305, a key per direction.
    V3(V3Session),
}

impl Sealing {
    /// Bytes the sealed body carries in front of the plaintext.
    pub fn head(&self) -> usize {
        match self {
            Sealing::V2(_) => TAG_LEN,
            Sealing::V3(_) => 0,
        }
    }

    /// Bytes the sealed body carries after the plaintext.
    pub fn tail(&self) -> usize {
        match self {
            Sealing::V2(_) => 0,
            Sealing::V3(_) => TAG_LEN,
        }
    }

    /// Seals a whole frame in place: its length prefix (already written), [`Self::head`]
    /// bytes of room, the plaintext, [`Self::tail`] bytes of room.
    pub fn seal_frame(&mut self, frame: &mut [u8]) -> Result<(), CryptoError> {
        match self {
            Sealing::V2(s) => {
                s.sealer.seal_in_place(&mut frame[LEN_PREFIX..]);
                Ok(())
            }
            Sealing::V3(s) => s.sealer.seal_frame(frame),
        }
    }

    /// Opens a frame body in place; where its plaintext is.
    pub fn open_body(&mut self, body: &mut [u8]) -> Result<Range<usize>, CryptoError> {
        match self {
            Sealing::V2(s) => {
                s.opener.open_in_place(body)?;
                Ok(TAG_LEN..body.len())
            }
            Sealing::V3(s) => {
                s.opener.open_body(body)?;
                Ok(0..body.len() - TAG_LEN)
            }
        }
    }

    /// A whole frame (length prefix included) around `plaintext`.
    pub fn frame(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (head, tail) = (self.head(), self.tail());
        let mut out = Vec::with_capacity(LEN_PREFIX + head + plaintext.len() + tail);
        out.extend_from_slice(&((head + plaintext.len() + tail) as u32).to_be_bytes());
        out.resize(LEN_PREFIX + head, 0);
        out.extend_from_slice(plaintext);
        out.resize(out.len() + tail, 0);
        self.seal_frame(&mut out)?;
        Ok(out)
    }

    /// The frame carrying one message: in version 2 the message is the frame's
    /// plaintext, in version 3 a record holding the message as its one inner frame.
    pub fn message_frame(&mut self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Sealing::V2(_) => self.frame(message),
            Sealing::V3(_) => {
                let mut inner = Vec::with_capacity(LEN_PREFIX + message.len());
                inner.extend_from_slice(&(message.len() as u32).to_be_bytes());
                inner.extend_from_slice(message);
                self.frame(&inner)
            }
        }
    }

    /// Opens a body into a new plaintext.
    pub fn open(&mut self, body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = body.to_vec();
        let range = self.open_body(&mut buf)?;
        Ok(buf[range].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealing, Sealing) {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let a = V3Session { sealer: Direction::new(&k1), opener: Direction::new(&k2) };
        let b = V3Session { sealer: Direction::new(&k2), opener: Direction::new(&k1) };
        (Sealing::V3(a), Sealing::V3(b))
    }

    #[test]
    fn v3_frames_open_in_order_and_nothing_else_does() {
        let (mut a, mut b) = pair();
        let f0 = a.frame(b"zero").unwrap();
        let f1 = a.frame(b"one").unwrap();
        assert_eq!(&f0[..4], &(4u32 + 16).to_be_bytes());
        assert_ne!(&f0[4..8], b"zero", "encrypted");
        // Reordered: frame 1 first fails.
        let mut b2 = pair().1;
        assert_eq!(b2.open(&f1[4..]), Err(CryptoError::Open { seq: 0 }));
        assert_eq!(b.open(&f0[4..]).unwrap(), b"zero");
        // Replayed.
        assert_eq!(b.open(&f0[4..]), Err(CryptoError::Open { seq: 1 }));
        let (_, mut b) = pair();
        b.open(&f0[4..]).unwrap();
        // Tampered.
        let mut t = f1.clone();
        t[5] ^= 1;
        assert_eq!(b.open(&t[4..]), Err(CryptoError::Open { seq: 1 }));
        // Truncated: the length is authenticated, so a shortened body fails.
        assert_eq!(b.open(&f1[4..f1.len() - 1]), Err(CryptoError::Open { seq: 1 }));
        assert_eq!(b.open(&f1[4..]).unwrap(), b"one");
        // Reflected back to its sender.
        let (mut a, _) = pair();
        let mine = a.frame(b"x").unwrap();
        assert_eq!(a.open(&mine[4..]), Err(CryptoError::Open { seq: 0 }));
        assert_eq!(a.open(&[0; 15]), Err(CryptoError::Short { len: 15 }));
    }

    #[test]
    fn a_direction_refuses_to_seal_past_its_limit() {
        let (mut a, mut b) = pair();
        let (Sealing::V3(sa), Sealing::V3(sb)) = (&mut a, &mut b) else { unreachable!() };
        sa.sealer.set_seq(V3_FRAME_LIMIT - 1);
        sb.opener.set_seq(V3_FRAME_LIMIT - 1);
        let last = a.frame(b"last").unwrap();
        assert_eq!(b.open(&last[4..]).unwrap(), b"last");
        assert_eq!(a.frame(b"over"), Err(CryptoError::Exhausted { limit: V3_FRAME_LIMIT }));
    }
}
