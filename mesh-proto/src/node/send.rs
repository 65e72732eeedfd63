//! Send scheduling (docs/protocol-v2.md §19.4): what waits in the send slots is written into
//! frames only while the connection's write window has room, so a peer that stops
//! reading only ever costs one merged item per slot, and is closed when its bytes do not
//! drain within the send timeout (Go's weaveworks/mesh#125). Unicasts bypass the slots.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{Node, NodeError, Stats, TOPOLOGY_CHANNEL};
use crate::config::{MAX_QUEUED_BYTES, TOPOLOGY_CHUNK, WRITE_WINDOW};
use crate::connection::{AppendError, ConnId, Connection};
use crate::event::{CloseReason, Output};
use crate::gossip::{Erased, Slot};
use crate::name::PeerName;
use crate::sabotage::Sabotage;
use crate::time::Instant;
use crate::topology::Peers;
use crate::wire::frame::FrameError;
use crate::wire::message::{self, GossipKind};
use crate::wire::topology::UpdateEncoder;

impl Node {
    /// Frames a message straight onto the connection towards `dest`'s next hop.
    pub(super) fn send_to_hop(
        &mut self,
        dest: PeerName,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), NodeError> {
        // Unicasts use the routes as they are, possibly up to 100 ms stale, as in Go.
        let hop = self.routing.routes.next_hop(dest).ok_or(NodeError::NoRoute(dest))?;
        let id = *self.by_name.get(&hop).ok_or(NodeError::NotConnected { dest, hop })?;
        let max = self.config.max_frame_len;
        let bounded = !self.broken(Sabotage::NoCongestionLimit);
        let c = self.conns.get_mut(&id).ok_or(NodeError::NotConnected { dest, hop })?;
        if c.queued() > MAX_QUEUED_BYTES && bounded {
            return Err(NodeError::Congested(hop));
        }
        c.append_frame(max, body).map_err(|e| match e {
            AppendError::Frame(FrameError::TooLarge { len, max }) => {
                NodeError::TooLarge { len: len as usize, max }
            }
            // A sealer at its limit: the flush closes the connection and it is redialled.
            _ => NodeError::Congested(hop),
        })?;
        self.stats.frames_sent += 1;
        self.to_flush.insert(id);
        Ok(())
    }

    /// Merges `data` into `channel`'s slot on each of `conns`.
    pub(super) fn queue_channel(&mut self, channel: &[u8], conns: &[ConnId], slot: Slot, data: &Erased) {
        let Some(ch) = self.channels.get_mut(channel) else { return };
        for id in conns {
            if ch.slots().queue(id.0, slot, data) {
                self.to_flush.insert(*id);
            }
        }
    }

    /// Merges `names` into the topology slot on each of `conns`.
    pub(super) fn queue_topology(&mut self, conns: &[ConnId], slot: Slot, names: &BTreeSet<PeerName>) {
        for id in conns {
            let Some(r) = self.conns.get_mut(id).and_then(Connection::running_mut) else { continue };
            r.topology.queue(slot, names.clone(), |waiting, names| waiting.extend(names));
            self.to_flush.insert(*id);
        }
    }

    /// The complete state of every channel, down a new connection (docs/protocol-v2.md §19.6).
    /// A version 3 link starts topology synchronisation with our bucket hashes instead
    /// of the whole table (docs/protocol-v3.md §12).
    pub(super) fn queue_complete_state(&mut self, id: ConnId) {
        if self.syncs_by_digest(id) {
            self.queue_sync_buckets(id);
        } else {
            let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
            self.queue_topology(&[id], Slot::Gossip, &all);
        }
        let names: Vec<Bytes> = self.channels.keys().cloned().collect();
        for name in names {
            let Some(ch) = self.channels.get_mut(&name) else { continue };
            if let Some(state) = ch.gossip() {
                self.queue_channel(&name, &[id], Slot::Gossip, &state);
            }
        }
    }

    /// Drains send slots into frames while the write window allows, then hands the
    /// frames to the driver as one transmit.
    pub(super) fn flush(&mut self, id: ConnId, now: Instant) {
        while self.write_next_slot(id) {}
        let Some(c) = self.conns.get_mut(&id) else { return };
        let data = c.take_out(now);
        if let Some(e) = c.seal_failed.take() {
            return self.close(id, CloseReason::Crypto(e), now);
        }
        // Direct sends stop at MAX_QUEUED_BYTES and slots at the write window, so only a
        // bug could pass this; a slow reader is closed by the send timeout instead.
        if c.queued() > 2 * MAX_QUEUED_BYTES + self.config.max_frame_len {
            return self.close(id, CloseReason::SendBufferFull, now);
        }
        if let Some(data) = data {
            self.stats.bytes_sent += data.len() as u64;
            self.outputs.push_back(Output::Transmit { conn: id, data });
        }
    }

