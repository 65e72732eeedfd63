//! The peers table (docs/protocol-v2.md §17): one record per known name, the rules for applying
//! received updates, placeholders, garbage collection and the short-id index.
//!
//! Connection entries hold remote *names*, resolved through the table when needed; a
//! name that is not in the table is a dangling edge and is ignored. Iteration is always
//! in name order, so every peer holding the same table computes the same things.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::config::{SHORT_ID_RANDOM_PICKS, SHORT_ID_SPACE};
use crate::connection_list::{AddrText, ConnectionList};
use crate::name::PeerName;
use crate::time::Instant;
use crate::version_growth::Growth;
use crate::wire::topology::{
    self as wire, ConnectionRef, ConnectionSummary, PeerRecord, PeerSummary, RecordRef, SummaryRef,
};

/// A connection as the peer at one end reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConnection {
    /// The address as that peer sees it.
    pub addr: Bytes,
    /// Whether that peer dialled it.
    pub outbound: bool,
    /// Whether that peer considers it established.
    pub established: bool,
}

/// One record of the table.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its summary as last accepted (the version is the one adopted, or ours as bumped).
    pub summary: PeerSummary,
    /// Its connections as it last reported them, by remote name.
    pub connections: ConnectionList,
    /// Local references (not gossiped): ourselves, and connections bound to the record.
    local_refs: u32,
    /// How far its version may still rise (not gossiped; docs/protocol-v2.md §17.3).
    growth: Growth,
    /// This record's summary and connection-list gob messages, encoded on first use.
    /// Every change to a record changes its version or UID or replaces it, and each
    /// change resets this.
    encoded: std::cell::OnceCell<(Bytes, Bytes)>,
}

/// By content: the cached encoding and local references are not part of a record.
impl PartialEq for Peer {
    fn eq(&self, o: &Self) -> bool {
        (&self.summary, &self.connections) == (&o.summary, &o.connections)
    }
}

impl Eq for Peer {}

impl Peer {
    /// A record from a received summary and its connection list.
    pub fn from_record(r: &RecordRef<'_>) -> Peer {
        let mut p = Peer::placeholder(r.summary.name);
        p.adopt(&r.summary, &r.connections);
        p
    }

    /// The record's gob messages (summary, connection list), as gossiped.
    pub fn encoded(&self) -> &(Bytes, Bytes) {
        self.encoded.get_or_init(|| self.encode())
    }

    /// [`Peer::encoded`], kept for the next send only if `keep`; without it an encoding
    /// not cached already is made for this send alone. Version 3 sends a record to a
    /// link only when asked, so caching every record's encoding there would hold a
    /// second copy of the table for little use.
    pub fn encoding(&self, keep: bool) -> (Bytes, Bytes) {
        match self.encoded.get() {
            Some(e) => e.clone(),
            None if keep => self.encoded().clone(),
            None => self.encode(),
        }
    }

    fn encode(&self) -> (Bytes, Bytes) {
        let mut summary = Vec::new();
        wire::put_summary_message(&mut summary, &self.summary.as_ref());
        let mut list = Vec::new();
        let texts: Vec<AddrText<'_>> = self.connections.iter().map(|c| c.addr.text()).collect();
        let conns = self.connections.iter().zip(&texts).map(|(c, text)| ConnectionRef {
            name: c.name,
            remote_tcp_addr: text,
            outbound: c.outbound,
            established: c.established,
        });
        wire::put_connection_list_message(&mut list, conns);
        (Bytes::from(summary), Bytes::from(list))
    }

    /// The record a handshake proposes for a remote: version 0, no connections yet.
    pub fn candidate(name: PeerName, nickname: Bytes, uid: u64, short_id: Option<u16>) -> Peer {
        Peer { summary: PeerSummary { name, nickname, uid, version: 0, short_id }, ..Peer::placeholder(name) }
    }

    /// A placeholder: a name we only saw as a connection target.
    pub fn placeholder(name: PeerName) -> Peer {
        Peer {
            summary: PeerSummary { name, ..PeerSummary::default() },
            connections: ConnectionList::default(),
            local_refs: 0,
            growth: Growth::default(),
            encoded: std::cell::OnceCell::new(),
        }
    }

    fn adopt(&mut self, s: &SummaryRef<'_>, conns: &[ConnectionRef<'_>]) {
        self.encoded = std::cell::OnceCell::new();
        self.summary = s.to_owned();
        // Entries are keyed by remote name: duplicates collapse and the last one wins.
        self.connections = ConnectionList::from_refs(conns);
    }

    /// The gossiped connection list of this record, in name order.
    pub fn connection_summaries(&self) -> Vec<ConnectionSummary> {
        self.connections
            .iter()
            .map(|c| ConnectionSummary {
                name: c.name,
                remote_tcp_addr: c.addr.to_bytes(),
                outbound: c.outbound,
                established: c.established,
            })
            .collect()
    }

    /// Whether this is a placeholder (never described by its owner).
    pub fn is_placeholder(&self) -> bool {
        self.summary.uid == 0
    }

    /// The number of local references.
    pub fn local_refs(&self) -> u32 {
        self.local_refs
    }

    /// Whether a received record beats this one: higher version, then higher UID, then
    /// having a short id where this has none.
    fn is_beaten_by(&self, s: &SummaryRef<'_>) -> bool {
        self.beaten_by(s.version, s.uid, s.short_id.is_some())
    }

    /// Whether this record's growth budget lets its version rise to `version` at `now`
    /// (always for a placeholder or a handshake's candidate: nothing to rise from).
    pub fn may_rise_to(&self, version: u64, now: Instant) -> bool {
        let v = self.summary.version;
        v == 0 || version.saturating_sub(v) <= self.growth.available(now)
    }

    /// Whether a record known by its version, UID and whether it has a short id beats
    /// this one (by `supersedes`).
    pub fn beaten_by(&self, version: u64, uid: u64, has_short_id: bool) -> bool {
        let me = &self.summary;
        supersedes((version, uid, has_short_id), (me.version, me.uid, me.short_id.is_some()))
    }
}

