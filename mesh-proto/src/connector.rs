//! The connection maker (docs/protocol-v2.md §20): direct peers, discovered targets, back-off.
//!
//! Targets are keyed by the exact address string that is dialled. The core never
//! resolves names: a target is an IP literal with a port (IPv6 in brackets, unlike Go's
//! discovery) or a `host:port` the driver resolves at each dial, so a peer that moved is
//! found again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{DISCOVERY_MEMORY, RETRY_GROWTH, RETRY_INITIAL, RETRY_MAX, RETRY_RESET_AFTER};
use crate::connection_list::{Addr, Connection, ConnectionList};
use crate::name::PeerName;
use crate::time::Instant;
use crate::topology::{Peer, Peers};

/// Why a user-supplied peer address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing before the port.
    #[error("peer address {0:?} has no host")]
    NoHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("peer address {0:?} has a bad port (a number from 1 to 65535 is needed)")]
    BadPort(String),
    /// Unbalanced brackets or stray characters.
    #[error("peer address {0:?} is malformed")]
    Malformed(String),
}

/// A parsed peer address: a host (IP literal or name) and an optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerAddress {
    /// The IP, if the host is a literal.
    pub ip: Option<IpAddr>,
    /// The host as given (without brackets).
    pub host: String,
    /// The port, if one was given.
    pub port: Option<u16>,
}

impl PeerAddress {
    /// Parses `host`, `host:port`, `ip`, `ip:port`, `[v6]`, `[v6]:port` or a bare IPv6
    /// literal (which Go rejects).
    pub(crate) fn parse(s: &str) -> Result<PeerAddress, AddressError> {
        let bad = || AddressError::Malformed(s.to_owned());
        if s.trim() != s || s.is_empty() {
            return Err(AddressError::NoHost(s.to_owned()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(PeerAddress { ip: Some(ip), host: ip.to_string(), port: None });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            let port = check_port(s, sa.port())?;
            return Ok(PeerAddress { ip: Some(sa.ip()), host: sa.ip().to_string(), port: Some(port) });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(parse_port(s, p.strip_prefix(':').ok_or_else(bad)?)?),
            };
            let ip: IpAddr = h.parse().map_err(|_| bad())?;
            return Ok(PeerAddress { ip: Some(ip), host: ip.to_string(), port });
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(parse_port(s, p)?)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(AddressError::NoHost(s.to_owned()));
        }
        if host.contains([':', '[', ']', '/', ' ']) {
            return Err(bad());
        }
        Ok(PeerAddress { ip: host.parse().ok(), host: host.to_owned(), port })
    }

    /// The dial string, with `default_port` when none was given.
    pub(crate) fn key(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        match self.ip {
            Some(ip) => SocketAddr::new(ip, port).to_string(),
            None => format!("{}:{port}", self.host),
        }
    }
}

fn parse_port(s: &str, p: &str) -> Result<u16, AddressError> {
    let port: u16 = p.parse().map_err(|_| AddressError::BadPort(s.to_owned()))?;
    check_port(s, port)
}

fn check_port(s: &str, port: u16) -> Result<u16, AddressError> {
    if port == 0 { Err(AddressError::BadPort(s.to_owned())) } else { Ok(port) }
}

/// The state of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TargetState {
    /// Waiting for its next try.
    Waiting,
    /// A dial or handshake is in progress.
    Attempting,
    /// A registered connection uses it.
    Connected,
    /// A direct peer that is not a valid target at the moment.
    Suspended,
}

/// One address we may dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its state.
    pub state: TargetState,
    /// The error of the last attempt, if any.
    pub last_error: Option<String>,
    /// When to try next; `None` means never (a name collision or ourselves).
    pub try_after: Option<Instant>,
    /// The current back-off interval.
    pub interval: Duration,
    /// When the current attempt had been scheduled.
    last_scheduled: Instant,
    /// The peer that answered at this address last time.
    pub peer: Option<PeerName>,
    /// For a discovered target: the peer that gossip says listens there. Only that peer
    /// may answer if it has been collected from our table meanwhile.
    pub expected: Option<PeerName>,
    /// For a discovered target: kept, and dialled, until then even if no record
    /// mentions it any more ([`DISCOVERY_MEMORY`]).
    remembered_until: Option<Instant>,
    /// The last connection here was refused (see [`Termination::Refused`]).
    pub refused: bool,
    /// For a refused discovered target: how many connections its peer had when we
    /// first re-checked after the refusal.
    refused_degree: Option<usize>,
    /// Set by the latest re-check: whether the target is valid, and if so whether it is
    /// direct (kept on the target so a re-check allocates nothing per target).
    valid: Option<bool>,
}

impl Target {
    fn new(now: Instant) -> Target {
        Target {
            state: TargetState::Waiting,
            last_error: None,
            try_after: Some(now),
            interval: RETRY_INITIAL,
            last_scheduled: now,
            peer: None,
            expected: None,
            remembered_until: None,
            refused: false,
            refused_degree: None,
            valid: None,
        }
    }
}

/// Why a connection ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Termination {
    /// An ordinary failure: retry with back-off, or at once after a long life.
    Retry,
    /// The remote has our name: never retry.
    NameCollision,
    /// The remote is ourselves: never retry, and not counted.
    ConnectToSelf,
    /// Ours: the remote closed the connection right after registering it, as a peer at
    /// its connection limit does. Back off, and while that peer stays reachable through
    /// the mesh do not dial it again (a full bootstrap peer is not hammered forever).
    Refused,
}

/// What the connector needs to know about our registered connections.
#[derive(Clone, Debug)]
pub(crate) struct LiveConnection {
    /// The remote's name.
    pub name: PeerName,
    /// The connection's address (the dial string for outbound, the socket's for inbound).
    pub addr: String,
    /// Whether we dialled it.
    pub outbound: bool,
}