    /// Writes the next waiting slot of `id` (topology first, then channels by name) if
    /// the write window has room. False when nothing was written.
    fn write_next_slot(&mut self, id: ConnId) -> bool {
        let us = self.config.name;
        let max = self.config.max_frame_len;
        let Some(c) = self.conns.get_mut(&id) else { return false };
        if c.queued() >= WRITE_WINDOW {
            return false;
        }
        if self.write_sync(id) {
            return true;
        }
        let Some(c) = self.conns.get_mut(&id) else { return false };
        let Some(r) = c.running_mut() else { return false };
        if let Some((slot, names)) = r.topology.take() {
            let (kind, source) = slot.kind(us);
            write_topology(c, &self.peers, kind, source, &names, max, &mut self.stats);
            return true;
        }
        for (name, ch) in self.channels.iter_mut() {
            let Some((slot, msgs)) = ch.slots().take(id.0) else { continue };
            let (kind, source) = slot.kind(us);
            for m in msgs {
                match c.append_frame(max, |o| message::encode_gossip(o, kind, name, source, &m)) {
                    Ok(()) => self.stats.frames_sent += 1,
                    Err(_) => self.stats.oversize_dropped += 1,
                }
            }
            return true;
        }
        false
    }
}

/// Writes the records of `names` (those still in the table) as one or more topology
/// messages of bounded size; each is a complete update on its own.
fn write_topology(
    c: &mut Connection,
    peers: &Peers,
    kind: GossipKind,
    source: PeerName,
    names: &BTreeSet<PeerName>,
    max: usize,
    stats: &mut Stats,
) {
    // Each chunk is encoded straight into the frame: its length is known from the
    // records' cached encodings, so no payload is built apart and copied.
    let definitions = UpdateEncoder::definitions_len();
    let mut chunk: Vec<(Bytes, Bytes)> = Vec::new();
    let mut len = 0;
    let mut write = |chunk: &mut Vec<(Bytes, Bytes)>, len: &mut usize, c: &mut Connection| {
        if chunk.is_empty() {
            return;
        }
        let payload_len = definitions + *len;
        let mut encoded = false;
        let framed = c.append_frame(max, |o| {
            encoded = message::encode_gossip_with(o, kind, TOPOLOGY_CHANNEL, source, payload_len, |o| {
                let mut enc = UpdateEncoder::new();
                for (summary, list) in chunk.iter() {
                    enc.push_encoded(o, summary, list);
                }
            });
        });
        match framed {
            Ok(()) if encoded => stats.frames_sent += 1,
            _ => stats.oversize_dropped += 1,
        }
        chunk.clear();
        *len = 0;
    };
    // Version 2 links are sent whole tables again and again: keep the encodings there.
    let keep = c.running().is_none_or(|r| r.version < 3);
    let records: Vec<(Bytes, Bytes)> =
        names.iter().filter_map(|n| peers.get(n)).map(|p| p.encoding(keep)).collect();
    stats.topology_records_sent += records.len() as u64;
    // One reservation for every chunk: growing by doubling would copy a whole table
    // (2 MB at 1,000 peers) on every full-topology send.
    let total: usize = records.iter().map(|e| e.0.len() + e.1.len()).sum();
    c.out.reserve(total + (total / TOPOLOGY_CHUNK + 1) * (definitions + 128));
    for e in records {
        len += e.0.len() + e.1.len();
        chunk.push(e);
        if len >= TOPOLOGY_CHUNK {
            write(&mut chunk, &mut len, c);
        }
    }
    write(&mut chunk, &mut len, c);
}

/// The connections with something to send, flushed in the order they were first given
/// something (so a batch of inputs transmits in the order a flush per input would).
#[derive(Default)]
pub(super) struct FlushQueue {
    order: std::collections::VecDeque<ConnId>,
    members: BTreeSet<ConnId>,
}

impl FlushQueue {
    /// Queues `id` unless it is queued already.
    pub(super) fn insert(&mut self, id: ConnId) {
        if self.members.insert(id) {
            self.order.push_back(id);
        }
    }

    /// Forgets `id` (its connection is gone).
    pub(super) fn remove(&mut self, id: &ConnId) {
        if self.members.remove(id) {
            self.order.retain(|c| c != id);
        }
    }

    /// The connection queued first.
    pub(super) fn pop_first(&mut self) -> Option<ConnId> {
        let id = self.order.pop_front()?;
        self.members.remove(&id);
        Some(id)
    }
}
