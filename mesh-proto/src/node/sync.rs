//! Version 3 topology synchronisation on a link (docs/protocol-v3.md §12): periodic
//! gossip and a new connection send a summary or bucket hashes instead of the whole
//! table, and only the records one side lacks or holds older cross the link.
//!
//! Each step is a flag or a merged set in the connection's [`SyncOut`], written when the
//! connection has room like the send slots, so a remote that stops reading costs at most
//! one pending item of each kind.

use std::collections::BTreeSet;

use super::Node;
use crate::connection::{ConnId, Connection};
use crate::event::CloseReason;
use crate::gossip::Slot;
use crate::name::PeerName;
use crate::sync::{bits_for, bucket_of, entry};
use crate::time::Instant;
use crate::topology::{Peers, supersedes};
use crate::wire::sync::{self as wire, Entry, GROUP_HEADER_LEN, Sync, SyncError};

/// Most names a connection asks for, or offers, at once; more wait for the next round.
const MAX_WANT: usize = 4096;
/// A record asked for is not asked for again (from another neighbour offering the same
/// version) until this long has passed without it arriving.
const REQUEST_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a version 3 connection still has to send for synchronisation.
#[derive(Debug, Default)]
pub(crate) struct SyncOut {
    /// Our summary.
    summary: bool,
    /// Our bucket hashes.
    buckets: bool,
    /// Our entries for these buckets of a 2^bits split.
    entries: Option<(u8, BTreeSet<u16>)>,
    /// Names whose records we ask for.
    want: BTreeSet<PeerName>,
    /// Names whose changed records we offer.
    have: BTreeSet<PeerName>,
}

/// Records this node asked for and has not received yet: (version, UID, has a short
/// id) asked for, and when.
#[derive(Debug, Default)]
pub(crate) struct Requests(std::collections::BTreeMap<PeerName, ((u64, u64, bool), Instant)>);

impl SyncOut {
    /// Whether nothing is waiting.
    pub(crate) fn is_idle(&self) -> bool {
        !self.summary
            && !self.buckets
            && self.entries.is_none()
            && self.want.is_empty()
            && self.have.is_empty()
    }
}

/// A v3 connection's pending synchronisation, if it is running version 3.
fn sync_of(c: &mut Connection) -> Option<&mut SyncOut> {
    c.running_mut().filter(|r| r.version >= 3).map(|r| &mut r.sync)
}

impl Node {
    /// Whether `id` synchronises its topology by digests (a version 3 link).
    pub(super) fn syncs_by_digest(&self, id: ConnId) -> bool {
        self.conns.get(&id).and_then(Connection::running).is_some_and(|r| r.version >= 3)
    }

    /// `conns` split into version 3 links (synchronised by digest) and the others.
    pub(super) fn split_by_digest(&self, conns: Vec<ConnId>) -> (Vec<ConnId>, Vec<ConnId>) {
        conns.into_iter().partition(|id| self.syncs_by_digest(*id))
    }

    /// Periodic gossip on a version 3 link: our summary.
    pub(super) fn queue_sync_summary(&mut self, id: ConnId) {
        if let Some(s) = self.conns.get_mut(&id).and_then(sync_of) {
            s.summary = true;
            self.to_flush.insert(id);
        }
    }

    /// A new version 3 link: our bucket hashes (its summary would differ anyway).
    pub(super) fn queue_sync_buckets(&mut self, id: ConnId) {
        if let Some(s) = self.conns.get_mut(&id).and_then(sync_of) {
            s.buckets = true;
            self.to_flush.insert(id);
        }
    }

    /// Records that changed, towards a version 3 link: offered by their entries (the
    /// remote asks for what it lacks), except our own, which it cannot have yet.
    pub(super) fn queue_sync_have(&mut self, id: ConnId, names: &BTreeSet<PeerName>) {
        let us = self.config.name;
        if names.contains(&us) {
            self.queue_topology(&[id], Slot::Gossip, &BTreeSet::from([us]));
        }
        let Some(s) = self.conns.get_mut(&id).and_then(sync_of) else { return };
        for n in names.iter().filter(|n| **n != us) {
            if s.have.len() >= MAX_WANT {
                break;
            }
            s.have.insert(*n);
        }
        if !s.have.is_empty() {
            self.to_flush.insert(id);
        }
    }

