//! [`Detector`]: one stream of named metrics in, one [`Verdict`] per point out.

use std::sync::Arc;

use rcf_core::{Attribution, RandomCutForest, Scratch};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, invalid};
use crate::event::OpenEvent;
use crate::normalize::{Normalization, Normalizer};
use crate::stats::Decayed;
use crate::threshold::{MIN_SCORES, Sensitivity, Thresholder};
use crate::verdict::{DetectorState, ExpectedValue, MetricAttribution, Suppression, Verdict};

/// Default shingle size: a point is the last 4 readings of every metric, so changes of shape
/// (not only of level) show.
pub const DEFAULT_SHINGLE_SIZE: usize = 4;
/// Inputs used to initialise the normaliser before anything reaches the forest.
pub const DEFAULT_NORMALIZE_AFTER: usize = 10;

/// Metrics carrying at least this share of the newest slot's attribution get an expected value.
const EXPECTED_SHARE: f64 = 0.3;
/// Default [`DetectorConfig::holdoff`]: points after an anomaly during which a new one must
/// score [`HOLDOFF_RISE`] times higher (the hold-off ends early after a quarter of it without a
/// candidate).
pub const DEFAULT_HOLDOFF: usize = 100;
/// Inside the hold-off, a candidate must score this many times the last anomaly's score.
pub const HOLDOFF_RISE: f64 = 1.2;
/// The hold-off ends early once `holdoff / HOLDOFF_QUIET_PARTS` points in a row score at or
/// below the threshold (measured: a quarter keeps NAB and the fleet where the full hold-off
/// puts them and alarms 97 of W1's 100 spikes instead of 91; BENCHMARKS.md).
const HOLDOFF_QUIET_PARTS: u64 = 4;
/// Default [`DetectorConfig::repeat_tolerance`].
pub const DEFAULT_REPEAT_TOLERANCE: f64 = 0.1;
/// Shingles remembered for repeat suppression: each event's start and the candidates within a
/// shingle after it (so a few recent events, at every alignment their echoes took).
pub const REPEAT_MEMORY: usize = 16;

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
    fn covers(self, deviation: f64, expected: f64) -> bool {
        match self {
            Margin::Amount(a) => deviation <= a,
            Margin::Ratio(r) => deviation <= r * expected.abs(),
        }
    }

    fn is_valid(self) -> bool {
        match self {
            Margin::Amount(v) | Margin::Ratio(v) => v.is_finite() && v >= 0.0,
        }
    }
}

/// Ignore-near-expected bands: a candidate anomaly whose attributed metric lies within the
/// band around its expected value is suppressed ([`Suppression::NearExpected`]). Above and
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
    /// ([`Suppression::HoldOff`]) unless it scores [`HOLDOFF_RISE`] times as high; a quarter of
    /// it without any candidate ends the event early.
    pub holdoff: usize,
    /// A candidate whose shingle lies within this fraction of its own deviation from the
    /// metrics' typical levels (L1, weighted by its attribution over the metrics that carry it)
    /// of a remembered event's shingle repeats a known pattern and is not reported
    /// ([`Suppression::Repeat`]); 0 disables.
    pub repeat_tolerance: f64,
}

/// Builds a [`Detector`]; see [`Detector::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct DetectorBuilder {
    config: DetectorConfig,
    time_decay: Option<f64>,
    output_after: Option<usize>,
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

    /// Input transform. Default [`Normalization::Normalize`].
    pub fn normalization(mut self, n: Normalization) -> Self {
        self.config.normalization = n;
        self
    }

    /// How readily anomalies are raised. Default [`Sensitivity::Medium`].
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

    /// Points after an anomaly during which a new anomaly must score [`HOLDOFF_RISE`] times as
    /// high (the hold-off ends early after a quarter of it without a point above the
    /// threshold). Default [`DEFAULT_HOLDOFF`]; 0 turns the hold-off off.
    pub fn holdoff(mut self, points: usize) -> Self {
        self.config.holdoff = points;
        self
    }

    /// How close (as a fraction of a candidate's own deviation) a candidate must come to one
    /// of the last [`REPEAT_MEMORY`] anomalies to count as a repeat of that known pattern
    /// (a nightly backup's spike, a sawtooth's reset) and not be reported. Default
    /// [`DEFAULT_REPEAT_TOLERANCE`]; 0 reports every repeat.
    pub fn repeat_tolerance(mut self, fraction: f64) -> Self {
        self.config.repeat_tolerance = fraction;
        self
    }

    /// Validates the parameters and builds the detector.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] (or a wrapped forest parameter error) naming the first
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

