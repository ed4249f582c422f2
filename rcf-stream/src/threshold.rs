//! From score to verdict: an adaptive threshold calibrated to each detector's own scores.
//!
//! Raw RCF scores do not transfer between data sets (≈ 0.9 on one stream, ≈ 1.3 on another),
//! so the threshold follows the detector's recent score distribution, in one of two ways:
//!
//! * **z-factor** (Device Defender's confidence levels, or an explicit factor): threshold
//!   `mean + z · deviation` of recent scores, with decayed statistics. Scores above the
//!   threshold enter the statistics clipped at the threshold, so a burst of anomalies does not
//!   inflate the deviation and hide the next one.
//! * **target anomaly rate** (like BigQuery ML's `contamination`): the `1 − rate` quantile of a
//!   decayed histogram of recent scores.
//!
//! In z-factor mode the threshold is never below [`LOWER_THRESHOLD`]: typical points score
//! near 1, so lower thresholds would flag ordinary noise on very regular series. A target rate
//! is honoured as asked. For the first
//! [`MIN_SCORES`] scores it is [`INITIAL_THRESHOLD`], then it hands over to the adaptive one
//! over the next [`MIN_SCORES`] (as the reference thresholder does).

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::stats::Decayed;

/// Never flag a score below this.
pub const LOWER_THRESHOLD: f64 = 1.0;
/// Threshold while the statistics are young.
pub const INITIAL_THRESHOLD: f64 = 1.5;
/// Scores before the adaptive threshold starts to take over.
pub const MIN_SCORES: u64 = 10;

/// How readily a detector raises anomalies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Sensitivity {
    /// Device Defender's `LOW` confidence: the most alarms (z = 2).
    Low,
    /// Device Defender's `MEDIUM` confidence (z = 3). The default.
    Medium,
    /// Device Defender's `HIGH` confidence: the fewest alarms (z = 4).
    High,
    /// Threshold at `mean + z · deviation` of recent scores; z ≥ 1.
    ZFactor(f64),
    /// Threshold at the `1 − rate` quantile of recent scores: about `rate` of points score above
    /// it (before one-alarm-per-event suppression); 0 < rate < 0.5.
    AnomalyRate(f64),
}

impl Sensitivity {
    pub(crate) fn validate(self) -> Result<Self> {
        match self {
            Sensitivity::ZFactor(z) if !(z.is_finite() && z >= 1.0) => Err(invalid(
                "sensitivity",
                format!("z-factor must be a finite number of at least 1, got {z}"),
            )),
            Sensitivity::AnomalyRate(r) if !(r > 0.0 && r < 0.5) => Err(invalid(
                "sensitivity",
                format!("anomaly rate must be in (0, 0.5), got {r}"),
            )),
            s => Ok(s),
        }
    }

    fn z(self) -> Option<f64> {
        match self {
            Sensitivity::Low => Some(2.0),
            Sensitivity::Medium => Some(3.0),
            Sensitivity::High => Some(4.0),
            Sensitivity::ZFactor(z) => Some(z),
            Sensitivity::AnomalyRate(_) => None,
        }
    }
}

/// The score distribution forgets this many times faster than the score statistics: a quantile
/// needs only about a thousand recent scores, and the high scores of a young forest must not
/// linger in the tail (measured: at the forest's own decay the threshold was still 20 % too high
/// 3,000 points in).
const HISTOGRAM_DECAY_FACTOR: f64 = 4.0;

/// Width of a distribution bucket, in score units.
const BUCKET: f64 = 0.01;
/// Buckets: scores are at most `log2(1 + sample_size)` ≤ 14.1; 10.24 and above share the last.
const BUCKETS: usize = 1_024;

/// A decayed distribution of recent scores in fixed buckets, kept as a Fenwick tree so that the
/// mass above any score and any quantile cost O(log buckets). Decay is lazy: new weights grow by
/// `1 / (1 − decay)` per point instead of every old weight shrinking, and everything is rescaled
/// when the weights get large.
///
/// A detector built without p-values keeps none: the tree is empty (no buckets, 8 KiB less)
/// and adding a score does nothing. Only p-values and a target anomaly rate read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScoreDistribution {
    /// Fenwick tree (1-based) of bucket weights; empty when the distribution is not kept.
    tree: Vec<f64>,
    scale: f64,
    total: f64,
}