/// A dial the connector wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DialRequest {
    /// The address string to dial.
    pub addr: String,
    /// Whether a peer we do not know yet may answer (true for direct peers only).
    pub accept_new_peer: bool,
    /// A discovered target's peer, which may answer even if it is no longer in our
    /// table (it was collected after we learnt its address).
    pub expected: Option<PeerName>,
}

/// How many dials the connection limit leaves room for (`usize::MAX`: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DialBudget {
    /// Dials of any target: the limit minus registered connections and dials in progress.
    pub any: usize,
    /// Dials of discovered targets (at most `any`).
    pub discovered: usize,
}

impl DialBudget {
    /// No limit at all.
    pub(crate) const UNLIMITED: DialBudget = DialBudget { any: usize::MAX, discovered: usize::MAX };
}

/// The connection list of the record version the address index holds, kept so that
/// the next version re-indexes only the entries that differ. It is the table's own
/// list, shared: the index costs nothing per connection beyond its counts.
#[derive(Clone, Debug)]
struct Advertised {
    uid: u64,
    version: u64,
    conns: ConnectionList,
}

/// A dial address as the address index holds it: one allocation per distinct address,
/// shared by every record that advertises it (a thousand records of 64 connections each
/// would otherwise hold 64,000 strings, most of them copies).
type AddrKey = Arc<str>;

/// Every advertised address with the peers said to listen there, each with the number
/// of records that say so.
type AddrIndex = BTreeMap<AddrKey, BTreeMap<PeerName, u32>>;

/// Counts `remote` at `key` once more.
fn index(by_addr: &mut AddrIndex, key: String, remote: PeerName) {
    let key: AddrKey = match by_addr.get_key_value(key.as_str()) {
        Some((shared, _)) => shared.clone(),
        None => key.into(),
    };
    *by_addr.entry(key).or_default().entry(remote).or_default() += 1;
}

/// Counts `remote` at `key` once less, dropping what reaches zero.
fn unindex(by_addr: &mut AddrIndex, key: &str, remote: PeerName) {
    let Some(remotes) = by_addr.get_mut(key) else { return };
    if let Some(n) = remotes.get_mut(&remote) {
        *n -= 1;
        if *n == 0 {
            remotes.remove(&remote);
        }
    }
    if remotes.is_empty() {
        by_addr.remove(key);
    }
}

/// The connection maker.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    our_port: u16,
    discovery: bool,
    direct: BTreeMap<String, PeerAddress>,
    targets: BTreeMap<String, Target>,
    advertised: BTreeMap<PeerName, Advertised>,
    /// Every advertised address with the peers said to listen there, each with the
    /// number of records that say so: a re-check reads the few distinct addresses here
    /// instead of every record's connection list (a thousand records of 64 each).
    by_addr: AddrIndex,
    backoffs: u64,
}

impl Connector {
    /// A connector for a peer listening on `our_port`.
    pub(crate) fn new(our_port: u16, discovery: bool) -> Self {
        Connector {
            our_port,
            discovery,
            direct: BTreeMap::new(),
            targets: BTreeMap::new(),
            advertised: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            backoffs: 0,
        }
    }

    /// How many times a failed attempt postponed the next dial by the back-off.
    pub(crate) fn backoffs(&self) -> u64 {
        self.backoffs
    }

