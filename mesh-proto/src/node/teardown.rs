//! Teardown (docs/protocol-v2.md §16.9): a connection ends because we end it ([`Node::close`])
//! or because the driver reports it gone ([`Node::forget_conn`]); either way its record
//! is released, our record and routes change if it was registered, and the connector
//! learns how the attempt ended.

use super::Node;
use crate::config::REFUSAL_WINDOW;
use crate::connection::{ConnId, Connection};
use crate::connector::Termination;
use crate::event::{CloseReason, Event, Output};
use crate::sabotage::Sabotage;
use crate::time::Instant;

impl Node {
    /// Ends `id` ourselves: what this input built goes out, then a Close output.
    pub(super) fn close(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        let Some(mut conn) = self.conns.remove(&id) else { return };
        self.to_flush.remove(&id);
        // What this input built goes out before the close, as Go's concurrent handshake
        // writer does: above all our sealed features when the remote's features arrived
        // in the same read and failed (wrong password) or were refused, so the remote
        // learns why instead of seeing a bare close. A slow reader gets nothing more.
        let slow = matches!(reason, CloseReason::SendTimeout | CloseReason::SendBufferFull);
        if let Some(data) = conn.take_out(now).filter(|_| !slow) {
            self.stats.bytes_sent += data.len() as u64;
            self.outputs.push_back(Output::Transmit { conn: id, data });
        }
        self.outputs.push_back(Output::Close { conn: id });
        self.teardown(id, conn, reason, false, now);
    }

    /// The driver reports `id` gone (closed by the remote, failed, or never dialled): no
    /// Close output.
    pub(super) fn forget_conn(&mut self, id: ConnId, reason: CloseReason, now: Instant) {
        let Some(conn) = self.conns.remove(&id) else { return };
        self.to_flush.remove(&id);
        // The remote closed a connection it had just accepted: refused at its limit.
        let refused = conn
            .running()
            .is_some_and(|r| self.by_name.get(&r.remote.name) == Some(&id) && now < r.since + REFUSAL_WINDOW);
        self.teardown(id, conn, reason, refused, now);
    }

    fn teardown(
        &mut self,
        id: ConnId,
        mut conn: Connection,
        reason: CloseReason,
        refused: bool,
        now: Instant,
    ) {
        let peer = conn.running().map(|r| r.remote.name);
        if let Some(mut oc) = conn.running_mut().and_then(|r| r.overlay.take()) {
            oc.stop();
        }
        if let Some(r) = conn.running() {
            let name = r.remote.name;
            if r.bound {
                self.peers.release(name);
                // Ours: a record that only a failed handshake inserted would linger until
                // some later GC and be gossiped as a member; collect it soon.
                if self.by_name.get(&name) != Some(&id) {
                    self.schedule_gc(now);
                }
            }
            if self.by_name.get(&name) == Some(&id) {
                self.by_name.remove(&name);
                self.peers.remove_our_connection(name);
                self.peers.bump_our_version();
                // GC before the update, so we never announce peers that just became
                // unreachable.
                self.garbage_collect(now);
                self.routes_changed(now);
                self.schedule_update([], now);
            }
        }
        for ch in self.channels.values_mut() {
            ch.slots().drop_conn(id.0);
        }
        if matches!(
            reason,
            CloseReason::SendTimeout | CloseReason::SendBufferFull | CloseReason::AckTimeout(_)
        ) {
            self.stats.slow_reader_closes += 1;
        }
        if conn.outbound {
            self.report_attempt(&conn.addr, &reason, refused, now);
        }
        let attempt_only = matches!(reason, CloseReason::DialFailed(_) | CloseReason::DialTimeout(_));
        if !attempt_only && !matches!(reason, CloseReason::ConnectToSelf) {
            self.terminations += 1;
        }
        self.connector_dirty = true;
        self.outputs.push_back(Output::Event(Event::ConnectionClosed {
            conn: id,
            peer,
            addr: conn.addr,
            outbound: conn.outbound,
            reason,
        }));
    }

    /// Tells the connector how an attempt on `addr` ended, for its retry schedule.
    fn report_attempt(&mut self, addr: &str, reason: &CloseReason, refused: bool, now: Instant) {
        let failed = match reason {
            CloseReason::DialFailed(e) => Some(e.clone()),
            CloseReason::DialTimeout(_) => Some(reason.to_string()),
            _ => None,
        };
        if let Some(e) = failed {
            self.connector.attempt_failed(addr, e, now, |n| self.rng.below(n));
            return;
        }
        let how = match reason {
            CloseReason::NameCollision(_) => Termination::NameCollision,
            CloseReason::ConnectToSelf => Termination::ConnectToSelf,
            CloseReason::Closed(_) if refused => Termination::Refused,
            _ => Termination::Retry,
        };
        let how = if self.broken(Sabotage::NeverRedial) { Termination::NameCollision } else { how };
        self.connector.terminated(addr, how, reason.to_string(), now, |n| self.rng.below(n));
    }
}
