//! Hostile inputs found by fuzzing (issue 10): finite values of any magnitude, crafted states
//! with valid checksums, batches with a bad row. Each test is built from a reproducer.

use proptest::prelude::*;
use rcf_core::{Error, RandomCutForest};

/// A deterministic stream of arbitrary finite `f32` bit patterns (every magnitude from
/// subnormals to `f32::MAX`, both signs).
fn wild(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = f32::from_bits((s >> 16) as u32);
        if v.is_finite() {
            out.push(v);
        }
    }
    out
}

/// The reproducer: random finite values such as `[-1.26e25, 2.97e26, 4.26e-5]` into
/// a small shingled forest gave NaN scores, broken boxes by point 50 and an unrestorable state
/// by point 950.
#[test]
fn finite_values_of_any_magnitude_keep_scores_finite_and_the_forest_consistent() {
    for (dims, shingle, trees, sample) in [(3, 4, 10, 32), (1, 8, 20, 64), (2, 1, 5, 16)] {
        let mut forest = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .num_trees(trees)
            .sample_size(sample)
            .seed(1)
            .build()
            .unwrap();
        let values = wild(7 + dims as u64, 3_000 * dims);
        for (t, x) in values.chunks_exact(dims).enumerate() {
            let s = forest.process(x).unwrap();
            assert!(s.is_finite() && s >= 0.0, "point {t}: score {s}");
            if t % 250 == 0 {
                forest.check_invariants().unwrap();
            }
        }
        forest.check_invariants().unwrap();
        let restored = RandomCutForest::from_bytes(&forest.to_bytes()).unwrap();
        restored.check_invariants().unwrap();
        let probe = &values[..dims];
        assert_eq!(
            forest.score(probe).unwrap().to_bits(),
            restored.score(probe).unwrap().to_bits()
        );
    }
}

/// An alternating 1e38 / -1e38 / 1e-38 stream: `process` stayed finite while `score_many`
/// returned non-finite scores (box ranges overflowed `f32`).
#[test]
fn extreme_alternating_stream_scores_finite_in_batches_too() {
    let forest = crate::common::extreme_stream_forest(4);
    let cycle = crate::common::EXTREME_CYCLE;
    forest.check_invariants().unwrap();
    let batch: Vec<f32> = (0..64)
        .flat_map(|i| (0..4).map(move |j| cycle[(i + j) % cycle.len()]))
        .collect();
    for s in forest.score_many(&batch).unwrap() {
        assert!(s.is_finite() && s >= 0.0, "{s}");
    }
    let a = forest.attribution(&[f32::MAX]).unwrap();
    assert!(a.total().is_finite());
    assert!(a.highs().iter().chain(a.lows()).all(|v| v.is_finite()));
}

proptest! {
    #![proptest_config(crate::common::fixed_cases(24))]

    /// Any finite inputs, of any magnitude, keep every invariant and a state that restores to
    /// the same scores.
    #[test]
    fn any_finite_inputs_keep_invariants_and_a_restorable_state(
        dims in 1usize..4,
        shingle in 1usize..5,
        sample in 2usize..40,
        trees in 1usize..6,
        min_mass in 2usize..8,
        seed in any::<u64>(),
        mix in 0u8..3,
    ) {
        let mut forest = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .sample_size(sample)
            .num_trees(trees)
            .box_cache_min_mass(min_mass)
            .seed(seed)
            .build()
            .unwrap();
        let raw = wild(seed, 400 * dims);
        for (t, x) in raw.chunks_exact(dims).enumerate() {
            // mix: all wild, wild spikes in a tame stream, or tiny values only
            let x: Vec<f32> = x
                .iter()
                .map(|&v| match mix {
                    0 => v,
                    1 if t % 17 == 0 => v,
                    1 => (t as f32 * 0.1).sin(),
                    _ => v * 1e-38,
                })
                .collect();
            let s = forest.process(&x).unwrap();
            prop_assert!(s.is_finite() && s >= 0.0, "point {}: {}", t, s);
        }
        prop_assert!(forest.check_invariants().is_ok(), "{:?}", forest.check_invariants());
        let restored = RandomCutForest::from_bytes(&forest.to_bytes());
        prop_assert!(restored.is_ok(), "{:?}", restored.err());
        let restored = restored.unwrap();
        let probe: Vec<f32> = raw[..dims].to_vec();
        prop_assert_eq!(
            forest.score(&probe).unwrap().to_bits(),
            restored.score(&probe).unwrap().to_bits()
        );
    }
}

/// Every batch call is all or nothing: a bad row anywhere changes nothing.
#[test]
fn rejected_batches_change_nothing() {
    let mut forest = RandomCutForest::builder(3).seed(4).build().unwrap();
    let good = vec![1.0f32; 30];
    forest.update_many(&good).unwrap();
    let before = forest.to_bytes();
    let mut bad = vec![1.0f32; 30];
    bad[17] = f32::INFINITY;
    assert!(matches!(
        forest.update_many(&bad),
        Err(Error::NonFinite { index: 17, .. })
    ));
    assert!(matches!(
        forest.process_many(&bad),
        Err(Error::NonFinite { index: 17, .. })
    ));
    assert!(matches!(
        forest.process_many(&good[..29]),
        Err(Error::BatchShape { .. })
    ));
    assert!(matches!(
        forest.update_many(&[]),
        Err(Error::EmptyInput { .. })
    ));
    assert_eq!(
        forest.to_bytes(),
        before,
        "a rejected batch changed the forest"
    );
    let scores = forest.process_many(&good).unwrap();
    assert_eq!(scores.len(), 10);
}
