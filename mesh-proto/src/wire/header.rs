//! The 7-byte preamble and version negotiation (wire.md §2).
//!
//! Each side sends `weave`, its minimum and its maximum version. The negotiated version
//! is the smaller maximum, provided it is at least the larger minimum. [`negotiate`] is
//! Go's arithmetic exactly, so it reproduces every case of `header.json`; the handshake
//! then insists on version 2, the only one this implementation speaks, so neither version
//! 0 (which crashes Go) nor the unauthenticated version 1 can be reached.

use crate::config::{PREAMBLE_LEN, PROTOCOL_MAGIC, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION};

/// A side's advertised version range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// Lowest version the side accepts.
    pub min: u8,
    /// Highest version the side accepts.
    pub max: u8,
}

/// Why a preamble was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first five bytes were not `weave`.
    #[error("remote protocol header not recognised: {}", go_bytes(.0))]
    BadMagic([u8; 5]),
    /// The ranges do not overlap.
    #[error("remote version range [{},{}] is incompatible with ours [{},{}]", theirs.min, theirs.max, ours.min, ours.max)]
    Incompatible {
        /// Our range.
        ours: Preamble,
        /// The remote's range.
        theirs: Preamble,
    },
    /// The ranges overlap only on a version this implementation does not speak.
    #[error("negotiated protocol version {0} is not supported (only 2 is)")]
    Unsupported(u8),
}

impl Preamble {
    /// The range this implementation advertises: [2, 2].
    pub const OURS: Preamble = Preamble { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION };

    /// The 7 bytes that announce this range.
    pub fn encode(self) -> [u8; PREAMBLE_LEN] {
        let m = PROTOCOL_MAGIC;
        [m[0], m[1], m[2], m[3], m[4], self.min, self.max]
    }

    /// Parses the remote's 7 bytes.
    pub fn decode(bytes: &[u8; PREAMBLE_LEN]) -> Result<Preamble, HeaderError> {
        let magic: [u8; 5] = [bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]];
        if magic != PROTOCOL_MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        Ok(Preamble { min: bytes[5], max: bytes[6] })
    }
}

/// Formats bytes as Go's `%v` does: `[119 101 97]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// Go's negotiation: `min(max_a, max_b)` if it is at least `max(min_a, min_b)`.
pub fn negotiate(ours: Preamble, theirs: Preamble) -> Result<u8, HeaderError> {
    let lo = ours.min.max(theirs.min);
    let hi = ours.max.min(theirs.max);
    if lo > hi {
        return Err(HeaderError::Incompatible { ours, theirs });
    }
    Ok(hi)
}

/// Negotiation as this implementation does it: Go's rule, then version 2 or nothing.
pub fn negotiate_supported(ours: Preamble, theirs: Preamble) -> Result<u8, HeaderError> {
    let v = negotiate(ours, theirs)?;
    if !(PROTOCOL_MIN_VERSION..=PROTOCOL_MAX_VERSION).contains(&v) {
        return Err(HeaderError::Unsupported(v));
    }
    Ok(v)
}

/// The byte after the preamble on a plaintext connection.
pub const FLAG_PLAINTEXT: u8 = 0;
/// The byte after the preamble on an encrypted connection (a public key follows).
pub const FLAG_ENCRYPTED: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_is_two_two() {
        assert_eq!(Preamble::OURS.encode(), *b"weave\x02\x02");
        let go = Preamble { min: 1, max: 2 };
        assert_eq!(negotiate_supported(Preamble::OURS, go), Ok(2));
        let old = Preamble { min: 1, max: 1 };
        assert!(matches!(negotiate_supported(Preamble::OURS, old), Err(HeaderError::Incompatible { .. })));
        // Even a broken "ours" that reached 0 would be refused.
        let zero = Preamble { min: 0, max: 0 };
        assert_eq!(negotiate_supported(Preamble { min: 0, max: 2 }, zero), Err(HeaderError::Unsupported(0)));
    }
}
