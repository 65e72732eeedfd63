//! How fast a record's version may rise (docs/protocol-v2.md §17.3, "Version growth").
//!
//! A version is a 64-bit counter that only goes up, and a record wins by having the
//! higher one; a record pushed to the top of the range can never be overtaken. Honest
//! versions rise by one per change of their peer, so each record of the table carries a
//! budget of growth: a burst far above what any honest peer accumulates and a refill
//! far above any honest rate, but slow enough that exhausting the range takes longer
//! than a century, however many records a member forges.

use crate::time::Instant;

/// The most a record's version may rise at once: 2^40, more than a peer making a change
/// every millisecond reaches in 34 years.
pub const VERSION_BURST: u64 = 1 << 40;

/// How much the budget refills per second: 2^32, so that climbing the whole 64-bit range
/// takes at least 2^32 s (136 years), whatever is forged.
pub const VERSION_REFILL_PER_SEC: u64 = 1 << 32;

/// One record's budget of version growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Growth {
    /// What was left at `at`.
    tokens: u64,
    /// When the budget was last spent.
    at: Instant,
}

/// A full budget (any later instant only refills it, and it is capped).
impl Default for Growth {
    fn default() -> Self {
        Growth { tokens: VERSION_BURST, at: Instant::ZERO }
    }
}

impl Growth {
    /// How far the version may rise at `now`.
    pub(crate) fn available(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.at).as_nanos();
        let refill = nanos * u128::from(VERSION_REFILL_PER_SEC) / 1_000_000_000;
        (u128::from(self.tokens) + refill).min(u128::from(VERSION_BURST)) as u64
    }

    /// Takes `rise` from the budget at `now` (at most what is available).
    pub(crate) fn spend(&mut self, rise: u64, now: Instant) {
        self.tokens = self.available(now).saturating_sub(rise);
        self.at = self.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bursts_then_refills_at_its_rate_and_never_beyond_the_burst() {
        let mut g = Growth::default();
        let t = Instant::from_secs(100);
        assert_eq!(g.available(t), VERSION_BURST);
        g.spend(VERSION_BURST, t);
        assert_eq!(g.available(t), 0);
        assert_eq!(g.available(t + std::time::Duration::from_secs(1)), VERSION_REFILL_PER_SEC);
        assert_eq!(g.available(t + std::time::Duration::from_millis(500)), VERSION_REFILL_PER_SEC / 2);
        assert_eq!(g.available(Instant::MAX), VERSION_BURST);
        // A clock that goes backwards refills nothing and breaks nothing.
        assert_eq!(g.available(Instant::from_secs(1)), 0);
        g.spend(5, Instant::from_secs(1));
        assert_eq!(g.available(t), 0, "time does not rewind");
    }

    #[test]
    fn climbing_the_whole_range_takes_more_than_a_century() {
        let secs = (u64::MAX - VERSION_BURST) / VERSION_REFILL_PER_SEC;
        assert!(secs > 100 * 365 * 24 * 3600, "{secs} s");
    }
}
