//! The key schedule of protocol version 3 (docs/protocol-v3.md §5).
//!
//! ```text
//! TH   = SHA-256("weave mesh v3 transcript" ‖ dialer preamble ‖ listener preamble
//!                ‖ dialer hello ‖ listener hello)
//! PRK  = HKDF-Extract(salt = TH, IKM = the key exchange's shared secret)
//! K(l) = HKDF-Expand(PRK, "weave mesh v3 " ‖ l, 32)
//! confirmation sent by the dialer   = K("confirm dialer")
//! confirmation sent by the listener = K("confirm listener")
//! AEAD keys = K("key dialer to listener"), K("key listener to dialer")
//! an application overlay's key = K("overlay")
//! ```
//!
//! A confirmation is an output of the PRF keyed by PRK, so it proves knowledge of the
//! shared secret and the transcript without revealing the AEAD keys derived beside it.
//!
//! The transcript binds both preambles (so a rewritten version range is detected once
//! both ends speak version 3), both hellos (mode, connection id, PAKE element) and the
//! roles. The two directions get their own AEAD key, so a frame reflected back to its
//! sender never opens.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::handshake::Role;

/// Length of a confirmation tag.
pub const CONFIRM_LEN: usize = 32;

/// Domain separation of the transcript hash.
const TRANSCRIPT_LABEL: &[u8] = b"weave mesh v3 transcript";
/// Prefix of every HKDF-Expand label.
const LABEL_PREFIX: &[u8] = b"weave mesh v3 ";

/// The hash of everything both ends sent before the key exchange finished.
pub fn transcript(
    dialer_preamble: &[u8],
    listener_preamble: &[u8],
    dialer_hello: &[u8],
    listener_hello: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRANSCRIPT_LABEL);
    for part in [dialer_preamble, listener_preamble, dialer_hello, listener_hello] {
        h.update(part);
    }
    h.finalize().into()
}

/// The keys a finished version 3 key exchange gives one connection.
pub struct Keys {
    /// What we send as our confirmation.
    pub our_confirmation: [u8; CONFIRM_LEN],
    /// The confirmation the remote must send.
    their_confirmation: Zeroizing<[u8; 32]>,
    /// AEAD key of what we send.
    pub send_key: Zeroizing<[u8; 32]>,
    /// AEAD key of what we receive.
    pub receive_key: Zeroizing<[u8; 32]>,
    /// Key for an application overlay's own encryption, the same at both ends and used
    /// by nothing of the mesh (docs/protocol-v3.md §5.2).
    pub overlay: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

/// `HKDF-Expand(PRK, "weave mesh v3 " ‖ label, 32)`.
fn expand(prk: &Hkdf<Sha256>, label: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // Cannot fail: 32 bytes is far below HKDF-SHA256's 8,160-byte limit.
    let _ = prk.expand_multi_info(&[LABEL_PREFIX, label.as_bytes()], out.as_mut());
    out
}

impl Keys {
    /// Derives the connection's keys from the exchange's secret and the transcript, seen
    /// from `role`.
    pub fn derive(shared: &[u8; 32], transcript: [u8; 32], role: Role) -> Keys {
        let prk = Hkdf::<Sha256>::new(Some(&transcript), shared);
        let confirm_dialer = expand(&prk, "confirm dialer");
        let confirm_listener = expand(&prk, "confirm listener");
        let dialer_to_listener = expand(&prk, "key dialer to listener");
        let listener_to_dialer = expand(&prk, "key listener to dialer");
        let (ours, theirs, send_key, receive_key) = match role {
            Role::Dialer => (confirm_dialer, confirm_listener, dialer_to_listener, listener_to_dialer),
            Role::Listener => (confirm_listener, confirm_dialer, listener_to_dialer, dialer_to_listener),
        };
        let overlay = expand(&prk, "overlay");
        Keys { our_confirmation: *ours, their_confirmation: theirs, send_key, receive_key, overlay }
    }

    /// Whether `tag` is the remote's confirmation, compared in constant time.
    pub fn confirms(&self, tag: &[u8; CONFIRM_LEN]) -> bool {
        bool::from(self.their_confirmation.ct_eq(tag))
    }
}
