//! Topology updates: the payload of gossip on the `topology` channel (docs/protocol-v2.md §10).
//!
//! An update is one gob stream alternating a `peerSummary` struct and a
//! `[]connectionSummary` slice per peer described. Struct fields are matched by name and
//! unknown fields skipped, so any field order or extra field from a future Go peer is
//! fine. Like Go, a stream that ends right after a summary drops that last summary. Unlike
//! Go, a `NameByte` that is not six bytes long, or a short id above 12 bits, is refused.

use bytes::Bytes;

use crate::config::{GobLimits, RecordLimits, SHORT_ID_SPACE};
use crate::name::{PeerName, PeerNameError};
use crate::wire::gob::{self, GobError, Stream, StructWriter, Value};

/// Type id Go uses for `peerSummary`.
pub const PEER_SUMMARY_TYPE_ID: i64 = 66;
/// Type id Go uses for `connectionSummary`.
pub const CONNECTION_SUMMARY_TYPE_ID: i64 = 67;
/// Type id Go uses for `[]connectionSummary`.
pub const CONNECTION_LIST_TYPE_ID: i64 = 68;

/// One peer's record as gossiped, generic over where its nickname lives: owned
/// ([`Bytes`], the default) or borrowed from a received payload ([`SummaryRef`]). One
/// definition keeps the owned and borrowed forms, and the peers table built on them, from
/// drifting apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PeerSummary<N = Bytes> {
    /// The peer's name.
    pub name: PeerName,
    /// Its nickname (any bytes).
    pub nickname: N,
    /// Its incarnation id; 0 for a placeholder.
    pub uid: u64,
    /// Its version.
    pub version: u64,
    /// Its short id; `None` where Go says `HasShortID` false (its `ShortID` then means
    /// nothing, so it is not kept).
    pub short_id: Option<u16>,
}

/// A summary borrowed from a received payload.
pub type SummaryRef<'a> = PeerSummary<&'a [u8]>;

/// One connection in a peer's reported list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectionSummary {
    /// The peer at the other end.
    pub name: PeerName,
    /// The address as the describing peer sees it (any bytes; usually `ip:port`).
    pub remote_tcp_addr: Bytes,
    /// Whether the describing peer dialled this connection.
    pub outbound: bool,
    /// Whether the describing peer considers it established.
    pub established: bool,
}

/// A peer's summary and its connection list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PeerRecord {
    /// The summary.
    pub summary: PeerSummary,
    /// Its connections as it reported them.
    pub connections: Vec<ConnectionSummary>,
}

/// A connection entry borrowed from a received payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionRef<'a> {
    /// The peer at the other end.
    pub name: PeerName,
    /// The address as the describing peer sees it.
    pub remote_tcp_addr: &'a [u8],
    /// Whether the describing peer dialled it.
    pub outbound: bool,
    /// Whether it is established.
    pub established: bool,
}

/// A record borrowed from a received payload: nothing is copied until the receiver
/// decides to keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The summary.
    pub summary: SummaryRef<'a>,
    /// The connection list (empty if `skipped`).
    pub connections: Vec<ConnectionRef<'a>>,
    /// The connection list was left undecoded: the receiver had no use for it.
    pub skipped: bool,
}

impl<N: AsRef<[u8]>> PeerSummary<N> {
    /// A borrowed view.
    pub fn as_ref(&self) -> SummaryRef<'_> {
        PeerSummary {
            name: self.name,
            nickname: self.nickname.as_ref(),
            uid: self.uid,
            version: self.version,
            short_id: self.short_id,
        }
    }
}

impl SummaryRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> PeerSummary {
        PeerSummary {
            name: self.name,
            nickname: Bytes::copy_from_slice(self.nickname),
            uid: self.uid,
            version: self.version,
            short_id: self.short_id,
        }
    }
}

impl ConnectionSummary {
    /// A borrowed view.
    pub fn as_ref(&self) -> ConnectionRef<'_> {
        ConnectionRef {
            name: self.name,
            remote_tcp_addr: &self.remote_tcp_addr,
            outbound: self.outbound,
            established: self.established,
        }
    }
}