/// A streaming anomaly detector for one stream of named metrics (one device, say).
///
/// Per point: validation → missing values (NaN) imputed from the forest → normalisation (in
/// frames that move the forest along when they change, see [`Normalization::Normalize`]) →
/// internal shingling → score → adaptive threshold → for candidates above it: attribution,
/// suppression, explanation → event tracking → update.
///
/// Suppression makes one event one alarm. After an alarm (an event start), a candidate within
/// the hold-off ([`DetectorConfig::holdoff`] points) is part of the same event
/// ([`Suppression::HoldOff`]) unless it scores [`HOLDOFF_RISE`] times as high, or, within a
/// shingle of the start, is driven by another metric or direction. A candidate that starts an
/// event but nearly repeats one of the last [`REPEAT_MEMORY`] events' shingles (where its
/// attribution lies) is a known pattern ([`Suppression::Repeat`]): it starts a hold-off but is
/// not reported. Then the optional ignore-near-expected bands apply. Reported anomalies carry a
/// grade, `score / (score + peak)` with `peak` the stream's tracked 99.5th-percentile score,
/// which ranks alarms across streams.
///
/// Event tracking: an alarm opens an event and keeps a frozen copy of the model as it was
/// (forest, normaliser, threshold); [`Verdict::in_event`] stays true until a shingle's worth
/// (at least 4) of consecutive points score at or below that threshold against the copy, or
/// for at most two sample sizes of points. Events open once the forest has seen a sample size
/// of points. While one is open it costs a second forest in memory and a second score per
/// point.
///
/// # Example
///
/// ```
/// use rcf_stream::{Detector, Sensitivity};
///
/// let mut detector = Detector::builder(["torque", "battery"])
///     .sensitivity(Sensitivity::Medium)
///     .seed(1)
///     .build()?;
/// let mut alarms = Vec::new();
/// for t in 0..3_000 {
///     let torque = (t as f32 / 20.0).sin();
///     let battery = 1.0 - (t % 500) as f32 / 500.0;
///     let spike = if t == 2_500 { 6.0 } else { 0.0 };
///     let verdict = detector.process(&[torque + spike, battery])?;
///     if verdict.is_anomaly {
///         alarms.push((t, verdict.top_metric().unwrap().metric.to_string()));
///     }
/// }
/// assert!(alarms.contains(&(2_500, "torque".to_string())), "{alarms:?}");
/// # Ok::<(), rcf_stream::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Detector {
    pub(crate) config: DetectorConfig,
    pub(crate) names: Vec<Arc<str>>,
    pub(crate) forest: RandomCutForest,
    pub(crate) normalizer: Normalizer,
    pub(crate) thresholder: Thresholder,
    pub(crate) quality: Decayed,
    pub(crate) seen: u64,
    /// Raw inputs buffered until the normaliser is initialised.
    pub(crate) warm: Vec<f64>,
    pub(crate) normalizer_ready: bool,
    /// The last point that started an event: a reported anomaly, or a candidate recognised as
    /// a [`Suppression::Repeat`] of one.
    pub(crate) last_anomaly: Option<u64>,
    /// That point's score.
    pub(crate) last_score: f64,
    /// The metric and direction that drove it.
    pub(crate) last_driver: Option<(usize, bool)>,
    /// The last point that scored above the threshold.
    pub(crate) last_candidate: Option<u64>,
    /// The last [`REPEAT_MEMORY`] remembered shingles (forest points) of event starts and their
    /// echoes, oldest first.
    pub(crate) memory: std::collections::VecDeque<Vec<f32>>,
    /// The open event's reference model, if an event is open (see [`crate::event`]).
    pub(crate) event: Option<Box<OpenEvent>>,
    /// No new normalisation frame before this point (after the forest refused one).
    pub(crate) next_reframe: u64,
    scratch: Scratch,
    z: Vec<f32>,
    raw: Vec<f64>,
}

