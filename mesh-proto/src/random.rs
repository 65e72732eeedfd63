//! The node's one random generator, seeded by its driver: every random choice (UID, short
//! id, connection ids, ephemeral keys, neighbour sampling, back-off jitter) is drawn from
//! it, so a seed replays a run exactly.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded ChaCha20 generator with the draws the protocol needs.
pub(crate) struct Random(ChaCha20Rng);

impl Random {
    /// The generator for `seed`.
    pub(crate) fn from_seed(seed: [u8; 32]) -> Self {
        Random(ChaCha20Rng::from_seed(seed))
    }

    /// A 32-byte seed derived from a number, for simulations and tests.
    pub(crate) fn seed_from_u64(n: u64) -> [u8; 32] {
        let mut rng = ChaCha20Rng::seed_from_u64(n);
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        s
    }

    /// A uniform 64-bit number.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform number below `n` (0 when `n` is 0), by multiply-shift: one draw, no
    /// rejection loop, so the number of draws never depends on the values.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// The generator itself, for key generation.
    pub(crate) fn crypto(&mut self) -> &mut ChaCha20Rng {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_below_and_replays_from_the_seed() {
        let seed = Random::seed_from_u64(7);
        let (mut a, mut b) = (Random::from_seed(seed), Random::from_seed(seed));
        for n in [1, 2, 3, 10, 1 << 40, u64::MAX] {
            let x = a.below(n);
            assert!(x < n, "{x} < {n}");
            assert_eq!(x, b.below(n));
        }
        assert_eq!(a.below(0), 0);
        assert_ne!(Random::seed_from_u64(7), Random::seed_from_u64(8));
    }
}