impl PeerRecord {
    /// A borrowed view.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            summary: self.summary.as_ref(),
            connections: self.connections.iter().map(|c| c.as_ref()).collect(),
            skipped: false,
        }
    }
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> PeerRecord {
        PeerRecord {
            summary: self.summary.to_owned(),
            connections: self
                .connections
                .iter()
                .map(|c| ConnectionSummary {
                    name: c.name,
                    remote_tcp_addr: Bytes::copy_from_slice(c.remote_tcp_addr),
                    outbound: c.outbound,
                    established: c.established,
                })
                .collect(),
        }
    }
}

/// Appends one `peerSummary` value message (type 66; its definition not included). No
/// short id is written as `ShortID` 0 and `HasShortID` false, both omitted as zero, which
/// is what Go writes for a peer without one.
pub fn put_summary_message(out: &mut Vec<u8>, s: &SummaryRef<'_>) {
    gob::put_message(out, |o| {
        gob::put_int(o, PEER_SUMMARY_TYPE_ID);
        StructWriter::new(o)
            .bytes(0, &s.name.to_bytes())
            .bytes(1, s.nickname)
            .uint(2, s.uid)
            .uint(3, s.version)
            .uint(4, s.short_id.unwrap_or(0).into())
            .bool(5, s.short_id.is_some())
            .end();
    });
}

/// Appends one `[]connectionSummary` value message (type 68; definitions not included).
pub fn put_connection_list_message<'c>(
    out: &mut Vec<u8>,
    connections: impl ExactSizeIterator<Item = ConnectionRef<'c>>,
) {
    gob::put_message(out, |o| {
        gob::put_int(o, CONNECTION_LIST_TYPE_ID);
        o.push(0);
        gob::put_uint(o, connections.len() as u64);
        for c in connections {
            StructWriter::new(o)
                .bytes(0, &c.name.to_bytes())
                .bytes(1, c.remote_tcp_addr)
                .bool(2, c.outbound)
                .bool(3, c.established)
                .end();
        }
    });
}

