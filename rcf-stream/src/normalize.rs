//! Per-metric normalisation before the forest.
//!
//! Random cut forests are scale-sensitive (cuts are chosen in proportion to each dimension's
//! range), so metrics in different units must be brought to comparable scales. The statistics
//! are exponentially decayed, so the normalisation follows slow drifts.

use serde::{Deserialize, Serialize};

use crate::stats::Decayed;

/// How each metric is transformed before it reaches the forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Normalization {
    /// Values as they are (for metrics already on comparable scales).
    None,
    /// `(x − mean) / scale`, with decayed mean and deviation. The default.
    Normalize,
    /// `x − previous x`: for metrics whose changes matter more than their level.
    Difference,
    /// The difference, normalised like [`Normalization::Normalize`].
    NormalizeDifference,
}

/// Normalised values are clipped to ±this (as the reference does), so one wild value cannot
/// stretch the forest's boxes without bound.
pub(crate) const CLIP: f64 = 100.0;

/// Relative floor of the scale: a metric whose deviation is below `RELATIVE_FLOOR × |mean|`
/// (for example a long-constant one) is scaled by that instead, so a change of a fraction of
/// a per cent is not a hundred-sigma event. Scale-invariant: no absolute `+ 1` as in the
/// reference, which left small-magnitude series unnormalised.
pub(crate) const RELATIVE_FLOOR: f64 = 1e-3;
/// Absolute floor of the scale, for metrics near zero with no variation at all.
pub(crate) const ABSOLUTE_FLOOR: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct MetricStats {
    value: Decayed,
    diff: Decayed,
    last: Option<f64>,
}

/// The normaliser of a detector: one set of statistics per metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Normalizer {
    mode: Normalization,
    decay: f64,
    metrics: Vec<MetricStats>,
}

fn scale(stat: &Decayed, level: f64) -> f64 {
    stat.std()
        .max(RELATIVE_FLOOR * level.abs())
        .max(ABSOLUTE_FLOOR)
}

impl Normalizer {
    pub(crate) fn new(mode: Normalization, decay: f64, metrics: usize) -> Self {
        Self {
            mode,
            decay,
            metrics: vec![MetricStats::default(); metrics],
        }
    }

    /// The transformed value of metric `j` (NaN stays NaN), with the statistics as they are
    /// (before this value updates them).
    pub(crate) fn forward(&self, j: usize, x: f64) -> f64 {
        let m = &self.metrics[j];
        let z = match self.mode {
            Normalization::None => x,
            Normalization::Normalize => (x - m.value.mean()) / scale(&m.value, m.value.mean()),
            Normalization::Difference => x - m.last.unwrap_or(x),
            Normalization::NormalizeDifference => {
                let d = x - m.last.unwrap_or(x);
                (d - m.diff.mean()) / scale(&m.diff, m.value.mean())
            }
        };
        if z.is_nan() { z } else { z.clamp(-CLIP, CLIP) }
    }

    /// The input value whose transform is `z` (for expected values and imputed inputs).
    pub(crate) fn inverse(&self, j: usize, z: f64) -> f64 {
        let m = &self.metrics[j];
        match self.mode {
            Normalization::None => z,
            Normalization::Normalize => m.value.mean() + z * scale(&m.value, m.value.mean()),
            Normalization::Difference => m.last.unwrap_or(0.0) + z,
            Normalization::NormalizeDifference => {
                m.last.unwrap_or(0.0) + m.diff.mean() + z * scale(&m.diff, m.value.mean())
            }
        }
    }

    /// Learns from the (complete) input `x`.
    pub(crate) fn update(&mut self, x: &[f64]) {
        for (m, &v) in self.metrics.iter_mut().zip(x) {
            m.value.update(v, self.decay);
            if let Some(last) = m.last {
                m.diff.update(v - last, self.decay);
            }
            m.last = Some(v);
        }
    }

    /// Follows the (complete) input `x` for the difference modes without learning from it:
    /// the statistics stay as they are.
    pub(crate) fn follow(&mut self, x: &[f64]) {
        for (m, &v) in self.metrics.iter_mut().zip(x) {
            m.last = Some(v);
        }
    }

    pub(crate) fn is_consistent(&self, metrics: usize) -> bool {
        self.metrics.len() == metrics
            && self.decay.is_finite()
            && self.metrics.iter().all(|m| {
                m.value.is_finite() && m.diff.is_finite() && m.last.is_none_or(f64::is_finite)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(mode: Normalization, xs: &[f64]) -> Normalizer {
        let mut n = Normalizer::new(mode, 0.0, 1);
        for &x in xs {
            n.update(&[x]);
        }
        n
    }

    #[test]
    fn inverse_undoes_forward() {
        let xs: Vec<f64> = (0..50).map(|i| 10.0 + (i as f64 * 0.3).sin()).collect();
        for mode in [
            Normalization::None,
            Normalization::Normalize,
            Normalization::Difference,
            Normalization::NormalizeDifference,
        ] {
            let n = trained(mode, &xs);
            for x in [9.0, 10.5, 11.2] {
                let back = n.inverse(0, n.forward(0, x));
                assert!((back - x).abs() < 1e-9, "{mode:?}: {x} -> {back}");
            }
        }
    }

    #[test]
    fn normalisation_is_scale_invariant() {
        // the same shape at 1e-6 and at 1e6 normalises to the same values
        let shape: Vec<f64> = (0..200)
            .map(|i| 1.0 + 0.01 * (i as f64 * 0.2).sin())
            .collect();
        let small: Vec<f64> = shape.iter().map(|x| x * 1e-6).collect();
        let large: Vec<f64> = shape.iter().map(|x| x * 1e6).collect();
        let (a, b) = (
            trained(Normalization::Normalize, &small),
            trained(Normalization::Normalize, &large),
        );
        let za = a.forward(0, 1.02e-6);
        let zb = b.forward(0, 1.02e6);
        assert!((za - zb).abs() < 1e-6 * za.abs().max(1.0), "{za} vs {zb}");
        assert!(za > 1.0, "a 2 % excursion is several deviations: {za}");
    }

    #[test]
    fn constant_metrics_get_a_relative_floor_and_clip() {
        let n = trained(Normalization::Normalize, &[5.0; 100]);
        assert_eq!(n.forward(0, 5.0), 0.0);
        // 0.1 % of the level is one floor unit
        assert!((n.forward(0, 5.005) - 1.0).abs() < 1e-9);
        assert_eq!(n.forward(0, 1e9), CLIP);
        assert!(n.forward(0, f64::NAN).is_nan());
    }
}
