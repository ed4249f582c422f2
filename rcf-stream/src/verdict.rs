//! What the detector says about each point.

use std::sync::Arc;

/// Whether a detector gives verdicts yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetectorState {
    /// Still learning: `seen` points so far, about `needed` before the first verdict (fewer
    /// after [`Detector::bootstrap`](crate::Detector::bootstrap)).
    Warming {
        /// Points seen.
        seen: u64,
        /// Points needed in all.
        needed: u64,
    },
    /// Verdicts are calibrated.
    Ready,
}

/// Why a point that scored above the threshold is not reported as an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suppression {
    /// The attributed metric is within the configured tolerance of its expected value.
    NearExpected,
    /// An event started less than the detector's hold-off ago and this point scores no more
    /// than [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as high as its start: the same event
    /// going on (a spike's shingle echoes, a level shift's aftermath, the ups and downs of a
    /// burst), reported once.
    HoldOff,
    /// The point's shingle nearly repeats that of one of the last few anomalies (a known
    /// pattern: a nightly job's spike, a sawtooth's reset).
    Repeat,
}

impl Suppression {
    /// The reason as a plain name: `"near_expected"`, `"holdoff"` or `"repeat"` (what the CLI
    /// writes and Python's `Verdict.suppressed` holds).
    ///
    /// ```
    /// assert_eq!(rcf_stream::Suppression::HoldOff.as_str(), "holdoff");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::NearExpected => "near_expected",
            Suppression::HoldOff => "holdoff",
            Suppression::Repeat => "repeat",
        }
    }
}

impl std::fmt::Display for Suppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric's share of the score: `high` if it is above what the detector expects, `low` if
/// below. Over all metrics, `high + low` sums to the score.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAttribution {
    /// The metric.
    pub metric: Arc<str>,
    /// Share of the score from the metric being high.
    pub high: f64,
    /// Share of the score from the metric being low.
    pub low: f64,
}

impl MetricAttribution {
    /// `high + low`.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["a", "b"]).seed(1).build()?;
    /// for t in 0..1_000 { d.process(&[(t % 9) as f32, 1.0])?; }
    /// let v = d.process(&[4.0, 30.0])?;
    /// let sum: f64 = v.attribution.iter().map(|m| m.total()).sum();
    /// assert!((sum - v.score).abs() < 1e-9);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn total(&self) -> f64 {
        self.high + self.low
    }

    /// `"high"` or `"low"`, whichever is larger.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["a", "b"]).seed(1).build()?;
    /// for t in 0..1_000 { d.process(&[(t % 9) as f32, 1.0])?; }
    /// let v = d.process(&[4.0, 30.0])?;
    /// assert_eq!(v.top_metric().unwrap().direction(), "high");
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn direction(&self) -> &'static str {
        if self.high >= self.low { "high" } else { "low" }
    }
}

/// What the detector expected a metric to read, in input units.
///
/// Equality treats NaN as equal to NaN: `actual` is NaN when the reading was missing, and two
/// verdicts on the same missing reading are the same verdict.
#[derive(Debug, Clone)]
pub struct ExpectedValue {
    /// The metric.
    pub metric: Arc<str>,
    /// The value that arrived.
    pub actual: f64,
    /// The value the forest finds most typical given the other metrics and recent history.
    pub expected: f64,
}

impl PartialEq for ExpectedValue {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        self.metric == other.metric
            && same(self.actual, other.actual)
            && same(self.expected, other.expected)
    }
}

/// The detector's verdict on one point.
///
/// `attribution` and `expected` are filled for points that score above the threshold
/// (anomalies and suppressed candidates); for ordinary points they are empty and nothing is
/// allocated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verdict {
    /// The forest's score (about 1 for typical points; 0 while warming).
    pub score: f64,
    /// How anomalous a reported anomaly is, in (0, 1), comparably across streams:
    /// `score / (score + peak)`, where `peak` is the stream's own typical high score (its
    /// tracked 99.5th percentile), so ½ for a score at that level; a stream whose scores often
    /// run high grades the same score lower than a calm one. Strong anomalies keep their order
    /// (it does not saturate). 0 for points not reported.
    pub grade: f64,
    /// Whether this point is reported as an anomaly.
    pub is_anomaly: bool,
    /// How much to trust the verdict, in [0, 1]: grows as the samples fill with post-warm-up
    /// data and falls with the share of missing (imputed) inputs.
    pub confidence: f64,
    /// The threshold the score was compared with.
    pub threshold: f64,
    /// The share of this detector's recent scores that were higher: a tail probability,
    /// comparable across streams whatever their score scale (1 while warming; NaN for
    /// scored points of a detector built without p-values, see
    /// [`DetectorBuilder::p_values`](crate::DetectorBuilder::p_values)).
    pub p_value: f64,
    /// Per-metric attribution, summing to the score (see the type docs for when it is filled).
    pub attribution: Vec<MetricAttribution>,
    /// Expected values of the metrics the attribution points at.
    pub expected: Vec<ExpectedValue>,
    /// Per metric, how far the point is from the stream's running normal, in its normalised
    /// units (the z-score against the detector's decayed mean and spread): filled, like
    /// `attribution`, for points above the threshold and inside an event; empty otherwise.
    /// Scale-free, so deviations of different streams compare (the fleet's `learn` feedback
    /// compares them).
    pub deviations: Vec<f64>,
    /// When the anomaly started, relative to this point: 0 now, −k k points ago (the shingle
    /// slot carrying most of the attribution).
    pub relative_index: i32,
    /// Warming or ready.
    pub state: DetectorState,
    /// Why a point above the threshold was not reported, if it was not.
    pub suppressed: Option<Suppression>,
    /// Values of this point that were missing (NaN) and imputed.
    pub imputed: usize,
    /// Whether this point lies inside an anomalous event: from the alarm that opened it until
    /// the stream conforms again to the model as it was before the event (see the
    /// [`Detector`](crate::Detector) docs). Lasting anomalies stay `in_event` after the live
    /// model, which keeps learning, has stopped scoring them high.
    pub in_event: bool,
}

impl Verdict {
    pub(crate) fn quiet(
        state: DetectorState,
        threshold: f64,
        confidence: f64,
        imputed: usize,
    ) -> Self {
        Verdict {
            score: 0.0,
            grade: 0.0,
            is_anomaly: false,
            confidence,
            threshold,
            p_value: 1.0,
            attribution: Vec::new(),
            expected: Vec::new(),
            deviations: Vec::new(),
            relative_index: 0,
            state,
            suppressed: None,
            imputed,
            in_event: false,
        }
    }

    /// The metric with the largest attribution, if the attribution was computed.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut d = Detector::builder(["a", "b"]).seed(1).build()?;
    /// for t in 0..1_000 { d.process(&[(t % 9) as f32, 1.0])?; }
    /// let v = d.process(&[4.0, 30.0])?;
    /// assert_eq!(v.top_metric().map(|m| &*m.metric), Some("b"));
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn top_metric(&self) -> Option<&MetricAttribution> {
        self.attribution
            .iter()
            .max_by(|a, b| a.total().total_cmp(&b.total()))
    }
}
