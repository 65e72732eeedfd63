//! A record's connection list as the table stores it: sorted by remote name, one small
//! fixed-size entry per connection, behind one shared allocation.
//!
//! A mesh of a thousand peers holds a thousand records of up to 64 connections on every
//! peer; as a map of remote name to an owned address each entry cost around 80 bytes.
//! Here an entry is 13 bytes: the six-byte name, a flags byte, and the address inline
//! when it is canonical IPv4 text (`a.b.c.d:port`, what peers report in practice), or an
//! index into the list's few other addresses, kept as their bytes. A list is shared by
//! clone (the connector's view of a record and our last announced list are the same
//! allocation), and changed copy-on-write.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use bytes::Bytes;

use crate::name::PeerName;
use crate::topology::RemoteConnection;
use crate::wire::topology::ConnectionRef;

const NAME_LEN: usize = 6;
const ENTRY_LEN: usize = 13;
const OUTBOUND: u8 = 1;
const ESTABLISHED: u8 = 2;
/// The address is not canonical IPv4 text: bytes 7..11 index [`Shared::other`].
const OTHER: u8 = 4;

/// A connection list (see the module docs). Iteration is in remote-name order; names
/// are unique.
#[derive(Clone, Default)]
pub struct ConnectionList(Option<Arc<Shared>>);

#[derive(Clone)]
struct Shared {
    entries: Box<[[u8; ENTRY_LEN]]>,
    /// Addresses that are not canonical IPv4 text, as received.
    other: Box<[Bytes]>,
}

/// An address as a peer reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr<'a> {
    /// Canonical IPv4 text, `a.b.c.d:port`, held as the address it names.
    V4(SocketAddrV4),
    /// Anything else, as the bytes received.
    Other(&'a [u8]),
}

/// The text of an [`Addr`], as gossiped.
pub enum AddrText<'a> {
    /// A formatted IPv4 address (at most 21 bytes).
    Inline([u8; 21], u8),
    /// Bytes held by the list.
    Borrowed(&'a [u8]),
}

impl std::ops::Deref for AddrText<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            AddrText::Inline(buf, len) => &buf[..usize::from(*len)],
            AddrText::Borrowed(b) => b,
        }
    }
}

impl<'a> Addr<'a> {
    /// The address as gossiped: exactly the bytes that were received.
    pub fn text(&self) -> AddrText<'a> {
        match *self {
            Addr::V4(a) => {
                let mut buf = [0u8; 21];
                let mut len = 0;
                let mut put = |b: u8| {
                    buf[len] = b;
                    len += 1;
                };
                for (i, o) in a.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        put(b'.');
                    }
                    put_decimal(&mut put, o.into());
                }
                put(b':');
                put_decimal(&mut put, a.port().into());
                AddrText::Inline(buf, len as u8)
            }
            Addr::Other(b) => AddrText::Borrowed(b),
        }
    }

    /// The text as owned bytes.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Addr::Other(b) => Bytes::copy_from_slice(b),
            a => Bytes::copy_from_slice(&a.text()),
        }
    }
}

fn put_decimal(put: &mut impl FnMut(u8), v: u32) {
    let mut digits = [0u8; 5];
    let mut n = 0;
    let mut v = v;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in digits[..n].iter().rev() {
        put(*d);
    }
}

/// `text` as an IPv4 socket address if it is exactly what [`Addr::text`] writes for it
/// (no leading zeros, no spaces), so that storing the address loses nothing.
fn parse_canonical_v4(text: &[u8]) -> Option<SocketAddrV4> {
    fn number(part: &[u8], max: u32) -> Option<u32> {
        if part.is_empty() || part.len() > 5 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut v = 0u32;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        (v <= max).then_some(v)
    }
    let colon = text.iter().position(|&c| c == b':')?;
    let (host, port) = (&text[..colon], &text[colon + 1..]);
    let port = number(port, u16::MAX.into())? as u16;
    let mut octets = [0u8; 4];
    let mut parts = host.split(|&c| c == b'.');
    for o in &mut octets {
        *o = number(parts.next()?, 255)? as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(SocketAddrV4::new(Ipv4Addr::from(octets), port))
}

/// One entry of a [`ConnectionList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection<'a> {
    /// The peer at the other end.
    pub name: PeerName,
    /// The address as the describing peer sees it.
    pub addr: Addr<'a>,
    /// Whether the describing peer dialled it.
    pub outbound: bool,
    /// Whether the describing peer considers it established.
    pub established: bool,
}

