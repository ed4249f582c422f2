//! Seeded data for the tests (kept here so rcf-core has no dev-dependency on rcf-datasets).

use rcf_core::RandomCutForest;

/// SplitMix64: tiny, seeded, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// W1-style series: `sin(2πt/200) + N(0, 0.05)`, with spikes of magnitude 3–5 (random sign) at
/// the returned indices.
pub(crate) fn sine_with_spikes(n: usize, spikes: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let mut x: Vec<f32> = (0..n)
        .map(|t| ((std::f64::consts::TAU * t as f64 / 200.0).sin() + 0.05 * rng.normal()) as f32)
        .collect();
    let mut at = Vec::new();
    while at.len() < spikes {
        let t = 1_000 + (rng.uniform() * (n - 1_000) as f64) as usize;
        if at.iter().all(|&s: &usize| s.abs_diff(t) > 20) {
            at.push(t);
        }
    }
    at.sort_unstable();
    for &t in &at {
        let mag = 3.0 + 2.0 * rng.uniform();
        let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        x[t] += (sign * mag) as f32;
    }
    (x, at)
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

/// Rank of each index's score among all scores (0 = highest).
pub(crate) fn top_fraction_hits(scores: &[f64], indices: &[usize], fraction: f64) -> usize {
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let k = ((scores.len() as f64) * fraction).ceil() as usize;
    let cutoff = sorted[k - 1];
    indices.iter().filter(|&&i| scores[i] >= cutoff).count()
}
