//! The node's side of the overlay extension point ([`crate::overlay`]; docs/protocol-v2.md
//! §16.11): features for the handshake, preparing and confirming each connection's
//! overlay connection, handing it control messages and its deadline, and acting on what
//! it asks.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Node;
use super::status::text;
use crate::config::MAX_QUEUED_BYTES;
use crate::connection::{ConnId, Connection};
use crate::event::{CloseReason, Event, Output};
use crate::overlay::{
    MAX_OVERLAY_FEATURE_LEN, MAX_OVERLAY_FEATURES, Overlay, OverlayConnection, OverlayControl, OverlayError,
    OverlayKey, OverlayParams, RESERVED_FEATURES,
};
use crate::time::Instant;

/// What an overlay needs from a finished handshake, kept until the connection is
/// prepared.
#[derive(Default)]
pub(super) struct OverlayArrival {
    /// The remote's features map, still encoded.
    pub(super) features: Bytes,
    pub(super) key: Option<OverlayKey>,
    pub(super) version: u8,
}

impl Node {
    /// Sets the application's overlay (Go's `Overlay`; see [`crate::overlay`]), best
    /// before the first connection: it prepares the connections whose handshakes
    /// complete from now on, and its features go into the handshakes that start from now
    /// on. Without one (the default) the node behaves as Go's null overlay, byte for
    /// byte.
    pub fn set_overlay(&mut self, overlay: impl Overlay + 'static) {
        self.overlay = Some(Box::new(overlay));
    }

    /// The overlay's features for a new handshake, within the bounds
    /// [`Overlay::features`] documents.
    pub(super) fn overlay_features(&self) -> Vec<(String, String)> {
        let Some(o) = &self.overlay else { return Vec::new() };
        let mut features = o.features();
        features.retain(|(k, v)| {
            !RESERVED_FEATURES.contains(&k.as_str())
                && k.len() <= MAX_OVERLAY_FEATURE_LEN
                && v.len() <= MAX_OVERLAY_FEATURE_LEN
        });
        features.truncate(MAX_OVERLAY_FEATURES);
        features
    }

    /// Prepares the overlay connection of `id`, which is about to be registered. False
    /// if the overlay refused and the connection was closed.
    pub(super) fn prepare_overlay(&mut self, id: ConnId, arrival: OverlayArrival, now: Instant) -> bool {
        let Some(overlay) = self.overlay.as_mut() else { return true };
        let Some(c) = self.conns.get_mut(&id) else { return false };
        let trusts_remote = c.trusts_remote;
        let (addr, outbound, local_addr) = (c.addr.clone(), c.outbound, c.local_addr);
        let Some(r) = c.running_mut() else { return false };
        // As in Go, a trusted connection gives the overlay no key: it is not to encrypt.
        let untrusted = !trusts_remote || !r.remote.trusts_us;
        let params = OverlayParams {
            conn: id,
            remote: r.remote.name,
            remote_nickname: text(&r.remote.nickname),
            remote_uid: r.remote.uid,
            remote_addr: addr,
            local_addr,
            outbound,
            conn_uid: r.conn_key,
            version: arrival.version,
            key: arrival.key.filter(|_| untrusted),
            features: decode_features(&arrival.features),
        };
        match overlay.prepare(params) {
            Ok(oc) => {
                r.overlay = Some(oc);
                true
            }
            Err(e) => {
                self.stats.overlay_failures += 1;
                self.close(id, CloseReason::Overlay(e), now);
                false
            }
        }
    }

    /// Whether `id` has an overlay connection.
    pub(super) fn has_overlay_connection(&self, id: ConnId) -> bool {
        self.conns.get(&id).and_then(Connection::running).is_some_and(|r| r.overlay.is_some())
    }

    /// Calls `f` on the overlay connection of `id`, then does what it asked: sends its
    /// control messages, marks the connection established, or closes it.
    pub(super) fn run_overlay(
        &mut self,
        id: ConnId,
        now: Instant,
        f: impl FnOnce(&mut dyn OverlayConnection, &mut OverlayControl),
    ) {
        let max = self.config.max_frame_len;
        let Some(c) = self.conns.get_mut(&id) else { return };
        let room = MAX_QUEUED_BYTES.saturating_sub(c.queued());
        let Some(mut oc) = c.running_mut().and_then(|r| r.overlay.take()) else { return };
        let mut ctl = OverlayControl::new(now, room, max);
        f(&mut *oc, &mut ctl);
        let Some(c) = self.conns.get_mut(&id) else { return };
        if let Some(r) = c.running_mut() {
            r.overlay = Some(oc);
        }
        for (tag, payload) in std::mem::take(&mut ctl.sends) {
            let sent = c.append_frame(max, |o| {
                o.push(tag);
                o.extend_from_slice(&payload);
            });
            self.stats.frames_sent += u64::from(sent.is_ok());
            self.stats.overlay_messages_sent += u64::from(sent.is_ok());
        }
        self.to_flush.insert(id);
        if let Some(reason) = ctl.failed {
            self.stats.overlay_failures += 1;
            return self.close(id, CloseReason::Overlay(OverlayError::Failed(reason)), now);
        }
        if ctl.established {
            self.mark_established(id, now);
        }
    }

    /// A control message arrived on `id` (tags 1 to 3 and 7): its overlay connection's,
    /// or ignored without one, as by Go's null overlay.
    pub(super) fn on_overlay_message(&mut self, id: ConnId, tag: u8, payload: &[u8], now: Instant) {
        if self.has_overlay_connection(id) {
            self.stats.overlay_messages_received += 1;
            self.run_overlay(id, now, |oc, ctl| oc.control_message(tag, payload, ctl));
        }
    }

    /// Marks registered connection `id` established (§16.7), once: our record shows it,
    /// our version goes up, an update is scheduled, and the application is told.
    pub(super) fn mark_established(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let (addr, outbound) = (c.addr.clone(), c.outbound);
        let Some(r) = c.running_mut() else { return };
        let name = r.remote.name;
        if r.established || self.by_name.get(&name) != Some(&id) {
            return;
        }
        r.established = true;
        let nickname = text(&r.remote.nickname);
        self.peers.set_our_connection_established(name);
        self.peers.bump_our_version();
        // Routes over the link may now exist.
        self.routes_changed(now);
        self.schedule_update([], now);
        let event = Event::ConnectionEstablished { conn: id, peer: name, nickname, addr, outbound };
        self.outputs.push_back(Output::Event(event));
    }

    /// The overlay's diagnostics and each connection's attributes, for status.
    pub(super) fn overlay_diagnostics(&self) -> Option<BTreeMap<String, String>> {
        self.overlay.as_ref().map(|o| o.diagnostics())
    }

    /// Runs the overlay connection's timer of `id` if it is due.
    pub(super) fn overlay_timer(&mut self, id: ConnId, now: Instant) {
        let due = self
            .conns
            .get(&id)
            .and_then(Connection::running)
            .and_then(|r| r.overlay.as_ref())
            .and_then(|oc| oc.next_timeout())
            .is_some_and(|t| t <= now);
        if due {
            self.run_overlay(id, now, |oc, ctl| oc.handle_timeout(ctl));
        }
    }
}

/// The remote's features map as text, for [`OverlayParams::features`]: of a key sent
/// twice the last, as in `validate` (and Go, whose map keeps the last). The handshake
/// already decoded it, so it cannot fail here.
fn decode_features(encoded: &[u8]) -> BTreeMap<String, String> {
    let entries = crate::wire::features::decode_map(encoded).unwrap_or_default();
    entries.iter().map(|(k, v)| (text(k), text(v))).collect()
}
