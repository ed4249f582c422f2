//! Exponentially weighted mean and variance.

use serde::{Deserialize, Serialize};

/// Largest magnitude any tracked statistic can reach: inputs are `f32` (at most 3.4e38), their
/// differences at most twice that, scores far less.
pub(crate) const VALUE_BOUND: f64 = 1e39;

/// Largest magnitude of a reading: what an `f32` input can be (imputed readings are clamped
/// to it, so every value the statistics learn from lies within it).
pub(crate) const READING_BOUND: f64 = f32::MAX as f64;

/// Mean and variance of a stream with exponential forgetting: the weight of an observation
/// `k` steps old is `(1 − decay)^k`. The first observations are averaged evenly (the effective
/// step is `1 / weight`), so early estimates are not biased towards the first value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct Decayed {
    weight: f64,
    mean: f64,
    var: f64,
}

impl Decayed {
    pub(crate) fn update(&mut self, x: f64, decay: f64) {
        self.weight = (1.0 - decay) * self.weight + 1.0;
        let alpha = 1.0 / self.weight;
        let diff = x - self.mean;
        self.mean += alpha * diff;
        self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
    }

    /// Caps the weight at `weight`: the mean and variance stay, later updates move them as if
    /// they summarised only that many observations.
    pub(crate) fn cap_weight(&mut self, weight: f64) {
        self.weight = self.weight.min(weight);
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    pub(crate) fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    pub(crate) fn weight(&self) -> f64 {
        self.weight
    }

    pub(crate) fn is_finite(&self) -> bool {
        self.weight.is_finite() && self.mean.is_finite() && self.var.is_finite()
    }

    /// Whether these statistics could have come from updates with values of magnitude at most
    /// [`VALUE_BOUND`]: finite, a non-negative weight, the mean within the bound and the
    /// variance within its square. Restored checkpoints must pass this, so that later updates
    /// cannot overflow (a crafted mean of 1e300 would make the next squared difference
    /// infinite, and the detector's own checkpoint unloadable).
    pub(crate) fn is_plausible(&self) -> bool {
        self.is_finite()
            && self.weight >= 0.0
            && self.mean.abs() <= VALUE_BOUND
            && (0.0..=VALUE_BOUND * VALUE_BOUND).contains(&self.var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_plain_mean_and_variance_without_decay() {
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0];
        let mut d = Decayed::default();
        for x in xs {
            d.update(x, 0.0);
        }
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 5.0;
        assert!((d.mean() - mean).abs() < 1e-12);
        assert!((d.std() - var.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn forgets_old_values() {
        let mut d = Decayed::default();
        for _ in 0..1_000 {
            d.update(0.0, 0.01);
        }
        for _ in 0..1_000 {
            d.update(10.0, 0.01);
        }
        // after 1,000 steps at decay 0.01 the old level weighs e^-10
        assert!((d.mean() - 10.0).abs() < 1e-3);
    }
}