/// Why a topology update could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum TopologyError {
    /// Malformed gob.
    #[error("malformed topology update: {0}")]
    Gob(#[from] GobError),
    /// A `NameByte` was not six bytes.
    #[error("topology record has a bad name: {0}")]
    Name(#[from] PeerNameError),
    /// A short id does not fit in 12 bits.
    #[error("topology record has short id {0}, which does not fit in 12 bits")]
    ShortId(u64),
    /// A record lists more connections than [`RecordLimits::max_connections`].
    #[error("the record of {name} lists {count} connections; at most {max} are accepted")]
    TooManyConnections {
        /// The record's peer.
        name: PeerName,
        /// How many it lists.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A record's nickname is longer than [`RecordLimits::max_nickname_len`].
    #[error("the record of {name} has a nickname of {len} bytes; at most {max} are accepted")]
    NicknameTooLong {
        /// The record's peer.
        name: PeerName,
        /// The nickname's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A record is larger on the wire than [`RecordLimits::max_record_len`].
    #[error("the record of {name} takes {len} bytes; at most {max} are accepted")]
    RecordTooLarge {
        /// The record's peer.
        name: PeerName,
        /// Its size on the wire (summary and connection list).
        len: usize,
        /// The bound.
        max: usize,
    },
}

impl TopologyError {
    /// Whether this is a record over one of the [`RecordLimits`] (well-formed, but too
    /// costly to take), rather than malformed bytes.
    pub fn is_over_bound(&self) -> bool {
        matches!(
            self,
            Self::TooManyConnections { .. } | Self::NicknameTooLong { .. } | Self::RecordTooLarge { .. }
        )
    }
}

/// Writes update payloads exactly as Go does: definitions at first use, ids 66/67/68.
#[derive(Debug, Default)]
pub struct UpdateEncoder {
    summary_defined: bool,
    list_defined: bool,
}

impl UpdateEncoder {
    /// An encoder at the start of a fresh stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes the type definitions add to a stream of at least one record.
    pub fn definitions_len() -> usize {
        // Constant; computed once, as every topology send asks for it.
        static LEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *LEN.get_or_init(|| {
            let mut out = Vec::new();
            let mut enc = UpdateEncoder::new();
            enc.define_summary(&mut out);
            enc.define_list(&mut out);
            out.len()
        })
    }

    /// Appends one peer: its summary, then its connection list.
    pub fn push<'c>(
        &mut self,
        out: &mut Vec<u8>,
        summary: &PeerSummary,
        connections: impl ExactSizeIterator<Item = &'c ConnectionSummary>,
    ) {
        self.define_summary(out);
        put_summary_message(out, &summary.as_ref());
        self.define_list(out);
        put_connection_list_message(out, connections.map(ConnectionSummary::as_ref));
    }

    /// Appends one peer from its already encoded summary and list messages (from
    /// [`put_summary_message`] and [`put_connection_list_message`]), adding the type
    /// definitions where this stream first needs them.
    pub fn push_encoded(&mut self, out: &mut Vec<u8>, summary_msg: &[u8], list_msg: &[u8]) {
        self.define_summary(out);
        out.extend_from_slice(summary_msg);
        self.define_list(out);
        out.extend_from_slice(list_msg);
    }

    fn define_summary(&mut self, out: &mut Vec<u8>) {
        if !self.summary_defined {
            self.summary_defined = true;
            gob::put_struct_definition(
                out,
                PEER_SUMMARY_TYPE_ID,
                "peerSummary",
                &[
                    ("NameByte", gob::BYTES),
                    ("NickName", gob::STRING),
                    ("UID", gob::UINT),
                    ("Version", gob::UINT),
                    ("ShortID", gob::UINT),
                    ("HasShortID", gob::BOOL),
                ],
            );
        }
    }

    /// The slice is defined before its element type, as Go does.
    fn define_list(&mut self, out: &mut Vec<u8>) {
        if !self.list_defined {
            self.list_defined = true;
            gob::put_slice_definition(out, CONNECTION_LIST_TYPE_ID, CONNECTION_SUMMARY_TYPE_ID);
            gob::put_struct_definition(
                out,
                CONNECTION_SUMMARY_TYPE_ID,
                "connectionSummary",
                &[
                    ("NameByte", gob::BYTES),
                    ("RemoteTCPAddr", gob::STRING),
                    ("Outbound", gob::BOOL),
                    ("Established", gob::BOOL),
                ],
            );
        }
    }
}

/// Encodes a whole update from records.
pub fn encode(out: &mut Vec<u8>, records: &[PeerRecord]) {
    let mut enc = UpdateEncoder::new();
    for r in records {
        enc.push(out, &r.summary, r.connections.iter());
    }
}

/// Decodes an update payload into owned records.
pub fn decode(payload: &[u8]) -> Result<Vec<PeerRecord>, TopologyError> {
    Ok(decode_refs(payload, GobLimits::default())?.iter().map(RecordRef::to_owned).collect())
}

/// Decodes an update payload with explicit gob limits into owned records.
pub fn decode_with_limits(payload: &[u8], limits: GobLimits) -> Result<Vec<PeerRecord>, TopologyError> {
    Ok(decode_refs(payload, limits)?.iter().map(RecordRef::to_owned).collect())
}

/// Decodes an update payload into records borrowed from it, within the default
/// [`RecordLimits`].
pub fn decode_refs(payload: &[u8], limits: GobLimits) -> Result<Vec<RecordRef<'_>>, TopologyError> {
    decode_refs_wanted(payload, limits, &RecordLimits::default(), |_| true)
}

/// Like [`decode_refs`], but decodes the connection list only of records whose summary
/// `wanted` accepts; the others come back `skipped`, with an empty list. A receiver
/// ignores every record that is not newer than its own copy, and in steady state almost
/// all are: their lists are the bulk of every update. Their bytes are still framed and
/// bounded, but a malformed list inside a skipped record goes unnoticed. Every record,
/// skipped or not, is held to `bounds` (its nickname and size; its connection count
/// when its list is decoded).
pub fn decode_refs_wanted<'a>(
    payload: &'a [u8],
    limits: GobLimits,
    bounds: &RecordLimits,
    mut wanted: impl FnMut(&SummaryRef<'_>) -> bool,
) -> Result<Vec<RecordRef<'a>>, TopologyError> {
    let mut stream = Stream::with_limits(payload, limits);
    let mut records = Vec::new();
    loop {
        let start = stream.remaining();
        let Some(v) = stream.next_value()? else { break };
        let summary = decode_summary(v)?;
        if summary.nickname.len() > bounds.max_nickname_len {
            let (len, max) = (summary.nickname.len(), bounds.max_nickname_len);
            return Err(TopologyError::NicknameTooLong { name: summary.name, len, max });
        }
        // A stream that ends after a summary ends cleanly; that summary is dropped (Go).
        let summary_len = start - stream.remaining();
        let Some(v) = stream.next_value()? else { break };
        // The list's message is framed already: the record's size is known before it is read.
        let len = summary_len + v.body_len();
        if len > bounds.max_record_len {
            return Err(TopologyError::RecordTooLarge {
                name: summary.name,
                len,
                max: bounds.max_record_len,
            });
        }
        let skipped = !wanted(&summary);
        let connections =
            if skipped { Vec::new() } else { decode_list(v, summary.name, bounds.max_connections)? };
        records.push(RecordRef { summary, connections, skipped });
    }
    Ok(records)
}

