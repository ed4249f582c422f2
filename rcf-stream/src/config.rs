//! [`DetectorBuilder`] (unchecked) → [`DetectorConfig`] (validated, part of every
//! checkpoint), and the settings' types and defaults.

use rcf_core::{ForestBuilder, ForestConfig};
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

/// Validated detector parameters; part of every checkpoint. The forest's own settings are its
/// validated [`ForestConfig`] (`forest`), embedded as they are, not copied field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DetectorConfig {
    /// Metric names, in input order.
    pub metrics: Vec<String>,
    /// The forest's validated configuration: `shingle_size` (readings per metric in one point),
    /// `num_trees`, `sample_size`, `time_decay` (also the decay of the normaliser and
    /// thresholder statistics), `output_after`, `seed`, `box_cache_min_mass`, ...
    pub forest: ForestConfig,
    /// Input transform.
    pub normalization: Normalization,
    /// How readily anomalies are raised.
    pub sensitivity: Sensitivity,
    /// Ignore-near-expected bands.
    pub tolerance: Tolerance,
    /// Inputs that initialise the normaliser before the forest sees anything.
    pub normalize_after: usize,
    /// Points after an event starts during which a candidate is part of it
    /// ([`Suppression::HoldOff`](crate::Suppression::HoldOff)) unless it scores
    /// [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as high; a quarter of it without any
    /// candidate ends the event early.
    pub holdoff: usize,
    /// A candidate whose shingle lies within this fraction of its own deviation from the
    /// metrics' typical levels (L1, weighted by its attribution over the metrics that carry it)
    /// of a remembered event's shingle repeats a known pattern and is not reported
    /// ([`Suppression::Repeat`](crate::Suppression::Repeat)); 0 disables.
    pub repeat_tolerance: f64,
}

impl DetectorConfig {
    /// A builder holding exactly these settings (to check a configuration from elsewhere, a
    /// checkpoint say, against what `validate` makes of it).
    pub(crate) fn to_builder(&self) -> DetectorBuilder {
        let f = &self.forest;
        Detector::builder(self.metrics.iter().cloned())
            .shingle_size(f.shingle_size)
            .num_trees(f.num_trees)
            .sample_size(f.sample_size)
            .time_decay(f.time_decay)
            .output_after(usize::try_from(f.output_after).unwrap_or(usize::MAX))
            .seed(f.seed)
            .box_cache_min_mass(f.box_cache_min_mass as usize)
            .normalization(self.normalization)
            .sensitivity(self.sensitivity)
            .ignore_near_expected(self.tolerance)
            .normalize_after(self.normalize_after)
            .holdoff(self.holdoff)
            .repeat_tolerance(self.repeat_tolerance)
    }
}

/// Builds a [`Detector`]; see [`Detector::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct DetectorBuilder {
    pub(crate) metrics: Vec<String>,
    /// The forest's unchecked settings (validated by rcf-core in [`validate`](Self::validate)).
    pub(crate) forest: ForestBuilder,
    pub(crate) normalization: Normalization,
    pub(crate) sensitivity: Sensitivity,
    pub(crate) p_values: bool,
    pub(crate) tolerance: Tolerance,
    pub(crate) normalize_after: usize,
    pub(crate) holdoff: usize,
    pub(crate) repeat_tolerance: f64,
}

impl DetectorBuilder {
    /// Readings per metric in one forest point. Default [`DEFAULT_SHINGLE_SIZE`].
    pub fn shingle_size(mut self, k: usize) -> Self {
        self.forest = self.forest.shingle_size(k);
        self
    }

    /// Trees in the forest. Default [`rcf_core::DEFAULT_NUM_TREES`].
    pub fn num_trees(mut self, n: usize) -> Self {
        self.forest = self.forest.num_trees(n);
        self
    }

    /// Points sampled per tree. Default [`rcf_core::DEFAULT_SAMPLE_SIZE`].
    pub fn sample_size(mut self, n: usize) -> Self {
        self.forest = self.forest.sample_size(n);
        self
    }

    /// Forest time decay (and the decay of the detector's statistics). Default
    /// `1 / (10 · sample_size)`.
    pub fn time_decay(mut self, decay: f64) -> Self {
        self.forest = self.forest.time_decay(decay);
        self
    }

    /// Forest points before scores are produced. Default `sample_size / 4`.
    pub fn output_after(mut self, n: usize) -> Self {
        self.forest = self.forest.output_after(n);
        self
    }

