//! [`DetectorBuilder`] (unchecked) → [`DetectorConfig`] (validated, part of every
//! checkpoint), and the settings' types and defaults.

use rcf_core::RandomCutForest;
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::error::{Result, invalid};
use crate::normalize::Normalization;
use crate::threshold::Sensitivity;

/// Default shingle size: a point is the last 4 readings of every metric, so changes of shape
/// (not only of level) show.
pub const DEFAULT_SHINGLE_SIZE: usize = 4;
/// Inputs used to initialise the normaliser before anything reaches the forest.
pub const DEFAULT_NORMALIZE_AFTER: usize = 10;

/// A margin for ignoring deviations near the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Margin {
    /// Ignore deviations up to this amount, in the metric's units.
    Amount(f64),
    /// Ignore deviations up to this fraction of the expected value's magnitude.
    Ratio(f64),
}

impl Margin {
    pub(crate) fn covers(self, deviation: f64, expected: f64) -> bool {
        match self {
            Margin::Amount(a) => deviation <= a,
            Margin::Ratio(r) => deviation <= r * expected.abs(),
        }
    }

    pub(crate) fn is_valid(self) -> bool {
        match self {
            Margin::Amount(v) | Margin::Ratio(v) => v.is_finite() && v >= 0.0,
        }
    }
}

/// Ignore-near-expected bands: a candidate anomaly whose attributed metric lies within the
/// band around its expected value is suppressed ([`Suppression::NearExpected`](crate::Suppression::NearExpected)). Above and
/// below are separate, so "only alert on drops" is `above: Some(Margin::Ratio(f64::MAX))`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Tolerance {
    /// Band above the expected value.
    pub above: Option<Margin>,
    /// Band below the expected value.
    pub below: Option<Margin>,
}

/// Validated detector parameters; part of every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DetectorConfig {
    /// Metric names, in input order.
    pub metrics: Vec<String>,
    /// Readings per metric in one forest point.
    pub shingle_size: usize,
    /// Trees.
    pub num_trees: usize,
    /// Points per tree.
    pub sample_size: usize,
    /// Forest time decay; also the decay of the normaliser and thresholder statistics.
    pub time_decay: f64,
    /// Forest points before scores are produced.
    pub output_after: usize,
    /// Master seed.
    pub seed: u64,
    /// Input transform.
    pub normalization: Normalization,
    /// How readily anomalies are raised.
    pub sensitivity: Sensitivity,
    /// Ignore-near-expected bands.
    pub tolerance: Tolerance,
    /// Inputs that initialise the normaliser before the forest sees anything.
    pub normalize_after: usize,
    /// The forest's box cache threshold (speed/memory; see rcf-core).
    pub box_cache_min_mass: usize,
    /// Points after an event starts during which a candidate is part of it
    /// ([`Suppression::HoldOff`](crate::Suppression::HoldOff)) unless it scores [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as high; a quarter of
    /// it without any candidate ends the event early.
    pub holdoff: usize,
    /// A candidate whose shingle lies within this fraction of its own deviation from the
    /// metrics' typical levels (L1, weighted by its attribution over the metrics that carry it)
    /// of a remembered event's shingle repeats a known pattern and is not reported
    /// ([`Suppression::Repeat`](crate::Suppression::Repeat)); 0 disables.
    pub repeat_tolerance: f64,
}

/// Builds a [`Detector`]; see [`Detector::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct DetectorBuilder {
    pub(crate) config: DetectorConfig,
    pub(crate) time_decay: Option<f64>,
    pub(crate) output_after: Option<usize>,
}

impl DetectorBuilder {
    /// Readings per metric in one forest point. Default [`DEFAULT_SHINGLE_SIZE`].
    pub fn shingle_size(mut self, k: usize) -> Self {
        self.config.shingle_size = k;
        self
    }

    /// Trees in the forest. Default [`rcf_core::DEFAULT_NUM_TREES`].
    pub fn num_trees(mut self, n: usize) -> Self {
        self.config.num_trees = n;
        self
    }

    /// Points sampled per tree. Default [`rcf_core::DEFAULT_SAMPLE_SIZE`].
    pub fn sample_size(mut self, n: usize) -> Self {
        self.config.sample_size = n;
        self
    }

    /// Forest time decay (and the decay of the detector's statistics). Default
    /// `1 / (10 · sample_size)`.
    pub fn time_decay(mut self, decay: f64) -> Self {
        self.time_decay = Some(decay);
        self
    }

    /// Forest points before scores are produced. Default `sample_size / 4`.
    pub fn output_after(mut self, n: usize) -> Self {
        self.output_after = Some(n);
        self
    }

    /// Master seed. Default [`rcf_core::DEFAULT_SEED`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Input transform. Default [`Normalization::Normalize`](crate::Normalization::Normalize).
    pub fn normalization(mut self, n: Normalization) -> Self {
        self.config.normalization = n;
        self
    }

    /// How readily anomalies are raised. Default [`Sensitivity::Medium`](crate::Sensitivity::Medium).
    pub fn sensitivity(mut self, s: Sensitivity) -> Self {
        self.config.sensitivity = s;
        self
    }

    /// Ignore-near-expected bands. Default: none.
    pub fn ignore_near_expected(mut self, t: Tolerance) -> Self {
        self.config.tolerance = t;
        self
    }