fn decode_summary<'a>(v: Value<'_, 'a>) -> Result<SummaryRef<'a>, TopologyError> {
    let summary = v.decode(|f| {
        let mut s = RawSummary::default();
        f.structure(|name, field| {
            match name {
                b"NameByte" => s.name = field.bytes()?,
                b"NickName" => s.nickname = field.string()?,
                b"UID" => s.uid = field.uint()?,
                b"Version" => s.version = field.uint()?,
                b"ShortID" => s.short_id = field.uint()?,
                b"HasShortID" => s.has_short_id = field.bool()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(s)
    })?;
    summary.validate()
}

/// The connection list of `name`'s record: at most `max` entries are kept; one more
/// fails the record once the list has been read (no allocation for the excess).
fn decode_list<'a>(
    v: Value<'_, 'a>,
    name: PeerName,
    max: usize,
) -> Result<Vec<ConnectionRef<'a>>, TopologyError> {
    let mut connections = Vec::new();
    let mut first_error = None;
    let mut count = 0usize;
    v.decode(|f| {
        f.slice(|elem| {
            let mut c = RawConnection::default();
            elem.structure(|name, field| {
                match name {
                    b"NameByte" => c.name = field.bytes()?,
                    b"RemoteTCPAddr" => c.addr = field.string()?,
                    b"Outbound" => c.outbound = field.bool()?,
                    b"Established" => c.established = field.bool()?,
                    _ => {}
                }
                Ok(())
            })?;
            count += 1;
            match PeerName::from_bytes(c.name) {
                Ok(_) if count > max => {}
                Ok(name) => connections.push(ConnectionRef {
                    name,
                    remote_tcp_addr: c.addr,
                    outbound: c.outbound,
                    established: c.established,
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            Ok(())
        })
    })?;
    if let Some(e) = first_error {
        return Err(e.into());
    }
    if count > max {
        return Err(TopologyError::TooManyConnections { name, count, max });
    }
    Ok(connections)
}

#[derive(Default)]
struct RawSummary<'a> {
    name: &'a [u8],
    nickname: &'a [u8],
    uid: u64,
    version: u64,
    short_id: u64,
    has_short_id: bool,
}

impl<'a> RawSummary<'a> {
    /// The range check applies even when `HasShortID` is false: such a record was always
    /// refused, and this keeps it so.
    fn validate(self) -> Result<SummaryRef<'a>, TopologyError> {
        if self.short_id >= u64::from(SHORT_ID_SPACE) {
            return Err(TopologyError::ShortId(self.short_id));
        }
        Ok(PeerSummary {
            name: PeerName::from_bytes(self.name)?,
            nickname: self.nickname,
            uid: self.uid,
            version: self.version,
            short_id: self.has_short_id.then_some(self.short_id as u16),
        })
    }
}

#[derive(Default)]
struct RawConnection<'a> {
    name: &'a [u8],
    addr: &'a [u8],
    outbound: bool,
    established: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update of one summary (fields as given) and an empty connection list.
    fn update(short_id: u64, has_short_id: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = UpdateEncoder::new();
        enc.define_summary(&mut out);
        gob::put_message(&mut out, |o| {
            gob::put_int(o, PEER_SUMMARY_TYPE_ID);
            StructWriter::new(o)
                .bytes(0, &PeerName::from_u64(1).unwrap().to_bytes())
                .uint(2, 1)
                .uint(4, short_id)
                .bool(5, has_short_id)
                .end();
        });
        enc.define_list(&mut out);
        put_connection_list_message(&mut out, std::iter::empty());
        out
    }

    #[test]
    fn short_id_without_has_short_id_is_absent() {
        let r = decode(&update(5, false)).unwrap();
        assert_eq!(r[0].summary.short_id, None);
        // Still range-checked, as before the flag and the id became one field.
        assert_eq!(decode(&update(4096, false)), Err(TopologyError::ShortId(4096)));
        let r = decode(&update(0, true)).unwrap();
        assert_eq!(r[0].summary.short_id, Some(0));
    }

    #[test]
    fn no_short_id_encodes_as_go_writes_it() {
        let summary = |short_id| PeerSummary {
            name: PeerName::from_u64(1).unwrap(),
            uid: 1,
            short_id,
            ..Default::default()
        };
        let mut out = Vec::new();
        encode(&mut out, &[PeerRecord { summary: summary(None), connections: Vec::new() }]);
        assert_eq!(out, update(0, false));
        let mut out = Vec::new();
        encode(&mut out, &[PeerRecord { summary: summary(Some(0)), connections: Vec::new() }]);
        assert_eq!(out, update(0, true));
    }

    #[test]
    fn owned_and_borrowed_summaries_convert_both_ways() {
        let owned = PeerSummary {
            name: PeerName::from_u64(9).unwrap(),
            nickname: Bytes::from_static(b"nine"),
            uid: 3,
            version: 4,
            short_id: Some(7),
        };
        let view: SummaryRef<'_> = owned.as_ref();
        assert_eq!(view.nickname, b"nine");
        assert_eq!(view.to_owned(), owned);
        assert_eq!(view.as_ref(), view);
    }

    #[test]
    fn bounds_hold_for_skipped_records_too_and_exactly_at_the_limit() {
        let name = PeerName::from_u64(3).unwrap();
        let record = |nick: usize, conns: u64| {
            let summary =
                PeerSummary { name, nickname: Bytes::from(vec![b'x'; nick]), uid: 1, ..Default::default() };
            let list: Vec<ConnectionSummary> = (1..=conns)
                .map(|i| ConnectionSummary {
                    name: PeerName::from_u64(100 + i).unwrap(),
                    ..Default::default()
                })
                .collect();
            let mut out = Vec::new();
            UpdateEncoder::new().push(&mut out, &summary, list.iter());
            out
        };
        let b = RecordLimits { max_connections: 3, max_nickname_len: 4, max_record_len: 200, max_peers: 10 };
        let decode =
            |p: &[u8], want: bool| decode_refs_wanted(p, GobLimits::default(), &b, |_| want).map(|r| r.len());
        assert_eq!(decode(&record(4, 3), true), Ok(1), "at the limits");
        for want in [true, false] {
            let e = decode(&record(5, 0), want).unwrap_err();
            assert_eq!(e, TopologyError::NicknameTooLong { name, len: 5, max: 4 });
            assert!(e.is_over_bound());
            assert!(matches!(decode(&record(0, 20), want), Err(TopologyError::RecordTooLarge { .. })));
        }
        let e = decode(&record(0, 4), true).unwrap_err();
        assert_eq!(e, TopologyError::TooManyConnections { name, count: 4, max: 3 });
        // A list that is not decoded is not counted (its record is not taken either).
        assert_eq!(decode(&record(0, 4), false), Ok(1));
        assert!(!TopologyError::ShortId(5000).is_over_bound());
    }
}
