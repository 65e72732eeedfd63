//! Peer names in the "mac" flavour (docs/protocol-v2.md §11, §15.1).
//!
//! A peer name is a 48-bit number with three forms: the number itself (what gossip
//! envelopes and the counter app carry), six bytes most significant first (`NameByte` in
//! topology records) and MAC-style text (`0a:1b:2c:3d:4e:5f`, the `Name` feature).
//!
//! Parsing is stricter than Go's: it accepts the grammar of docs/protocol-v2.md §11.2 (groups of
//! one or two hex digits in either case, one optional `::` shorthand) and nothing else.
//! Go's quirks — blanks before a group, anything after an embedded NUL — are rejected
//! with a precise reason, and byte forms that are not exactly six bytes are refused
//! rather than folded into numbers that print like other names.

use core::fmt;
use core::str::FromStr;

/// Number of bytes in the byte form of a name.
pub(crate) const NAME_LEN: usize = 6;
const NAME_MASK: u64 = (1 << 48) - 1;

/// A 48-bit peer name.
///
/// Ordering is numeric, which is the order Go uses for routes and short-id principals.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerName(u64);

/// Why a peer name could not be parsed or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PeerNameError {
    /// The text form did not follow the grammar.
    #[error("invalid peer name {input:?}: {reason}")]
    Text {
        /// The offending input (cut to 64 characters).
        input: String,
        /// What exactly is wrong with it.
        reason: TextReason,
    },
    /// A byte form was not exactly six bytes long.
    #[error("peer name bytes must be 6 long, got {0}")]
    ByteLength(usize),
    /// A numeric form does not fit in 48 bits.
    #[error("peer name {0:#x} does not fit in 48 bits")]
    TooLarge(u64),
}

/// The specific defect of a malformed text name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum TextReason {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// A blank or line break appeared (Go tolerates some before a group; we do not).
    #[error("it contains whitespace")]
    Whitespace,
    /// A NUL byte appeared (Go silently drops everything after it; we do not).
    #[error("it contains a NUL byte")]
    Nul,
    /// A character other than a hex digit or `:` appeared.
    #[error("it contains {0:?}, which is not a hex digit or ':'")]
    BadCharacter(char),
    /// A group had more than two hex digits.
    #[error("a group has more than two hex digits")]
    GroupTooLong,
    /// Two single colons with nothing between them, or a leading/trailing colon.
    #[error("a group is empty")]
    EmptyGroup,
    /// Without `::`, there must be exactly six groups.
    #[error("it has {0} groups instead of 6")]
    GroupCount(usize),
    /// `::` may appear once.
    #[error("'::' appears more than once")]
    RepeatedShorthand,
    /// With `::`, one to four explicit groups must remain.
    #[error("with '::' there must be 1 to 4 explicit groups, found {0}")]
    ShorthandGroupCount(usize),
}

impl PeerName {
    /// The all-zero name: Go's "unknown peer" sentinel (e.g. the next hop for ourselves).
    pub const UNKNOWN: PeerName = PeerName(0);

    /// The name with this numeric value, if it fits in 48 bits.
    pub const fn from_u64(value: u64) -> Result<PeerName, PeerNameError> {
        if value & !NAME_MASK != 0 { Err(PeerNameError::TooLarge(value)) } else { Ok(PeerName(value)) }
    }

    /// The name's numeric value, as gob envelopes carry it.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// The name with this 6-byte form (most significant byte first).
    pub const fn from_array(bytes: [u8; NAME_LEN]) -> PeerName {
        let mut v = 0u64;
        let mut i = 0;
        while i < NAME_LEN {
            v = (v << 8) | bytes[i] as u64;
            i += 1;
        }
        PeerName(v)
    }

    /// The name whose byte form is `bytes`, which must be exactly six bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<PeerName, PeerNameError> {
        let arr: [u8; NAME_LEN] = bytes.try_into().map_err(|_| PeerNameError::ByteLength(bytes.len()))?;
        Ok(PeerName::from_array(arr))
    }

    /// The 6-byte form, most significant byte first.
    pub const fn to_bytes(self) -> [u8; NAME_LEN] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// Whether this is the all-zero sentinel, which never names a real peer here.
    pub const fn is_unknown(self) -> bool {
        self.0 == 0
    }

    /// Parses the text form strictly (see the module docs).
    pub fn parse(text: &str) -> Result<PeerName, PeerNameError> {
        parse_text(text)
            .map_err(|reason| PeerNameError::Text { input: text.chars().take(64).collect(), reason })
    }
}