impl Detector {
    /// Starts building a detector for the named metrics (in input order).
    pub fn builder<I, S>(metrics: I) -> DetectorBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DetectorBuilder {
            config: DetectorConfig {
                metrics: metrics.into_iter().map(Into::into).collect(),
                shingle_size: DEFAULT_SHINGLE_SIZE,
                num_trees: rcf_core::DEFAULT_NUM_TREES,
                sample_size: rcf_core::DEFAULT_SAMPLE_SIZE,
                time_decay: 0.0,
                output_after: 0,
                seed: rcf_core::DEFAULT_SEED,
                normalization: Normalization::Normalize,
                sensitivity: Sensitivity::Medium,
                tolerance: Tolerance::default(),
                normalize_after: DEFAULT_NORMALIZE_AFTER,
                box_cache_min_mass: rcf_core::DEFAULT_BOX_CACHE_MIN_MASS,
                holdoff: DEFAULT_HOLDOFF,
                repeat_tolerance: DEFAULT_REPEAT_TOLERANCE,
            },
            time_decay: None,
            output_after: None,
        }
    }

    pub(crate) fn from_parts(config: DetectorConfig, forest: RandomCutForest) -> Self {
        let m = config.metrics.len();
        let decay = config.time_decay;
        Detector {
            names: config
                .metrics
                .iter()
                .map(|n| Arc::from(n.as_str()))
                .collect(),
            normalizer: Normalizer::new(config.normalization, decay, m),
            thresholder: Thresholder::new(config.sensitivity, decay),
            quality: Decayed::default(),
            seen: 0,
            warm: Vec::with_capacity(config.normalize_after * m),
            normalizer_ready: false,
            last_anomaly: None,
            last_score: 0.0,
            last_driver: None,
            last_candidate: None,
            memory: std::collections::VecDeque::new(),
            event: None,
            next_reframe: 0,
            scratch: forest.scratch(),
            z: vec![0.0; m],
            raw: vec![0.0; m],
            forest,
            config,
        }
    }

    /// The validated parameters.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The metric names, in input order.
    pub fn metrics(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Points processed (including bootstrap history).
    pub fn points_seen(&self) -> u64 {
        self.seen
    }

    /// The forest behind the detector.
    pub fn forest(&self) -> &RandomCutForest {
        &self.forest
    }

    /// Points a fresh detector consumes before it gives verdicts (it is ready from the next
    /// one): the forest needs `shingle_size − 1 + output_after` inputs (the normaliser's first
    /// `normalize_after` inputs are buffered, then fed to the forest, so they count), and the
    /// thresholder its first [`MIN_SCORES`] scores. 77 with the defaults; 0 more after a
    /// [`bootstrap`](Self::bootstrap) with at least that many rows.
    pub fn points_needed(&self) -> u64 {
        let forest = (self.config.shingle_size - 1 + self.config.output_after)
            .max(self.config.normalize_after);
        forest as u64 + MIN_SCORES
    }

    /// The recent share of observed (not missing) values, in [0, 1], decayed like the forest's
    /// samples; it scales each verdict's `confidence`.
    pub fn data_quality(&self) -> f64 {
        if self.quality.weight() > 0.0 {
            self.quality.mean()
        } else {
            1.0
        }
    }

    /// Warming or ready.
    pub fn state(&self) -> DetectorState {
        if self.forest.is_ready() && self.thresholder.count() >= MIN_SCORES {
            DetectorState::Ready
        } else {
            DetectorState::Warming {
                seen: self.seen,
                needed: self.points_needed(),
            }
        }
    }

    /// The confidence of a verdict now (rcf-reference §8.5): the share of the samplers' decayed
    /// weight that comes from after warm-up, scaled by the recent share of observed (not
    /// imputed) values.
    fn confidence(&self) -> f64 {
        let q = if self.quality.weight() > 0.0 {
            self.quality.mean()
        } else {
            1.0
        };
        let n = self.forest.entries_seen() as f64;
        let after = self.config.output_after as f64;
        let lambda = self.config.time_decay;
        if n <= after {
            return 0.0;
        }
        let share = if lambda * n >= 20.0 {
            1.0
        } else if lambda > 0.0 {
            ((lambda * n).exp() - (lambda * after).exp()) / (lambda * n).exp_m1()
        } else {
            (n - after) / n
        };
        (q * share).clamp(0.0, 1.0)
    }

    fn check(&self, x: &[f32]) -> Result<usize> {
        let m = self.names.len();
        if x.len() != m {
            return Err(Error::DimensionMismatch {
                expected: m,
                actual: x.len(),
            });
        }
        if let Some(j) = x.iter().position(|v| v.is_infinite()) {
            return Err(Error::NonFinite {
                metric: self.names[j].to_string(),
                value: x[j],
            });
        }
        Ok(x.iter().filter(|v| v.is_nan()).count())
    }

    /// Processes one point (one value per metric, in the builder's order; NaN marks a missing
    /// value, which is imputed and lowers the confidence).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for a wrong number of values, [`Error::NonFinite`] for an
    /// infinite value. The detector is unchanged on error.
    pub fn process(&mut self, x: &[f32]) -> Result<Verdict> {
        let missing = self.check(x)?;
        Ok(self.step(x, missing, true))
    }

    /// Processes every row of `rows` (row-major, one value per metric, oldest first) as
    /// [`process`](Self::process) would, in order; returns one verdict per row.
    ///
    /// All or nothing: every row is checked before the first is processed, so a rejected
    /// batch leaves the detector as it was.
    ///
    /// # Errors
    ///
    /// [`Error::HistoryShape`] if `rows` is not whole rows; [`Error::NonFinite`] (naming the
    /// metric) for an infinite value in any row. Nothing is learned on error.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut detector = Detector::builder(["a", "b"]).seed(1).build()?;
    /// let rows: Vec<f32> = (0..500).flat_map(|t| [(t % 9) as f32, 1.0]).collect();
    /// let verdicts = detector.process_many(&rows)?;
    /// assert_eq!(verdicts.len(), 500);
    /// // a bad row anywhere: nothing learned
    /// assert!(detector.process_many(&[1.0, 1.0, 1.0, f32::INFINITY]).is_err());
    /// assert_eq!(detector.points_seen(), 500);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn process_many(&mut self, rows: &[f32]) -> Result<Vec<Verdict>> {
        let missing = self.check_rows(rows)?;
        Ok(rows
            .chunks_exact(self.names.len())
            .zip(missing)
            .map(|(row, missing)| self.step(row, missing, true))
            .collect())
    }

    /// Warms the detector from history (row-major, one value per metric per row, oldest
    /// first) in one call: the normaliser, the forest and the thresholder learn from it as if
    /// it had streamed through [`process`](Self::process), without building verdicts. A
    /// detector bootstrapped with at least [`points_needed`](Self::points_needed) rows gives
    /// calibrated verdicts from its first live point.
    ///
    /// # Errors
    ///
    /// As [`process_many`](Self::process_many): all or nothing, nothing is learned from a
    /// history with a bad row.
    pub fn bootstrap(&mut self, history: &[f32]) -> Result<()> {
        let missing = self.check_rows(history)?;
        for (row, missing) in history.chunks_exact(self.names.len()).zip(missing) {
            self.step(row, missing, false);
        }
        Ok(())
    }

    /// Checks a batch of rows before any is processed; returns each row's missing count.
    fn check_rows(&self, rows: &[f32]) -> Result<Vec<usize>> {
        let m = self.names.len();
        if !rows.len().is_multiple_of(m) {
            return Err(Error::HistoryShape {
                len: rows.len(),
                metrics: m,
            });
        }
        rows.chunks_exact(m).map(|row| self.check(row)).collect()
    }

    fn step(&mut self, x: &[f32], missing: usize, explain: bool) -> Verdict {
        let m = self.names.len();
        self.seen += 1;
        self.quality
            .update(1.0 - missing as f64 / m as f64, self.config.time_decay);

        if !self.normalizer_ready {
            self.warm_up(x);
            return Verdict::quiet(
                self.state(),
                crate::threshold::INITIAL_THRESHOLD,
                0.0,
                missing,
            );
        }

        for (j, (z, &v)) in self.z.iter_mut().zip(x).enumerate() {
            *z = self.normalizer.forward(j, f64::from(v)) as f32;
        }
        if missing > 0 {
            match self.forest.impute(&self.z) {
                Ok(filled) => self.z.copy_from_slice(&filled),
                // no complete shingle yet: fall back on the normalised mean
                Err(_) => self
                    .z
                    .iter_mut()
                    .filter(|v| v.is_nan())
                    .for_each(|v| *v = 0.0),
            }
        }
        for (j, ((raw, &z), &v)) in self.raw.iter_mut().zip(&self.z).zip(x).enumerate() {
            *raw = if v.is_nan() {
                // an imputed reading, kept in the f32 range of real inputs so the statistics
                // it feeds stay within the bounds checkpoints verify
                let bound = f64::from(f32::MAX);
                self.normalizer
                    .inverse(j, f64::from(z))
                    .clamp(-bound, bound)
            } else {
                f64::from(v)
            };
        }
        let score = self
            .forest
            .score_with(&mut self.scratch, &self.z)
            .expect("normalised values are finite and of the right length");
        let threshold = self.thresholder.threshold();
        let state = self.state();
        let mut verdict = Verdict::quiet(state, threshold, self.confidence(), missing);
        verdict.score = score;
        if score > 0.0 && self.thresholder.count() > 0 {
            verdict.p_value = self.thresholder.p_value(score);
        }
        let grade = self.thresholder.grade(score, threshold);
        if state == DetectorState::Ready && grade > 0.0 {
            let a = self
                .forest
                .attribution(&self.z)
                .expect("normalised values are finite and of the right length");
            let driver = self.driver(&a);
            let holdoff = self.in_holdoff(score, driver);
            let folded = a.fold_shingle();
            let repeat = self.is_repeat(&a, &folded, holdoff);
            verdict.suppressed = if holdoff {
                Some(Suppression::HoldOff)
            } else if repeat {
                Some(Suppression::Repeat)
            } else {
                None
            };
            if explain {
                self.explain(x, &a, &folded, &mut verdict);
            }
            if verdict.suppressed.is_none() {
                verdict.is_anomaly = true;
                verdict.grade = grade;
            }
            self.last_candidate = Some(self.seen);
            if verdict.is_anomaly || repeat {
                // an event starts here: its hold-off follows
                self.last_anomaly = Some(self.seen);
                self.last_score = score;
                self.last_driver = Some(driver);
            }
        }

        self.track_event(&mut verdict, threshold);

        self.forest
            .update(&self.z)
            .expect("normalised values are finite and of the right length");
        self.normalizer.update(&self.raw);
        self.reframe();
        if score > 0.0 {
            self.thresholder.update(score);
        }
        verdict
    }

    /// Follows the open event against its reference, or opens one on an alarm (before the
    /// forest and normaliser learn this point).
    fn track_event(&mut self, verdict: &mut Verdict, threshold: f64) {
        if let Some(event) = &mut self.event {
            event.observe(&self.raw);
            if event.is_over(self.seen, self.config.shingle_size, self.config.sample_size) {
                self.event = None;
            }
        }
        if verdict.is_anomaly
            && self.event.is_none()
            && self.forest.entries_seen() >= self.config.sample_size as u64
            && let Some(shingle) = self
                .forest
                .shingled(&self.z)
                .expect("normalised values are of the right length")
        {
            self.event = Some(Box::new(OpenEvent {
                forest: self.forest.clone(),
                normalizer: self.normalizer.clone(),
                threshold,
                started: self.seen,
                conforming: 0,
                shingle,
                scratch: self.forest.scratch(),
            }));
        }
        verdict.in_event = self.event.is_some();
    }

    /// Moves the forest into new normalisation frames when a metric's statistics have left its
    /// frame (see [`crate::normalize`]). Should the forest refuse (the move would merge stored
    /// values in `f32`), the old frames stay and the next attempt waits a sample size.
    fn reframe(&mut self) {
        if self.seen < self.next_reframe {
            return;
        }
        if let Some(r) = self.normalizer.reframe() {
            match self.forest.rescale_inputs(&r.scale, &r.shift) {
                Ok(()) => {
                    // remembered shingles move with the forest; one whose values would leave
                    // the f32 range in the new frame (the forest's own values did not, but a
                    // remembered event may lie further out) is forgotten
                    self.memory.retain_mut(|point| r.apply(point));
                    self.normalizer.adopt(r);
                }
                Err(_) => self.next_reframe = self.seen + self.config.sample_size as u64,
            }
        }
    }

    /// The metric and direction (true = high) carrying most of the newest shingle slot's
    /// attribution.
    fn driver(&self, a: &Attribution) -> (usize, bool) {
        let m = self.names.len();
        let newest = (self.config.shingle_size - 1) * m;
        (0..m)
            .map(|j| (j, a.high(newest + j), a.low(newest + j)))
            .max_by(|x, y| (x.1 + x.2).total_cmp(&(y.1 + y.2)))
            .map(|(j, h, l)| (j, h >= l))
            .expect("at least one metric")
    }

    /// Whether a candidate scoring `score`, driven by `driver`, belongs to the event that
    /// started last: inside the hold-off unless it scores [`HOLDOFF_RISE`] times as high, and
    /// within a shingle of the start (the start's echoes, a level shift filling the shingle)
    /// unless it is also driven by another metric or direction (a second anomaly right after
    /// the first, RCF issue #359). The event, and its hold-off, is over once a quarter of the
    /// hold-off has passed without a candidate.
    fn in_holdoff(&self, score: f64, driver: (usize, bool)) -> bool {
        let Some(last) = self.last_anomaly else {
            return false;
        };
        let gap = self.seen - last;
        let echo = gap < self.config.shingle_size as u64 && self.last_driver == Some(driver);
        let holdoff = self.config.holdoff as u64;
        let quiet = self
            .last_candidate
            .is_some_and(|c| self.seen - c > holdoff / HOLDOFF_QUIET_PARTS);
        !quiet && gap <= holdoff && (echo || score <= HOLDOFF_RISE * self.last_score)
    }

    /// Whether a candidate that starts an event (`in_holdoff` false) repeats a recent event's
    /// pattern: its shingle lies within `repeat_tolerance` of a remembered one, relative to its
    /// own deviation from the metrics' typical levels, both measured where its attribution
    /// lies (so that the other metrics' noise does not hide a repeat). Remembers the shingles
    /// of event starts and of the candidates within a shingle after them, so an event is
    /// remembered at every alignment its echoes took.
    fn is_repeat(&mut self, a: &Attribution, folded: &Attribution, in_holdoff: bool) -> bool {
        let tolerance = self.config.repeat_tolerance;
        let k = self.config.shingle_size as u64;
        let echo = in_holdoff && self.last_anomaly.is_some_and(|l| self.seen - l < k);
        if tolerance <= 0.0 || (in_holdoff && !echo) {
            return false;
        }
        let Some(point) = self
            .forest
            .shingled(&self.z)
            .expect("normalised values are of the right length")
        else {
            return false;
        };
        let m = self.names.len();
        let total = folded.total().max(f64::MIN_POSITIVE);
        let top = (0..m)
            .map(|j| folded.high(j) + folded.low(j))
            .fold(0.0, f64::max);
        let involved: Vec<bool> = (0..m)
            .map(|j| {
                let t = folded.high(j) + folded.low(j);
                t >= EXPECTED_SHARE * total || t == top
            })
            .collect();
        let weight = |d: usize| {
            if involved[d % m] {
                a.high(d) + a.low(d)
            } else {
                0.0
            }
        };
        let repeat = !in_holdoff && {
            let deviation: f64 = point
                .iter()
                .enumerate()
                .map(|(d, &v)| weight(d) * (f64::from(v) - self.normalizer.typical(d % m)).abs())
                .sum();
            self.memory.iter().any(|old| {
                let distance: f64 = old
                    .iter()
                    .zip(&point)
                    .enumerate()
                    .map(|(d, (x, y))| weight(d) * (f64::from(*x) - f64::from(*y)).abs())
                    .sum();
                distance < tolerance * deviation
            })
        };
        if self.memory.len() == REPEAT_MEMORY {
            self.memory.pop_front();
        }
        self.memory.push_back(point);
        repeat
    }

    fn warm_up(&mut self, x: &[f32]) {
        let m = self.names.len();
        for (j, &v) in x.iter().enumerate() {
            let filled = if v.is_nan() {
                // the previous buffered value of this metric, or 0 at the very start
                let rows = self.warm.len() / m;
                if rows > 0 {
                    self.warm[(rows - 1) * m + j]
                } else {
                    0.0
                }
            } else {
                f64::from(v)
            };
            self.warm.push(filled);
        }
        if self.warm.len() == self.config.normalize_after * m {
            let rows = std::mem::take(&mut self.warm);
            for row in rows.chunks_exact(m) {
                self.normalizer.update(row);
            }
            self.normalizer.init_frames();
            for row in rows.chunks_exact(m) {
                for (j, (z, &v)) in self.z.iter_mut().zip(row).enumerate() {
                    *z = self.normalizer.forward(j, v) as f32;
                }
                self.forest
                    .update(&self.z)
                    .expect("normalised values are finite and of the right length");
            }
            self.normalizer_ready = true;
        }
    }

    /// Fills the attribution and relative index of a candidate and, unless it is already
    /// suppressed, its expected values and the ignore-near-expected verdict.
    /// `folded` is `a` folded over the shingle.
    fn explain(&mut self, x: &[f32], a: &Attribution, folded: &Attribution, verdict: &mut Verdict) {
        let m = self.names.len();
        let k = self.config.shingle_size;
        verdict.attribution = (0..m)
            .map(|j| MetricAttribution {
                metric: self.names[j].clone(),
                high: folded.high(j),
                low: folded.low(j),
            })
            .collect();
        let slot = |i: usize| {
            (0..m)
                .map(|j| a.high(i * m + j) + a.low(i * m + j))
                .sum::<f64>()
        };
        let strongest = (0..k)
            .max_by(|&p, &q| slot(p).total_cmp(&slot(q)))
            .unwrap_or(k - 1);
        verdict.relative_index = strongest as i32 - (k as i32 - 1);

        if verdict.suppressed.is_some() {
            return;
        }
        // expected values of the metrics that carry the newest slot's attribution
        let newest = k - 1;
        let newest_total = slot(newest);
        if newest_total <= 0.0 {
            return;
        }
        let mut query = self.z.clone();
        for j in 0..m {
            let share = (a.high(newest * m + j) + a.low(newest * m + j)) / newest_total;
            if share < EXPECTED_SHARE {
                continue;
            }
            query.copy_from_slice(&self.z);
            query[j] = f32::NAN;
            let Ok(filled) = self.forest.impute(&query) else {
                continue;
            };
            let expected = self.normalizer.inverse(j, f64::from(filled[j]));
            let actual = f64::from(x[j]);
            verdict.expected.push(ExpectedValue {
                metric: self.names[j].clone(),
                actual,
                expected,
            });
        }

        // ignore-near-expected: suppress when every explained metric is inside its band
        let t = self.config.tolerance;
        if (t.above.is_some() || t.below.is_some()) && !verdict.expected.is_empty() {
            let inside = verdict.expected.iter().all(|e| {
                let d = e.actual - e.expected;
                let band = if d >= 0.0 { t.above } else { t.below };
                band.is_some_and(|b| b.covers(d.abs(), e.expected))
            });
            if inside {
                verdict.suppressed = Some(Suppression::NearExpected);
            }
        }
    }
}
