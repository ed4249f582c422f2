//! Batch scoring (`score_many`): batches of 256 points and more go through frozen copies of
//! the trees, smaller ones through the live trees. Both must give every point exactly the
//! score `score_with` gives it, whatever the dimension, the box cache, duplicates of sampled
//! points and the magnitude of the values.

use rcf_core::RandomCutForest;

use crate::common::Rng;

/// A forest of `dims` dimensions (no internal shingling) trained on a noisy wave with a few
/// repeated values, so that some leaves hold several copies of a point.
fn trained(dims: usize, box_cache_min_mass: usize, seed: u64) -> (RandomCutForest, Vec<f32>) {
    let mut forest = RandomCutForest::builder(dims)
        .num_trees(12)
        .sample_size(64)
        .box_cache_min_mass(box_cache_min_mass)
        .seed(seed)
        .build()
        .unwrap();
    let mut rng = Rng::new(seed);
    let mut seen = Vec::new();
    for t in 0..600 {
        let point: Vec<f32> = (0..dims)
            .map(|i| {
                // every fifth point repeats a value (duplicates in the sample)
                if t % 5 == 0 {
                    (i as f32) * 0.5
                } else {
                    ((t + 3 * i) as f32 * 0.07).sin() + 0.1 * rng.normal() as f32
                }
            })
            .collect();
        forest.update(&point).unwrap();
        seen.extend_from_slice(&point);
    }
    (forest, seen)
}

/// Queries: recent points of the stream (some in the sample: the "seen" rule), new points
/// near it, and points far outside it.
fn queries(dims: usize, seen: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0xbeef);
    let recent = &seen[seen.len() - 100 * dims..];
    (0..n)
        .flat_map(|k| {
            let row: Vec<f32> = match k % 3 {
                0 => recent[(k % 100) * dims..][..dims].to_vec(),
                1 => (0..dims).map(|_| rng.normal() as f32).collect(),
                _ => (0..dims).map(|_| 10.0 * rng.normal() as f32).collect(),
            };
            row
        })
        .collect()
}

fn assert_batch_matches_points(forest: &RandomCutForest, batch: &[f32], what: &str) {
    let dims = forest.dimensions();
    let scores = forest.score_many(batch).unwrap();
    let mut sc = forest.scratch();
    for (i, (row, got)) in batch.chunks_exact(dims).zip(&scores).enumerate() {
        let want = forest.score_point_with(&mut sc, row).unwrap();
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{what}: point {i}: batch {got} against {want}"
        );
    }
}

#[test]
fn frozen_and_live_batches_score_exactly_as_point_calls() {
    // 1-3: the portable kernel; 5: any length; 8, 12, 24: fixed SSE bodies (and, from 8, the
    // frozen walk's AVX gap lanes where the processor has AVX); 1, 2, 4, 8, 16: the frozen
    // descent's masked read of a power-of-two dimension
    for dims in [1, 2, 3, 4, 5, 8, 12, 16, 24] {
        // every box cached, the single-stream default, a leaf-order tree, no box at all
        for min_mass in [2, 4, 32, 1_000] {
            let (forest, seen) = trained(dims, min_mass, dims as u64 * 31 + min_mass as u64);
            let batch = queries(dims, &seen, 300, dims as u64);
            let what = format!("dims {dims}, box cache from {min_mass}");
            // 300 points: frozen trees; the first 255: the live trees
            assert_batch_matches_points(&forest, &batch, &format!("{what}, frozen"));
            assert_batch_matches_points(&forest, &batch[..255 * dims], &format!("{what}, live"));
        }
    }
}

#[test]
fn frozen_batches_of_extreme_values_are_exact_and_finite() {
    // box ranges beyond f32 (the kernels' wide fallback) in the frozen trees' boxes; 4
    // dimensions take the 128-bit kernel, 8 and 12 the 256-bit one where the processor has AVX
    for shingle in [4, 8, 12] {
        let forest = crate::common::extreme_stream_forest(shingle);
        let cycle = crate::common::EXTREME_CYCLE;
        let batch: Vec<f32> = (0..400)
            .flat_map(|i| (0..shingle).map(move |j| cycle[(i + j + i / 6) % cycle.len()]))
            .collect();
        assert_batch_matches_points(&forest, &batch, &format!("extreme values, {shingle} dims"));
        for s in forest.score_many(&batch).unwrap() {
            assert!(s.is_finite() && s >= 0.0, "{s}");
        }
    }
}

#[test]
fn frozen_batches_are_the_same_on_any_thread_count() {
    let (forest, seen) = trained(8, 4, 9);
    let batch = queries(8, &seen, 3_000, 9);
    let one = crate::common::pool(1).install(|| forest.score_many(&batch).unwrap());
    let two = crate::common::pool(2).install(|| forest.score_many(&batch).unwrap());
    let three = crate::common::pool(3).install(|| forest.score_many(&batch).unwrap());
    let bits = |v: &[f64]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one), bits(&two));
    assert_eq!(bits(&one), bits(&three));
}

proptest::proptest! {
    #![proptest_config(crate::common::fixed_cases(16))]

    /// Any forest shape and any finite values: a batch of 256 points or more (the frozen
    /// trees) scores every point exactly as a point call does.
    #[test]
    fn any_forest_scores_frozen_batches_exactly(
        dims in 1usize..6,
        shingle in 1usize..4,
        sample in 2usize..80,
        trees in 1usize..5,
        min_mass in 2usize..40,
        scale_exp in -30i32..38,
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut forest = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .num_trees(trees)
            .sample_size(sample)
            .box_cache_min_mass(min_mass)
            .seed(seed)
            .build()
            .unwrap();
        let scale = 10f32.powi(scale_exp);
        let mut rng = Rng::new(seed);
        let mut value = move || (rng.normal() as f32 * scale).clamp(-f32::MAX, f32::MAX);
        for _ in 0..3 * sample + 10 {
            let x: Vec<f32> = (0..dims).map(|_| value()).collect();
            forest.update(&x).unwrap();
        }
        let width = forest.dimensions();
        let batch: Vec<f32> = (0..260 * width).map(|_| value()).collect();
        assert_batch_matches_points(&forest, &batch, "random forest");
    }
}
