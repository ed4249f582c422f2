//! Seeded data for the tests, from `rcf-datasets`.

use rcf_core::RandomCutForest;

pub(crate) use rcf_datasets::synth::Rng;

/// W1-style series: `sin(2πt/200) + N(0, 0.05)`, with spikes of magnitude 3–5 (random sign) at
/// the returned indices (the benchmark generator of `rcf-datasets`).
pub(crate) fn sine_with_spikes(n: usize, spikes: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let s = rcf_datasets::synth::w1(n, spikes, seed);
    (s.values, s.anomalies)
}

/// A small forest for fast tests.
pub(crate) fn small_forest(input_dims: usize, shingle: usize, seed: u64) -> RandomCutForest {
    RandomCutForest::builder(input_dims)
        .shingle_size(shingle)
        .num_trees(10)
        .sample_size(64)
        .seed(seed)
        .build()
        .expect("valid parameters")
}

/// An extreme alternating stream (a fuzzing finding): values near ±`f32::MAX`, a tiny one
/// and zero, whose boxes' ranges overflow `f32`.
pub(crate) const EXTREME_CYCLE: [f32; 6] = [1e38, -1e38, 1e-38, f32::MAX, -f32::MAX, 0.0];

/// A forest of one input shingled `shingle` times (10 trees, 32 samples, seed 2) after 1,000
/// values of [`EXTREME_CYCLE`], each of whose `process` scores was finite (asserted).
pub(crate) fn extreme_stream_forest(shingle: usize) -> RandomCutForest {
    let mut forest = RandomCutForest::builder(1)
        .shingle_size(shingle)
        .num_trees(10)
        .sample_size(32)
        .seed(2)
        .build()
        .expect("valid parameters");
    for t in 0..1_000 {
        let x = EXTREME_CYCLE[t % EXTREME_CYCLE.len()];
        let score = forest.process(&[x]).unwrap();
        assert!(score.is_finite(), "step {t}: {score}");
    }
    forest
}

/// Rank of each index's score among all scores (0 = highest).
pub(crate) fn top_fraction_hits(scores: &[f64], indices: &[usize], fraction: f64) -> usize {
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let k = ((scores.len() as f64) * fraction).ceil() as usize;
    let cutoff = sorted[k - 1];
    indices.iter().filter(|&&i| scores[i] >= cutoff).count()
}

/// A proptest configuration with `cases` cases drawn from a fixed seed, so every run (and CI)
/// tries the same inputs: a failure is reproducible and a pass is not luck of the draw.
/// Set `PROPTEST_RNG_SEED` to explore other inputs locally.
pub(crate) fn fixed_cases(cases: u32) -> proptest::test_runner::Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..proptest::test_runner::Config::default()
    }
}

/// A rayon pool of `threads` threads, for scoring the same batch on several thread counts.
pub(crate) fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}
