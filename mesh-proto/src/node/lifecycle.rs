//! A connection's life (docs/protocol-v2.md §16): its handshake, reading its frames, completing
//! the handshake (bind to a record, self check, tie-break, connection limit, register),
//! its timers, and its teardown.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use bytes::{Buf, Bytes};

use super::Node;
use super::overlay::OverlayArrival;
use crate::config::{HEARTBEAT_INTERVAL, MAX_HANDSHAKE_FRAME_LEN};
use crate::connection::{ConnId, Connection, Phase, Running};
use crate::event::{CloseReason, Event, Output};
use crate::gossip::Slot;
use crate::handshake::{Handshake, HandshakeConfig, Outcome, Progress, Role};
use crate::name::PeerName;
use crate::sabotage::Sabotage;
use crate::sealing::Sealing;
use crate::time::Instant;
use crate::topology::{Peer, RemoteConnection};
use crate::wire::frame::{FrameDecoder, FrameError, LEN_PREFIX};
use crate::wire::header::Preamble;
use crate::wire::message::{self, Message};

/// Version 3: takes the next inner frame (4-byte length, body) off a record's plaintext.
fn inner_frame(rest: &mut Bytes, max_len: usize) -> Result<Bytes, FrameError> {
    if rest.len() < LEN_PREFIX {
        return Err(FrameError::Truncated { have: rest.len(), need: LEN_PREFIX });
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge { len: len as u64, max: max_len });
    }
    if rest.len() < LEN_PREFIX + len {
        return Err(FrameError::Truncated { have: rest.len(), need: LEN_PREFIX + len });
    }
    rest.advance(LEN_PREFIX);
    Ok(rest.split_to(len))
}

/// What the steps of handshake completion need to know about the new connection.
struct Arrival {
    name: PeerName,
    conn_key: u64,
    addr: String,
    outbound: bool,
    /// The remote's incarnation.
    uid: u64,
    /// It may bind to a record we do not hold.
    accept_new: bool,
    leftover: Bytes,
    /// For the overlay, if there is one (taken when it prepares).
    overlay: Option<OverlayArrival>,
}

impl Node {
    /// Starts our side of the handshake on `id`; bytes a paced connection buffered are
    /// fed to it at once.
    pub(super) fn start_handshake(&mut self, id: ConnId, role: Role, now: Instant) {
        let Some(c) = self.conns.get(&id) else { return };
        let config = HandshakeConfig {
            role,
            name: self.config.name,
            nickname: self.config.nickname.clone(),
            uid: self.uid,
            short_id: self.peers.our_short_id(),
            trusts_remote: c.trusts_remote,
            password: self.config.password.clone(),
            // Checked by `Node::new`.
            versions: self.config.versions().unwrap_or(Preamble::OURS),
        };
        let extra = self.overlay_features();
        let extra: Vec<(&[u8], &[u8])> = extra.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        let mut h = Handshake::with_features(config, &extra, self.rng.crypto(), now);
        let Some(c) = self.conns.get_mut(&id) else { return };
        let buffered = match std::mem::replace(&mut c.phase, Phase::Paced { buffered: Vec::new() }) {
            Phase::Paced { buffered } => buffered,
            _ => Vec::new(),
        };
        if let Some(out) = h.take_output() {
            c.out.extend_from_slice(&out);
        }
        c.phase = Phase::Handshaking(Box::new(h));
        self.to_flush.insert(id);
        if !buffered.is_empty() {
            self.on_data(id, &buffered, now);
        }
    }

    /// Bytes arrived on `id`.
    pub(super) fn on_data(&mut self, id: ConnId, data: &[u8], now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        match &mut c.phase {
            Phase::Dialing { .. } => {}
            Phase::Paced { buffered } => {
                // A paced connection may only have sent its handshake so far.
                let len = buffered.len() + data.len();
                if len > MAX_HANDSHAKE_FRAME_LEN * 2 {
                    let e = FrameError::TooLarge { len: len as u64, max: MAX_HANDSHAKE_FRAME_LEN };
                    self.close(id, CloseReason::Frame(e), now);
                } else {
                    buffered.extend_from_slice(data);
                }
            }
            Phase::Handshaking(h) => {
                let r = h.handle_data(data, now);
                if let Some(out) = h.take_output() {
                    c.out.extend_from_slice(&out);
                    self.to_flush.insert(id);
                }
                match r {
                    Ok(Progress::Pending) => {}
                    Ok(Progress::Done(outcome)) => self.complete_handshake(id, *outcome, now),
                    Err(e) => self.close(id, CloseReason::Handshake(e), now),
                }
            }
            Phase::Running(r) => {
                r.frames.push(data);
                self.read_frames(id, now);
            }
        }
    }

