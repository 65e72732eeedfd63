//! Version 3 topology synchronisation (docs/protocol-v3.md §12): what a table's summary,
//! bucket hashes and record digests are, computed from a table.
//!
//! A record's digest is the first 8 bytes (big-endian) of SHA-256 over its 26-byte
//! [`Entry`] encoding: two tables hold the same records (name, UID, version and whether
//! a short id is set, and which) exactly when their digests agree, up to collisions of a
//! 64-bit hash. A table's root is the XOR of its records' digests; a bucket's hash is the
//! XOR of the digests of the records whose name falls in it. Placeholders (names never
//! described by their owner) are not records here: they are never sent either.

use sha2::{Digest as _, Sha256};

use crate::name::PeerName;
use crate::topology::Peer;
use crate::wire::sync::{Entry, MAX_BUCKET_BITS, buckets_len};

/// A record's entry as the digest exchange carries it.
pub fn entry(p: &Peer) -> Entry {
    let s = &p.summary;
    Entry { name: s.name, uid: s.uid, version: s.version, short_id: s.short_id }
}

/// The 64-bit digest of an entry.
pub fn record_digest(e: &Entry) -> u64 {
    let mut bytes = Vec::with_capacity(crate::wire::sync::ENTRY_LEN);
    e.encode(&mut bytes);
    let h = Sha256::digest(&bytes);
    u64::from_be_bytes(h[..8].try_into().expect("SHA-256 is 32 bytes"))
}

/// The bucket of `name` when the table is split into 2^bits buckets: the top `bits` bits
/// of the SplitMix64 finaliser of the name's numeric value (names are MAC addresses,
/// far from uniform; the finaliser spreads them).
pub fn bucket_of(name: PeerName, bits: u8) -> u16 {
    if bits == 0 {
        return 0;
    }
    let mut x = name.to_u64();
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> (64 - u32::from(bits))) as u16
}

/// The bucket count a buckets message uses for a table of `count` records: about eight
/// records a bucket, at most 2^12 buckets, and the message within `max_frame_len`.
pub fn bits_for(count: u32, max_frame_len: usize) -> u8 {
    let mut bits = 0;
    while bits < MAX_BUCKET_BITS && (count >> (bits + 3)) > 1 && buckets_len(bits + 1) <= max_frame_len {
        bits += 1;
    }
    bits
}

/// What a table's summary and buckets are computed from: each record's name, bucket key
/// and digest, in name order. Kept by the table until it changes.
#[derive(Clone, Debug, Default)]
pub struct TableDigest {
    records: Vec<(PeerName, u64)>,
    root: u64,
}

impl TableDigest {
    /// The digest of the records among `peers` (placeholders skipped).
    pub fn build<'a>(peers: impl Iterator<Item = &'a Peer>) -> TableDigest {
        let records: Vec<(PeerName, u64)> = peers
            .filter(|p| !p.is_placeholder())
            .map(|p| (p.summary.name, record_digest(&entry(p))))
            .collect();
        let root = records.iter().fold(0, |acc, (_, d)| acc ^ d);
        TableDigest { records, root }
    }

    /// Records counted (placeholders are not).
    pub fn count(&self) -> u32 {
        u32::try_from(self.records.len()).unwrap_or(u32::MAX)
    }

    /// XOR of every record's digest.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The hash of each of 2^bits buckets, in bucket order.
    pub fn buckets(&self, bits: u8) -> Vec<u64> {
        let mut out = vec![0u64; 1 << bits.min(MAX_BUCKET_BITS)];
        for (name, d) in &self.records {
            out[usize::from(bucket_of(*name, bits))] ^= d;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sync::ENTRY_LEN;

    fn name(n: u64) -> PeerName {
        PeerName::from_u64(n).unwrap()
    }

    #[test]
    fn digests_tell_records_apart() {
        let e = Entry { name: name(1), uid: 2, version: 3, short_id: Some(4) };
        let d = record_digest(&e);
        assert_ne!(d, record_digest(&Entry { version: 4, ..e }));
        assert_ne!(d, record_digest(&Entry { uid: 3, ..e }));
        assert_ne!(d, record_digest(&Entry { short_id: None, ..e }));
        assert_ne!(d, record_digest(&Entry { name: name(2), ..e }));
        // The layout is the spec's: SHA-256 over these 26 bytes, first 8 bytes.
        let mut bytes = Vec::new();
        e.encode(&mut bytes);
        assert_eq!(bytes.len(), ENTRY_LEN);
        let h = Sha256::digest(&bytes);
        assert_eq!(d.to_be_bytes(), h[..8]);
    }

    #[test]
    fn buckets_spread_sequential_names_and_bits_follow_the_table() {
        let mut counts = [0u32; 16];
        for n in 1..=1600 {
            counts[usize::from(bucket_of(name(0x02_00_00_00_00_00 + n), 4))] += 1;
        }
        assert!(counts.iter().all(|&c| (60..=140).contains(&c)), "{counts:?}");
        assert_eq!(bucket_of(name(77), 0), 0);
        assert_eq!(bits_for(0, 1 << 20), 0);
        assert_eq!(bits_for(16, 1 << 20), 1);
        assert_eq!(bits_for(100, 1 << 20), 3);
        assert_eq!(bits_for(1000, 1 << 20), 6);
        assert_eq!(bits_for(1_000_000, 1 << 20), MAX_BUCKET_BITS);
        // The message always fits the frame limit.
        assert!(buckets_len(bits_for(1_000_000, 4096)) <= 4096);
    }
}