impl ScoreDistribution {
    /// An empty distribution, with its buckets when `kept`.
    fn new(kept: bool) -> Self {
        Self {
            tree: if kept {
                vec![0.0; BUCKETS + 1]
            } else {
                Vec::new()
            },
            scale: 1.0,
            total: 0.0,
        }
    }

    fn is_kept(&self) -> bool {
        !self.tree.is_empty()
    }

    fn bucket(score: f64) -> usize {
        ((score.max(0.0) / BUCKET) as usize).min(BUCKETS - 1)
    }

    fn add(&mut self, score: f64, decay: f64) {
        if !self.is_kept() {
            return;
        }
        self.scale /= 1.0 - decay;
        if self.scale > 1e100 {
            let s = self.scale;
            self.tree.iter_mut().for_each(|w| *w /= s);
            self.total /= s;
            self.scale = 1.0;
        }
        let mut i = Self::bucket(score) + 1;
        while i <= BUCKETS {
            self.tree[i] += self.scale;
            i += i & i.wrapping_neg();
        }
        self.total += self.scale;
    }

    /// Weight of buckets `0..b`.
    fn below(&self, b: usize) -> f64 {
        let mut i = b;
        let mut sum = 0.0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// Share of recent scores above `score` (mass inside its bucket interpolated evenly).
    fn tail(&self, score: f64) -> f64 {
        if self.total <= 0.0 {
            return 1.0;
        }
        let b = Self::bucket(score);
        let (lo, hi) = (self.below(b), self.below(b + 1));
        let within = ((score / BUCKET) - b as f64).clamp(0.0, 1.0);
        let above = self.total - hi + (hi - lo) * (1.0 - within);
        (above / self.total).clamp(0.0, 1.0)
    }

    /// The score with share `rate` of recent scores above it.
    fn upper_quantile(&self, rate: f64) -> f64 {
        let target = (1.0 - rate) * self.total;
        // Fenwick descent: the largest prefix of buckets with weight ≤ target
        let (mut pos, mut acc) = (0usize, 0.0);
        let mut step = BUCKETS.next_power_of_two();
        while step > 0 {
            if pos + step <= BUCKETS && acc + self.tree[pos + step] <= target {
                pos += step;
                acc += self.tree[pos];
            }
            step >>= 1;
        }
        // bucket `pos` holds the quantile: interpolate inside it
        let w = if pos < BUCKETS {
            self.below(pos + 1) - acc
        } else {
            0.0
        };
        let fraction = if w > 0.0 {
            ((target - acc) / w).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (pos as f64 + fraction) * BUCKET
    }
}

/// Level of the stream's tracked high score ([`Thresholder::peak`]).
const PEAK_LEVEL: f64 = 0.995;
/// Relative step of the peak estimate: up by about 1 % per score above it, down by
/// `PEAK_STEP · (1 − PEAK_LEVEL)` (0.005 %) per score below, so it climbs within one burst and
/// takes about 14,000 ordinary points to come down by half.
const PEAK_STEP: f64 = 0.01;

/// The weight a settling detector's score statistics keep of its warm-up, in scores: a prior
/// that steadies the threshold for the next few scores and is outweighed within a day of
/// five-minute datapoints (8 of 296 after 288 more scores).
const SETTLED_WEIGHT: f64 = 8.0;

/// The detector's thresholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Thresholder {
    sensitivity: Sensitivity,
    decay: f64,
    scores: Decayed,
    count: u64,
    distribution: ScoreDistribution,
    /// The stream's typical high score: a multiplicative Robbins–Monro estimate of the
    /// [`PEAK_LEVEL`] quantile of its scores.
    peak: f64,
}

impl Thresholder {
    /// A fresh thresholder; `p_values`: whether it keeps the score distribution that p-values
    /// and a target anomaly rate read (the caller rules out a rate without it).
    pub(crate) fn new(sensitivity: Sensitivity, decay: f64, p_values: bool) -> Self {
        Self {
            sensitivity,
            decay,
            scores: Decayed::default(),
            count: 0,
            distribution: ScoreDistribution::new(p_values),
            peak: 1.0,
        }
    }

    /// Whether it keeps the score distribution (p-values).
    pub(crate) fn keeps_p_values(&self) -> bool {
        self.distribution.is_kept()
    }

    /// Frees the score distribution: p-values are not computed from here on. Nothing else
    /// reads it in z-factor mode, so thresholds and verdicts are unchanged (the caller rules
    /// out a target anomaly rate).
    pub(crate) fn drop_p_values(&mut self) {
        self.distribution = ScoreDistribution::new(false);
    }

