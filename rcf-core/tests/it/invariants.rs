//! Structural invariants under arbitrary streams (proptest), through the public API.
//!
//! `check_invariants` verifies: masses add up, every cached box is exactly its subtree's box
//! (so every box contains its subtree's points), every leaf's point routes to its leaf, the
//! sampler never exceeds its size and agrees with the tree leaf by leaf. Delete-undoes-insert
//! and the naive reference scorer are unit tests inside the crate (they need the trees).

use proptest::prelude::*;
use rcf_core::RandomCutForest;

use crate::common::{Rng, sine_with_spikes};

fn stream(kind: u8, n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|t| {
            (0..dims)
                .map(|j| match kind % 4 {
                    // smooth + noise
                    0 => ((t as f64 * 0.07 + j as f64).sin() + 0.1 * rng.normal()) as f32,
                    // heavy duplicates: few distinct values
                    1 => (rng.next_u64() % 3) as f32,
                    // constant
                    2 => 1.5,
                    // wide dynamic range
                    _ => (rng.normal() * 10f64.powi((rng.next_u64() % 6) as i32)) as f32,
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(crate::common::fixed_cases(48))]

    #[test]
    fn invariants_hold_along_any_stream(
        kind in 0u8..4,
        dims in 1usize..4,
        shingle in 1usize..4,
        sample in 2usize..48,
        trees in 1usize..6,
        min_mass in 2usize..10,
        decay in prop_oneof![Just(0.0), Just(0.01), Just(0.2)],
        fraction in prop_oneof![Just(0.0), Just(0.125), Just(1.0)],
        seed in any::<u64>(),
    ) {
        let mut forest = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .sample_size(sample)
            .num_trees(trees)
            .box_cache_min_mass(min_mass)
            .time_decay(decay)
            .initial_accept_fraction(fraction)
            .seed(seed)
            .build()
            .unwrap();
        for (t, x) in stream(kind, 600, dims, seed).iter().enumerate() {
            let s = forest.process(x).unwrap();
            prop_assert!(s.is_finite() && s >= 0.0);
            if t % 37 == 0 {
                forest.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
                for m in forest.tree_masses() {
                    prop_assert!(m as usize <= sample);
                }
            }
        }
        forest.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(forest.entries_seen(), 600);
    }

    #[test]
    fn attribution_sums_to_the_score(
        dims in 1usize..5,
        shingle in 1usize..4,
        seed in any::<u64>(),
        probe in prop::collection::vec(-5.0f32..5.0, 4),
    ) {
        let mut forest = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .sample_size(64)
            .num_trees(8)
            .seed(seed)
            .build()
            .unwrap();
        for x in stream(0, 300, dims, seed) {
            forest.update(&x).unwrap();
        }
        let x = &probe[..dims];
        let score = forest.score(x).unwrap();
        let a = forest.attribution(x).unwrap();
        prop_assert!((a.total() - score).abs() <= 1e-9 * score.max(1.0),
            "attribution {} vs score {}", a.total(), score);
        prop_assert!(a.highs().iter().chain(a.lows()).all(|v| *v >= 0.0));
        prop_assert!((a.fold_shingle().total() - score).abs() <= 1e-9 * score.max(1.0));
    }
}

#[test]
fn long_w1_stream_keeps_invariants_and_sample_sizes() {
    let (x, _) = sine_with_spikes(20_000, 20, 3);
    let mut forest = RandomCutForest::builder(1)
        .shingle_size(8)
        .seed(1)
        .build()
        .unwrap();
    for (t, v) in x.iter().enumerate() {
        forest.process(&[*v]).unwrap();
        if t % 5_000 == 4_999 {
            forest.check_invariants().unwrap();
        }
    }
    // after 20k points at λ = 1/2560 every sample is full
    assert!(forest.tree_masses().iter().all(|&m| m == 256));
}