/// Whether a record (version, UID, has a short id) supersedes another: higher version,
/// then higher UID, then having a short id where the other has none.
pub fn supersedes(new: (u64, u64, bool), old: (u64, u64, bool)) -> bool {
    let ((v, u, s), (ov, ou, os)) = (new, old);
    v > ov || (v == ov && u > ou) || (v == ov && u == ou && s && !os)
}

impl Peer {}

/// What applying an update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Every name that had a record in the update.
    pub received: BTreeSet<PeerName>,
    /// Names counted as new information (new or improved records).
    pub improved: BTreeSet<PeerName>,
    /// A record described another incarnation of us with a version at least ours (or
    /// ours with a higher one); our version has been raised past it, or as far as its
    /// growth budget allows.
    pub bumped_self: bool,
    /// Records not taken because their version rose further than the record's growth
    /// budget allows, and claims about us that raised our version less than they asked.
    pub version_jumps_refused: u64,
    /// A lower-named peer now claims our short id.
    pub short_id_displaced: bool,
    /// Names that entered the table (new records and placeholders).
    pub added: BTreeSet<PeerName>,
    /// The update would have grown the table to this many entries, beyond its bound:
    /// nothing of it was applied.
    pub table_full: Option<usize>,
}

/// A short id's claimants: the principal is always the lowest name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortIdEntry {
    /// The lowest-named claimant; `None` once the last claimant left.
    pub principal: Option<PeerName>,
    /// The other claimants.
    pub others: BTreeSet<PeerName>,
}

/// Short id → claimants. An entry whose last claimant left is kept, empty, so a later
/// re-use is seen as a change of principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortIdIndex {
    entries: BTreeMap<u16, ShortIdEntry>,
    /// Some id's principal changed since [`ShortIdIndex::take_invalidated`].
    invalidated: bool,
}

/// Effect of a change to the short-id index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexChange {
    /// The principal of the id changed in a way that invalidates caches.
    pub invalidated: bool,
    /// The principal that a lower name displaced.
    pub displaced: Option<PeerName>,
}

impl ShortIdIndex {
    /// The entry of `id`.
    pub fn get(&self, id: u16) -> Option<&ShortIdEntry> {
        self.entries.get(&id)
    }

    /// The principal of `id`.
    pub fn principal(&self, id: u16) -> Option<PeerName> {
        self.entries.get(&id).and_then(|e| e.principal)
    }

    /// Whether some id's principal changed (Go's short-id invalidation) since the last
    /// call.
    pub fn take_invalidated(&mut self) -> bool {
        std::mem::take(&mut self.invalidated)
    }

    /// Adds `name` as a claimant of `id`.
    pub fn add(&mut self, name: PeerName, id: u16) -> IndexChange {
        let change = self.add_claimant(name, id);
        self.invalidated |= change.invalidated;
        change
    }

    fn add_claimant(&mut self, name: PeerName, id: u16) -> IndexChange {
        match self.entries.get_mut(&id) {
            None => {
                self.entries.insert(id, ShortIdEntry { principal: Some(name), others: BTreeSet::new() });
                IndexChange::default()
            }
            Some(e) => match e.principal {
                None => {
                    e.principal = Some(name);
                    IndexChange { invalidated: true, displaced: None }
                }
                Some(p) if p == name => IndexChange::default(),
                Some(p) if name < p => {
                    e.others.insert(p);
                    e.principal = Some(name);
                    IndexChange { invalidated: true, displaced: Some(p) }
                }
                Some(_) => {
                    e.others.insert(name);
                    IndexChange::default()
                }
            },
        }
    }

    /// Removes `name` as a claimant of `id`.
    pub fn remove(&mut self, name: PeerName, id: u16) -> IndexChange {
        let Some(e) = self.entries.get_mut(&id) else { return IndexChange::default() };
        if e.principal == Some(name) {
            e.principal = e.others.pop_first();
            self.invalidated |= e.principal.is_some();
            IndexChange { invalidated: e.principal.is_some(), displaced: None }
        } else {
            e.others.remove(&name);
            IndexChange::default()
        }
    }

    /// Every id with a principal, in id order.
    pub fn claimed(&self) -> impl Iterator<Item = (u16, PeerName)> + '_ {
        self.entries.iter().filter_map(|(id, e)| e.principal.map(|p| (*id, p)))
    }
}

/// The peers table.
#[derive(Clone, Debug)]
pub struct Peers {
    ours: PeerName,
    table: BTreeMap<PeerName, Peer>,
    short_ids: ShortIdIndex,
    /// Version 3's digest of the table, computed on first use after a change.
    digest: std::cell::OnceCell<crate::sync::TableDigest>,
    /// Counts changes to the records (for observers that recompute only on change).
    generation: u64,
    /// Names whose records changed, appeared or went since [`Peers::take_changes`].
    changes: BTreeSet<PeerName>,
    /// Most entries (records and placeholders) a received update may grow the table to.
    max_peers: usize,
}

impl Peers {
    /// A table holding only our own record.
    pub fn new(ours: PeerName, nickname: Bytes, uid: u64, short_id: u16) -> Peers {
        let mut me = Peer::candidate(ours, nickname, uid, Some(short_id));
        me.local_refs = 1; // permanent: we are never collected
        let mut short_ids = ShortIdIndex::default();
        short_ids.add(ours, short_id);
        let mut table = BTreeMap::new();
        table.insert(ours, me);
        Peers {
            ours,
            table,
            short_ids,
            digest: std::cell::OnceCell::new(),
            generation: 0,
            changes: BTreeSet::from([ours]),
            max_peers: usize::MAX,
        }
    }

