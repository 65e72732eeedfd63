//! The key exchange of protocol version 3 (docs/protocol-v3.md §4).
//!
//! With a password, both ends run SPAKE2 over Edwards25519 in its symmetric mode
//! (RustCrypto's `spake2`): each sends one blinded group element, and only an end that
//! used the same password derives the same secret. An active attacker learns whether one
//! guessed password was right per handshake it runs, and a recording of that handshake
//! lets it test no further guess offline.
//!
//! Without a password, both ends send an ephemeral X25519 public key: the connection is
//! confidential against eavesdroppers and authenticates nothing.
//!
//! `spake2` accepts any point that decompresses; the checks RFC 9382 asks of the
//! receiver (a canonical encoding, not of small order, in the prime-order subgroup) are
//! made here with curve25519-dalek's own predicates before the element reaches it.

use curve25519_dalek::edwards::CompressedEdwardsY;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, KeyPair};

/// Length of the element each end sends (a compressed Edwards point or an X25519 key).
pub const ELEMENT_LEN: usize = 32;

/// The identity both ends give SPAKE2's symmetric mode: binds the exchange to this
/// protocol, so a SPAKE2 run of another application cannot be replayed into ours.
pub const SPAKE2_IDENTITY: &[u8] = b"weave mesh protocol v3";

/// `spake2`'s marker for a symmetric-mode message, which we do not send (the mode byte
/// of the hello says it).
const SPAKE2_SYMMETRIC_SIDE: u8 = 0x53;

/// How a version 3 connection agrees its secret, as announced in the hello's mode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No password: ephemeral X25519. Confidential against eavesdroppers, authenticates
    /// nothing.
    Unauthenticated,
    /// A shared password (possibly empty): SPAKE2.
    Password,
}

impl Mode {
    /// The mode byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Mode::Unauthenticated => 0,
            Mode::Password => 1,
        }
    }

    /// The mode of a byte, if it names one.
    pub fn from_byte(b: u8) -> Option<Mode> {
        match b {
            0 => Some(Mode::Unauthenticated),
            1 => Some(Mode::Password),
            _ => None,
        }
    }
}

/// Why the remote's element was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PakeError {
    /// The 32 bytes are not the encoding of a curve point.
    #[error("the remote's PAKE element is not a curve point")]
    NotAPoint,
    /// A point, but not in its one canonical encoding.
    #[error("the remote's PAKE element is not canonically encoded")]
    NonCanonical,
    /// The identity or another point of small order: it would make the shared secret
    /// independent of our secret.
    #[error("the remote's PAKE element is of small order (the identity or a torsion point)")]
    SmallOrder,
    /// A point with a torsion component: outside the prime-order subgroup.
    #[error("the remote's PAKE element is outside the prime-order subgroup")]
    MixedOrder,
    /// The X25519 key is of low order.
    #[error("the remote's X25519 key is of low order; refusing a key exchange that contributes nothing")]
    LowOrderKey,
}

/// Our half of a key exchange in progress.
pub enum Exchange {
    /// SPAKE2 in its symmetric mode.
    Password(Box<Spake2<Ed25519Group>>),
    /// Ephemeral X25519.
    Unauthenticated(KeyPair),
}

impl core::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Exchange::Password(_) => "Exchange::Password",
            Exchange::Unauthenticated(_) => "Exchange::Unauthenticated",
        })
    }
}