    /// An old checkpoint's thresholder (formats 1 and 2), with the peak estimate starting afresh.
    pub(crate) fn from_legacy(t: LegacyThresholder) -> Self {
        Self {
            sensitivity: t.sensitivity,
            decay: t.decay,
            scores: t.scores,
            count: t.count,
            distribution: t.distribution,
            peak: 1.0,
        }
    }

    /// Sets the sensitivity (validated by the caller).
    pub(crate) fn set_sensitivity(&mut self, sensitivity: Sensitivity) {
        self.sensitivity = sensitivity;
    }

    /// Heap bytes held (the score distribution).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.distribution.tree.capacity() * 8
    }

    /// Scores seen.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    fn adaptive(&self) -> f64 {
        match self.sensitivity {
            // an explicit rate is honoured as asked: no floor
            Sensitivity::AnomalyRate(rate) => self.distribution.upper_quantile(rate),
            s => {
                let z = s.z().expect("every other sensitivity has a z-factor");
                (self.scores.mean() + z * self.deviation()).max(LOWER_THRESHOLD)
            }
        }
    }

    /// Deviation of recent scores, floored at 5 % of their mean (a perfectly regular stream
    /// would otherwise flag the smallest wobble).
    fn deviation(&self) -> f64 {
        self.scores.std().max(0.05 * self.scores.mean())
    }

    /// The current threshold.
    pub(crate) fn threshold(&self) -> f64 {
        if self.count < MIN_SCORES {
            return INITIAL_THRESHOLD;
        }
        let blend = ((self.count - MIN_SCORES) as f64 / MIN_SCORES as f64).min(1.0);
        blend * self.adaptive() + (1.0 - blend) * INITIAL_THRESHOLD
    }

    /// How anomalous a score above the threshold is, comparably across streams: `score /
    /// (score + peak)`, where `peak` is the stream's typical high score (its tracked 99.5th
    /// percentile). ½ for a score at that level, towards 1 far above it, 0 at or below the
    /// threshold. A stream whose scores often run high (a bursty count) grades the same score
    /// lower than a calm one; measured on NAB, ranking the same alarms by it rather than by
    /// `1 − threshold / score` raised the standard score from 55.1 to 62.7 (BENCHMARKS.md).
    pub(crate) fn grade(&self, score: f64, threshold: f64) -> f64 {
        if score <= threshold || score <= 0.0 {
            0.0
        } else {
            score / (score + self.peak)
        }
    }

    /// Learns from a score.
    pub(crate) fn update(&mut self, score: f64) {
        let threshold = self.threshold();
        self.scores
            .update(score.min(threshold.max(self.scores.mean())), self.decay);
        self.distribution
            .add(score, (HISTOGRAM_DECAY_FACTOR * self.decay).min(0.05));
        let above = if score > self.peak { 1.0 } else { 0.0 };
        self.peak *= 1.0 + PEAK_STEP * (above - (1.0 - PEAK_LEVEL));
        self.count += 1;
    }

    /// Lets the score statistics count as no more than [`SETTLED_WEIGHT`] scores from here on,
    /// their mean and deviation unchanged, so that the scores that follow soon outweigh them.
    /// Called once a detector that settles has seen a sample size of scores (see
    /// `Detector::settle_after_warm_up`).
    pub(crate) fn settle(&mut self) {
        self.scores.cap_weight(SETTLED_WEIGHT);
    }

    /// The share of recent scores above `score`: a tail probability (p-value) comparable
    /// across streams, 1 before any score; NaN when the distribution is not kept.
    pub(crate) fn p_value(&self, score: f64) -> f64 {
        if self.distribution.is_kept() {
            self.distribution.tail(score)
        } else {
            f64::NAN
        }
    }

    /// Whether a restored thresholder is one this build could have made with `sensitivity`
    /// and `decay` (the detector's), with every statistic in the range updates keep.
    pub(crate) fn is_consistent(&self, sensitivity: Sensitivity, decay: f64) -> bool {
        let d = &self.distribution;
        self.sensitivity == sensitivity
            && self.decay.to_bits() == decay.to_bits()
            && self.scores.is_plausible()
            && self.peak.is_finite()
            && (1e-300..=1e6).contains(&self.peak)
            && (d.tree.len() == BUCKETS + 1
                || (d.tree.is_empty()
                    && d.total == 0.0
                    && d.scale == 1.0
                    && !matches!(sensitivity, Sensitivity::AnomalyRate(_))))
            && (0.0..=DISTRIBUTION_BOUND).contains(&d.total)
            && (1.0..=2e100).contains(&d.scale)
            && d.tree
                .iter()
                .all(|w| (0.0..=DISTRIBUTION_BOUND).contains(w))
    }
}

