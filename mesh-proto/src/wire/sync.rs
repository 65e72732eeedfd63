//! Version 3 topology synchronisation messages (docs/protocol-v3.md §12): instead of the
//! whole table, peers exchange a summary of it, then bucket hashes, then the digests of
//! the records in the buckets that differ, and finally the records one side lacks.
//!
//! Every layout is fixed-width big-endian after the tag byte. Decoding borrows from the
//! message and checks every count against the bytes present before anything is read, so
//! nothing is allocated for a hostile count.

use crate::name::PeerName;

/// Summary of a whole table: record count and root hash.
pub const TAG_SYNC_SUMMARY: u8 = 32;
/// The hashes of every bucket of the sender's table.
pub const TAG_SYNC_BUCKETS: u8 = 33;
/// The digests of the sender's records in some buckets.
pub const TAG_SYNC_ENTRIES: u8 = 34;
/// Names whose records the sender asks for.
pub const TAG_SYNC_WANT: u8 = 35;
/// The digests of records the sender holds that changed (offered, not sent).
pub const TAG_SYNC_HAVE: u8 = 36;

/// Most buckets a table is split into: 2^12, 32 KiB of hashes.
pub const MAX_BUCKET_BITS: u8 = 12;
/// Bytes of one record digest in an entries message.
pub const ENTRY_LEN: usize = 26;
/// Bytes of a bucket header in an entries message (index, entry count).
pub const GROUP_HEADER_LEN: usize = 4;
/// The short-id field's value for a record without a short id.
pub const NO_SHORT_ID: u16 = 0xffff;

/// A record's identity and version as a digest exchange compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The record's peer.
    pub name: PeerName,
    /// Its incarnation.
    pub uid: u64,
    /// Its version.
    pub version: u64,
    /// Its short id, if it has one.
    pub short_id: Option<u16>,
}

impl Entry {
    /// The 26 bytes of this entry.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name.to_u64().to_be_bytes());
        out.extend_from_slice(&self.uid.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.short_id.unwrap_or(NO_SHORT_ID).to_be_bytes());
    }

    fn decode(b: &[u8]) -> Result<Entry, SyncError> {
        let name = name_at(&b[0..8])?;
        let short_id = u16::from_be_bytes([b[24], b[25]]);
        let short_id = match short_id {
            NO_SHORT_ID => None,
            id if id < crate::config::SHORT_ID_SPACE => Some(id),
            id => return Err(SyncError::BadShortId(id)),
        };
        Ok(Entry { name, uid: be64(&b[8..16]), version: be64(&b[16..24]), short_id })
    }
}

/// A name from its 8 bytes: 48 bits, and not the all-zero sentinel.
fn name_at(b: &[u8]) -> Result<PeerName, SyncError> {
    PeerName::from_u64(be64(b)).ok().filter(|n| !n.is_unknown()).ok_or(SyncError::BadName)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Why a synchronisation message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum SyncError {
    /// The message is not as long as its layout says.
    #[error("topology sync message (tag {tag}) is {len} bytes, its layout needs {expected}")]
    Length {
        /// The message's tag.
        tag: u8,
        /// Its payload length.
        len: usize,
        /// What the layout requires.
        expected: usize,
    },
    /// A bucket count beyond 2^12.
    #[error("topology sync splits into 2^{0} buckets, more than 2^12")]
    TooManyBuckets(u8),
    /// A bucket index beyond the bucket count.
    #[error("topology sync bucket {index} is out of range for 2^{bits} buckets")]
    BadBucket {
        /// The index.
        index: u16,
        /// The bucket count's exponent.
        bits: u8,
    },
    /// A name of zero or beyond 48 bits.
    #[error("topology sync names an invalid peer")]
    BadName,
    /// A short id beyond 12 bits (other than the none marker).
    #[error("topology sync short id {0:#x} is beyond 12 bits")]
    BadShortId(u16),
}

/// A decoded synchronisation message, borrowing from its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync<'a> {
    /// Tag 32.
    Summary {
        /// Records in the sender's table (placeholders not counted).
        count: u32,
        /// XOR of every record's digest.
        root: u64,
    },
    /// Tag 33.
    Buckets {
        /// The table is split into 2^bits buckets.
        bits: u8,
        /// Records in the sender's table.
        count: u32,
        /// 8 bytes per bucket, in bucket order.
        hashes: &'a [u8],
    },
    /// Tag 34.
    Entries {
        /// The bucket count's exponent these buckets belong to.
        bits: u8,
        /// Groups: bucket index, entry count, entries.
        groups: &'a [u8],
    },
    /// Tag 35: 8 bytes per name.
    Want {
        /// The names, 8 bytes each.
        names: &'a [u8],
    },
    /// Tag 36: entries of 26 bytes.
    Have {
        /// The entries.
        entries: &'a [u8],
    },
}