impl Connection<'_> {
    /// The entry as an owned [`RemoteConnection`].
    pub fn to_remote(&self) -> RemoteConnection {
        RemoteConnection {
            addr: self.addr.to_bytes(),
            outbound: self.outbound,
            established: self.established,
        }
    }
}

/// One entry as received, before it is packed.
struct Unpacked<'a> {
    name: PeerName,
    addr: &'a [u8],
    outbound: bool,
    established: bool,
}

impl ConnectionList {
    /// A list from received entries. Entries are keyed by remote name: of duplicates,
    /// the last one wins.
    pub fn from_refs(conns: &[ConnectionRef<'_>]) -> ConnectionList {
        let mut order: Vec<usize> = (0..conns.len()).collect();
        order.sort_by_key(|&i| conns[i].name); // stable: duplicates stay in received order
        let mut kept: Vec<Unpacked<'_>> = Vec::with_capacity(order.len());
        for i in order {
            let c = &conns[i];
            let e = Unpacked {
                name: c.name,
                addr: c.remote_tcp_addr,
                outbound: c.outbound,
                established: c.established,
            };
            match kept.last_mut() {
                Some(last) if last.name == c.name => *last = e,
                _ => kept.push(e),
            }
        }
        Self::pack(&kept)
    }

    /// Packs entries already sorted by name, without duplicates.
    fn pack(entries: &[Unpacked<'_>]) -> ConnectionList {
        if entries.is_empty() {
            return ConnectionList(None);
        }
        let other_len: usize =
            entries.iter().filter(|e| parse_canonical_v4(e.addr).is_none()).map(|e| e.addr.len()).sum();
        // Every other address shares one allocation.
        let mut other_bytes = bytes::BytesMut::with_capacity(other_len);
        let mut other_spans = Vec::new();
        let mut packed = Vec::with_capacity(entries.len());
        for e in entries {
            let mut entry = [0u8; ENTRY_LEN];
            entry[..NAME_LEN].copy_from_slice(&e.name.to_bytes());
            let mut flags =
                if e.outbound { OUTBOUND } else { 0 } | if e.established { ESTABLISHED } else { 0 };
            match parse_canonical_v4(e.addr) {
                Some(a) => {
                    entry[7..11].copy_from_slice(&a.ip().octets());
                    entry[11..13].copy_from_slice(&a.port().to_be_bytes());
                }
                None => {
                    flags |= OTHER;
                    // A list never holds anywhere near 2^32 entries: it comes from one frame.
                    let index = u32::try_from(other_spans.len()).unwrap_or(u32::MAX);
                    entry[7..11].copy_from_slice(&index.to_be_bytes());
                    let at = other_bytes.len();
                    other_bytes.extend_from_slice(e.addr);
                    other_spans.push(at..other_bytes.len());
                }
            }
            entry[NAME_LEN] = flags;
            packed.push(entry);
        }
        let other_bytes = other_bytes.freeze();
        let other = other_spans.into_iter().map(|s| other_bytes.slice(s)).collect();
        ConnectionList(Some(Arc::new(Shared { entries: packed.into_boxed_slice(), other })))
    }

    fn entries(&self) -> &[[u8; ENTRY_LEN]] {
        self.0.as_ref().map_or(&[], |s| &s.entries)
    }

    fn unpack<'a>(&'a self, e: &[u8; ENTRY_LEN]) -> Connection<'a> {
        let flags = e[NAME_LEN];
        let four = [e[7], e[8], e[9], e[10]];
        let addr = if flags & OTHER == 0 {
            Addr::V4(SocketAddrV4::new(Ipv4Addr::from(four), u16::from_be_bytes([e[11], e[12]])))
        } else {
            let other = self.0.as_ref().map_or(&[][..], |s| &s.other[..]);
            Addr::Other(other.get(u32::from_be_bytes(four) as usize).map_or(&[][..], |b| &b[..]))
        };
        Connection {
            name: entry_name(e),
            addr,
            outbound: flags & OUTBOUND != 0,
            established: flags & ESTABLISHED != 0,
        }
    }