    /// Master seed. Default [`rcf_core::DEFAULT_SEED`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.forest = self.forest.seed(seed);
        self
    }

    /// Input transform. Default [`Normalization::Normalize`](crate::Normalization::Normalize).
    pub fn normalization(mut self, n: Normalization) -> Self {
        self.normalization = n;
        self
    }

    /// How readily anomalies are raised. Default [`Sensitivity::Medium`](crate::Sensitivity::Medium).
    pub fn sensitivity(mut self, s: Sensitivity) -> Self {
        self.sensitivity = s;
        self
    }

    /// Whether to keep the distribution of recent scores that [`Verdict::p_value`](crate::Verdict::p_value)
    /// is read from. Default `true`. Without it a detector holds 8 KiB less (its
    /// checkpoint too) and reports NaN p-values; scores, thresholds and verdicts are otherwise
    /// the same. For many small detectors (the fleet's per-device models go without it). A
    /// target anomaly rate ([`Sensitivity::AnomalyRate`](crate::Sensitivity::AnomalyRate)) reads the distribution, so it
    /// needs them.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::{Detector, Sensitivity};
    /// let mut small = Detector::builder(["temp"]).p_values(false).seed(1).build()?;
    /// let mut full = Detector::builder(["temp"]).seed(1).build()?;
    /// assert!(small.memory_usage() + 8_000 < full.memory_usage());
    /// for i in 0..300 {
    ///     let x = [(i as f32 * 0.3).sin()];
    ///     let (a, b) = (small.process(&x)?, full.process(&x)?);
    ///     assert_eq!((a.score, a.threshold, a.is_anomaly), (b.score, b.threshold, b.is_anomaly));
    ///     assert!(a.score == 0.0 || a.p_value.is_nan());
    /// }
    /// let rate = Detector::builder(["temp"]).p_values(false).sensitivity(Sensitivity::AnomalyRate(0.01));
    /// assert!(rate.build().unwrap_err().to_string().contains("p_values"));
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn p_values(mut self, keep: bool) -> Self {
        self.p_values = keep;
        self
    }

    /// Ignore-near-expected bands. Default: none.
    pub fn ignore_near_expected(mut self, t: Tolerance) -> Self {
        self.tolerance = t;
        self
    }

    /// Inputs that initialise the normaliser. Default [`DEFAULT_NORMALIZE_AFTER`].
    pub fn normalize_after(mut self, n: usize) -> Self {
        self.normalize_after = n;
        self
    }

    /// The forest's box cache threshold (see
    /// [`rcf_core::ForestBuilder::box_cache_min_mass`]).
    pub fn box_cache_min_mass(mut self, n: usize) -> Self {
        self.forest = self.forest.box_cache_min_mass(n);
        self
    }

    /// Points after an anomaly during which a new anomaly must score [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as
    /// high (the hold-off ends early after a quarter of it without a point above the
    /// threshold). Default [`DEFAULT_HOLDOFF`](crate::DEFAULT_HOLDOFF); 0 turns the hold-off off.
    pub fn holdoff(mut self, points: usize) -> Self {
        self.holdoff = points;
        self
    }

    /// How close (as a fraction of a candidate's own deviation) a candidate must come to one
    /// of the last [`REPEAT_MEMORY`](crate::REPEAT_MEMORY) anomalies to count as a repeat of that known pattern
    /// (a nightly backup's spike, a sawtooth's reset) and not be reported. Default
    /// [`DEFAULT_REPEAT_TOLERANCE`](crate::DEFAULT_REPEAT_TOLERANCE); 0 reports every repeat.
    pub fn repeat_tolerance(mut self, fraction: f64) -> Self {
        self.repeat_tolerance = fraction;
        self
    }

    /// Validates the parameters and builds the detector.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) (or a wrapped forest parameter error) naming the first
    /// parameter out of range.
    pub fn build(self) -> Result<Detector> {
        let (forest, p_values) = (self.forest.clone(), self.p_values);
        let config = self.validate()?;
        Ok(Detector::from_parts(config, forest.build()?, p_values))
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
    /// assert_eq!(config.forest.output_after, 32); // derived: sample_size / 4
    /// assert!(Detector::builder(["a", "a"]).validate().is_err());
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn validate(self) -> Result<DetectorConfig> {
        let c = &self;
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
        for (i, m) in self.metrics.iter().enumerate() {
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
        drop(names);
        let sensitivity = c.sensitivity.validate()?;
        if !c.p_values {
            rate_needs_p_values(sensitivity)?;
        }
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
        let forest = self.forest.validate()?;
        Ok(DetectorConfig {
            metrics: self.metrics,
            forest,
            normalization: self.normalization,
            sensitivity,
            tolerance: self.tolerance,
            normalize_after: self.normalize_after,
            holdoff: self.holdoff,
            repeat_tolerance: self.repeat_tolerance,
        })
    }
}

/// A target anomaly rate reads the score distribution that p-values come from: an error for a
/// detector without them.
pub(crate) fn rate_needs_p_values(sensitivity: Sensitivity) -> Result<()> {
    match sensitivity {
        Sensitivity::AnomalyRate(r) => Err(invalid(
            "p_values",
            format!(
                "a target anomaly rate ({r}) reads the score distribution that p-values come \
                 from, so p_values must stay true with it"
            ),
        )),
        _ => Ok(()),
    }
}