impl<'a> Sync<'a> {
    /// Decodes the payload (after the tag byte) of a message with tag 32 to 36; `None`
    /// for any other tag.
    pub fn decode(tag: u8, p: &'a [u8]) -> Option<Result<Sync<'a>, SyncError>> {
        let exact = |expected: usize| {
            if p.len() == expected { Ok(()) } else { Err(SyncError::Length { tag, len: p.len(), expected }) }
        };
        let short = |expected: usize| SyncError::Length { tag, len: p.len(), expected };
        Some(match tag {
            TAG_SYNC_SUMMARY => exact(12).map(|()| Sync::Summary {
                count: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
                root: be64(&p[4..12]),
            }),
            TAG_SYNC_BUCKETS => (|| {
                let (&bits, rest) = p.split_first().ok_or(short(5))?;
                if bits > MAX_BUCKET_BITS {
                    return Err(SyncError::TooManyBuckets(bits));
                }
                exact(5 + (8 << bits))?;
                let count = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                Ok(Sync::Buckets { bits, count, hashes: &rest[4..] })
            })(),
            TAG_SYNC_ENTRIES => (|| {
                let (&bits, groups) = p.split_first().ok_or(short(1))?;
                if bits > MAX_BUCKET_BITS {
                    return Err(SyncError::TooManyBuckets(bits));
                }
                // Check the whole layout first, so a caller never sees half a message.
                let mut rest = groups;
                while !rest.is_empty() {
                    if rest.len() < GROUP_HEADER_LEN {
                        return Err(short(p.len() - rest.len() + GROUP_HEADER_LEN));
                    }
                    let index = u16::from_be_bytes([rest[0], rest[1]]);
                    if u32::from(index) >> bits != 0 {
                        return Err(SyncError::BadBucket { index, bits });
                    }
                    let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
                    let len = GROUP_HEADER_LEN + n * ENTRY_LEN;
                    if rest.len() < len {
                        return Err(short(p.len() - rest.len() + len));
                    }
                    for e in rest[GROUP_HEADER_LEN..len].chunks_exact(ENTRY_LEN) {
                        Entry::decode(e)?;
                    }
                    rest = &rest[len..];
                }
                Ok(Sync::Entries { bits, groups })
            })(),
            TAG_SYNC_WANT => {
                if p.len() % 8 != 0 {
                    Err(short(p.len().next_multiple_of(8)))
                } else if p.chunks_exact(8).any(|n| name_at(n).is_err()) {
                    Err(SyncError::BadName)
                } else {
                    Ok(Sync::Want { names: p })
                }
            }
            TAG_SYNC_HAVE => {
                if p.len() % ENTRY_LEN != 0 {
                    Err(short(p.len().next_multiple_of(ENTRY_LEN)))
                } else {
                    p.chunks_exact(ENTRY_LEN)
                        .try_for_each(|e| Entry::decode(e).map(drop))
                        .map(|()| Sync::Have { entries: p })
                }
            }
            _ => return None,
        })
    }
}

/// The bucket hashes of a decoded buckets message.
pub fn bucket_hashes(hashes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    hashes.chunks_exact(8).map(be64)
}

/// The groups of a decoded entries message: each bucket index with its entries.
pub fn entry_groups(groups: &[u8]) -> impl Iterator<Item = (u16, impl Iterator<Item = Entry> + '_)> + '_ {
    let mut rest = groups;
    std::iter::from_fn(move || {
        if rest.len() < GROUP_HEADER_LEN {
            return None;
        }
        let index = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let len = (GROUP_HEADER_LEN + n * ENTRY_LEN).min(rest.len());
        let entries = &rest[GROUP_HEADER_LEN..len];
        rest = &rest[len..];
        // Validated by `Sync::decode`: an entry that fails here cannot occur.
        Some((index, entries.chunks_exact(ENTRY_LEN).filter_map(|e| Entry::decode(e).ok())))
    })
}

/// The entries of a decoded have message.
pub fn have_entries(entries: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    // Validated by `Sync::decode`: an entry that fails here cannot occur.
    entries.chunks_exact(ENTRY_LEN).filter_map(|e| Entry::decode(e).ok())
}

/// The names of a decoded want message.
pub fn wanted_names(names: &[u8]) -> impl Iterator<Item = PeerName> + '_ {
    names.chunks_exact(8).filter_map(|n| name_at(n).ok())
}

/// Appends a summary message (tag and payload).
pub fn encode_summary(out: &mut Vec<u8>, count: u32, root: u64) {
    out.push(TAG_SYNC_SUMMARY);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&root.to_be_bytes());
}