    /// The number of connections.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// The connections, in remote-name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Connection<'_>> + '_ {
        self.entries().iter().map(|e| self.unpack(e))
    }

    /// The remote names, in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = PeerName> + '_ {
        self.entries().iter().map(entry_name)
    }

    fn position(&self, name: &PeerName) -> Result<usize, usize> {
        self.entries().binary_search_by_key(name, entry_name)
    }

    /// The connection to `name`, if listed.
    pub fn get(&self, name: &PeerName) -> Option<Connection<'_>> {
        let i = self.position(name).ok()?;
        Some(self.unpack(&self.entries()[i]))
    }

    /// Whether a connection to `name` is listed.
    pub fn contains(&self, name: &PeerName) -> bool {
        self.position(name).is_ok()
    }

    /// Whether both lists are the same allocation (then they are equal).
    pub fn ptr_eq(&self, o: &ConnectionList) -> bool {
        match (&self.0, &o.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// Rebuilds the list with `edit` applied to its unpacked entries (copy-on-write: other
    /// holders keep the old list). Only our own record changes this way, a few entries.
    fn rebuild(&mut self, edit: impl FnOnce(&mut Vec<(PeerName, RemoteConnection)>)) {
        let mut all: Vec<(PeerName, RemoteConnection)> =
            self.iter().map(|c| (c.name, c.to_remote())).collect();
        edit(&mut all);
        let unpacked: Vec<Unpacked<'_>> = all
            .iter()
            .map(|(name, c)| Unpacked {
                name: *name,
                addr: &c.addr,
                outbound: c.outbound,
                established: c.established,
            })
            .collect();
        *self = Self::pack(&unpacked);
    }

    /// Sets the entry for `name` (replacing any).
    pub fn insert(&mut self, name: PeerName, conn: RemoteConnection) {
        self.rebuild(|all| match all.binary_search_by_key(&name, |e| e.0) {
            Ok(i) => all[i].1 = conn,
            Err(i) => all.insert(i, (name, conn)),
        });
    }

    /// Removes the entry for `name`; false if there was none.
    pub fn remove(&mut self, name: &PeerName) -> bool {
        if !self.contains(name) {
            return false;
        }
        self.rebuild(|all| all.retain(|e| e.0 != *name));
        true
    }

    /// Marks the entry for `name` established; false if there is none.
    pub fn set_established(&mut self, name: &PeerName) -> bool {
        let Ok(i) = self.position(name) else { return false };
        if self.entries()[i][NAME_LEN] & ESTABLISHED == 0 {
            if let Some(shared) = self.0.as_mut() {
                Arc::make_mut(shared).entries[i][NAME_LEN] |= ESTABLISHED;
            }
        }
        true
    }
}

fn entry_name(e: &[u8; ENTRY_LEN]) -> PeerName {
    let mut name = [0u8; NAME_LEN];
    name.copy_from_slice(&e[..NAME_LEN]);
    PeerName::from_array(name)
}

/// By content.
impl PartialEq for ConnectionList {
    fn eq(&self, o: &Self) -> bool {
        self.ptr_eq(o) || (self.len() == o.len() && self.iter().eq(o.iter()))
    }
}

impl Eq for ConnectionList {}

impl fmt::Debug for ConnectionList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|c| {
                let text = c.addr.text();
                (c.name, (String::from_utf8_lossy(&text).into_owned(), c.outbound, c.established))
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    fn r<'a>(name: u64, addr: &'a str, outbound: bool, established: bool) -> ConnectionRef<'a> {
        ConnectionRef { name: n(name), remote_tcp_addr: addr.as_bytes(), outbound, established }
    }

    #[test]
    fn canonical_ipv4_is_inline_and_everything_else_kept_as_received() {
        for text in ["1.2.3.4:5", "0.0.0.0:0", "255.255.255.255:65535", "10.0.12.7:6783"] {
            let a = parse_canonical_v4(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(&*Addr::V4(a).text(), text.as_bytes());
            assert_eq!(a.to_string(), text);
        }
        for text in [
            "",
            ":",
            "1.2.3.4",
            "1.2.3.4:",
            "01.2.3.4:5",
            "1.2.3.4:05",
            "256.1.1.1:1",
            "1.2.3.4:65536",
            "1.2.3:4",
            "1.2.3.4.5:6",
            " 1.2.3.4:5",
            "1.2.3.4:5 ",
            "[::1]:6783",
            "host:1",
            "1.2.3.4:5:6",
            "1..3.4:5",
        ] {
            assert!(parse_canonical_v4(text.as_bytes()).is_none(), "{text}");
        }
    }

    #[test]
    fn entries_round_trip_sorted_with_the_last_duplicate_winning() {
        let refs = [
            r(9, "[::1]:1", true, false),
            r(3, "1.2.3.4:5", false, true),
            r(9, "host name", false, true),
            r(5, "01.2.3.4:5", true, true),
            r(3, "", true, false),
        ];
        let l = ConnectionList::from_refs(&refs);
        let got: Vec<(PeerName, Vec<u8>, bool, bool)> =
            l.iter().map(|c| (c.name, c.addr.text().to_vec(), c.outbound, c.established)).collect();
        assert_eq!(
            got,
            [
                (n(3), b"".to_vec(), true, false),
                (n(5), b"01.2.3.4:5".to_vec(), true, true),
                (n(9), b"host name".to_vec(), false, true),
            ]
        );
        assert_eq!(l.names().collect::<Vec<_>>(), [n(3), n(5), n(9)]);
        assert!(l.contains(&n(5)) && !l.contains(&n(4)));
        assert_eq!(l.get(&n(9)).unwrap().addr, Addr::Other(b"host name"));
        assert!(ConnectionList::from_refs(&[]).is_empty());
    }

    #[test]
    fn edits_are_copy_on_write_and_equality_is_by_content() {
        let mut a = ConnectionList::from_refs(&[r(2, "1.1.1.1:1", true, false), r(4, "x", false, false)]);
        let before = a.clone();
        assert!(a.set_established(&n(2)) && !a.set_established(&n(3)));
        assert!(before.get(&n(2)).is_some_and(|c| !c.established));
        assert!(a.get(&n(2)).is_some_and(|c| c.established));
        a.insert(
            n(3),
            RemoteConnection { addr: Bytes::from_static(b"2.2.2.2:2"), outbound: false, established: true },
        );
        a.insert(
            n(4),
            RemoteConnection { addr: Bytes::from_static(b"y"), outbound: true, established: false },
        );
        assert_eq!(a.names().collect::<Vec<_>>(), [n(2), n(3), n(4)]);
        assert_eq!(a.get(&n(4)).unwrap().addr, Addr::Other(b"y"));
        assert!(a.remove(&n(3)) && !a.remove(&n(3)));
        assert_eq!(before.len(), 2);
        let same = ConnectionList::from_refs(&[r(4, "y", true, false), r(2, "1.1.1.1:1", true, true)]);
        assert_eq!(a, same);
        assert!(!a.ptr_eq(&same));
        assert_ne!(a, before);
        assert!(a.remove(&n(2)) && a.remove(&n(4)) && a.is_empty());
        assert_eq!(a, ConnectionList::default());
    }
}
