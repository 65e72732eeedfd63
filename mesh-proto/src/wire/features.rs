//! The features map: the first frame in each direction (docs/protocol-v2.md §7, §16.3).
//!
//! On the wire it is one gob stream holding a `map[string]string`. We send the seven keys
//! a Go peer sends, sorted (Go's order is random; the vectors sort), under type id 65.
//! On receipt any entry order is accepted, unknown keys are ignored, and the values are
//! validated as Go validates them, except that peer names are parsed strictly and a zero
//! name or UID is refused.

use bytes::Bytes;

use crate::config::SHORT_ID_SPACE;
use crate::name::{PeerName, PeerNameError};
use crate::wire::gob::{self, GobError, Scalar, Stream};

/// The gob id Go uses for `map[string]string` in the features frame.
pub const FEATURES_MAP_TYPE_ID: i64 = 65;
/// The only peer-name flavour this implementation speaks.
pub const PEER_NAME_FLAVOUR: &str = "mac";

/// What we announce about ourselves on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFeatures {
    /// Our peer name.
    pub name: PeerName,
    /// Our nickname (any bytes).
    pub nickname: Bytes,
    /// Our incarnation id.
    pub uid: u64,
    /// Our 12-bit short id.
    pub short_id: u16,
    /// The random id we picked for this connection.
    pub conn_id: u64,
    /// Whether we consider the remote's address to be in a trusted subnet.
    pub trusts_remote: bool,
}

/// The remote's validated features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFeatures {
    /// Its peer name.
    pub name: PeerName,
    /// Its nickname.
    pub nickname: Bytes,
    /// Its incarnation id (never 0).
    pub uid: u64,
    /// The random id it picked for this connection.
    pub conn_id: u64,
    /// Its short id, if it announced one.
    pub short_id: Option<u16>,
    /// Whether it trusts us.
    pub trusts_us: bool,
}