impl Exchange {
    /// Starts an exchange: with `password` SPAKE2, without one X25519. Our element, to
    /// send, and the state that finishes it.
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        password: Option<&[u8]>,
        rng: &mut R,
    ) -> (Exchange, [u8; ELEMENT_LEN]) {
        match password {
            Some(pw) => {
                let (state, msg) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
                    &Password::new(pw),
                    &Identity::new(SPAKE2_IDENTITY),
                    &mut *rng,
                );
                let mut element = [0u8; ELEMENT_LEN];
                // `spake2` sends its side marker, then the 32-byte element.
                element.copy_from_slice(&msg[1..]);
                (Exchange::Password(Box::new(state)), element)
            }
            None => {
                let keys = KeyPair::generate(rng);
                let public = keys.public();
                (Exchange::Unauthenticated(keys), public)
            }
        }
    }

    /// Our mode.
    pub fn mode(&self) -> Mode {
        match self {
            Exchange::Password(_) => Mode::Password,
            Exchange::Unauthenticated(_) => Mode::Unauthenticated,
        }
    }

    /// Finishes the exchange with the remote's element: the shared secret, the input of
    /// the key schedule. The element is checked first.
    pub fn finish(self, remote: &[u8; ELEMENT_LEN]) -> Result<Zeroizing<[u8; 32]>, PakeError> {
        match self {
            Exchange::Password(state) => {
                check_element(remote)?;
                let mut msg = [0u8; 1 + ELEMENT_LEN];
                msg[0] = SPAKE2_SYMMETRIC_SIDE;
                msg[1..].copy_from_slice(remote);
                // The checks above leave nothing for `finish` to refuse: it fails only on
                // a wrong length, side or an encoding that does not decompress.
                let key = Zeroizing::new(state.finish(&msg).map_err(|_| PakeError::NotAPoint)?);
                // A SHA-256 output: 32 bytes, so the slice never fails; if a future
                // `spake2` changed that, refuse instead of panicking on remote input.
                let mut out = Zeroizing::new([0u8; 32]);
                out.copy_from_slice(key.get(..32).ok_or(PakeError::NotAPoint)?);
                Ok(out)
            }
            Exchange::Unauthenticated(keys) => keys.raw_shared(remote).map_err(|e| match e {
                CryptoError::LowOrderKey => PakeError::LowOrderKey,
                _ => PakeError::NotAPoint,
            }),
        }
    }
}

/// RFC 9382's receiver checks on a SPAKE2 element: a canonical point, not of small order,
/// in the prime-order subgroup.
pub fn check_element(bytes: &[u8; ELEMENT_LEN]) -> Result<(), PakeError> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or(PakeError::NotAPoint)?;
    if point.compress() != compressed {
        return Err(PakeError::NonCanonical);
    }
    if point.is_small_order() {
        return Err(PakeError::SmallOrder);
    }
    if !point.is_torsion_free() {
        return Err(PakeError::MixedOrder);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn finish_both(a: Option<&[u8]>, b: Option<&[u8]>) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (ea, ma) = Exchange::start(a, &mut rng);
        let (eb, mb) = Exchange::start(b, &mut rng);
        (ea.finish(&mb).unwrap(), eb.finish(&ma).unwrap())
    }

    #[test]
    fn the_same_password_agrees_and_another_does_not() {
        let (a, b) = finish_both(Some(b"pw"), Some(b"pw"));
        assert_eq!(*a, *b);
        let (a, b) = finish_both(Some(b""), Some(b""));
        assert_eq!(*a, *b);
        let (a, b) = finish_both(Some(b"pw"), Some(b"px"));
        assert_ne!(*a, *b);
        let (a, b) = finish_both(None, None);
        assert_eq!(*a, *b);
    }

    #[test]
    fn honest_elements_pass_the_checks_and_hostile_ones_fail() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for _ in 0..8 {
            let (_, m) = Exchange::start(Some(b"pw"), &mut rng);
            assert_eq!(check_element(&m), Ok(()));
        }
        let id = CompressedEdwardsY::default().to_bytes(); // (0, 1): the identity
        assert_eq!(check_element(&id), Err(PakeError::SmallOrder));
        for t in EIGHT_TORSION {
            assert_eq!(check_element(t.compress().as_bytes()), Err(PakeError::SmallOrder));
        }
        let mixed = ED25519_BASEPOINT_POINT + EIGHT_TORSION[1];
        assert_eq!(check_element(mixed.compress().as_bytes()), Err(PakeError::MixedOrder));
        // y = p (= 2^255 - 19) encodes y = 0 non-canonically.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(matches!(check_element(&p), Err(PakeError::NonCanonical | PakeError::NotAPoint)));
        // A y with no x on the curve.
        let none = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .unwrap();
        assert_eq!(check_element(&none), Err(PakeError::NotAPoint));
        let (state, _) = Exchange::start(Some(b"pw"), &mut rng);
        assert_eq!(state.finish(&id).unwrap_err(), PakeError::SmallOrder);
        let (state, _) = Exchange::start(None, &mut rng);
        assert_eq!(state.finish(&[0; 32]).unwrap_err(), PakeError::LowOrderKey);
    }
}