    /// Whether we want the record `e` describes: we hold none of its name (or only a
    /// placeholder), or `e` supersedes ours, and we have not just asked for it.
    fn wants_entry(&mut self, e: &Entry, now: Instant) -> bool {
        let key = (e.version, e.uid, e.short_id.is_some());
        let newer = match self.peers.get(&e.name) {
            // A record of another incarnation of us (or a forgery): applying it moves our
            // version past it, as a received update does.
            _ if e.name == self.config.name => self.peers.claim_moves_us(e.uid, e.version),
            // One whose version rose further than its growth budget allows would be refused.
            Some(p) if !p.is_placeholder() => {
                p.beaten_by(e.version, e.uid, e.short_id.is_some()) && p.may_rise_to(e.version, now)
            }
            _ => true,
        };
        if !newer {
            return false;
        }
        let requests = &mut self.sync_requests.0;
        if let Some((asked, at)) = requests.get(&e.name) {
            if now < *at + REQUEST_PATIENCE && !supersedes(key, *asked) {
                return false;
            }
        }
        // Bounded whatever names remotes offer: past the bound a request is simply not
        // remembered (it may then be asked for twice).
        let bound = 2 * self.peers.len() + MAX_WANT;
        if requests.len() >= bound {
            requests.retain(|_, (_, at)| now < *at + REQUEST_PATIENCE);
        }
        if requests.len() < bound {
            requests.insert(e.name, (key, now));
        }
        true
    }

    /// Records arrived: they need not be asked for any more.
    pub(super) fn requests_answered(&mut self, names: &BTreeSet<PeerName>) {
        if !self.sync_requests.0.is_empty() {
            for n in names {
                self.sync_requests.0.remove(n);
            }
        }
    }