    /// Adds direct peers (replacing them all if `replace`). Invalid entries are returned
    /// as errors; valid ones are added regardless.
    pub(crate) fn initiate(&mut self, peers: &[String], replace: bool, now: Instant) -> Vec<AddressError> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for s in peers {
            match PeerAddress::parse(s) {
                Ok(a) => parsed.push((s.clone(), a)),
                Err(e) => errors.push(e),
            }
        }
        if replace {
            self.direct.clear();
        }
        for (s, a) in parsed {
            let key = a.key(self.our_port);
            self.direct.insert(s, a);
            if let Some(t) = self.targets.get_mut(&key) {
                // Cut the back-off short; an attempt in progress keeps running.
                t.try_after = Some(now);
                t.interval = RETRY_INITIAL;
                t.last_error = None;
            }
        }
        errors
    }

    /// Removes direct peers. Existing connections stay up.
    pub(crate) fn forget(&mut self, peers: &[String]) {
        for s in peers {
            self.direct.remove(s);
        }
    }

    /// The direct-peer strings; with `active_only`, those marked never-retry are left out.
    pub(crate) fn direct_peers(&self, active_only: bool) -> Vec<String> {
        self.direct
            .iter()
            .filter(|(_, a)| {
                !active_only || self.targets.get(&a.key(self.our_port)).is_none_or(|t| t.try_after.is_some())
            })
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// All targets, by address.
    pub(crate) fn targets(&self) -> &BTreeMap<String, Target> {
        &self.targets
    }

    /// The address to dial for a connection a peer reports (docs/protocol-v2.md §20.3 step 3).
    fn dial_key(&self, c: &Connection<'_>) -> Option<String> {
        // An inbound entry: the describing peer only knows the dialler's ephemeral port;
        // assume the dialler listens on the same port as we do.
        let key = match c.addr {
            Addr::V4(a) if c.outbound => a.to_string(),
            Addr::V4(a) => SocketAddrV4::new(*a.ip(), self.our_port).to_string(),
            Addr::Other(b) if c.outbound => String::from_utf8_lossy(b).into_owned(),
            Addr::Other(b) => {
                let sa = std::str::from_utf8(b).ok()?.parse::<SocketAddr>().ok()?;
                SocketAddr::new(sa.ip(), self.our_port).to_string()
            }
        };
        (!key.is_empty()).then_some(key)
    }

    /// Brings the address index up to date with the table: one ordered walk of both
    /// finds the records that went or changed, and a changed record re-indexes only
    /// the connections that differ from the version indexed before.
    fn sync_advertised(&mut self, peers: &Peers) {
        let us = peers.our_name();
        let mut gone = Vec::new();
        let mut changed = Vec::new();
        let mut held = self.advertised.iter().peekable();
        for p in peers.iter() {
            let name = p.summary.name;
            while let Some((n, _)) = held.next_if(|(n, _)| **n < name) {
                gone.push(*n);
            }
            let same = held.next_if(|(n, _)| **n == name).map(|(_, a)| (a.uid, a.version));
            if name != us && same != Some((p.summary.uid, p.summary.version)) {
                changed.push(p);
            }
        }
        gone.extend(held.map(|(n, _)| *n));
        for name in gone {
            if let Some(old) = self.advertised.remove(&name) {
                self.reindex(&old.conns, &ConnectionList::default());
            }
        }
        for p in changed {
            let new =
                Advertised { uid: p.summary.uid, version: p.summary.version, conns: p.connections.clone() };
            let old = self.advertised.insert(p.summary.name, new).map(|a| a.conns).unwrap_or_default();
            self.reindex(&old, &p.connections);
        }
    }

    /// Moves the address index from a record's `old` connections to its `new` ones,
    /// touching only entries whose remote, address or direction differ.
    fn reindex(&mut self, old: &ConnectionList, new: &ConnectionList) {
        let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
        loop {
            let (gone, came) = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some(o), Some(n)) if o.name == n.name => {
                    let same = (o.addr, o.outbound) == (n.addr, n.outbound);
                    let pair = (old.next(), new.next());
                    if same {
                        continue;
                    }
                    pair
                }
                (Some(o), Some(n)) if o.name < n.name => (old.next(), None),
                (Some(_), None) => (old.next(), None),
                _ => (None, new.next()),
            };
            if let Some(c) = gone {
                if let Some(key) = self.dial_key(&c) {
                    unindex(&mut self.by_addr, &key, c.name);
                }
            }
            if let Some(c) = came {
                if let Some(key) = self.dial_key(&c) {
                    index(&mut self.by_addr, key, c.name);
                }
            }
        }
    }

    /// Ours: remembers the addresses that records about to be collected advertise, so
    /// that they stay targets for [`DISCOVERY_MEMORY`]: a peer refused at a connection
    /// limit has been told where else to go just before its only connection closes.
    pub(crate) fn remember(&mut self, now: Instant, live: &[LiveConnection], removed: &[Peer], us: PeerName) {
        if !self.discovery {
            return;
        }
        let connected_names: BTreeSet<PeerName> = live.iter().map(|c| c.name).collect();
        let connected_addrs: BTreeSet<&str> = live.iter().map(|c| c.addr.as_str()).collect();
        for p in removed {
            for c in p.connections.iter() {
                let remote = &c.name;
                if *remote == us || connected_names.contains(remote) {
                    continue;
                }
                match self.dial_key(&c) {
                    Some(key) if !connected_addrs.contains(key.as_str()) => {
                        self.note_discovered(key, *remote, now)
                    }
                    _ => {}
                }
            }
        }
    }

    /// Records that gossip places `peer` at `key`, creating the target if needed.
    fn note_discovered(&mut self, key: String, peer: PeerName, now: Instant) {
        let t = self.targets.entry(key).or_insert_with(|| Target::new(now));
        t.expected = Some(peer);
        t.remembered_until = Some(now + DISCOVERY_MEMORY);
    }

    /// Marks the valid targets (docs/protocol-v2.md §20.3) with whether each is direct
    /// ([`Target::valid`]; `None` on every other target), and creates the new ones.
    fn refresh(
        &mut self,
        now: Instant,
        live: &[LiveConnection],
        peers: &Peers,
        direct_keys: &BTreeSet<String>,
        reachable: impl Fn(PeerName) -> bool,
    ) {
        let us = peers.our_name();
        let connected_names: BTreeSet<PeerName> = live.iter().map(|c| c.name).collect();
        let connected_addrs: BTreeSet<&str> = live.iter().map(|c| c.addr.as_str()).collect();
        let inbound_ips: BTreeSet<IpAddr> = live
            .iter()
            .filter(|c| !c.outbound)
            .filter_map(|c| c.addr.parse::<SocketAddr>().ok().map(|a| a.ip()))
            .collect();
        for t in self.targets.values_mut() {
            t.valid = None;
        }
        self.mark_direct(now, &connected_names, &connected_addrs, &inbound_ips, reachable);
        if !self.discovery {
            return;
        }
        // Discovered addresses, with the peer gossip says listens at each (where records
        // disagree, the lowest name not ruled out).
        self.sync_advertised(peers);
        // Ours: remembered addresses stay valid while their peer is not connected. (Marked
        // before the discovered ones, which are noted as remembered below.)
        for (key, t) in self.targets.iter_mut() {
            let remembered = t.remembered_until.is_some_and(|u| now < u)
                && t.expected.is_some_and(|p| p != us && !connected_names.contains(&p));
            if remembered && !connected_addrs.contains(key.as_str()) {
                t.valid.get_or_insert(false);
            }
        }
        self.mark_discovered(now, us, &connected_names, &connected_addrs, direct_keys);
    }

    /// Marks the direct peers' addresses valid (direct), but not those that evidently
    /// connect to us, answered with a peer connected already, or refused us while we
    /// reach their peer through others.
    fn mark_direct(
        &mut self,
        now: Instant,
        connected_names: &BTreeSet<PeerName>,
        connected_addrs: &BTreeSet<&str>,
        inbound_ips: &BTreeSet<IpAddr>,
        reachable: impl Fn(PeerName) -> bool,
    ) {
        for a in self.direct.values() {
            let key = a.key(self.our_port);
            if a.port.is_none() && a.ip.is_some_and(|ip| inbound_ips.contains(&ip)) {
                continue; // it evidently connects to us; we cannot tell its port
            }
            // Ours: the peer that answered here is connected already (perhaps inbound).
            // Go keeps re-dialling it, and every duplicate churns (weaveworks/weave#478).
            if self.targets.get(&key).and_then(|t| t.peer).is_some_and(|p| connected_names.contains(&p)) {
                continue;
            }
            // Ours: it refused us, and we reach it through others anyway.
            if self.targets.get(&key).is_some_and(|t| t.refused && t.peer.is_some_and(&reachable)) {
                continue;
            }
            if !connected_addrs.contains(key.as_str()) {
                mark_target(&mut self.targets, &key, true, now);
            }
        }
    }

    /// Marks the discovered addresses valid, each expecting the peer gossip says listens
    /// there, and remembers them for [`DISCOVERY_MEMORY`].
    fn mark_discovered(
        &mut self,
        now: Instant,
        us: PeerName,
        connected_names: &BTreeSet<PeerName>,
        connected_addrs: &BTreeSet<&str>,
        direct_keys: &BTreeSet<String>,
    ) {
        // Both maps are in address order: walk them together instead of looking each
        // address up, and add the new targets afterwards.
        let mut fresh = Vec::new();
        let mut targets = self.targets.iter_mut().peekable();
        for (key, remotes) in &self.by_addr {
            if connected_addrs.contains(&**key) {
                continue;
            }
            let Some(remote) = remotes.keys().find(|r| **r != us && !connected_names.contains(r)) else {
                continue;
            };
            while targets.next_if(|(k, _)| k.as_str() < &**key).is_some() {}
            let direct = direct_keys.contains(&**key);
            let mut new = None;
            let t = match targets.next_if(|(k, _)| k.as_str() == &**key) {
                Some((_, t)) => t,
                None => new.insert(Target::new(now)),
            };
            t.valid.get_or_insert(direct);
            t.expected = Some(*remote);
            t.remembered_until = Some(now + DISCOVERY_MEMORY);
            fresh.extend(new.map(|t| (key.to_string(), t)));
        }
        self.targets.extend(fresh);
    }

    /// Re-checks the targets (docs/protocol-v2.md §20.3, §20.4). Returns the dials to start now
    /// (already marked attempting), at most what `budget` allows, and when to check again.
    /// `reachable` tells whether a peer is reachable through the mesh.
    /// Due targets beyond the budget stay due, without back-off, for the next re-check.
    /// Direct targets go first; discovered ones in order of how few connections their
    /// peer has (the likeliest to have room), ties broken by `random`.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        live: &[LiveConnection],
        peers: &Peers,
        budget: DialBudget,
        mut random: impl FnMut(u64) -> u64,
        reachable: impl Fn(PeerName) -> bool,
    ) -> (Vec<DialRequest>, Option<Instant>) {
        let direct_keys: BTreeSet<String> = self.direct.values().map(|a| a.key(self.our_port)).collect();
        self.refresh(now, live, peers, &direct_keys, &reachable);
        let mut next: Option<Instant> = None;
        let mut doomed = Vec::new();
        let mut direct_due = Vec::new();
        let mut discovered_due = Vec::new();
        for (key, t) in self.targets.iter_mut() {
            if !matches!(t.state, TargetState::Waiting | TargetState::Suspended) {
                continue;
            }
            let Some(is_direct) = t.valid else {
                if direct_keys.contains(key) {
                    t.state = TargetState::Suspended;
                } else {
                    doomed.push(key.clone());
                }
                continue;
            };
            t.state = TargetState::Waiting;
            let Some(at) = t.try_after else { continue }; // never retry
            if at > now {
                next = Some(next.map_or(at, |n| n.min(at)));
            } else if is_direct {
                direct_due.push(key.clone());
            } else {
                let degree =
                    t.expected.and_then(|p| peers.get(&p)).map_or(usize::MAX, |p| p.connections.len());
                // Ours: a peer that refused us (full) is left alone while we reach it
                // through the mesh and it has no fewer connections than then. Go
                // redials every full peer for ever, each time a handshake and a close.
                if t.refused && t.expected.is_some_and(&reachable) {
                    let full = *t.refused_degree.get_or_insert(degree);
                    if degree >= full {
                        continue;
                    }
                }
                discovered_due.push((degree, random(u64::MAX), key.clone()));
            }
        }
        for key in doomed {
            self.targets.remove(&key);
        }
        discovered_due.sort_unstable();
        let due = direct_due
            .into_iter()
            .map(|k| (true, k))
            .chain(discovered_due.into_iter().map(|(_, _, k)| (false, k)));
        let mut budget = budget;
        let mut dials = Vec::new();
        for (is_direct, key) in due {
            if budget.any == 0 || (!is_direct && budget.discovered == 0) {
                continue;
            }
            budget.any -= 1;
            budget.discovered = budget.discovered.saturating_sub(1);
            let Some(t) = self.targets.get_mut(&key) else { continue };
            t.state = TargetState::Attempting;
            t.last_scheduled = t.try_after.unwrap_or(now);
            let expected = if is_direct { None } else { t.expected };
            dials.push(DialRequest { addr: key, accept_new_peer: is_direct, expected });
        }
        (dials, next)
    }

    /// A dial or handshake attempt ended before a connection was registered.
    pub(crate) fn attempt_failed(
        &mut self,
        addr: &str,
        error: String,
        now: Instant,
        random: impl FnMut(u64) -> u64,
    ) {
        if let Some(t) = self.targets.get_mut(addr) {
            t.state = TargetState::Waiting;
            t.last_error = Some(error);
            back_off(t, now, random);
            self.backoffs += 1;
        }
    }

    /// A handshake on a connection we dialled to `addr` told us who answers there.
    pub(crate) fn answered_by(&mut self, addr: &str, peer: PeerName) {
        if let Some(t) = self.targets.get_mut(addr) {
            t.peer = Some(peer);
        }
    }

    /// An outbound connection to `addr` was registered.
    pub(crate) fn connected(&mut self, addr: &str) {
        if let Some(t) = self.targets.get_mut(addr) {
            t.state = TargetState::Connected;
            t.last_error = None;
        }
    }

    /// A connection that we dialled to `addr` ended, after or without registration.
    pub(crate) fn terminated(
        &mut self,
        addr: &str,
        how: Termination,
        error: String,
        now: Instant,
        random: impl FnMut(u64) -> u64,
    ) {
        let Some(t) = self.targets.get_mut(addr) else { return };
        t.state = TargetState::Waiting;
        t.last_error = Some(error);
        t.refused = how == Termination::Refused;
        t.refused_degree = None;
        match how {
            Termination::NameCollision | Termination::ConnectToSelf => {
                t.try_after = None;
                t.interval = RETRY_MAX;
            }
            Termination::Retry if now > t.last_scheduled + RETRY_RESET_AFTER => {
                t.try_after = Some(now);
                t.interval = RETRY_INITIAL;
            }
            Termination::Retry | Termination::Refused => {
                back_off(t, now, random);
                self.backoffs += 1;
            }
        }
    }

    /// Revives never-retry targets (by re-initiating them) is done by
    /// [`Connector::initiate`]; this reports whether `addr` is currently never-retry.
    #[cfg(test)]
    pub(crate) fn is_never_retry(&self, addr: &str) -> bool {
        self.targets.get(addr).is_some_and(|t| t.try_after.is_none())
    }
}

