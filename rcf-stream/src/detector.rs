//! [`Detector`]: one stream of named metrics in, one [`Verdict`] per point out.

use std::sync::Arc;

use rcf_core::RandomCutForest;

use crate::config::{
    DEFAULT_NORMALIZE_AFTER, DEFAULT_SHINGLE_SIZE, DetectorBuilder, DetectorConfig, Tolerance,
    rate_needs_p_values,
};
use crate::correct::{DEFAULT_HOLDOFF, DEFAULT_REPEAT_TOLERANCE, Driver};
use crate::error::{Error, Result};
use crate::event::OpenEvent;
use crate::normalize::{Normalization, Normalizer};
use crate::stats::{Decayed, READING_BOUND};
use crate::threshold::{MIN_SCORES, Sensitivity, Thresholder};
use crate::verdict::{DetectorState, Suppression, Verdict};

/// A streaming anomaly detector for one stream of named metrics (one device, say).
///
/// Per point: validation → missing values (NaN) imputed from the forest → normalisation (in
/// frames that move the forest along when they change, see [`Normalization::Normalize`](crate::Normalization::Normalize)) →
/// internal shingling → score → adaptive threshold → for candidates above it: attribution,
/// suppression, explanation → event tracking → update.
///
/// Suppression makes one event one alarm. After an alarm (an event start), a candidate within
/// the hold-off ([`DetectorConfig::holdoff`](crate::DetectorConfig::holdoff) points) is part of the same event
/// ([`Suppression::HoldOff`](crate::Suppression::HoldOff)) unless it scores [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as high, or, within a
/// shingle of the start, is driven by another metric or direction. A candidate that starts an
/// event but nearly repeats one of the last [`REPEAT_MEMORY`](crate::REPEAT_MEMORY) events' shingles (where its
/// attribution lies) is a known pattern ([`Suppression::Repeat`](crate::Suppression::Repeat)): it starts a hold-off but is
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
    /// a [`Suppression::Repeat`](crate::Suppression::Repeat) of one.
    pub(crate) last_anomaly: Option<u64>,
    /// That point's score.
    pub(crate) last_score: f64,
    /// The metric and direction that drove it.
    pub(crate) last_driver: Option<Driver>,
    /// The last point that scored above the threshold.
    pub(crate) last_candidate: Option<u64>,
    /// The last [`REPEAT_MEMORY`](crate::REPEAT_MEMORY) remembered shingles (forest points) of event starts and their
    /// echoes, oldest first.
    pub(crate) memory: std::collections::VecDeque<Vec<f32>>,
    /// The open event's reference model, if an event is open (see [`crate::event`]).
    pub(crate) event: Option<Box<OpenEvent>>,
    /// No new normalisation frame before this point (after the forest refused one).
    pub(crate) next_reframe: u64,
    /// The current point in the forest's frames (normalised, imputed).
    pub(crate) z: Vec<f32>,
    raw: Vec<f64>,
    /// Whether the thresholder settles once the forest has filled (see
    /// [`settle_after_warm_up`](Self::settle_after_warm_up)); set by its owner, not saved.
    settles: bool,
}