    /// Whether the short-id mapping changed since the last call: some short id now names
    /// another peer than before.
    pub fn take_short_ids_invalidated(&mut self) -> bool {
        self.short_ids.take_invalidated()
    }

    /// The peer a short id names (the lowest-named of its claimants), if any.
    pub fn by_short_id(&self, id: u16) -> Option<PeerName> {
        self.short_ids.principal(id)
    }

    /// Bounds how many entries (records and placeholders) a received update may grow the
    /// table to ([`crate::config::RecordLimits::max_peers`]); unbounded by default.
    pub fn set_max_peers(&mut self, max: usize) {
        self.max_peers = max;
    }

    /// Our name.
    pub fn our_name(&self) -> PeerName {
        self.ours
    }

    /// Our record.
    pub fn ours(&self) -> &Peer {
        &self.table[&self.ours]
    }

    /// Our short id. Our record is given one at creation and only ever moved to another,
    /// so unlike a remote's it is never absent.
    pub fn our_short_id(&self) -> u16 {
        self.ours().summary.short_id.expect("our record always has a short id")
    }

    /// Records changed, were added or removed: the digest is stale.
    fn changed(&mut self, names: impl IntoIterator<Item = PeerName>) {
        self.digest.take();
        self.generation += 1;
        self.changes.extend(names);
    }

    /// The names whose records changed, appeared or went since the last call (all of
    /// them, the first time), for observers that update what they derive from the table
    /// record by record.
    pub fn take_changes(&mut self) -> BTreeSet<PeerName> {
        std::mem::take(&mut self.changes)
    }

    /// A number that grows with every change to the records (ours included), and only
    /// then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The table's digest for version 3 synchronisation (docs/protocol-v3.md §12).
    pub fn digest(&self) -> &crate::sync::TableDigest {
        self.digest.get_or_init(|| crate::sync::TableDigest::build(self.table.values()))
    }

    fn ours_mut(&mut self) -> &mut Peer {
        self.changed([self.ours]);
        let me = self.table.get_mut(&self.ours).expect("our record is permanent");
        me.encoded = std::cell::OnceCell::new();
        me
    }

    /// A record by name.
    pub fn get(&self, name: &PeerName) -> Option<&Peer> {
        self.table.get(name)
    }

    /// Whether `name` is in the table.
    pub fn contains(&self, name: &PeerName) -> bool {
        self.table.contains_key(name)
    }

    /// All records in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.table.values()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Always false: our own record is permanent.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The short-id index.
    pub fn short_ids(&self) -> &ShortIdIndex {
        &self.short_ids
    }

    /// Increments our version (a local change).
    pub fn bump_our_version(&mut self) {
        let me = self.ours_mut();
        me.summary.version = me.summary.version.saturating_add(1);
    }

    /// Records a registered connection of ours (or replaces its entry).
    pub fn set_our_connection(&mut self, remote: PeerName, conn: RemoteConnection) {
        self.ours_mut().connections.insert(remote, conn);
    }

    /// Marks our connection to `remote` as established; false if there is none.
    pub fn set_our_connection_established(&mut self, remote: PeerName) -> bool {
        self.ours_mut().connections.set_established(&remote)
    }

    /// Removes our connection to `remote`.
    pub fn remove_our_connection(&mut self, remote: PeerName) -> bool {
        self.ours_mut().connections.remove(&remote)
    }

    /// Binds a connection to the record of `candidate.name`, inserting the candidate if
    /// the name is unknown and `accept_new` is set. The record's reference count goes up.
    /// Returns the UID stored in the table (which may differ from the candidate's: a
    /// restarted peer) and whether our short id was displaced; `None` if the name is
    /// unknown and new peers are not accepted.
    pub fn bind(&mut self, candidate: Peer, accept_new: bool) -> Option<(u64, IndexChange)> {
        let name = candidate.summary.name;
        let mut change = IndexChange::default();
        if !self.table.contains_key(&name) {
            if !accept_new {
                return None;
            }
            if let Some(id) = candidate.summary.short_id {
                change = self.short_ids.add(name, id);
            }
            self.changed([name]);
            self.table.insert(name, candidate);
        }
        let rec = self.table.get_mut(&name)?;
        rec.local_refs = rec.local_refs.saturating_add(1);
        Some((rec.summary.uid, change))
    }

    /// Releases a reference taken by [`Peers::bind`].
    pub fn release(&mut self, name: PeerName) {
        if let Some(rec) = self.table.get_mut(&name) {
            rec.local_refs = rec.local_refs.saturating_sub(1);
        }
    }

    /// Applies owned records (see [`Peers::apply`]).
    pub fn apply_records(&mut self, records: &[PeerRecord], now: Instant) -> Applied {
        let refs: Vec<RecordRef<'_>> = records.iter().map(PeerRecord::as_ref).collect();
        self.apply(&refs, now)
    }

    /// Whether a received record summarised by `s` could change our table: it is not
    /// about us, and it is new or beats our copy. Only such records need their
    /// connection list decoded.
    pub fn wants(&self, s: &SummaryRef<'_>) -> bool {
        s.name != self.ours && self.table.get(&s.name).is_none_or(|p| p.is_beaten_by(s))
    }

