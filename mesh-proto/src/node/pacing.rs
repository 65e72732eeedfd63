//! Accept pacing (docs/protocol-v2.md §16.2): accepted connections start their handshakes in
//! arrival order as a token bucket (20, one per 50 ms) allows, as Go's listener does.
//!
//! Ours: a connection whose dialler gave up while it waited is skipped without taking a
//! token. Go accepts it from the kernel's backlog and spends one, so after a burst of a
//! thousand dials that timed out its bucket stayed empty for minutes and nobody could
//! join.

use std::collections::VecDeque;

use super::Node;
use super::timers::Timer;
use crate::config::{ACCEPT_BURST, ACCEPT_TOKEN_INTERVAL};
use crate::connection::{ConnId, Phase};
use crate::handshake::Role;
use crate::time::Instant;

/// The accept bucket and the connections waiting for it.
#[derive(Debug)]
pub(crate) struct AcceptPacing {
    /// Time of the earliest unspent token, in signed nanoseconds so that a full bucket
    /// can be expressed even right after the clock's origin.
    next_token: i128,
    /// Accepted connections waiting for a token, oldest first.
    waiting: VecDeque<ConnId>,
    /// When the next handshake may start (the last start's token was taken).
    ready_at: Instant,
}

/// What the bucket allows next.
enum Pace {
    /// Start this connection's handshake now (its token is taken).
    Start(ConnId),
    /// The next start must wait until then.
    WaitUntil(Instant),
    /// Nobody is waiting.
    Idle,
}

impl AcceptPacing {
    pub(crate) fn new(now: Instant) -> Self {
        AcceptPacing { next_token: i128::MIN / 2, waiting: VecDeque::new(), ready_at: now }
    }

    fn push(&mut self, id: ConnId) {
        self.waiting.push_back(id);
    }

    /// The next waiting connection that may start; `waits` says whether one still waits
    /// (it may have closed meanwhile).
    fn next(&mut self, now: Instant, waits: impl Fn(ConnId) -> bool) -> Pace {
        let interval = ACCEPT_TOKEN_INTERVAL.as_nanos() as i128;
        while let Some(&id) = self.waiting.front() {
            if !waits(id) {
                self.waiting.pop_front();
                continue;
            }
            if self.ready_at > now {
                return Pace::WaitUntil(self.ready_at);
            }
            self.waiting.pop_front();
            let full = i128::from(now.as_nanos()) - interval * i128::from(ACCEPT_BURST);
            let token = self.next_token.max(full);
            self.next_token = token + interval;
            self.ready_at = Instant::from_nanos(token.clamp(0, i128::from(u64::MAX)) as u64);
            return Pace::Start(id);
        }
        Pace::Idle
    }
}

impl Node {
    /// Queues an accepted connection for its handshake.
    pub(super) fn pace(&mut self, id: ConnId, now: Instant) {
        self.pacing.push(id);
        self.pace_accepts(now);
    }

    /// Starts the handshakes the bucket allows and arms [`Timer::Accept`] for the next.
    pub(super) fn pace_accepts(&mut self, now: Instant) {
        self.timers.set(Timer::Accept, None);
        loop {
            let conns = &self.conns;
            let waits = |id| matches!(conns.get(&id).map(|c| &c.phase), Some(Phase::Paced { .. }));
            match self.pacing.next(now, waits) {
                Pace::Start(id) => self.start_handshake(id, Role::Listener, now),
                Pace::WaitUntil(at) => return self.timers.set(Timer::Accept, Some(at)),
                Pace::Idle => return,
            }
        }
    }
}
