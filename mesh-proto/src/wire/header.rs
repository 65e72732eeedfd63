//! The 7-byte preamble and version negotiation (docs/protocol-v2.md §2).
//!
//! Each side sends `weave`, its minimum and its maximum version. The negotiated version
//! is the smaller maximum, provided it is at least the larger minimum. [`negotiate`] is
//! Go's arithmetic exactly, so it reproduces every case of `header.json`; the handshake
//! then insists on a version this implementation speaks (2, Go's, or 3, ours between Rust
//! peers), so neither version 0 (which crashes Go) nor the unauthenticated version 1 can
//! be reached. We advertise [2, 3] by default: Go (at most 2) gets version 2.

use crate::config::{PREAMBLE_LEN, PROTOCOL_MAGIC, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION};

/// A side's advertised version range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Preamble {
    /// Lowest version the side accepts.
    pub min: u8,
    /// Highest version the side accepts.
    pub max: u8,
}

/// Why a preamble was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
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
    #[error("negotiated protocol version {0} is not supported (only 2 and 3 are)")]
    Unsupported(u8),
    /// The remote speaks nothing as new as the minimum we were configured to require
    /// (`min_protocol_version`), typically a Go peer or a Rust peer capped at version 2.
    #[error(
        "the remote speaks at most protocol version {remote_max}; this peer requires version {our_min} or later"
    )]
    BelowMinimum {
        /// The remote's highest version.
        remote_max: u8,
        /// Our configured minimum.
        our_min: u8,
    },
}

impl Preamble {
    /// The range this implementation advertises by default: [2, 3].
    pub const OURS: Preamble = Preamble { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION };

    /// A version-2-only peer's range, [2, 2] (`max_protocol_version(2)`): it sends what
    /// this implementation sent before version 3 existed.
    pub const V2_ONLY: Preamble = Preamble { min: 2, max: 2 };

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

/// Negotiation as this implementation does it: Go's rule, then version 2 or 3 or
/// nothing; a remote whose versions all lie below our configured minimum (but that would
/// otherwise be served) is refused as [`HeaderError::BelowMinimum`].
pub fn negotiate_supported(ours: Preamble, theirs: Preamble) -> Result<u8, HeaderError> {
    if theirs.max < ours.min && theirs.max >= PROTOCOL_MIN_VERSION && theirs.min <= theirs.max {
        return Err(HeaderError::BelowMinimum { remote_max: theirs.max, our_min: ours.min });
    }
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
    fn ours_is_two_three_and_go_gets_two() {
        assert_eq!(Preamble::OURS.encode(), *b"weave\x02\x03");
        assert_eq!(Preamble::V2_ONLY.encode(), *b"weave\x02\x02");
        let go = Preamble { min: 1, max: 2 };
        assert_eq!(negotiate_supported(Preamble::OURS, go), Ok(2));
        assert_eq!(negotiate_supported(Preamble::OURS, Preamble::OURS), Ok(3));
        assert_eq!(negotiate_supported(Preamble::OURS, Preamble::V2_ONLY), Ok(2));
        let v3_only = Preamble { min: 3, max: 3 };
        assert_eq!(negotiate_supported(v3_only, Preamble::OURS), Ok(3));
        assert_eq!(
            negotiate_supported(v3_only, go),
            Err(HeaderError::BelowMinimum { remote_max: 2, our_min: 3 })
        );
        assert_eq!(
            negotiate_supported(v3_only, Preamble::V2_ONLY),
            Err(HeaderError::BelowMinimum { remote_max: 2, our_min: 3 })
        );
        // A future peer that only speaks 4 is simply incompatible.
        let four = Preamble { min: 4, max: 4 };
        assert!(matches!(negotiate_supported(Preamble::OURS, four), Err(HeaderError::Incompatible { .. })));
        let old = Preamble { min: 1, max: 1 };
        assert!(matches!(negotiate_supported(Preamble::OURS, old), Err(HeaderError::Incompatible { .. })));
        // Even a broken "ours" that reached 0 would be refused.
        let zero = Preamble { min: 0, max: 0 };
        assert_eq!(negotiate_supported(Preamble { min: 0, max: 2 }, zero), Err(HeaderError::Unsupported(0)));
    }
}