    /// Applies a received update (docs/protocol-v2.md §17.3). Only what is kept is copied.
    /// Records decoded `skipped` (see [`Peers::wants`]) count as received and may bump
    /// our version, but are never adopted and create no placeholders.
    pub fn apply(&mut self, records: &[RecordRef<'_>], now: Instant) -> Applied {
        let mut out = Applied::default();
        // Step 2: records for unknown names are new; with duplicates the last copy wins.
        let mut new_index: BTreeMap<PeerName, usize> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            out.received.insert(r.summary.name);
            if !r.skipped && !self.table.contains_key(&r.summary.name) {
                new_index.insert(r.summary.name, i);
            }
        }
        // Step 3: connection targets neither known nor new become placeholders.
        let mut placeholders = BTreeSet::new();
        for r in records {
            for c in &r.connections {
                if !self.table.contains_key(&c.name) && !new_index.contains_key(&c.name) {
                    placeholders.insert(c.name);
                }
            }
        }
        // Ours: an update that would take the table past its bound is refused whole.
        let entries = self.table.len() + new_index.len() + placeholders.len();
        if entries > self.max_peers {
            return Applied { table_full: Some(entries), ..Applied::default() };
        }
        // Step 4: insert new records and placeholders, and index their short ids.
        for (name, &i) in &new_index {
            let rec = Peer::from_record(&records[i]);
            if let Some(id) = rec.summary.short_id {
                let ch = self.short_ids.add(*name, id);
                out.short_id_displaced |= ch.displaced == Some(self.ours);
            }
            self.table.insert(*name, rec);
            out.added.insert(*name);
        }
        for name in placeholders {
            self.table.insert(name, Peer::placeholder(name));
            out.added.insert(name);
        }
        // Step 5: apply each record in order.
        for (i, r) in records.iter().enumerate() {
            let s = &r.summary;
            if s.name == self.ours {
                self.claim_about_us(s, now, &mut out);
                continue;
            }
            if new_index.get(&s.name) == Some(&i) {
                out.improved.insert(s.name);
                continue;
            }
            let Some(existing) = self.table.get_mut(&s.name) else { continue };
            if r.skipped || !existing.is_beaten_by(s) {
                continue;
            }
            if !existing.may_rise_to(s.version, now) {
                out.version_jumps_refused += 1;
                continue;
            }
            if existing.summary.version > 0 {
                // (A first description, of a placeholder or a candidate, leaves it full.)
                existing.growth.spend(s.version - existing.summary.version, now);
            }
            let old_sid = existing.summary.short_id;
            existing.adopt(s, &r.connections);
            let new_sid = existing.summary.short_id;
            out.improved.insert(s.name);
            if old_sid != new_sid {
                if let Some(id) = old_sid {
                    self.short_ids.remove(s.name, id);
                }
                if let Some(id) = new_sid {
                    let ch = self.short_ids.add(s.name, id);
                    out.short_id_displaced |= ch.displaced == Some(self.ours);
                }
            }
        }
        if !out.improved.is_empty() || !out.added.is_empty() {
            self.changed(out.improved.iter().chain(&out.added).copied().collect::<Vec<_>>());
        }
        out
    }

    /// Whether a record claiming our name with this UID and version moves our version
    /// past it: another incarnation (or a forgery) at a version at least ours, or our
    /// own UID at a higher version (only a forgery).
    pub fn claim_moves_us(&self, uid: u64, version: u64) -> bool {
        let me = &self.ours().summary;
        if uid == me.uid { version > me.version } else { version >= me.version }
    }

    /// A received record claims our name (docs/protocol-v2.md §17.3 step 5). Another
    /// incarnation of us (or a forgery) at a version at least ours, or our own UID at a
    /// higher version (only a forgery), raises our version past it, so that our next
    /// record wins again; by no more than our growth budget, so that no claim can push
    /// us to where our own updates stop winning.
    fn claim_about_us(&mut self, s: &SummaryRef<'_>, now: Instant, out: &mut Applied) {
        if !self.claim_moves_us(s.uid, s.version) {
            return;
        }
        let me = self.ours_mut();
        let v = me.summary.version;
        let wanted = s.version.saturating_add(1) - v;
        let rise = wanted.min(me.growth.available(now));
        if rise < wanted {
            out.version_jumps_refused += 1;
        }
        if rise > 0 {
            me.growth.spend(rise, now);
            me.summary.version = v + rise;
            out.bumped_self = true;
        }
    }

    /// Names reachable from us over every reported connection (directed, established or
    /// not), ourselves included.
    pub fn reachable(&self) -> BTreeSet<PeerName> {
        let records: Vec<&Peer> = self.table.values().collect();
        self.reached(&records)
            .into_iter()
            .zip(&records)
            .filter(|(r, _)| *r)
            .map(|(_, p)| p.summary.name)
            .collect()
    }