/// Appends a buckets message; `hashes` must hold 2^bits values.
pub fn encode_buckets(out: &mut Vec<u8>, bits: u8, count: u32, hashes: &[u64]) {
    debug_assert_eq!(hashes.len(), 1 << bits);
    out.push(TAG_SYNC_BUCKETS);
    out.push(bits);
    out.extend_from_slice(&count.to_be_bytes());
    for h in hashes {
        out.extend_from_slice(&h.to_be_bytes());
    }
}

/// The length of a buckets message with 2^bits buckets, tag included.
pub fn buckets_len(bits: u8) -> usize {
    6 + (8 << bits)
}

/// Appends the start of an entries message; groups follow with [`encode_group`].
pub fn encode_entries_start(out: &mut Vec<u8>, bits: u8) {
    out.push(TAG_SYNC_ENTRIES);
    out.push(bits);
}

/// Appends one bucket's group of entries (at most 65,535 of them).
pub fn encode_group(out: &mut Vec<u8>, index: u16, entries: &[Entry]) {
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for e in entries {
        e.encode(out);
    }
}

/// Appends a want message.
pub fn encode_want(out: &mut Vec<u8>, names: &[PeerName]) {
    out.push(TAG_SYNC_WANT);
    for n in names {
        out.extend_from_slice(&n.to_u64().to_be_bytes());
    }
}

