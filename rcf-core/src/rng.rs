//! Per-tree random streams.
//!
//! Tree `i` of a forest with master seed `s` draws from its own xoshiro256++ generator seeded
//! (through SplitMix64) with `s` mixed with `i`. A tree's draws therefore depend only on the seed
//! and on the points offered to that tree, never on thread count or on the other trees. One draw
//! costs a few nanoseconds; the reference implementation re-seeds a ChaCha20 per tree per update
//! (about 11 µs of a 42 µs update at 50 trees).

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A tree's random stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TreeRng(Xoshiro256PlusPlus);

impl TreeRng {
    /// The stream of tree `tree` under master seed `seed`.
    pub(crate) fn for_tree(seed: u64, tree: usize) -> Self {
        // Golden-ratio multiplier spreads tree indices; SplitMix64 inside seed_from_u64 then
        // decorrelates neighbouring seeds.
        let mixed = seed ^ (tree as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self(Xoshiro256PlusPlus::seed_from_u64(mixed))
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline]
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`: safe to take the logarithm of.
    #[inline]
    pub(crate) fn uniform_open0(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = TreeRng::for_tree(1, 0);
        let mut b = TreeRng::for_tree(1, 0);
        let mut c = TreeRng::for_tree(1, 1);
        let mut d = TreeRng::for_tree(2, 0);
        let xa: Vec<f64> = (0..8).map(|_| a.uniform()).collect();
        let xb: Vec<f64> = (0..8).map(|_| b.uniform()).collect();
        let xc: Vec<f64> = (0..8).map(|_| c.uniform()).collect();
        let xd: Vec<f64> = (0..8).map(|_| d.uniform()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }

    #[test]
    fn uniform_ranges_hold() {
        let mut r = TreeRng::for_tree(9, 3);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = r.uniform();
            let v = r.uniform_open0();
            assert!((0.0..1.0).contains(&u));
            assert!(v > 0.0 && v <= 1.0);
            sum += u;
        }
        // mean of 10k uniforms: sd 0.0029, 5 sd margin
        assert!((sum / 10_000.0 - 0.5).abs() < 0.015);
    }
}