    /// Per record of `records` (the table in name order), whether it is reachable from
    /// us: a walk over positions, each connection found by binary search in the
    /// contiguous names rather than looked up in the map (a thousand records of 64).
    fn reached(&self, records: &[&Peer]) -> Vec<bool> {
        let position = |n: &PeerName| records.binary_search_by_key(n, |p| p.summary.name).ok();
        let mut seen = vec![false; records.len()];
        let mut stack: Vec<usize> = position(&self.ours).into_iter().collect();
        for &i in &stack {
            seen[i] = true;
        }
        while let Some(i) = stack.pop() {
            for r in records[i].connections.names() {
                if let Some(j) = position(&r).filter(|j| !seen[*j]) {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen
    }

    /// Garbage collection (docs/protocol-v2.md §17.6): removes every unreachable record that has
    /// no local reference. Returns the removed records, in name order.
    pub fn garbage_collect(&mut self) -> Vec<Peer> {
        let records: Vec<&Peer> = self.table.values().collect();
        let reached = self.reached(&records);
        let doomed: Vec<PeerName> = records
            .iter()
            .zip(reached)
            .filter(|(p, r)| p.local_refs == 0 && !r)
            .map(|(p, _)| p.summary.name)
            .collect();
        let mut removed = Vec::with_capacity(doomed.len());
        if !doomed.is_empty() {
            self.changed(doomed.iter().copied());
        }
        for name in &doomed {
            if let Some(p) = self.table.remove(name) {
                if let Some(id) = p.summary.short_id {
                    self.short_ids.remove(p.summary.name, id);
                }
                removed.push(p);
            }
        }
        removed
    }

    /// Whether we are the principal of our own short id.
    pub fn own_short_id_held(&self) -> bool {
        self.short_ids.principal(self.our_short_id()) == Some(self.ours)
    }

    /// Picks a new short id for us if one is free (docs/protocol-v2.md §17.7): up to ten random
    /// picks, then a uniform choice among the free ids. Bumps our version on success.
    pub fn reassign_short_id(&mut self, mut random: impl FnMut(u32) -> u32) -> bool {
        let free = |idx: &ShortIdIndex, id: u16| idx.principal(id).is_none();
        let mut choice = None;
        for _ in 0..SHORT_ID_RANDOM_PICKS {
            let id = random(u32::from(SHORT_ID_SPACE)) as u16;
            if free(&self.short_ids, id) {
                choice = Some(id);
                break;
            }
        }
        if choice.is_none() {
            let free_ids: Vec<u16> = (0..SHORT_ID_SPACE).filter(|id| free(&self.short_ids, *id)).collect();
            if !free_ids.is_empty() {
                choice = Some(free_ids[random(free_ids.len() as u32) as usize]);
            }
        }
        let Some(id) = choice else { return false };
        self.short_ids.remove(self.ours, self.our_short_id());
        self.short_ids.add(self.ours, id);
        let me = self.ours_mut();
        me.summary.short_id = Some(id);
        me.summary.version = me.summary.version.saturating_add(1);
        true
    }

    /// The full topology, or the records of `names` that still exist, as wire records.
    pub fn records<'a>(&'a self, names: impl IntoIterator<Item = &'a PeerName>) -> Vec<PeerRecord> {
        names
            .into_iter()
            .filter_map(|n| self.table.get(n))
            .map(|p| PeerRecord { summary: p.summary.clone(), connections: p.connection_summaries() })
            .collect()
    }

    /// Every name in the table.
    pub fn names(&self) -> impl Iterator<Item = &PeerName> {
        self.table.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    fn rec(name: u64, uid: u64, version: u64, conns: &[u64]) -> PeerRecord {
        PeerRecord {
            summary: PeerSummary {
                name: n(name),
                nickname: Bytes::from(format!("p{name}")),
                uid,
                version,
                short_id: Some(name as u16),
            },
            connections: conns
                .iter()
                .map(|c| ConnectionSummary {
                    name: n(*c),
                    remote_tcp_addr: Bytes::from_static(b"x"),
                    outbound: true,
                    established: true,
                })
                .collect(),
        }
    }

    fn table() -> Peers {
        Peers::new(n(1), Bytes::from_static(b"me"), 100, 1)
    }

    #[test]
    fn new_records_placeholders_and_comparison() {
        let mut p = table();
        let a = p.apply_records(&[rec(2, 20, 3, &[1, 9])], Instant::ZERO);
        assert_eq!(a.improved, [n(2)].into());
        assert_eq!(a.added, [n(2), n(9)].into());
        assert!(p.get(&n(9)).unwrap().is_placeholder());
        // Same version and uid: nothing new, connection list untouched.
        let a = p.apply_records(&[rec(2, 20, 3, &[])], Instant::ZERO);
        assert!(a.improved.is_empty());
        assert_eq!(p.get(&n(2)).unwrap().connections.len(), 2);
        // Higher version wins and replaces the connection list wholesale.
        let a = p.apply_records(&[rec(2, 20, 4, &[3])], Instant::ZERO);
        assert_eq!(a.improved, [n(2)].into());
        assert_eq!(p.get(&n(2)).unwrap().connections.names().collect::<Vec<_>>(), [n(3)]);
        // Same version, higher UID wins; lower UID loses.
        assert!(p.apply_records(&[rec(2, 19, 4, &[])], Instant::ZERO).improved.is_empty());
        assert_eq!(p.apply_records(&[rec(2, 21, 4, &[])], Instant::ZERO).improved, [n(2)].into());
        // Any real record beats a placeholder.
        assert_eq!(p.apply_records(&[rec(9, 1, 0, &[])], Instant::ZERO).improved, [n(9)].into());
    }

    #[test]
    fn has_short_id_breaks_the_last_tie() {
        let mut p = table();
        let mut r = rec(2, 20, 3, &[]);
        r.summary.short_id = None;
        p.apply_records(&[r.clone()], Instant::ZERO);
        assert!(p.apply_records(&[r.clone()], Instant::ZERO).improved.is_empty());
        r.summary.short_id = Some(2);
        assert_eq!(p.apply_records(&[r.clone()], Instant::ZERO).improved, [n(2)].into());
        // ... but losing the short id at the same version is not an improvement.
        r.summary.short_id = None;
        assert!(p.apply_records(&[r], Instant::ZERO).improved.is_empty());
        assert_eq!(p.get(&n(2)).unwrap().summary.short_id, Some(2));
    }

    #[test]
    fn records_about_us() {
        let mut p = table();
        p.bump_our_version();
        p.bump_our_version(); // version 2
        // Same UID at a version up to ours: ignored.
        let a = p.apply_records(&[rec(1, 100, 2, &[])], Instant::ZERO);
        assert!(!a.bumped_self && a.improved.is_empty());
        assert_eq!(p.ours().summary.version, 2);
        // An older incarnation with a lower version: ignored.
        assert!(!p.apply_records(&[rec(1, 55, 1, &[])], Instant::ZERO).bumped_self);
        // An older incarnation with version >= ours: we bump beyond it.
        let a = p.apply_records(&[rec(1, 55, 2, &[])], Instant::ZERO);
        assert!(a.bumped_self && a.improved.is_empty() && a.received.contains(&n(1)));
        assert_eq!(p.ours().summary.version, 3);
        assert_eq!(p.ours().summary.uid, 100, "nothing is adopted from a record about us");
        // Our own UID at a higher version can only be forged: we still move past it, so
        // that our next record beats the forgery wherever it was taken.
        let a = p.apply_records(&[rec(1, 100, 10, &[])], Instant::ZERO);
        assert!(a.bumped_self && a.improved.is_empty());
        assert_eq!(p.ours().summary.version, 11);
    }

    #[test]
    fn a_forged_claim_cannot_push_our_version_out_of_reach() {
        use crate::version_growth::{VERSION_BURST, VERSION_REFILL_PER_SEC};
        let mut p = table();
        let t = Instant::from_secs(10);
        // A forgery near the top of the range moves us by the burst, no further.
        let a = p.apply_records(&[rec(1, 666, u64::MAX - 1, &[])], t);
        assert!(a.bumped_self);
        assert_eq!(a.version_jumps_refused, 1);
        assert_eq!(p.ours().summary.version, VERSION_BURST);
        // Repeating it gains nothing at once, and a second later only the refill.
        let a = p.apply_records(&[rec(1, 667, u64::MAX, &[])], t);
        assert!(!a.bumped_self && a.version_jumps_refused == 1);
        p.apply_records(&[rec(1, 668, u64::MAX, &[])], t + std::time::Duration::from_secs(1));
        assert_eq!(p.ours().summary.version, VERSION_BURST + VERSION_REFILL_PER_SEC);
        // Our own changes still raise our version, and never stop doing so.
        p.bump_our_version();
        assert_eq!(p.ours().summary.version, VERSION_BURST + VERSION_REFILL_PER_SEC + 1);
    }

    #[test]
    fn a_restarted_peer_overtakes_its_old_incarnation_at_once() {
        // The old incarnation lived long: a billion changes.
        let old = 1_000_000_000;
        let mut p = table();
        let a = p.apply_records(&[rec(1, 55, old, &[])], Instant::from_secs(1));
        assert!(a.bumped_self && a.version_jumps_refused == 0);
        assert_eq!(p.ours().summary.version, old + 1);
        // Elsewhere, the restarted peer's record replaces the old one by a small step.
        let mut q = table();
        q.apply_records(&[rec(2, 20, old, &[])], Instant::from_secs(1));
        let a = q.apply_records(&[rec(2, 21, old + 1, &[])], Instant::from_secs(2));
        assert_eq!(a.improved, [n(2)].into());
        assert_eq!(q.get(&n(2)).unwrap().summary.uid, 21);
    }

    #[test]
    fn a_record_whose_version_leaps_beyond_its_budget_is_not_taken() {
        use crate::version_growth::VERSION_BURST;
        let mut p = table();
        let t = Instant::from_secs(5);
        // A first sight has nothing to rise from: taken whatever its version.
        p.apply_records(&[rec(2, 20, 7, &[])], t);
        // A leap past the burst is refused and leaves the record as it was.
        let a = p.apply_records(&[rec(2, 20, 7 + VERSION_BURST + 1, &[3])], t);
        assert!(a.improved.is_empty() && a.version_jumps_refused == 1);
        assert_eq!(p.get(&n(2)).unwrap().summary.version, 7);
        assert!(p.get(&n(2)).unwrap().may_rise_to(7 + VERSION_BURST, t));
        // Honest steps are taken, and spend the budget.
        let a = p.apply_records(&[rec(2, 20, 7 + VERSION_BURST, &[])], t);
        assert_eq!(a.improved, [n(2)].into());
        assert!(!p.get(&n(2)).unwrap().may_rise_to(7 + VERSION_BURST + 1, t));
        assert!(
            p.get(&n(2)).unwrap().may_rise_to(7 + VERSION_BURST + 1, t + std::time::Duration::from_millis(1))
        );
    }

    #[test]
    fn duplicate_names_in_one_update() {
        let mut p = table();
        // The last copy becomes the record; the earlier copy is compared against it.
        // [v5, v4]: v4 is inserted, then v5 beats it.
        let a = p.apply_records(&[rec(2, 20, 5, &[3]), rec(2, 20, 4, &[4])], Instant::ZERO);
        assert_eq!(p.get(&n(2)).unwrap().summary.version, 5);
        assert!(p.get(&n(2)).unwrap().connections.contains(&n(3)));
        assert_eq!(a.improved, [n(2)].into());
        // [v3, v4]: v4 is inserted, and v3 loses against it.
        let mut p = table();
        p.apply_records(&[rec(2, 20, 3, &[3]), rec(2, 20, 4, &[4])], Instant::ZERO);
        assert_eq!(p.get(&n(2)).unwrap().summary.version, 4);
        assert!(p.get(&n(2)).unwrap().connections.contains(&n(4)));
    }

    #[test]
    fn gc_keeps_referenced_and_reachable() {
        let mut p = table();
        p.set_our_connection(
            n(2),
            RemoteConnection { addr: Bytes::new(), outbound: true, established: true },
        );
        p.apply_records(&[rec(2, 20, 1, &[1, 3]), rec(3, 30, 1, &[2]), rec(4, 40, 1, &[3])], Instant::ZERO);
        // 4 is not reachable from us (3 does not report 4).
        assert_eq!(p.garbage_collect().iter().map(|r| r.summary.name).collect::<Vec<_>>(), [n(4)]);
        // Dropping one of two paths to 3 keeps it.
        p.set_our_connection(
            n(3),
            RemoteConnection { addr: Bytes::new(), outbound: true, established: true },
        );
        p.apply_records(&[rec(2, 20, 2, &[1])], Instant::ZERO);
        assert!(p.garbage_collect().is_empty());
        // Dropping the last path collects exactly 3, unless referenced.
        p.remove_our_connection(n(3));
        p.bind(Peer::placeholder(n(3)), false).unwrap();
        assert!(p.garbage_collect().is_empty());
        p.release(n(3));
        assert_eq!(p.garbage_collect().iter().map(|r| r.summary.name).collect::<Vec<_>>(), [n(3)]);
        assert!(p.contains(&n(2)) && p.contains(&n(1)));
    }

    #[test]
    fn short_id_invalidation_sequence() {
        let mut idx = ShortIdIndex::default();
        assert!(!idx.add(n(5), 7).invalidated, "first use");
        assert!(!idx.add(n(6), 7).invalidated, "higher-named second claimant");
        let ch = idx.add(n(4), 7);
        assert!(ch.invalidated && ch.displaced == Some(n(5)), "lower-named claimant");
        assert!(!idx.remove(n(6), 7).invalidated, "removing a secondary");
        assert!(idx.remove(n(4), 7).invalidated, "removing the principal while others remain");
        assert_eq!(idx.principal(7), Some(n(5)));
        assert!(!idx.remove(n(5), 7).invalidated, "removing the last claimant");
        assert_eq!(idx.get(7), Some(&ShortIdEntry::default()));
        assert!(idx.add(n(9), 7).invalidated, "re-using an emptied id");
        assert!(idx.take_invalidated(), "the changes are remembered until taken");
        assert!(!idx.take_invalidated());
        assert!(!idx.add(n(10), 7).invalidated);
        assert!(!idx.take_invalidated(), "a secondary claimant changes no mapping");
    }

    #[test]
    fn short_id_reassignment() {
        let us = 0xffff_ffff;
        let mut p = Peers::new(n(us), Bytes::new(), 1, 5);
        // Few ids taken: always succeeds, and we become principal of the new id.
        let mut seq = [5u32, 5, 6].into_iter().chain(std::iter::repeat(0));
        assert!(p.reassign_short_id(|_| seq.next().unwrap()));
        assert_eq!(p.ours().summary.short_id, Some(6));
        assert!(p.own_short_id_held());
        assert_eq!(p.ours().summary.version, 1);
        // Every id taken by lower names: fails and keeps our id.
        let recs: Vec<PeerRecord> = (0..4096u64)
            .map(|i| {
                let mut r = rec(i + 1, 1, 1, &[]);
                r.summary.short_id = Some(i as u16);
                r
            })
            .collect();
        let a = p.apply_records(&recs, Instant::ZERO);
        assert!(a.short_id_displaced);
        assert!(!p.reassign_short_id(|m| m - 1));
        assert_eq!(p.ours().summary.short_id, Some(6));
        // GC frees every id but the one of our displacer (7 holds id 6 and stays
        // reachable): the deferred reassignment now succeeds.
        p.set_our_connection(
            n(7),
            RemoteConnection { addr: Bytes::new(), outbound: true, established: true },
        );
        assert_eq!(p.garbage_collect().len(), 4095);
        assert!(!p.own_short_id_held());
        assert!(p.reassign_short_id(|m| m - 1));
        assert!(p.own_short_id_held());
        assert_ne!(p.ours().summary.short_id, Some(6));
    }

    #[test]
    fn index_principal_is_lowest_claimant() {
        let mut p = table();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut recs = Vec::new();
        for i in 2..4098u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut r = rec(i, 1, 1, &[]);
            r.summary.short_id = Some((x % 4096) as u16);
            recs.push(r);
        }
        p.apply_records(&recs, Instant::ZERO);
        let mut seen = BTreeSet::new();
        for id in 0..4096u16 {
            let Some(e) = p.short_ids().get(id) else { continue };
            let claimants: BTreeSet<PeerName> =
                p.iter().filter(|q| q.summary.short_id == Some(id)).map(|q| q.summary.name).collect();
            assert_eq!(e.principal, claimants.first().copied());
            assert_eq!(e.others.len() + e.principal.iter().count(), claimants.len());
            for c in claimants {
                assert!(seen.insert(c), "indexed once");
            }
        }
        assert_eq!(seen.len(), p.len());
    }

    #[test]
    fn short_id_collision_moves_the_higher_name_and_propagates() {
        // Peers 1 and 2 both claim id 7; peer 3 watches.
        let mut p1 = Peers::new(n(1), Bytes::new(), 11, 7);
        let mut p2 = Peers::new(n(2), Bytes::new(), 22, 7);
        let mut p3 = Peers::new(n(3), Bytes::new(), 33, 9);
        let full = |p: &Peers| {
            let names: Vec<PeerName> = p.names().copied().collect();
            p.records(names.iter())
        };
        // Peer 2 hears of peer 1: it is displaced and moves.
        let a = p2.apply_records(&full(&p1), Instant::ZERO);
        assert!(a.short_id_displaced);
        let before = p2.ours().summary.version;
        assert!(p2.reassign_short_id(|m| (m - 1).min(4000)));
        assert_ne!(p2.ours().summary.short_id, Some(7));
        assert_eq!(p2.ours().summary.version, before + 1);
        // Peer 1, the lower name, keeps its id when it hears of peer 2.
        assert!(!p1.apply_records(&full(&p2), Instant::ZERO).short_id_displaced);
        assert_eq!(p1.ours().summary.short_id, Some(7));
        // Peer 3 learns the new id from peer 2's update.
        p3.apply_records(&full(&p2), Instant::ZERO);
        let seen = p3.get(&n(2)).unwrap();
        assert_eq!(
            (seen.summary.short_id, seen.summary.version),
            (p2.ours().summary.short_id, p2.ours().summary.version)
        );
    }

    #[test]
    fn a_candidate_carries_what_the_handshake_said() {
        let name = PeerName::from_u64(7).unwrap();
        let c = Peer::candidate(name, Bytes::from_static(b"seven"), 77, Some(5));
        let s = &c.summary;
        assert_eq!((s.name, s.nickname.as_ref(), s.uid, s.version), (name, &b"seven"[..], 77, 0));
        assert_eq!(s.short_id, Some(5));
        assert!(c.connections.is_empty() && !c.is_placeholder());
        let plain = Peer::candidate(name, Bytes::new(), 77, None);
        assert_eq!(plain.summary.short_id, None);
    }

    #[test]
    fn local_references_count_bindings() {
        let us = PeerName::from_u64(1).unwrap();
        let two = PeerName::from_u64(2).unwrap();
        let mut p = Peers::new(us, Bytes::new(), 1, 1);
        assert_eq!(p.ours().local_refs(), 1, "we hold ourselves");
        let candidate = || Peer::candidate(two, Bytes::new(), 22, None);
        p.bind(candidate(), true).unwrap();
        p.bind(candidate(), true).unwrap();
        assert_eq!(p.get(&two).unwrap().local_refs(), 2);
        p.release(two);
        assert_eq!(p.get(&two).unwrap().local_refs(), 1);
        assert!(p.garbage_collect().is_empty(), "a bound record is not collected");
        p.release(two);
        assert_eq!(p.get(&two).unwrap().local_refs(), 0);
        assert_eq!(p.garbage_collect().iter().map(|r| r.summary.name).collect::<Vec<_>>(), [two]);
        assert!(Peer::placeholder(two).is_placeholder());
    }

    #[test]
    fn short_id_claims_add_once_and_the_lowest_name_leads() {
        let (a, b) = (PeerName::from_u64(1).unwrap(), PeerName::from_u64(2).unwrap());
        let mut ix = ShortIdIndex::default();
        assert_eq!(ix.add(b, 5), IndexChange::default());
        assert_eq!(ix.add(b, 5), IndexChange::default(), "claiming twice changes nothing");
        assert_eq!(ix.add(a, 5), IndexChange { invalidated: true, displaced: Some(b) });
        assert_eq!(ix.add(b, 9), IndexChange::default());
        assert_eq!(ix.claimed().collect::<Vec<_>>(), [(5, a), (9, b)]);
        assert_eq!(ix.remove(a, 5), IndexChange { invalidated: true, displaced: None });
        assert_eq!(ix.remove(b, 5), IndexChange::default());
        assert_eq!(ix.claimed().collect::<Vec<_>>(), [(9, b)]);
        // A claim made twice is one claim: one removal ends it.
        assert_eq!(ix.add(b, 9), IndexChange::default());
        assert_eq!(ix.remove(b, 9), IndexChange::default());
        assert_eq!(ix.claimed().count(), 0);
    }

    #[test]
    fn our_connections_are_marked_established_only_if_we_have_them() {
        let us = PeerName::from_u64(1).unwrap();
        let two = PeerName::from_u64(2).unwrap();
        let mut p = Peers::new(us, Bytes::new(), 1, 1);
        assert!(!p.is_empty(), "our own record is always there");
        assert!(!p.set_our_connection_established(two));
        p.set_our_connection(
            two,
            RemoteConnection { addr: Bytes::new(), outbound: true, established: false },
        );
        assert!(p.set_our_connection_established(two));
        assert!(p.ours().connections.get(&two).unwrap().established);
    }

    #[test]
    fn a_lower_name_moving_onto_our_short_id_displaces_us() {
        // We are 2 with short id 5; peer 1 first claims 9, then moves to 5.
        let mut p = Peers::new(n(2), Bytes::new(), 2, 5);
        let mut one = rec(1, 11, 1, &[2]);
        one.summary.short_id = Some(9);
        let a = p.apply_records(std::slice::from_ref(&one), Instant::ZERO);
        assert!(!a.short_id_displaced);
        one.summary.version = 2;
        one.summary.short_id = Some(5);
        let a = p.apply_records(std::slice::from_ref(&one), Instant::ZERO);
        assert!(a.short_id_displaced, "{a:?}");
        assert_eq!(p.short_ids().get(5).and_then(|e| e.principal), Some(n(1)));
        assert_eq!(p.short_ids().get(9).and_then(|e| e.principal), None, "9 was released");
        // A higher name moving onto 9 and then 5 displaces nobody.
        let mut three = rec(3, 33, 1, &[2]);
        three.summary.short_id = Some(9);
        p.apply_records(std::slice::from_ref(&three), Instant::ZERO);
        three.summary.version = 2;
        three.summary.short_id = Some(5);
        assert!(!p.apply_records(std::slice::from_ref(&three), Instant::ZERO).short_id_displaced);
    }

    #[test]
    fn records_are_equal_by_content_whatever_their_cached_encoding() {
        let a = Peer::candidate(n(7), Bytes::from_static(b"seven"), 77, Some(5));
        let b = a.clone();
        let _ = a.encoded(); // fills a's cache only
        assert_eq!(a, b);
        let mut c = b.clone();
        c.summary.version = 1;
        assert_ne!(a, c);
        let mut d = b.clone();
        d.connections
            .insert(n(8), RemoteConnection { addr: Bytes::new(), outbound: true, established: true });
        assert_ne!(a, d);
    }
}