/// Appends a have message.
pub fn encode_have(out: &mut Vec<u8>, entries: &[Entry]) {
    out.push(TAG_SYNC_HAVE);
    for e in entries {
        e.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u64) -> PeerName {
        PeerName::from_u64(n).unwrap()
    }

    fn decode(body: &[u8]) -> Result<Sync<'_>, SyncError> {
        Sync::decode(body[0], &body[1..]).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let mut b = Vec::new();
        encode_summary(&mut b, 7, 0x0102_0304_0506_0708);
        assert_eq!(b, [32, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(decode(&b), Ok(Sync::Summary { count: 7, root: 0x0102_0304_0506_0708 }));

        let mut b = Vec::new();
        encode_buckets(&mut b, 1, 3, &[5, 6]);
        assert_eq!(b.len(), buckets_len(1));
        let Ok(Sync::Buckets { bits: 1, count: 3, hashes }) = decode(&b) else { panic!("{:?}", decode(&b)) };
        assert_eq!(bucket_hashes(hashes).collect::<Vec<_>>(), [5, 6]);

        let e1 = Entry { name: name(1), uid: 2, version: 3, short_id: Some(4) };
        let e2 = Entry { name: name(5), uid: 6, version: u64::MAX, short_id: None };
        let mut b = Vec::new();
        encode_entries_start(&mut b, 2);
        encode_group(&mut b, 3, &[e1, e2]);
        encode_group(&mut b, 0, &[]);
        assert_eq!(b.len(), 2 + 2 * GROUP_HEADER_LEN + 2 * ENTRY_LEN);
        let Ok(Sync::Entries { bits: 2, groups }) = decode(&b) else { panic!() };
        let got: Vec<(u16, Vec<Entry>)> = entry_groups(groups).map(|(i, es)| (i, es.collect())).collect();
        assert_eq!(got, [(3, vec![e1, e2]), (0, vec![])]);

        let mut b = Vec::new();
        encode_want(&mut b, &[name(9), name(10)]);
        let Ok(Sync::Want { names }) = decode(&b) else { panic!() };
        assert_eq!(wanted_names(names).collect::<Vec<_>>(), [name(9), name(10)]);

        let mut b = Vec::new();
        encode_have(&mut b, &[e1, e2]);
        assert_eq!(b.len(), 1 + 2 * ENTRY_LEN);
        let Ok(Sync::Have { entries }) = decode(&b) else { panic!() };
        assert_eq!(have_entries(entries).collect::<Vec<_>>(), [e1, e2]);
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert!(Sync::decode(4, &[]).is_none());
        assert_eq!(decode(&[32, 0]), Err(SyncError::Length { tag: 32, len: 1, expected: 12 }));
        assert_eq!(decode(&[33, 13, 0, 0, 0, 0]), Err(SyncError::TooManyBuckets(13)));
        assert_eq!(decode(&[33, 1, 0, 0, 0, 0, 1]), Err(SyncError::Length { tag: 33, len: 6, expected: 21 }));
        assert_eq!(decode(&[33]), Err(SyncError::Length { tag: 33, len: 0, expected: 5 }));
        // A hostile entry count is caught against the bytes present.
        assert_eq!(
            decode(&[34, 0, 0, 0, 0xff, 0xff]),
            Err(SyncError::Length { tag: 34, len: 5, expected: 5 + 65535 * ENTRY_LEN })
        );
        assert_eq!(decode(&[34, 1, 0, 2, 0, 0]), Err(SyncError::BadBucket { index: 2, bits: 1 }));
        assert_eq!(decode(&[34, 0, 0, 0, 0]), Err(SyncError::Length { tag: 34, len: 4, expected: 5 }));
        let mut bad = vec![34, 0, 0, 0, 0, 1];
        Entry { name: name(1), uid: 0, version: 0, short_id: None }.encode(&mut bad);
        bad[6..14].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(decode(&bad), Err(SyncError::BadName));
        let mut bad = vec![34, 0, 0, 0, 0, 1];
        Entry { name: name(1), uid: 0, version: 0, short_id: Some(0x1000) }.encode(&mut bad);
        assert_eq!(decode(&bad), Err(SyncError::BadShortId(0x1000)));
        assert_eq!(decode(&[35, 1]), Err(SyncError::Length { tag: 35, len: 1, expected: 8 }));
        assert_eq!(decode(&[35, 0, 0, 0, 0, 0, 0, 0, 0]), Err(SyncError::BadName));
        assert_eq!(decode(&[36, 1]), Err(SyncError::Length { tag: 36, len: 1, expected: ENTRY_LEN }));
        let mut bad = vec![36];
        Entry { name: name(1), uid: 0, version: 0, short_id: Some(0x2000) }.encode(&mut bad);
        assert_eq!(decode(&bad), Err(SyncError::BadShortId(0x2000)));
    }
}