/// Largest weight a restored score distribution may hold: weights grow by at most the scale
/// (≤ 2e100) per score and are rescaled past 1e100, so this leaves room for any real history
/// while no sum of bucket weights can overflow.
const DISTRIBUTION_BOUND: f64 = 1e250;

/// The thresholder as checkpoint formats 1 and 2 stored it (no peak estimate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LegacyThresholder {
    sensitivity: Sensitivity,
    decay: f64,
    scores: Decayed,
    count: u64,
    distribution: ScoreDistribution,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                0.8 + 0.3 * ((s >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    #[test]
    fn higher_confidence_means_higher_threshold() {
        let mut ts: Vec<Thresholder> = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
            .into_iter()
            .map(|s| Thresholder::new(s, 0.001, true))
            .collect();
        for x in noisy(2_000, 1) {
            ts.iter_mut().for_each(|t| t.update(x));
        }
        let th: Vec<f64> = ts.iter().map(Thresholder::threshold).collect();
        assert!(th[0] < th[1] && th[1] < th[2], "{th:?}");
    }

    #[test]
    fn anomaly_rate_flags_about_that_rate() {
        // uniform scores on [0.8, 1.1] plus 1.0 offset so the lower threshold does not bind
        let mut t = Thresholder::new(Sensitivity::AnomalyRate(0.02), 0.0, true);
        let xs: Vec<f64> = noisy(20_000, 2).into_iter().map(|x| x + 1.0).collect();
        let mut flagged = 0;
        for (i, &x) in xs.iter().enumerate() {
            if i > 1_000 && x > t.threshold() {
                flagged += 1;
            }
            t.update(x);
        }
        let rate = flagged as f64 / 19_000.0;
        // 2 % target; bucket width 0.01 on a 0.3-wide distribution adds up to 3 % relative
        // per bucket; margin 0.6 percentage points
        assert!((rate - 0.02).abs() < 0.006, "rate {rate}");
    }

    #[test]
    fn settling_keeps_the_statistics_but_lets_new_scores_outweigh_them() {
        let decay = 1.0 / 2_560.0;
        // a warm-up whose scores run high and spread, then a steady level
        let warm: Vec<f64> = noisy(300, 4).into_iter().map(|x| 2.0 * x).collect();
        let steady = noisy(600, 5);
        let mut plain = Thresholder::new(Sensitivity::Medium, decay, false);
        for &x in &warm {
            plain.update(x);
        }
        let mut settled = plain.clone();
        settled.settle();
        // the threshold is read from the same mean and deviation: unchanged at once
        assert_eq!(settled.threshold().to_bits(), plain.threshold().to_bits());
        assert_eq!(settled.count(), plain.count());
        for &x in &steady {
            plain.update(x);
            settled.update(x);
        }
        // the steady level's own threshold, from its scores alone
        let mut fresh = Thresholder::new(Sensitivity::Medium, decay, false);
        for &x in &steady {
            fresh.update(x);
        }
        let (p, s, f) = (plain.threshold(), settled.threshold(), fresh.threshold());
        // 600 scores after settling the warm-up weighs 8 / 608 against 300 / 900 unsettled
        assert!(
            (s - f).abs() < 0.25 * (p - f).abs(),
            "plain {p}, settled {s}, fresh {f}"
        );
        assert!(s < p, "plain {p}, settled {s}");
    }

    #[test]
    fn without_p_values_the_threshold_is_the_same_and_a_rate_is_inconsistent() {
        let mut kept = Thresholder::new(Sensitivity::Medium, 0.01, true);
        let mut not = Thresholder::new(Sensitivity::Medium, 0.01, false);
        for x in noisy(3_000, 9) {
            kept.update(x);
            not.update(x);
            assert_eq!(kept.threshold().to_bits(), not.threshold().to_bits());
            assert_eq!(kept.grade(x, 0.9), not.grade(x, 0.9));
        }
        assert!(kept.p_value(1.0) > 0.0 && not.p_value(1.0).is_nan());
        assert_eq!(not.memory_bytes(), 0);
        assert!(not.is_consistent(Sensitivity::Medium, 0.01));
        kept.drop_p_values();
        assert_eq!(kept, not);
        // a crafted state: a target rate with no distribution to read it from
        let rate = Thresholder::new(Sensitivity::AnomalyRate(0.01), 0.01, false);
        assert!(!rate.is_consistent(Sensitivity::AnomalyRate(0.01), 0.01));
        // an empty distribution that claims weight is not one this build makes
        let mut heavy = Thresholder::new(Sensitivity::Medium, 0.01, false);
        heavy.distribution.total = 1.0;
        assert!(!heavy.is_consistent(Sensitivity::Medium, 0.01));
    }

    #[test]
    fn grade_grows_from_zero_to_one() {
        let mut t = Thresholder::new(Sensitivity::Medium, 0.01, true);
        for x in noisy(500, 3) {
            t.update(x);
        }
        let th = t.threshold();
        assert_eq!(t.grade(th - 0.01, th), 0.0);
        assert_eq!(t.grade(th, th), 0.0);
        let g1 = t.grade(th + 0.05, th);
        let g2 = t.grade(th + 0.2, th);
        assert!(0.0 < g1 && g1 < g2, "{g1} {g2}");
        // ½ at the stream's peak level, and strong anomalies stay ordered: no saturation
        assert!((t.grade(t.peak, 0.0) - 0.5).abs() < 1e-12);
        let (g3, g4) = (t.grade(5.0 * th, th), t.grade(6.0 * th, th));
        assert!(0.75 < g3 && g3 < g4 && g4 < 1.0, "{g3} {g4}");
    }

    #[test]
    fn the_peak_tracks_a_high_quantile_and_grades_bursty_streams_lower() {
        // scores uniform on [0.8, 1.1]: the 99.5th percentile is 1.0985
        let mut calm = Thresholder::new(Sensitivity::Medium, 0.001, true);
        for x in noisy(50_000, 4) {
            calm.update(x);
        }
        assert!((calm.peak - 1.0985).abs() < 0.03, "peak {}", calm.peak);
        // the same, with one score in 50 at 2.5: its 99.5th percentile is 2.5
        let mut bursty = Thresholder::new(Sensitivity::Medium, 0.001, true);
        for (i, x) in noisy(50_000, 4).into_iter().enumerate() {
            bursty.update(if i % 50 == 0 { 2.5 } else { x });
        }
        assert!(bursty.peak > 2.0, "peak {}", bursty.peak);
        assert!(bursty.grade(3.0, 1.5) < calm.grade(3.0, 1.5));
    }

    #[test]
    fn warm_up_starts_at_the_initial_threshold() {
        let mut t = Thresholder::new(Sensitivity::Medium, 0.01, true);
        assert_eq!(t.threshold(), INITIAL_THRESHOLD);
        for _ in 0..MIN_SCORES {
            t.update(0.9);
        }
        assert_eq!(t.threshold(), INITIAL_THRESHOLD);
        for _ in 0..MIN_SCORES {
            t.update(0.9);
        }
        assert!(t.threshold() < INITIAL_THRESHOLD);
        assert!(t.threshold() >= LOWER_THRESHOLD);
    }

    #[test]
    fn p_values_are_tail_shares() {
        let mut t = Thresholder::new(Sensitivity::Medium, 0.0, true);
        for i in 0..1_000 {
            t.update(0.5 + i as f64 / 1_000.0); // uniform on [0.5, 1.5)
        }
        for (s, expected) in [(0.5, 1.0), (0.75, 0.75), (1.0, 0.5), (1.4, 0.1), (1.6, 0.0)] {
            let p = t.p_value(s);
            assert!(
                (p - expected).abs() < 0.005,
                "p({s}) = {p}, expected {expected}"
            );
        }
    }

    #[test]
    fn sensitivity_values_are_validated() {
        assert!(Sensitivity::ZFactor(0.5).validate().is_err());
        assert!(Sensitivity::ZFactor(f64::NAN).validate().is_err());
        assert!(Sensitivity::AnomalyRate(0.0).validate().is_err());
        assert!(Sensitivity::AnomalyRate(0.7).validate().is_err());
        assert!(Sensitivity::AnomalyRate(0.01).validate().is_ok());
    }
}
