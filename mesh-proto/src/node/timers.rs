//! The node's timers: one enum, one table of deadlines.
//!
//! [`Node::poll_timeout`](super::Node::poll_timeout) is the table's earliest deadline
//! together with the per-connection deadlines (handshake, receive, heartbeat, send), which
//! each connection keeps with its state; [`Node::handle_timeout`](super::Node::handle_timeout)
//! runs the connections' timers, then the expired timers of the table in [`Timer::ORDER`].
//! The order is part of the behaviour: a route recalculation runs before the topology
//! update that needs its routes, and garbage collection before the connector re-checks.

use crate::time::Instant;

/// A node-wide timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The accept bucket has a token for the next paced connection.
    Accept,
    /// The coalesced route recalculation; relays that need routes wait for it.
    Routes,
    /// The coalesced topology update (Go's 1 s delay).
    Update,
    /// Garbage collection of unreachable records.
    Gc,
    /// The periodic gossip of topology and every channel (always armed).
    Gossip,
    /// The connector's next dial or re-check.
    Connector,
}

impl Timer {
    /// The order in which expired timers run.
    pub(crate) const ORDER: [Timer; 6] =
        [Timer::Accept, Timer::Routes, Timer::Update, Timer::Gc, Timer::Gossip, Timer::Connector];

    fn index(self) -> usize {
        self as usize
    }
}

/// The deadline of every [`Timer`], if armed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers([Option<Instant>; Timer::ORDER.len()]);

impl Timers {
    /// The deadline of `t`.
    #[cfg(test)]
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t.index()]
    }

    /// Sets (or, with `None`, disarms) `t`.
    pub(crate) fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t.index()] = at;
    }

    /// Arms `t` for `at` unless it is already armed: coalescing timers keep their first
    /// deadline, so a burst of changes is handled once.
    pub(crate) fn arm(&mut self, t: Timer, at: Instant) {
        self.0[t.index()].get_or_insert(at);
    }

    /// Arms `t` for `at` or keeps an earlier deadline.
    pub(crate) fn arm_by(&mut self, t: Timer, at: Instant) {
        let slot = &mut self.0[t.index()];
        *slot = Some(slot.map_or(at, |d| d.min(at)));
    }

    /// Disarms `t` and returns its deadline if it has passed at `now`.
    pub(crate) fn take_due(&mut self, t: Timer, now: Instant) -> Option<Instant> {
        let slot = &mut self.0[t.index()];
        let due = slot.filter(|d| *d <= now)?;
        *slot = None;
        Some(due)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_lists_every_timer_once_at_its_index() {
        for (i, t) in Timer::ORDER.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }

    #[test]
    fn arm_keeps_the_first_deadline_and_arm_by_the_earliest() {
        let (a, b) = (Instant::from_secs(1), Instant::from_secs(2));
        let mut t = Timers::default();
        t.arm(Timer::Update, b);
        t.arm(Timer::Update, a);
        assert_eq!(t.get(Timer::Update), Some(b));
        t.arm_by(Timer::Connector, b);
        t.arm_by(Timer::Connector, a);
        t.arm_by(Timer::Connector, b);
        assert_eq!(t.get(Timer::Connector), Some(a));
        assert_eq!(t.next(), Some(a));
    }

    #[test]
    fn only_a_passed_deadline_is_taken() {
        let mut t = Timers::default();
        t.set(Timer::Gc, Some(Instant::from_secs(5)));
        assert_eq!(t.take_due(Timer::Gc, Instant::from_secs(4)), None);
        assert_eq!(t.get(Timer::Gc), Some(Instant::from_secs(5)));
        assert_eq!(t.take_due(Timer::Gc, Instant::from_secs(5)), Some(Instant::from_secs(5)));
        assert_eq!(t.get(Timer::Gc), None);
        assert_eq!(t.next(), None);
    }
}