impl Detector {
    /// Starts building a detector for the named metrics (in input order).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::{Detector, Sensitivity};
    /// let d = Detector::builder(["torque", "battery"])
    ///     .sensitivity(Sensitivity::High)
    ///     .shingle_size(8)
    ///     .seed(3)
    ///     .build()?;
    /// assert_eq!(d.config().sensitivity, Sensitivity::High);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn builder<I, S>(metrics: I) -> DetectorBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let metrics: Vec<String> = metrics.into_iter().map(Into::into).collect();
        DetectorBuilder {
            // the forest's own defaults, but the detector's shingle
            forest: RandomCutForest::builder(metrics.len()).shingle_size(DEFAULT_SHINGLE_SIZE),
            metrics,
            normalization: Normalization::Normalize,
            sensitivity: Sensitivity::Medium,
            p_values: true,
            tolerance: Tolerance::default(),
            normalize_after: DEFAULT_NORMALIZE_AFTER,
            holdoff: DEFAULT_HOLDOFF,
            repeat_tolerance: DEFAULT_REPEAT_TOLERANCE,
        }
    }

    pub(crate) fn from_parts(
        config: DetectorConfig,
        forest: RandomCutForest,
        p_values: bool,
    ) -> Self {
        let m = config.metrics.len();
        let decay = config.forest.time_decay;
        Detector {
            names: config
                .metrics
                .iter()
                .map(|n| Arc::from(n.as_str()))
                .collect(),
            normalizer: Normalizer::new(config.normalization, decay, m),
            thresholder: Thresholder::new(config.sensitivity, decay, p_values),
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
            z: vec![0.0; m],
            raw: vec![0.0; m],
            settles: false,
            forest,
            config,
        }
    }

    /// The validated parameters.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// assert_eq!(d.config().forest.shingle_size, 4);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Changes how far above the recent scores a point must score to be reported, keeping
    /// everything learned: the forest, the normaliser and the score statistics. The new
    /// threshold applies from the next point. A rejected sensitivity (a z-factor below 1, a
    /// rate outside (0, 0.5)) changes nothing.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::{Detector, Sensitivity};
    /// let mut d = Detector::builder(["temp"]).seed(1).build()?;
    /// d.set_sensitivity(Sensitivity::ZFactor(3.5))?;
    /// assert_eq!(d.config().sensitivity, Sensitivity::ZFactor(3.5));
    /// assert!(d.set_sensitivity(Sensitivity::ZFactor(0.5)).is_err());
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn set_sensitivity(&mut self, sensitivity: Sensitivity) -> Result<()> {
        let s = sensitivity.validate()?;
        if !self.p_values() {
            rate_needs_p_values(s)?;
        }
        self.config.sensitivity = s;
        self.thresholder.set_sensitivity(s);
        Ok(())
    }

    /// Whether this detector keeps the distribution of its recent scores that
    /// [`Verdict::p_value`](crate::Verdict::p_value) is read from (see
    /// [`DetectorBuilder::p_values`](crate::DetectorBuilder::p_values)).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let d = Detector::builder(["temp"]).p_values(false).build()?;
    /// assert!(!d.p_values());
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn p_values(&self) -> bool {
        self.thresholder.keeps_p_values()
    }

    /// Frees the score distribution, as if built with
    /// [`DetectorBuilder::p_values`](crate::DetectorBuilder::p_values)`(false)`: the fleet's
    /// models, which read no p-values, restored from checkpoints that kept one. Verdicts are
    /// otherwise unchanged. Only for z-factor sensitivities (a target rate reads it).
    pub(crate) fn drop_p_values(&mut self) {
        if !matches!(self.config.sensitivity, Sensitivity::AnomalyRate(_)) {
            self.thresholder.drop_p_values();
        }
    }

    /// Has the threshold's score statistics keep the weight of only a few scores
    /// (`SETTLED_WEIGHT`) once they hold a sample size of them, so that the scores of the
    /// warm-up, when the forest is young and scores run high and spread, stop holding the
    /// threshold up. Without it they weigh on it with the forest's own time decay: a fleet
    /// model's threshold took three weeks to come down to its steady state (BENCHMARKS.md,
    /// "False alarms as models age"), where the fleet's confidence levels are calibrated.
    ///
    /// For the fleet's models, which set it whenever they build or restore one: it is not
    /// saved in checkpoints, and depends only on the score count, which is. The single-stream
    /// detector does without (its NAB and SKAB figures were mixed, see BENCHMARKS.md).
    pub(crate) fn settle_after_warm_up(&mut self) {
        self.settles = true;
    }

    /// Whether [`settle_after_warm_up`](Self::settle_after_warm_up) was called.
    #[cfg(test)]
    pub(crate) fn settles(&self) -> bool {
        self.settles
    }

    /// The metric names, in input order.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// assert_eq!(&*d.metrics()[1], "load");
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn metrics(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Points processed (including bootstrap history).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// d.process(&[20.0, 0.5])?;
    /// assert_eq!(d.points_seen(), 1);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn points_seen(&self) -> u64 {
        self.seen
    }

    /// Bytes of memory the detector holds: its forest, the frozen reference model while an
    /// event is open (a second forest), the threshold's score distribution, the normaliser,
    /// buffers and the struct itself. What a fleet's model registry budgets.
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["rate"]).seed(1).build()?;
    /// for t in 0..2_000 { d.process(&[(t as f32 / 10.0).sin()])?; }
    /// assert!(d.memory_usage() > d.forest().memory_usage());
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.forest.memory_usage()
            + self.event.as_ref().map_or(0, |e| e.memory_usage())
            + self.thresholder.memory_bytes()
            + self.normalizer.memory_bytes()
            + self.names.capacity() * std::mem::size_of::<Arc<str>>()
            + self.names.iter().map(|n| n.len() + 16).sum::<usize>()
            + self.warm.capacity() * 8
            + self.memory.capacity() * std::mem::size_of::<Vec<f32>>()
            + self.memory.iter().map(|m| m.capacity() * 4).sum::<usize>()
            + self.z.capacity() * 4
            + self.raw.capacity() * 8
    }

    /// Hints the CPU to bring this detector's model into cache ahead of a call that will use
    /// it; changes nothing (see [`RandomCutForest::prefetch`]). For code that works through
    /// many detectors in turn, as a fleet does: call it on the next one before processing the
    /// current one.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut ds: Vec<Detector> = (0..3)
    ///     .map(|s| Detector::builder(["temp"]).seed(s).build())
    ///     .collect::<Result<_, _>>()?;
    /// for i in 0..ds.len() {
    ///     if let Some(next) = ds.get(i + 1) {
    ///         next.prefetch();
    ///     }
    ///     ds[i].process(&[20.0])?;
    /// }
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn prefetch(&self) {
        self.forest.prefetch();
    }

    /// The forest behind the detector.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// assert_eq!(d.forest().dimensions(), 8); // 2 metrics x shingle 4
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn forest(&self) -> &RandomCutForest {
        &self.forest
    }

    /// Points a fresh detector consumes before it gives verdicts (it is ready from the next
    /// one): the forest needs `shingle_size − 1 + output_after` inputs (the normaliser's first
    /// `normalize_after` inputs are buffered, then fed to the forest, so they count), and the
    /// thresholder its first [`MIN_SCORES`] scores. 77 with the defaults; 0 more after a
    /// [`bootstrap`](Self::bootstrap) with at least that many rows.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// assert_eq!(d.points_needed(), 77);
    /// for t in 0..77 { d.process(&[20.0 + (t % 5) as f32, 0.5])?; }
    /// assert_eq!(d.state(), rcf_stream::DetectorState::Ready);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn points_needed(&self) -> u64 {
        let f = &self.config.forest;
        let forest =
            (f.shingle_size as u64 - 1 + f.output_after).max(self.config.normalize_after as u64);
        forest + MIN_SCORES
    }

    /// Points a fresh detector consumes in all, with complete data, until its verdicts are
    /// ready and reach [`Verdict::confidence`] `c` (in (0, 1)), counting the point that does:
    /// the fleet engine counts ML verdicts from confidence 0.5, and reports this as the
    /// datapoints a model needs.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["rate"]).seed(1).build()?;
    /// let n = d.points_to_confidence(0.5);
    /// for t in 0..n - 1 { d.process(&[(t % 7) as f32])?; }
    /// assert!(d.process(&[3.0])?.confidence >= 0.5);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn points_to_confidence(&self, c: f64) -> u64 {
        let f = &self.config.forest;
        let c = c.clamp(1e-9, 1.0 - 1e-9);
        let (a, lambda) = (f.output_after as f64, f.time_decay);
        // share(n) = (e^{λn} − e^{λa}) / (e^{λn} − 1) ≥ c  ⇔  n ≥ ln((e^{λa} − c) / (1 − c)) / λ
        let entries = if lambda > 0.0 {
            (((lambda * a).exp() - c) / (1.0 - c)).ln() / lambda
        } else {
            a / (1.0 - c)
        };
        let entries = entries.ceil().max(a + 1.0) as u64;
        // every input is a forest entry (the normaliser's buffered first inputs too), and a
        // verdict's confidence is that of the entries before its point
        (entries + 1)
            .max(self.config.normalize_after as u64)
            .max(self.points_needed() + 1)
    }

    /// The recent share of observed (not missing) values, in [0, 1], decayed like the forest's
    /// samples; it scales each verdict's `confidence`.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// for t in 0..100 { d.process(&[if t % 4 == 0 { f32::NAN } else { 20.0 }, 0.5])?; }
    /// assert!(d.data_quality() < 0.95); // an eighth of the values were missing
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn data_quality(&self) -> f64 {
        if self.quality.weight() > 0.0 {
            self.quality.mean()
        } else {
            1.0
        }
    }

    /// Warming or ready.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// assert!(matches!(d.state(), rcf_stream::DetectorState::Warming { seen: 0, needed: 77 }));
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
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
        let after = self.config.forest.output_after as f64;
        let lambda = self.config.forest.time_decay;
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
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["temp", "load"]).seed(1).build()?;
    /// for t in 0..1_000 { d.process(&[20.0 + (t % 10) as f32 * 0.1, 0.5])?; }
    /// let v = d.process(&[20.5, 9.0])?; // load jumps
    /// assert!(v.is_anomaly && v.top_metric().unwrap().metric.as_ref() == "load");
    /// assert!(d.process(&[1.0]).is_err()); // wrong length: nothing learned
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
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
        self.quality.update(
            1.0 - missing as f64 / m as f64,
            self.config.forest.time_decay,
        );

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
                self.normalizer
                    .inverse(j, f64::from(z))
                    .clamp(-READING_BOUND, READING_BOUND)
            } else {
                f64::from(v)
            };
        }
        let score = self
            .forest
            .score(&self.z)
            .expect("normalised values are finite and of the right length");
        let threshold = self.thresholder.threshold();
        let state = self.state();
        let mut verdict = Verdict::quiet(state, threshold, self.confidence(), missing);
        verdict.score = score;
        if score > 0.0 && (self.thresholder.count() > 0 || !self.thresholder.keeps_p_values()) {
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
        if verdict.grade > 0.0 || verdict.in_event || !verdict.attribution.is_empty() {
            verdict.deviations = self.z.iter().map(|&z| f64::from(z)).collect();
        }

        // this thread's scratch still holds the point's scoring walk: admitting trees insert
        // along it
        self.forest
            .update(&self.z)
            .expect("normalised values are finite and of the right length");
        self.normalizer.update(&self.raw);
        self.reframe();
        if score > 0.0 {
            self.thresholder.update(score);
            if self.settles && self.thresholder.count() == self.config.forest.sample_size as u64 {
                self.thresholder.settle();
            }
        }
        verdict
    }

    /// Follows the open event against its reference, or opens one on an alarm (before the
    /// forest and normaliser learn this point).
    fn track_event(&mut self, verdict: &mut Verdict, threshold: f64) {
        if let Some(event) = &mut self.event {
            event.observe(&self.raw);
            if event.is_over(
                self.seen,
                self.config.forest.shingle_size,
                self.config.forest.sample_size,
            ) {
                self.event = None;
            }
        }
        if verdict.is_anomaly
            && self.event.is_none()
            && self.forest.entries_seen() >= self.config.forest.sample_size as u64
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
                Err(_) => self.next_reframe = self.seen + self.config.forest.sample_size as u64,
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily rhythm with multiplicative noise, `n` rows of one metric.
    fn rhythm(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|t| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                let daily = 1.0 + 0.5 * (std::f64::consts::TAU * t as f64 / 96.0).cos();
                (50.0 * daily * (0.9 + 0.2 * u)) as f32
            })
            .collect()
    }

    fn detector() -> Detector {
        Detector::builder(["rate"])
            .sample_size(64)
            .shingle_size(4)
            .p_values(false)
            .seed(11)
            .build()
            .unwrap()
    }

    #[test]
    fn a_settling_detector_differs_only_after_a_sample_size_of_scores() {
        let xs = rhythm(2_000, 3);
        let mut plain = detector();
        let mut settling = detector();
        settling.settle_after_warm_up();
        let mut first_difference = None;
        for (i, &x) in xs.iter().enumerate() {
            let (a, b) = (
                plain.process(&[x]).unwrap(),
                settling.process(&[x]).unwrap(),
            );
            assert_eq!(a.score.to_bits(), b.score.to_bits(), "row {i}");
            if first_difference.is_none() && a.threshold.to_bits() != b.threshold.to_bits() {
                first_difference = Some((i, plain.thresholder.count()));
            }
        }
        // settling after the 64th score leaves the threshold as it was; the 65th score moves
        // the statistics further than it would have, so the verdict after it is the first to
        // differ (a row's verdict reads the threshold before its own score joins them)
        let (row, count) = first_difference.expect("the thresholds part");
        assert_eq!(count, 66, "row {row}");
        // the warm-up's high scores still hold the plain detector's threshold up
        let (a, b) = (
            plain.thresholder.threshold(),
            settling.thresholder.threshold(),
        );
        assert!(b < a, "plain {a}, settling {b}");
    }

    #[test]
    fn a_settling_detector_restored_and_set_again_gives_the_same_verdicts() {
        let xs = rhythm(1_000, 4);
        let mut d = detector();
        d.settle_after_warm_up();
        for &x in &xs[..40] {
            d.process(&[x]).unwrap();
        }
        // saved before it has settled: the setting is not saved, the score count is
        let mut back = Detector::from_bytes(&d.to_bytes()).unwrap();
        back.settle_after_warm_up();
        for &x in &xs[40..] {
            let (a, b) = (d.process(&[x]).unwrap(), back.process(&[x]).unwrap());
            assert_eq!(a.threshold.to_bits(), b.threshold.to_bits());
            assert_eq!(a.is_anomaly, b.is_anomaly);
        }
        assert_eq!(d.to_bytes(), back.to_bytes());
    }
}