/// Why a features map was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum FeaturesError {
    /// The frame is not a gob `map[string]string`.
    #[error("features map is not valid gob: {0}")]
    Gob(#[from] GobError),
    /// A required key is absent.
    #[error("field {0} is missing")]
    Missing(&'static str),
    /// The remote uses another peer-name flavour.
    #[error("peer name flavour mismatch (ours: 'mac', theirs: {0:?})")]
    Flavour(String),
    /// `Name` is not a valid peer name.
    #[error("bad Name: {0}")]
    Name(#[from] PeerNameError),
    /// `Name` is the all-zero sentinel.
    #[error("Name 00:00:00:00:00:00 is reserved")]
    ZeroName,
    /// A numeric key is not a decimal number in range.
    #[error("bad {key}: {value:?} is not a decimal number up to {max}")]
    Number {
        /// The key.
        key: &'static str,
        /// Its value (cut to 32 characters).
        value: String,
        /// The largest value allowed.
        max: u64,
    },
    /// `UID` is zero, which no real incarnation has.
    #[error("UID 0 is reserved for placeholders")]
    ZeroUid,
    /// `Trusted` is not one of Go's boolean spellings.
    #[error("bad Trusted: {0:?} is not a boolean")]
    Trusted(String),
}

/// Appends the canonical gob stream of our features map (keys sorted, type id 65).
pub fn encode(out: &mut Vec<u8>, f: &LocalFeatures) {
    encode_with(out, f, &[]);
}

/// Appends the features map with `extra` entries beside ours (an overlay's), all sorted
/// by key. An extra entry whose key is one of ours, or that repeats an earlier extra
/// key, is left out. Without extras the bytes are exactly [`encode`]'s.
pub fn encode_with(out: &mut Vec<u8>, f: &LocalFeatures, extra: &[(&[u8], &[u8])]) {
    let conn_id = f.conn_id.to_string();
    let name = f.name.to_string();
    let short_id = f.short_id.to_string();
    let uid = f.uid.to_string();
    let trusted: &[u8] = if f.trusts_remote { b"true" } else { b"false" };
    let entries: [(&[u8], &[u8]); 7] = [
        (b"ConnID", conn_id.as_bytes()),
        (b"Name", name.as_bytes()),
        (b"NickName", &f.nickname),
        (b"PeerNameFlavour", PEER_NAME_FLAVOUR.as_bytes()),
        (b"ShortID", short_id.as_bytes()),
        (b"Trusted", trusted),
        (b"UID", uid.as_bytes()),
    ];
    if extra.is_empty() {
        return encode_map(out, &entries);
    }
    let mut all: Vec<(&[u8], &[u8])> = entries.to_vec();
    for &(k, v) in extra {
        if !all.iter().any(|(have, _)| *have == k) {
            all.push((k, v));
        }
    }
    all.sort_by(|a, b| a.0.cmp(b.0));
    encode_map(out, &all);
}

/// Appends a gob stream holding `entries` as a `map[string]string`, in the given order.
pub fn encode_map(out: &mut Vec<u8>, entries: &[(&[u8], &[u8])]) {
    gob::put_map_definition(out, FEATURES_MAP_TYPE_ID, gob::STRING, gob::STRING);
    gob::put_message(out, |o| {
        gob::put_int(o, FEATURES_MAP_TYPE_ID);
        o.push(0);
        gob::put_uint(o, entries.len() as u64);
        for (k, v) in entries {
            gob::put_bytes(o, k);
            gob::put_bytes(o, v);
        }
    });
}

/// Raw entries of a features map, borrowed from the frame, in wire order.
pub type Entries<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Decodes a features frame into its entries, in wire order. A repeated key keeps its
/// last value when validated, as a Go map would.
pub fn decode_map(body: &[u8]) -> Result<Entries<'_>, GobError> {
    let mut stream = Stream::new(body);
    let value = stream.expect_next_value("the features map")?;
    let mut entries = Vec::new();
    value.decode(|f| {
        f.map(|k, v| {
            let Scalar::String(k) = k else {
                return Err(GobError::TypeMismatch { expected: "string", found: gob::UINT });
            };
            entries.push((k, v.string()?));
            Ok(())
        })
    })?;
    if !stream.is_empty() {
        return Err(GobError::TrailingBytes(0));
    }
    Ok(entries)
}

/// Decodes and validates a remote's features frame.
pub fn decode(body: &[u8]) -> Result<RemoteFeatures, FeaturesError> {
    validate(&decode_map(body)?)
}

/// Validates decoded entries as docs/protocol-v2.md §7.3 says.
pub fn validate(entries: &[(&[u8], &[u8])]) -> Result<RemoteFeatures, FeaturesError> {
    let get = |key: &str| entries.iter().rev().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| *v);
    let require = |key: &'static str| get(key).ok_or(FeaturesError::Missing(key));

    let flavour = require("PeerNameFlavour")?;
    let name = require("Name")?;
    let nickname = require("NickName")?;
    let uid = require("UID")?;
    let conn_id = require("ConnID")?;

    if flavour != PEER_NAME_FLAVOUR.as_bytes() {
        return Err(FeaturesError::Flavour(lossy(flavour)));
    }
    let name = PeerName::parse(&String::from_utf8_lossy(name))?;
    if name.is_unknown() {
        return Err(FeaturesError::ZeroName);
    }
    let uid = decimal("UID", uid, u64::MAX)?;
    if uid == 0 {
        return Err(FeaturesError::ZeroUid);
    }
    let conn_id = decimal("ConnID", conn_id, u64::MAX)?;
    let short_id = match get("ShortID") {
        None => None,
        Some(v) => Some(decimal("ShortID", v, u64::from(SHORT_ID_SPACE) - 1)? as u16),
    };
    let trusts_us = match get("Trusted") {
        None => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| FeaturesError::Trusted(lossy(v)))?,
    };
    Ok(RemoteFeatures { name, nickname: Bytes::copy_from_slice(nickname), uid, conn_id, short_id, trusts_us })
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).chars().take(32).collect()
}

/// Go's `strconv.ParseUint(s, 10, bits)`: ASCII digits only, no sign, no blanks.
fn decimal(key: &'static str, v: &[u8], max: u64) -> Result<u64, FeaturesError> {
    let bad = || FeaturesError::Number { key, value: lossy(v), max };
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut n: u64 = 0;
    for d in v {
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or_else(bad)?;
    }
    if n > max {
        return Err(bad());
    }
    Ok(n)
}

/// Go's `strconv.ParseBool` spellings.
fn parse_go_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"1" | b"t" | b"T" | b"TRUE" | b"true" | b"True" => Some(true),
        b"0" | b"f" | b"F" | b"FALSE" | b"false" | b"False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_strict() {
        assert_eq!(decimal("UID", b"18446744073709551615", u64::MAX).unwrap(), u64::MAX);
        assert!(decimal("UID", b"18446744073709551616", u64::MAX).is_err());
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"0x10"] {
            assert!(decimal("UID", bad, u64::MAX).is_err(), "{bad:?}");
        }
        assert_eq!(decimal("ShortID", b"4095", 4095).unwrap(), 4095);
        assert!(decimal("ShortID", b"4096", 4095).is_err());
    }
}