    /// A synchronisation message arrived on a version 3 link.
    pub(super) fn on_sync(&mut self, id: ConnId, msg: Result<Sync<'_>, SyncError>, now: Instant) {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return self.close(id, CloseReason::Sync(e), now),
        };
        match msg {
            Sync::Summary { count, root } => {
                let d = self.peers.digest();
                if (d.count(), d.root()) != (count, root) {
                    self.queue_sync_buckets(id);
                }
            }
            Sync::Buckets { bits, hashes, .. } => {
                let ours = self.peers.digest().buckets(bits);
                let differ: BTreeSet<u16> = wire::bucket_hashes(hashes)
                    .zip(ours)
                    .enumerate()
                    .filter(|(_, (theirs, ours))| theirs != ours)
                    .map(|(i, _)| i as u16)
                    .collect();
                if differ.is_empty() {
                    return;
                }
                let Some(s) = self.conns.get_mut(&id).and_then(sync_of) else { return };
                match &mut s.entries {
                    Some((b, set)) if *b == bits => set.extend(differ),
                    e => *e = Some((bits, differ)),
                }
                self.to_flush.insert(id);
            }
            Sync::Entries { bits, groups } => self.on_sync_entries(id, bits, groups, now),
            Sync::Have { entries } => {
                let want: Vec<PeerName> = wire::have_entries(entries)
                    .filter(|e| self.wants_entry(e, now))
                    .map(|e| e.name)
                    .collect();
                self.add_wants(id, want);
            }
            Sync::Want { names } => {
                let names: BTreeSet<PeerName> = wire::wanted_names(names)
                    .filter(|n| self.peers.get(n).is_some_and(|p| !p.is_placeholder()))
                    .collect();
                if !names.is_empty() {
                    self.queue_topology(&[id], Slot::Gossip, &names);
                }
            }
        }
    }

    /// The remote's digests of some buckets: send what it lacks or holds older, ask for
    /// what we lack or hold older.
    fn on_sync_entries(&mut self, id: ConnId, bits: u8, groups: &[u8], now: Instant) {
        let mut listed: BTreeSet<u16> = BTreeSet::new();
        let mut theirs: std::collections::BTreeMap<PeerName, Entry> = Default::default();
        let mut want = Vec::new();
        for (index, entries) in wire::entry_groups(groups) {
            listed.insert(index);
            for e in entries {
                theirs.insert(e.name, e);
                if self.wants_entry(&e, now) {
                    want.push(e.name);
                }
            }
        }
        let send: BTreeSet<PeerName> = self
            .peers
            .iter()
            .filter(|p| !p.is_placeholder() && listed.contains(&bucket_of(p.summary.name, bits)))
            .filter(|p| match theirs.get(&p.summary.name) {
                None => true,
                Some(e) => {
                    let s = &p.summary;
                    supersedes(
                        (s.version, s.uid, s.short_id.is_some()),
                        (e.version, e.uid, e.short_id.is_some()),
                    )
                }
            })
            .map(|p| p.summary.name)
            .collect();
        if !send.is_empty() {
            self.queue_topology(&[id], Slot::Gossip, &send);
        }
        self.add_wants(id, want);
    }

    /// Asks `id` for the records of `names`, within [`MAX_WANT`].
    fn add_wants(&mut self, id: ConnId, names: Vec<PeerName>) {
        let Some(s) = self.conns.get_mut(&id).and_then(sync_of) else { return };
        for n in names {
            if s.want.len() >= MAX_WANT {
                break;
            }
            s.want.insert(n);
        }
        if !s.want.is_empty() {
            self.to_flush.insert(id);
        }
    }

    /// Writes what synchronisation `id` has waiting; false if nothing was.
    pub(super) fn write_sync(&mut self, id: ConnId) -> bool {
        let max = self.config.max_frame_len;
        let Some(c) = self.conns.get_mut(&id) else { return false };
        let Some(s) = sync_of(c) else { return false };
        if s.is_idle() {
            return false;
        }
        let mut s = std::mem::take(s);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        // The digest hashes every record after a change: only summaries and buckets need
        // it, not the offers and requests that follow every change.
        if s.summary {
            let d = self.peers.digest();
            let mut m = Vec::new();
            wire::encode_summary(&mut m, d.count(), d.root());
            frames.push(m);
        }
        if s.buckets {
            let d = self.peers.digest();
            let bits = bits_for(d.count(), max);
            let mut m = Vec::new();
            wire::encode_buckets(&mut m, bits, d.count(), &d.buckets(bits));
            frames.push(m);
        }
        if let Some((bits, buckets)) = s.entries.take() {
            self.stats.oversize_dropped += encode_entries(&self.peers, bits, &buckets, max, &mut frames);
        }
        let have: Vec<Entry> = std::mem::take(&mut s.have)
            .iter()
            .filter_map(|n| self.peers.get(n))
            .filter(|p| !p.is_placeholder())
            .map(entry)
            .collect();
        for chunk in have.chunks(((max - 1) / wire::ENTRY_LEN).max(1)) {
            let mut m = Vec::new();
            wire::encode_have(&mut m, chunk);
            frames.push(m);
        }
        let want: Vec<PeerName> = std::mem::take(&mut s.want).into_iter().collect();
        for chunk in want.chunks(((max - 1) / 8).max(1)) {
            let mut m = Vec::new();
            wire::encode_want(&mut m, chunk);
            frames.push(m);
        }
        let Some(c) = self.conns.get_mut(&id) else { return false };
        for m in frames {
            match c.append_frame(max, |o| o.extend_from_slice(&m)) {
                Ok(()) => {
                    self.stats.frames_sent += 1;
                    self.stats.sync_messages_sent += 1;
                }
                Err(_) => self.stats.oversize_dropped += 1,
            }
        }
        true
    }
}

/// Our entries for `buckets` as messages within `max` bytes, split at bucket boundaries
/// (a bucket listed in a message is complete in it). Returns the buckets left out: too
/// many records for one message (only with a tiny frame limit and a huge table).
fn encode_entries(
    peers: &Peers,
    bits: u8,
    buckets: &BTreeSet<u16>,
    max: usize,
    frames: &mut Vec<Vec<u8>>,
) -> u64 {
    let mut groups: std::collections::BTreeMap<u16, Vec<Entry>> =
        buckets.iter().map(|b| (*b, Vec::new())).collect();
    for p in peers.iter().filter(|p| !p.is_placeholder()) {
        if let Some(g) = groups.get_mut(&bucket_of(p.summary.name, bits)) {
            g.push(entry(p));
        }
    }
    let mut dropped = 0;
    let mut m = Vec::new();
    for (index, entries) in &groups {
        let len = GROUP_HEADER_LEN + entries.len() * wire::ENTRY_LEN;
        if 2 + len > max || entries.len() > usize::from(u16::MAX) {
            dropped += 1;
            continue;
        }
        if !m.is_empty() && m.len() + len > max {
            frames.push(std::mem::take(&mut m));
        }
        if m.is_empty() {
            wire::encode_entries_start(&mut m, bits);
        }
        wire::encode_group(&mut m, *index, entries);
    }
    if !m.is_empty() {
        frames.push(m);
    }
    dropped
}