    /// Inputs that initialise the normaliser. Default [`DEFAULT_NORMALIZE_AFTER`].
    pub fn normalize_after(mut self, n: usize) -> Self {
        self.config.normalize_after = n;
        self
    }

    /// The forest's box cache threshold (see
    /// [`rcf_core::ForestBuilder::box_cache_min_mass`]).
    pub fn box_cache_min_mass(mut self, n: usize) -> Self {
        self.config.box_cache_min_mass = n;
        self
    }

    /// Points after an anomaly during which a new anomaly must score [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as
    /// high (the hold-off ends early after a quarter of it without a point above the
    /// threshold). Default [`DEFAULT_HOLDOFF`](crate::DEFAULT_HOLDOFF); 0 turns the hold-off off.
    pub fn holdoff(mut self, points: usize) -> Self {
        self.config.holdoff = points;
        self
    }

    /// How close (as a fraction of a candidate's own deviation) a candidate must come to one
    /// of the last [`REPEAT_MEMORY`](crate::REPEAT_MEMORY) anomalies to count as a repeat of that known pattern
    /// (a nightly backup's spike, a sawtooth's reset) and not be reported. Default
    /// [`DEFAULT_REPEAT_TOLERANCE`](crate::DEFAULT_REPEAT_TOLERANCE); 0 reports every repeat.
    pub fn repeat_tolerance(mut self, fraction: f64) -> Self {
        self.config.repeat_tolerance = fraction;
        self
    }

    /// Validates the parameters and builds the detector.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) (or a wrapped forest parameter error) naming the first
    /// parameter out of range.
    pub fn build(self) -> Result<Detector> {
        let config = self.validate()?;
        let forest = RandomCutForest::builder(config.metrics.len())
            .shingle_size(config.shingle_size)
            .num_trees(config.num_trees)
            .sample_size(config.sample_size)
            .box_cache_min_mass(config.box_cache_min_mass)
            .seed(config.seed)
            .time_decay(config.time_decay)
            .output_after(config.output_after)
            .build()?;
        Ok(Detector::from_parts(config, forest))
    }

    /// Validates the parameters without building a detector (no forest is allocated): the
    /// configuration [`build`](Self::build) would use, with its derived defaults filled in.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let config = Detector::builder(["a", "b"]).sample_size(128).validate()?;
    /// assert_eq!(config.output_after, 32); // derived: sample_size / 4
    /// assert!(Detector::builder(["a", "a"]).validate().is_err());
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn validate(self) -> Result<DetectorConfig> {
        let mut c = self.config;
        if c.metrics.is_empty() {
            return Err(invalid(
                "metrics",
                "at least one metric is needed, got none".into(),
            ));
        }
        // before anything per name: a million names must fail at once, not after a
        // quadratic scan (a 1,000,000-key JSON line hung the CLI)
        if c.metrics.len() > rcf_core::MAX_DIMENSIONS {
            return Err(invalid(
                "metrics",
                format!(
                    "at most {} metrics are supported, got {}",
                    rcf_core::MAX_DIMENSIONS,
                    c.metrics.len()
                ),
            ));
        }
        let mut names = std::collections::HashSet::with_capacity(c.metrics.len());
        for (i, m) in c.metrics.iter().enumerate() {
            if m.is_empty() || m.len() > 128 || m.chars().any(char::is_control) {
                let shown: String = m.chars().take(40).collect();
                return Err(invalid(
                    "metrics",
                    format!("metric {i} name must be 1-128 printable characters, got {shown:?}"),
                ));
            }
            if !names.insert(m.as_str()) {
                return Err(invalid(
                    "metrics",
                    format!("metric name {m:?} appears twice"),
                ));
            }
        }
        c.sensitivity = c.sensitivity.validate()?;
        for m in [c.tolerance.above, c.tolerance.below].into_iter().flatten() {
            if !m.is_valid() {
                return Err(invalid(
                    "ignore_near_expected",
                    format!("margins must be finite and non-negative, got {m:?}"),
                ));
            }
        }
        if !(c.repeat_tolerance.is_finite() && (0.0..1.0).contains(&c.repeat_tolerance)) {
            return Err(invalid(
                "repeat_tolerance",
                format!("must be in [0, 1), got {}", c.repeat_tolerance),
            ));
        }
        if c.holdoff > 1_000_000 {
            return Err(invalid(
                "holdoff",
                format!("must be at most 1000000 points, got {}", c.holdoff),
            ));
        }
        if c.normalize_after == 0 || c.normalize_after > 100_000 {
            return Err(invalid(
                "normalize_after",
                format!("must be between 1 and 100000, got {}", c.normalize_after),
            ));
        }
        let mut fb = RandomCutForest::builder(c.metrics.len())
            .shingle_size(c.shingle_size)
            .num_trees(c.num_trees)
            .sample_size(c.sample_size)
            .box_cache_min_mass(c.box_cache_min_mass)
            .seed(c.seed);
        if let Some(d) = self.time_decay {
            fb = fb.time_decay(d);
        }
        if let Some(n) = self.output_after {
            fb = fb.output_after(n);
        }
        let fc = fb.validate()?;
        c.time_decay = fc.time_decay;
        c.output_after = fc.output_after as usize;
        Ok(c)
    }
}