    /// Opens and handles every complete frame `id` has buffered: in version 2 a frame is
    /// one message, in version 3 a record of inner frames, one message each.
    fn read_frames(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) else { return };
            let mut body = match r.frames.next_frame() {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => return self.close(id, CloseReason::Frame(e), now),
            };
            let records = matches!(r.session, Some(Sealing::V3(_)));
            if let Some(s) = r.session.as_mut() {
                match s.open_body(&mut body) {
                    Ok(range) => {
                        body.truncate(range.end);
                        body.advance(range.start);
                    }
                    Err(e) => return self.close(id, CloseReason::Crypto(e), now),
                }
            }
            r.receive_deadline = now + self.config.receive_timeout;
            let body = body.freeze();
            if !records {
                if !self.on_message(id, body, now) {
                    return;
                }
                continue;
            }
            let mut rest = body;
            while !rest.is_empty() {
                let message = match inner_frame(&mut rest, self.config.max_frame_len) {
                    Ok(m) => m,
                    Err(e) => return self.close(id, CloseReason::Frame(e), now),
                };
                if !self.on_message(id, message, now) {
                    return;
                }
            }
        }
    }

    /// Handles one message received on `id`; false if the connection is gone.
    fn on_message(&mut self, id: ConnId, body: Bytes, now: Instant) -> bool {
        self.stats.frames_received += 1;
        match Message::decode(&body) {
            Err(e) => {
                self.close(id, CloseReason::Message(e), now);
                return false;
            }
            Ok(Message::Gossip(g)) => self.on_gossip(id, &body, g, now),
            Ok(Message::Heartbeat) if self.syncs_by_digest(id) => {
                match message::decode_heartbeat_v3(&body[1..]) {
                    Ok(read) => self.on_heartbeat_v3(id, read),
                    Err(e) => self.close(id, CloseReason::Message(e), now),
                }
            }
            // Tags 32 to 36 synchronise topology on version 3 links; on version 2 links
            // they are unknown tags like any other.
            Ok(Message::Unknown { tag, payload }) if self.syncs_by_digest(id) => {
                if let Some(sync) = crate::wire::sync::Sync::decode(tag, payload) {
                    self.on_sync(id, sync, now);
                }
            }
            Ok(Message::Overlay { tag, payload }) => self.on_overlay_message(id, tag, payload, now),
            // Heartbeats only refresh the deadline; unknown tags and empty frames are
            // ignored, as by Go.
            Ok(_) => {}
        }
        self.conns.contains_key(&id)
    }

    /// A heartbeat arrived on version 3 link `id`, saying the remote has read `read`
    /// (modulo 256) of ours (docs/protocol-v3.md §13): those are acknowledged, and ours
    /// will acknowledge this one. Fewer than 128 are ever unacknowledged (the timeout is
    /// at most an hour), so the count's low byte says how many more were read; a count
    /// beyond what we sent acknowledges nothing.
    fn on_heartbeat_v3(&mut self, id: ConnId, read: u8) {
        let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) else { return };
        r.heartbeats_read += 1;
        let more = usize::from(read.wrapping_sub(r.heartbeats_acked as u8));
        if more <= r.unacked.len() {
            r.unacked.drain(..more);
            r.heartbeats_acked += more as u64;
        }
    }

    /// The handshake of `id` succeeded: bind, check, tie-break, admit, prepare the
    /// overlay, register.
    fn complete_handshake(&mut self, id: ConnId, outcome: Outcome, now: Instant) {
        let Some((mut arrival, candidate)) = self.enter_running(id, outcome, now) else { return };
        let Some((was_known, restarted)) = self.bind(id, &arrival, candidate, now) else { return };
        if !(self.tie_break(id, &arrival, now) && self.admit(id, &arrival, now)) {
            return;
        }
        // As in Go, the overlay prepares before registration makes the connection
        // visible to routing, and is confirmed only after it (a duplicate never is).
        let overlay = arrival.overlay.take().unwrap_or_default();
        if self.prepare_overlay(id, overlay, now) {
            self.register(id, arrival, was_known, restarted, now);
        }
    }

    /// Moves `id` into the running phase; what the next steps need, and the record the
    /// remote described.
    fn enter_running(&mut self, id: ConnId, outcome: Outcome, now: Instant) -> Option<(Arrival, Peer)> {
        let Outcome { remote, session, leftover, version, security, features, overlay_key, .. } = outcome;
        let frames = match &session {
            // A record holds up to one largest message and its prefix, and a tag.
            Some(Sealing::V3(_)) => FrameDecoder::for_records(self.config.max_frame_len),
            _ => FrameDecoder::new(self.config.max_frame_len),
        };
        let c = self.conns.get_mut(&id)?;
        let name = remote.name;
        let arrival = Arrival {
            name,
            conn_key: outcome.local_conn_id ^ remote.conn_id,
            addr: c.addr.clone(),
            outbound: c.outbound,
            uid: remote.uid,
            // A discovered peer we have collected since learning its address may answer.
            accept_new: c.accept_new_peer || c.expected_peer == Some(name),
            leftover,
            overlay: Some(OverlayArrival { features, key: overlay_key, version }),
        };
        let candidate = Peer::candidate(name, remote.nickname.clone(), remote.uid, remote.short_id);
        c.phase = Phase::Running(Box::new(Running {
            remote,
            conn_key: arrival.conn_key,
            version,
            security,
            session,
            frames,
            bound: false,
            since: now,
            heartbeat_at: now + HEARTBEAT_INTERVAL,
            receive_deadline: now + self.config.receive_timeout,
            ack_timeout: if version >= 3 { self.config.ack_timeout } else { Duration::ZERO },
            heartbeats_read: 0,
            heartbeats_acked: 0,
            unacked: VecDeque::new(),
            topology: Default::default(),
            sync: Default::default(),
            established: false,
            overlay: None,
        }));
        self.stats.handshakes += 1;
        self.stats.handshakes_v3 += u64::from(version == 3);
        if arrival.outbound {
            self.connector.answered_by(&arrival.addr, name);
        }
        Some((arrival, candidate))
    }

    /// Binds the connection to the remote's record (§16.4) and refuses ourselves and
    /// peers using our name. Whether the record existed and whether the remote restarted
    /// since it was made; `None` if the connection was closed.
    fn bind(&mut self, id: ConnId, a: &Arrival, candidate: Peer, now: Instant) -> Option<(bool, bool)> {
        let name = a.name;
        let was_known = self.peers.contains(&name);
        let Some((table_uid, change)) = self.peers.bind(candidate, a.accept_new) else {
            self.close(id, CloseReason::UnknownPeer(name), now);
            return None;
        };
        if let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) {
            r.bound = true;
        }
        if !was_known {
            self.outputs.push_back(Output::Event(Event::PeerAdded(name)));
        }
        if change.displaced == Some(self.config.name) {
            self.reassign_short_id(now);
        }
        if name == self.config.name {
            let us = a.uid == self.uid;
            let reason = if us { CloseReason::ConnectToSelf } else { CloseReason::NameCollision(name) };
            self.close(id, reason, now);
            return None;
        }
        let restarted = table_uid != a.uid;
        if restarted {
            self.stats.restarts_detected += 1;
            if self.broken(Sabotage::PanicOnRestart) {
                panic!("sabotage panic_on_restart: {name} restarted");
            }
        }
        Some((was_known, restarted))
    }

    /// Two connections to one peer (§16.6): the lower connection key wins, equal keys
    /// lose both. Whether `id` survives.
    fn tie_break(&mut self, id: ConnId, a: &Arrival, now: Instant) -> bool {
        let Some(&old) = self.by_name.get(&a.name) else { return true };
        self.stats.tie_breaks += 1;
        let old_key = self.conns.get(&old).and_then(Connection::running).map_or(u64::MAX, |r| r.conn_key);
        let dup = || CloseReason::Duplicate(a.name);
        if a.conn_key <= old_key {
            self.close(old, dup(), now);
        }
        if a.conn_key >= old_key {
            self.close(id, dup(), now);
            return false;
        }
        true
    }

    /// The connection limit (§16.6). Whether `id` is admitted; a peer refused here that
    /// dialled us from outside our part of the mesh is first sent our topology.
    fn admit(&mut self, id: ConnId, a: &Arrival, now: Instant) -> bool {
        if self.config.conn_limit == 0 || self.by_name.len() < self.config.conn_limit {
            return true;
        }
        // A peer already in our part of the mesh has our topology: refuse it plainly.
        self.ensure_routes();
        let stranger = !self.routing.routes.reachable_established(a.name);
        if !a.outbound && stranger && !self.broken(Sabotage::NoReferral) {
            self.refer(id, now);
        }
        self.close(id, CloseReason::ConnectionLimit(self.config.conn_limit), now);
        false
    }

    /// Ours (weaveworks/weave#426): before refusing a peer that dialled us at our
    /// connection limit, send it our whole topology as an ordinary topology gossip
    /// message, so it learns where else to connect instead of being locked out with only
    /// our address. Go applies it like any update; nothing on the wire is new.
    fn refer(&mut self, id: ConnId, now: Instant) {
        let all: BTreeSet<PeerName> = self.peers.names().copied().collect();
        self.queue_topology(&[id], Slot::Gossip, &all);
        self.flush(id, now);
        self.stats.referrals += 1;
    }

    /// Registers `id` as the connection to its peer (§16.6–§16.7) and announces it.
    fn register(&mut self, id: ConnId, a: Arrival, was_known: bool, restarted: bool, now: Instant) {
        let name = a.name;
        // Go decides this on routes up to 100 ms stale, so a peer that reconnects right
        // after a close can miss the full state (docs/protocol-v2.md §16.6). Ours are current,
        // and a record binding just created was reachable by no one.
        self.ensure_routes();
        let reachable = was_known && self.routing.routes.reachable_established(name);
        self.by_name.insert(name, id);
        let rc =
            RemoteConnection { addr: Bytes::from(a.addr.clone()), outbound: a.outbound, established: false };
        self.peers.set_our_connection(name, rc);
        self.peers.bump_our_version();
        if restarted || !reachable {
            self.queue_complete_state(id);
        }
        self.routes_changed(now);
        self.schedule_update([name], now);
        if a.outbound {
            self.connector.connected(&a.addr);
        }
        if self.has_overlay_connection(id) {
            // Established when the overlay connection says so (§16.11).
            self.run_overlay(id, now, |oc, ctl| oc.confirm(ctl));
        } else {
            // Null overlay: established at once (§16.7).
            self.mark_established(id, now);
        }
        let leftover = a.leftover;
        self.to_flush.insert(id);
        if !leftover.is_empty() {
            if let Some(r) = self.conns.get_mut(&id).and_then(Connection::running_mut) {
                r.frames.push(&leftover);
            }
            self.read_frames(id, now);
        }
    }

    /// The connection's own deadlines: send timeout, dial, handshake, receive, heartbeat,
    /// and on version 3 links the heartbeat acknowledgement.
    pub(super) fn conn_timers(&mut self, id: ConnId, now: Instant) {
        let send_timeout = self.config.send_timeout;
        let keep = self.broken(Sabotage::NeverCloseSlowReader);
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.oldest_unwritten().is_some_and(|t| t + send_timeout <= now) && !keep {
            return self.close(id, CloseReason::SendTimeout, now);
        }
        match &mut c.phase {
            Phase::Dialing { deadline } if *deadline <= now => {
                self.close(id, CloseReason::DialTimeout(self.config.connect_timeout), now);
            }
            Phase::Handshaking(h) => {
                if let Err(e) = h.handle_timeout(now) {
                    self.close(id, CloseReason::Handshake(e), now);
                }
            }
            Phase::Running(r) => {
                if r.receive_deadline <= now && keep {
                    r.receive_deadline = now + self.config.receive_timeout;
                } else if r.receive_deadline <= now {
                    return self.close(id, CloseReason::ReceiveTimeout, now);
                }
                let ack_timeout = r.ack_timeout;
                if r.unacked.front().is_some_and(|&sent| sent.saturating_add(ack_timeout) <= now) && !keep {
                    return self.close(id, CloseReason::AckTimeout(ack_timeout), now);
                }
                if r.heartbeat_at <= now {
                    while r.heartbeat_at <= now {
                        r.heartbeat_at += HEARTBEAT_INTERVAL;
                    }
                    let v3 = r.version >= 3;
                    let read = r.heartbeats_read as u8; // modulo 256, on purpose
                    if v3 {
                        r.unacked.push_back(now);
                    }
                    // Heartbeats go out directly, not through the send slots.
                    let sent = c.append_frame(self.config.max_frame_len, |o| {
                        if v3 {
                            message::put_heartbeat_v3(o, read);
                        } else {
                            o.push(message::TAG_HEARTBEAT);
                        }
                    });
                    self.stats.frames_sent += u64::from(sent.is_ok());
                    self.to_flush.insert(id);
                }
                self.overlay_timer(id, now);
            }
            _ => {}
        }
    }
}
