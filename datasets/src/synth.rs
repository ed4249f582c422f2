//! Seeded synthetic series: the speed workloads W1, W2 and W4 of `benchmarks.md` §7.

/// A small seeded generator (SplitMix64) with uniform and normal draws.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A univariate series with the indices of injected spikes.
#[derive(Debug, Clone)]
pub struct Series {
    /// The values.
    pub values: Vec<f32>,
    /// Indices of injected anomalies, ascending.
    pub anomalies: Vec<usize>,
}

/// A multivariate series, row-major, with injected anomalies `(index, metric)`.
#[derive(Debug, Clone)]
pub struct MultiSeries {
    /// Metrics per row.
    pub dims: usize,
    /// Row-major values.
    pub values: Vec<f32>,
    /// `(row, metric)` of each injected spike, ascending by row.
    pub anomalies: Vec<(usize, usize)>,
}

impl MultiSeries {
    /// Row `t`.
    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * self.dims..(t + 1) * self.dims]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.dims
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Picks `count` distinct positions in `[from, n)` at least `gap` apart, ascending.
fn spread_positions(rng: &mut Rng, count: usize, from: usize, n: usize, gap: usize) -> Vec<usize> {
    let mut at: Vec<usize> = Vec::with_capacity(count);
    while at.len() < count {
        let t = from + (rng.uniform() * (n - from) as f64) as usize;
        if at.iter().all(|&s| s.abs_diff(t) >= gap) {
            at.push(t);
        }
    }
    at.sort_unstable();
    at
}

/// W1: `n` points of `sin(2πt/200) + N(0, 0.05)` plus `spikes` spikes of magnitude 3–5 with
/// random sign, placed after t = 1000 (benchmarks.md §7 uses n = 100,000 and 100 spikes).
pub fn w1(n: usize, spikes: usize, seed: u64) -> Series {
    let mut rng = Rng::new(seed);
    let mut values: Vec<f32> = (0..n)
        .map(|t| ((std::f64::consts::TAU * t as f64 / 200.0).sin() + 0.05 * rng.normal()) as f32)
        .collect();
    let anomalies = spread_positions(&mut rng, spikes, 1_000.min(n / 2), n, 20);
    for &t in &anomalies {
        let magnitude = 3.0 + 2.0 * rng.uniform();
        let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        values[t] += (sign * magnitude) as f32;
    }
    Series { values, anomalies }
}

/// The standard W1 stream: 100,000 points, 100 spikes, seed 1.
pub fn w1_standard() -> Series {
    w1(100_000, 100, 1)
}

/// W2: `n` rows of three telemetry-like metrics (torque-like, battery-like saw-tooth, rate-like)
/// with `spikes` spikes of 4–6 on one metric each (benchmarks.md §7 uses 50,000 rows, 50
/// spikes).
pub fn w2(n: usize, spikes: usize, seed: u64) -> MultiSeries {
    let mut rng = Rng::new(seed);
    let tau = std::f64::consts::TAU;
    let mut values = Vec::with_capacity(n * 3);
    for t in 0..n {
        let tf = t as f64;
        let torque = (tau * tf / 300.0).sin() + 0.3 * (tau * tf / 37.0).sin() + 0.1 * rng.normal();
        let battery = 1.0 - (t % 2_000) as f64 / 2_000.0 + 0.05 * rng.normal();
        let rate = 0.5 * (tau * tf / 1_440.0).sin() + 0.2 * rng.normal();
        values.extend([torque as f32, battery as f32, rate as f32]);
    }
    let rows = spread_positions(&mut rng, spikes, 1_000.min(n / 2), n, 20);
    let mut anomalies = Vec::with_capacity(spikes);
    for t in rows {
        let metric = (rng.next_u64() % 3) as usize;
        let magnitude = 4.0 + 2.0 * rng.uniform();
        let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        values[t * 3 + metric] += (sign * magnitude) as f32;
        anomalies.push((t, metric));
    }
    MultiSeries {
        dims: 3,
        values,
        anomalies,
    }
}

/// The standard W2 stream: 50,000 rows, 50 spikes, seed 2.
pub fn w2_standard() -> MultiSeries {
    w2(50_000, 50, 2)
}

/// Shingles a univariate series: row `i` is `values[i..i + k]` (row-major, `k` values a row).
pub fn shingle(values: &[f32], k: usize) -> Vec<f32> {
    let rows = values.len().saturating_sub(k - 1);
    let mut out = Vec::with_capacity(rows * k);
    for i in 0..rows {
        out.extend_from_slice(&values[i..i + k]);
    }
    out
}

/// W4's query set: a second W1-style series (seed 4, 20,000 points, 20 spikes) shingled into
/// 8-dimensional points.
pub fn w4_queries() -> Vec<f32> {
    shingle(&w1(20_000, 20, 4).values, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w1_has_the_stated_shape() {
        let s = w1(5_000, 10, 1);
        assert_eq!(s.values.len(), 5_000);
        assert_eq!(s.anomalies.len(), 10);
        assert!(s.anomalies.iter().all(|&t| t >= 1_000));
        // spikes stand out by at least 3 - (1 + noise) from the sinusoid
        for &t in &s.anomalies {
            let base = (std::f64::consts::TAU * t as f64 / 200.0).sin();
            assert!((f64::from(s.values[t]) - base).abs() > 2.5);
        }
        // same seed, same data
        assert_eq!(w1(5_000, 10, 1).values, s.values);
    }

    #[test]
    fn w2_spikes_one_metric() {
        let s = w2(5_000, 5, 2);
        assert_eq!(s.len(), 5_000);
        for &(t, m) in &s.anomalies {
            assert!(s.row(t)[m].abs() > 2.5);
        }
    }

    #[test]
    fn shingle_rows_overlap() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(shingle(&x, 3), vec![1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn paper_example_loads_when_present() {
        match crate::data_root() {
            Ok(root) => {
                let rows = crate::rcf_paper_example(&root).unwrap();
                assert_eq!(rows.len(), 2_010);
            }
            Err(e) => crate::skip("paper_example_loads_when_present", e),
        }
    }
}