/// Next try uniformly in [now + i/2, now + 3i/2); then i := min(1.5 i, 6 min).
fn back_off(t: &mut Target, now: Instant, mut random: impl FnMut(u64) -> u64) {
    let i = t.interval.as_nanos() as u64;
    let jitter = random(i.max(1));
    t.try_after = Some(now + Duration::from_nanos(i / 2 + jitter));
    let grown = t.interval * RETRY_GROWTH.0 / RETRY_GROWTH.1;
    t.interval = grown.min(RETRY_MAX);
}

/// Marks `key` valid. A key already valid keeps what it was first marked with, except
/// that a direct peer's mark is final (direct peers are marked first).
fn mark_target(targets: &mut BTreeMap<String, Target>, key: &str, direct: bool, now: Instant) {
    match targets.get_mut(key) {
        Some(t) => {
            t.valid.get_or_insert(direct);
        }
        None => {
            let mut t = Target::new(now);
            t.valid = Some(direct);
            targets.insert(key.to_owned(), t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::RemoteConnection;
    use crate::wire::topology::PeerRecord;
    use bytes::Bytes;

    fn peers() -> Peers {
        Peers::new(PeerName::from_u64(1).unwrap(), Bytes::new(), 1, 1)
    }

    #[test]
    fn addresses() {
        let a = PeerAddress::parse("10.0.0.1").unwrap();
        assert_eq!(a.key(6783), "10.0.0.1:6783");
        assert_eq!(PeerAddress::parse("10.0.0.1:99").unwrap().key(6783), "10.0.0.1:99");
        assert_eq!(PeerAddress::parse("::1").unwrap().key(6783), "[::1]:6783");
        assert_eq!(PeerAddress::parse("[::1]").unwrap().key(6783), "[::1]:6783");
        assert_eq!(PeerAddress::parse("[fe80::2]:7").unwrap().key(6783), "[fe80::2]:7");
        assert_eq!(PeerAddress::parse("host.example").unwrap().key(6783), "host.example:6783");
        assert_eq!(PeerAddress::parse("host:80").unwrap().key(6783), "host:80");
        assert!(matches!(PeerAddress::parse(":80"), Err(AddressError::NoHost(_))));
        assert!(matches!(PeerAddress::parse("host:http"), Err(AddressError::BadPort(_))));
        assert!(matches!(PeerAddress::parse("host:0"), Err(AddressError::BadPort(_))));
        assert!(matches!(PeerAddress::parse("[::1"), Err(AddressError::Malformed(_))));
        assert!(PeerAddress::parse("").is_err());
    }

    #[test]
    fn back_off_sequence() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(100);
        assert!(c.initiate(&["10.0.0.2".into()], false, t0).is_empty());
        let (dials, _) = c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(
            dials,
            [DialRequest { addr: "10.0.0.2:6783".into(), accept_new_peer: true, expected: None }]
        );
        // Retries come after [i/2, 3i/2) with i = 2 s, 3 s, 4.5 s, ... capped at 6 min.
        let mut now = t0;
        let mut interval = 2.0f64;
        for _ in 0..20 {
            // The lowest and the highest jitter both stay in range.
            for (rand_hi, expect_extra) in [(false, 0.0), (true, 1.0)] {
                let mut cc = c.clone();
                cc.attempt_failed(
                    "10.0.0.2:6783",
                    "refused".into(),
                    now,
                    |m| if rand_hi { m - 1 } else { 0 },
                );
                let t = &cc.targets()["10.0.0.2:6783"];
                let delay = (t.try_after.unwrap() - now).as_secs_f64();
                assert!(
                    (delay - (interval / 2.0 + expect_extra * interval)).abs() < 1e-6,
                    "{delay} vs i={interval}"
                );
            }
            c.attempt_failed("10.0.0.2:6783", "refused".into(), now, |_| 0);
            now = c.targets()["10.0.0.2:6783"].try_after.unwrap();
            let (d, _) = c.check(now, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
            assert_eq!(d.len(), 1);
            interval = (interval * 1.5).min(360.0);
        }
        assert_eq!(c.targets()["10.0.0.2:6783"].interval, RETRY_MAX);
    }

    #[test]
    fn collisions_are_never_retried_until_reinitiated() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.2".into()], false, t0);
        c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        c.terminated("10.0.0.2:6783", Termination::NameCollision, "collision".into(), t0, |_| 0);
        assert!(c.is_never_retry("10.0.0.2:6783"));
        let (d, next) =
            c.check(t0 + Duration::from_secs(3600), &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(d.is_empty() && next.is_none());
        assert!(c.direct_peers(true).is_empty());
        assert_eq!(c.direct_peers(false), ["10.0.0.2"]);
        c.initiate(&["10.0.0.2".into()], false, t0);
        assert_eq!(c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0.len(), 1);
    }

    #[test]
    fn long_lived_connections_retry_at_once() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.2:7000".into()], false, t0);
        c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        c.connected("10.0.0.2:7000");
        let later = t0 + Duration::from_secs(61);
        c.terminated("10.0.0.2:7000", Termination::Retry, "reset".into(), later, |_| 0);
        assert_eq!(c.targets()["10.0.0.2:7000"].try_after, Some(later));
        // A short-lived one backs off instead.
        c.check(later, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        c.terminated(
            "10.0.0.2:7000",
            Termination::Retry,
            "reset".into(),
            later + Duration::from_secs(1),
            |_| 0,
        );
        assert_eq!(c.targets()["10.0.0.2:7000"].try_after, Some(later + Duration::from_secs(2)));
    }

    #[test]
    fn portless_direct_peer_skipped_while_it_connects_to_us() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::ZERO;
        c.initiate(&["10.0.0.2".into(), "10.0.0.3:6783".into()], false, t0);
        let live = [
            LiveConnection {
                name: PeerName::from_u64(2).unwrap(),
                addr: "10.0.0.2:40000".into(),
                outbound: false,
            },
            LiveConnection {
                name: PeerName::from_u64(3).unwrap(),
                addr: "10.0.0.3:40001".into(),
                outbound: false,
            },
        ];
        let (d, _) = c.check(t0, &live, &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(d, [DialRequest { addr: "10.0.0.3:6783".into(), accept_new_peer: true, expected: None }]);
    }

    #[test]
    fn direct_peer_connected_inbound_is_not_redialled() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::ZERO;
        c.initiate(&["10.0.0.2:6783".into()], false, t0);
        assert_eq!(c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0.len(), 1);
        let two = PeerName::from_u64(2).unwrap();
        c.answered_by("10.0.0.2:6783", two);
        c.terminated("10.0.0.2:6783", Termination::Retry, "duplicate".into(), t0, |_| 0);
        // Connected to the same peer inbound: Go would keep re-dialling.
        let live = [LiveConnection { name: two, addr: "10.0.0.2:41000".into(), outbound: false }];
        let (d, next) =
            c.check(t0 + Duration::from_secs(3600), &live, &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(d.is_empty() && next.is_none());
        // Once that connection is gone, the target is dialled again.
        assert_eq!(
            c.check(t0 + Duration::from_secs(3600), &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false)
                .0
                .len(),
            1
        );
    }

    fn record_with_connection(name: u64, remote: u64, addr: &str, outbound: bool) -> Peer {
        let mut p = Peer::candidate(PeerName::from_u64(name).unwrap(), Bytes::new(), 7, None);
        let rc =
            RemoteConnection { addr: Bytes::copy_from_slice(addr.as_bytes()), outbound, established: true };
        p.connections.insert(PeerName::from_u64(remote).unwrap(), rc);
        p
    }

    #[test]
    fn dials_stay_within_the_budget_direct_first_and_the_rest_wait_without_back_off() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.9".into()], false, t0);
        let removed: Vec<Peer> =
            (2..6).map(|i| record_with_connection(i, i + 10, &format!("10.0.1.{i}:6783"), true)).collect();
        c.remember(t0, &[], &removed, PeerName::from_u64(1).unwrap());
        // A direct dial counts against the discovered share too (it is outbound).
        let budget = DialBudget { any: 3, discovered: 2 };
        let (d, _) = c.check(t0, &[], &peers(), budget, |_| 0, |_| false);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0], DialRequest { addr: "10.0.0.9:6783".into(), accept_new_peer: true, expected: None });
        assert!(!d[1].accept_new_peer && d[1].expected.is_some());
        // Three remembered targets are still due, untouched by back-off.
        let waiting: Vec<&Target> =
            c.targets().values().filter(|t| t.state == TargetState::Waiting).collect();
        assert_eq!(waiting.len(), 3);
        assert!(waiting.iter().all(|t| t.try_after == Some(t0) && t.interval == RETRY_INITIAL));
        assert_eq!(c.backoffs(), 0);
        let (d, _) = c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn addresses_of_collected_peers_are_remembered_for_a_while() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        // Peer 2 dialled peer 3 at 10.0.0.3:6783, and peer 4 dialled us (skipped).
        let removed =
            [record_with_connection(2, 3, "10.0.0.3:6783", true), record_with_connection(4, 1, "x", true)];
        c.remember(t0, &[], &removed, us);
        assert_eq!(c.targets().len(), 1);
        let (d, _) = c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        let three = PeerName::from_u64(3).unwrap();
        assert_eq!(
            d,
            [DialRequest { addr: "10.0.0.3:6783".into(), accept_new_peer: false, expected: Some(three) }]
        );
        c.attempt_failed("10.0.0.3:6783", "refused".into(), t0, |_| 0);
        // Still retried within the memory, forgotten after it.
        let later = t0 + DISCOVERY_MEMORY - Duration::from_secs(1);
        assert_eq!(c.check(later, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0.len(), 1);
        c.attempt_failed("10.0.0.3:6783", "refused".into(), later, |_| 0);
        let (d, next) =
            c.check(t0 + DISCOVERY_MEMORY, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(d.is_empty() && next.is_none() && c.targets().is_empty());
    }

    #[test]
    fn a_full_discovered_peer_is_left_alone_until_it_has_room_or_is_cut_off() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        let three = PeerName::from_u64(3).unwrap();
        // Peer 2 dialled peer 3 (four connections in all): gossip places 3 at 10.0.0.3.
        let mut table = Peers::new(us, Bytes::new(), 1, 1);
        let mut two = record_with_connection(2, 3, "10.0.0.3:6783", true);
        two.summary.version = 1;
        let mut full = record_with_connection(3, 2, "10.0.0.2:40000", false);
        full.summary.version = 1;
        for k in 4..7 {
            full.connections.insert(
                PeerName::from_u64(k).unwrap(),
                RemoteConnection { addr: Bytes::from_static(b"x"), outbound: false, established: true },
            );
        }
        let rec = |p: &Peer| PeerRecord { summary: p.summary.clone(), connections: p.connection_summaries() };
        table.apply_records(&[rec(&two), rec(&full)], crate::Instant::ZERO);
        let dial = |c: &mut Connector, table: &Peers, at: Instant, reachable: bool| {
            let d = c.check(at, &[], table, DialBudget::UNLIMITED, |_| 0, |p| reachable && p == three).0;
            d.into_iter().filter(|d| d.addr == "10.0.0.3:6783").collect::<Vec<_>>()
        };
        assert_eq!(dial(&mut c, &table, t0, true).len(), 1);
        c.terminated("10.0.0.3:6783", Termination::Refused, "reset".into(), t0, |_| 0);
        // Long after any back-off: still full and reachable, so not dialled.
        let later = t0 + Duration::from_secs(3600);
        assert!(dial(&mut c, &table, later, true).is_empty());
        // Cut off from it: dial.
        assert_eq!(dial(&mut c, &table, later, false).len(), 1);
        c.terminated("10.0.0.3:6783", Termination::Refused, "reset".into(), later, |_| 0);
        let later = later + Duration::from_secs(3600);
        assert!(dial(&mut c, &table, later, true).is_empty());
        // It lost a connection: it may have room now.
        full.connections.remove(&PeerName::from_u64(6).unwrap());
        full.summary.version = 2;
        table.apply_records(&[rec(&full)], crate::Instant::ZERO);
        assert_eq!(dial(&mut c, &table, later, true).len(), 1);
    }

    #[test]
    fn the_address_index_follows_the_table() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        let name = |n| PeerName::from_u64(n).unwrap();
        let rec = |p: &Peer| PeerRecord { summary: p.summary.clone(), connections: p.connection_summaries() };
        let mut table = Peers::new(us, Bytes::new(), 1, 1);
        // Peers 2 and 4 both place someone at 10.0.0.3 (3 and 5: one record is stale).
        let mut two = record_with_connection(2, 3, "10.0.0.3:6783", true);
        let mut four = record_with_connection(4, 5, "10.0.0.3:6783", true);
        two.summary.version = 1;
        four.summary.version = 1;
        table.apply_records(&[rec(&two), rec(&four)], crate::Instant::ZERO);
        let expected_at = |c: &mut Connector, table: &Peers, live: &[LiveConnection], at: Instant| {
            let (d, _) = c.check(at, live, table, DialBudget::UNLIMITED, |_| 0, |_| false);
            d.into_iter().map(|d| (d.addr, d.expected)).collect::<Vec<_>>()
        };
        assert_eq!(expected_at(&mut c, &table, &[], t0), [("10.0.0.3:6783".to_owned(), Some(name(3)))]);
        c.attempt_failed("10.0.0.3:6783", "refused".into(), t0, |_| 0);
        // Connected to 3 elsewhere: the address is 5's.
        let live = [LiveConnection { name: name(3), addr: "10.0.0.9:40000".into(), outbound: false }];
        let later = t0 + Duration::from_secs(10);
        assert_eq!(expected_at(&mut c, &table, &live, later), [("10.0.0.3:6783".to_owned(), Some(name(5)))]);
        c.attempt_failed("10.0.0.3:6783", "refused".into(), later, |_| 0);
        // New versions move the addresses; the old ones leave the index.
        two.connections = Default::default();
        two.summary.version = 2;
        four = record_with_connection(4, 6, "10.0.0.6:6783", true);
        four.summary.version = 2;
        table.apply_records(&[rec(&two), rec(&four)], crate::Instant::ZERO);
        let later = later + Duration::from_secs(10);
        let dials = expected_at(&mut c, &table, &[], later);
        assert!(dials.contains(&("10.0.0.6:6783".to_owned(), Some(name(6)))), "{dials:?}");
        assert_eq!(c.by_addr.keys().map(|k| &**k).collect::<Vec<_>>(), ["10.0.0.6:6783"]);
        // 10.0.0.3 is only remembered now: gone once the memory runs out.
        let forgotten = later + DISCOVERY_MEMORY;
        c.attempt_failed("10.0.0.3:6783", "refused".into(), later, |_| 0);
        c.check(forgotten, &[], &table, DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(!c.targets().contains_key("10.0.0.3:6783"));
        // Records collected: nothing is advertised any more.
        table.garbage_collect();
        assert_eq!(table.iter().count(), 1, "only our own record is left");
        c.check(forgotten, &[], &table, DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(c.by_addr.is_empty() && c.advertised.is_empty());
    }

    #[test]
    fn a_refusing_direct_peer_is_left_alone_while_reachable_through_others() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.2".into()], false, t0);
        assert_eq!(c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0.len(), 1);
        let two = PeerName::from_u64(2).unwrap();
        c.answered_by("10.0.0.2:6783", two);
        c.terminated("10.0.0.2:6783", Termination::Refused, "reset".into(), t0, |_| 0);
        let later = t0 + Duration::from_secs(3600);
        let (d, next) = c.check(later, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |p| p == two);
        assert!(d.is_empty() && next.is_none());
        // Unreachable again (the mesh split): dial it.
        assert_eq!(c.check(later, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0.len(), 1);
    }

    #[test]
    fn surrounding_blanks_mean_no_host() {
        for s in [" 10.0.0.1", "10.0.0.1 ", " host:80"] {
            assert_eq!(PeerAddress::parse(s), Err(AddressError::NoHost(s.to_owned())), "{s:?}");
        }
    }

    #[test]
    fn every_back_off_is_counted_and_a_reset_is_not() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        let addr = "10.0.0.2:6783";
        c.initiate(&["10.0.0.2".into()], false, t0);
        let dial =
            |c: &mut Connector, at| c.check(at, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false).0;
        assert_eq!(dial(&mut c, t0).len(), 1);
        c.attempt_failed(addr, "refused".into(), t0, |_| 0);
        assert_eq!(c.backoffs(), 1);
        let t1 = c.targets()[addr].try_after.unwrap();
        assert_eq!(dial(&mut c, t1).len(), 1);
        c.terminated(addr, Termination::Refused, "reset".into(), t1, |_| 0);
        assert_eq!(c.backoffs(), 2);
        let t2 = c.targets()[addr].try_after.unwrap();
        assert_eq!(dial(&mut c, t2).len(), 1);
        c.terminated(addr, Termination::Retry, "reset".into(), t2, |_| 0);
        assert_eq!(c.backoffs(), 3);
        // A connection that lived long resets the back-off, which is not one.
        let t3 = c.targets()[addr].try_after.unwrap();
        assert_eq!(dial(&mut c, t3).len(), 1);
        c.connected(addr);
        c.terminated(addr, Termination::Retry, "reset".into(), t3 + Duration::from_secs(3600), |_| 0);
        assert_eq!(c.backoffs(), 3);
    }

    #[test]
    fn a_connection_ending_exactly_at_the_reset_age_still_backs_off() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        let addr = "10.0.0.2:6783";
        c.initiate(&["10.0.0.2".into()], false, t0);
        c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        c.terminated(addr, Termination::Retry, "reset".into(), t0 + RETRY_RESET_AFTER, |_| 0);
        assert_eq!(c.targets()[addr].try_after, Some(t0 + RETRY_RESET_AFTER + RETRY_INITIAL / 2));
        assert_eq!(c.backoffs(), 1);
    }

    #[test]
    fn connected_targets_are_marked_and_their_error_cleared() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        let addr = "10.0.0.2:6783";
        c.initiate(&["10.0.0.2".into()], false, t0);
        c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        c.attempt_failed(addr, "refused".into(), t0, |_| 0);
        let t1 = c.targets()[addr].try_after.unwrap();
        c.check(t1, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(c.targets()[addr].state, TargetState::Attempting);
        assert_eq!(c.targets()[addr].last_error.as_deref(), Some("refused"));
        c.connected(addr);
        assert_eq!(c.targets()[addr].state, TargetState::Connected);
        assert_eq!(c.targets()[addr].last_error, None);
        // A connected target is not dialled again.
        let (d, _) =
            c.check(t1 + Duration::from_secs(60), &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(d.is_empty());
        assert!(!c.is_never_retry(addr));
        assert!(!c.is_never_retry("10.0.0.99:6783"), "an unknown address is not never-retry");
    }

    #[test]
    fn forgotten_direct_peers_are_not_dialled() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.2".into(), "10.0.0.3".into()], false, t0);
        c.forget(&["10.0.0.2".into()]);
        assert_eq!(c.direct_peers(false), ["10.0.0.3"]);
        let (d, _) = c.check(t0, &[], &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(d.iter().map(|d| d.addr.as_str()).collect::<Vec<_>>(), ["10.0.0.3:6783"]);
    }

    #[test]
    fn the_overall_budget_limits_direct_dials_too() {
        let mut c = Connector::new(6783, false);
        let t0 = Instant::from_secs(1);
        c.initiate(&["10.0.0.2".into(), "10.0.0.3".into(), "10.0.0.4".into()], false, t0);
        let budget = DialBudget { any: 2, discovered: usize::MAX };
        let (d, _) = c.check(t0, &[], &peers(), budget, |_| 0, |_| false);
        assert_eq!(d.len(), 2);
        let (d, _) = c.check(t0, &[], &peers(), DialBudget { any: 0, discovered: 5 }, |_| 0, |_| false);
        assert!(d.is_empty());
    }

    #[test]
    fn an_address_in_use_is_not_remembered() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        // We have a connection at 10.0.0.3:6783 already (to peer 9).
        let live = [LiveConnection {
            name: PeerName::from_u64(9).unwrap(),
            addr: "10.0.0.3:6783".into(),
            outbound: true,
        }];
        c.remember(t0, &live, &[record_with_connection(2, 3, "10.0.0.3:6783", true)], us);
        assert!(c.targets().is_empty());
    }

    #[test]
    fn a_remembered_address_is_dropped_once_its_peer_is_connected() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        let three = PeerName::from_u64(3).unwrap();
        c.remember(t0, &[], &[record_with_connection(2, 3, "10.0.0.3:6783", true)], us);
        assert_eq!(c.targets().len(), 1);
        // Peer 3 connected to us from elsewhere: its remembered address is no target.
        let live = [LiveConnection { name: three, addr: "10.0.0.3:41000".into(), outbound: false }];
        let (d, _) = c.check(t0, &live, &peers(), DialBudget::UNLIMITED, |_| 0, |_| false);
        assert!(d.is_empty(), "{d:?}");
        assert!(c.targets().is_empty());
    }

    #[test]
    fn a_restarted_peer_with_the_same_version_moves_its_addresses() {
        let mut c = Connector::new(6783, true);
        let t0 = Instant::from_secs(1);
        let us = PeerName::from_u64(1).unwrap();
        let rec = |p: &Peer| PeerRecord { summary: p.summary.clone(), connections: p.connection_summaries() };
        let mut table = Peers::new(us, Bytes::new(), 1, 1);
        let mut two = record_with_connection(2, 3, "10.0.0.3:6783", true);
        two.summary.version = 1;
        table.apply_records(&[rec(&two)], crate::Instant::ZERO);
        c.check(t0, &[], &table, DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(c.by_addr.keys().map(|k| &**k).collect::<Vec<_>>(), ["10.0.0.3:6783"]);
        // Its new incarnation (a higher UID, the same version) dialled peer 5 instead.
        let mut again = record_with_connection(2, 5, "10.0.0.5:6783", true);
        again.summary.uid = 8;
        again.summary.version = 1;
        table.apply_records(&[rec(&again)], crate::Instant::ZERO);
        assert_eq!(table.get(&PeerName::from_u64(2).unwrap()).map(|p| p.summary.uid), Some(8));
        c.check(t0, &[], &table, DialBudget::UNLIMITED, |_| 0, |_| false);
        assert_eq!(c.by_addr.keys().map(|k| &**k).collect::<Vec<_>>(), ["10.0.0.5:6783"]);
    }
}