fn parse_text(text: &str) -> Result<PeerName, TextReason> {
    if text.is_empty() {
        return Err(TextReason::Empty);
    }
    for c in text.chars() {
        match c {
            '\0' => return Err(TextReason::Nul),
            c if c.is_whitespace() => return Err(TextReason::Whitespace),
            ':' => {}
            c if c.is_ascii_hexdigit() => {}
            c => return Err(TextReason::BadCharacter(c)),
        }
    }
    let mut bytes = [0u8; NAME_LEN];
    match text.split_once("::") {
        None => {
            let groups: Vec<&str> = text.split(':').collect();
            if groups.len() != NAME_LEN {
                return Err(TextReason::GroupCount(groups.len()));
            }
            for (slot, g) in bytes.iter_mut().zip(groups) {
                *slot = parse_group(g)?;
            }
        }
        Some((left, right)) => {
            if right.contains("::") {
                return Err(TextReason::RepeatedShorthand);
            }
            let left = split_groups(left)?;
            let right = split_groups(right)?;
            let explicit = left.len() + right.len();
            // `::` stands for at least two zero octets.
            if explicit == 0 || explicit > NAME_LEN - 2 {
                return Err(TextReason::ShorthandGroupCount(explicit));
            }
            for (i, g) in left.iter().enumerate() {
                bytes[i] = parse_group(g)?;
            }
            let offset = NAME_LEN - right.len();
            for (i, g) in right.iter().enumerate() {
                bytes[offset + i] = parse_group(g)?;
            }
        }
    }
    Ok(PeerName::from_array(bytes))
}

/// Groups on one side of `::`; an empty side has no groups.
fn split_groups(side: &str) -> Result<Vec<&str>, TextReason> {
    if side.is_empty() {
        return Ok(Vec::new());
    }
    let groups: Vec<&str> = side.split(':').collect();
    if groups.iter().any(|g| g.is_empty()) {
        return Err(TextReason::EmptyGroup);
    }
    Ok(groups)
}

fn parse_group(g: &str) -> Result<u8, TextReason> {
    match g.len() {
        0 => Err(TextReason::EmptyGroup),
        1 | 2 => u8::from_str_radix(g, 16).map_err(|_| TextReason::EmptyGroup),
        _ => Err(TextReason::GroupTooLong),
    }
}

impl FromStr for PeerName {
    type Err = PeerNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerName::parse(s)
    }
}

impl TryFrom<u64> for PeerName {
    type Error = PeerNameError;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        PeerName::from_u64(v)
    }
}

impl From<PeerName> for u64 {
    fn from(n: PeerName) -> u64 {
        n.0
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        let n = PeerName::parse("12:34:56:78:9a:bc").unwrap();
        assert_eq!(n.to_u64(), 0x1234_5678_9abc);
        assert_eq!(n.to_bytes(), [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]);
        assert_eq!(n.to_string(), "12:34:56:78:9a:bc");
        assert_eq!(PeerName::from_bytes(&n.to_bytes()).unwrap(), n);
    }

    #[test]
    fn go_quirks_are_rejected_with_reasons() {
        let reason = |s: &str| match PeerName::parse(s) {
            Err(PeerNameError::Text { reason, .. }) => reason,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(reason(" 00:11:22:33:44:55"), TextReason::Whitespace);
        assert_eq!(reason("00:11:22:33:44:55\0junk"), TextReason::Nul);
        assert_eq!(reason("001:02:03:04:05:06"), TextReason::GroupTooLong);
        assert_eq!(reason("::"), TextReason::ShorthandGroupCount(0));
        assert_eq!(reason("1::2:3:4:5"), TextReason::ShorthandGroupCount(5));
        assert_eq!(reason("::1::"), TextReason::RepeatedShorthand);
        assert_eq!(reason("0x1:02:03:04:05:06"), TextReason::BadCharacter('x'));
    }

    #[test]
    fn numeric_form_is_bounded() {
        assert!(PeerName::from_u64(1 << 48).is_err());
        assert_eq!(PeerName::from_u64((1 << 48) - 1).unwrap().to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(PeerName::from_bytes(&[1, 2, 3]), Err(PeerNameError::ByteLength(3)));
    }
}
