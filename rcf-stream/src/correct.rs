//! Predictor–corrector: which candidates (points scoring above the threshold) are reported.
//!
//! # The hold-off rule, in one place
//!
//! An event starts at a reported anomaly, or at a candidate recognised as a repeat of a known
//! pattern. For [`DetectorConfig::holdoff`](crate::DetectorConfig::holdoff) points after that
//! start, a new candidate belongs to the same event ([`Suppression::HoldOff`](crate::Suppression::HoldOff)) unless it scores
//! [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times the start's score, and, within a shingle of the start (the start's
//! own echoes, a level shift filling the shingle), unless it is also driven by another metric
//! or direction (a second anomaly right after the first, RCF issue #359). The hold-off ends
//! early once `holdoff / HOLDOFF_QUIET_PARTS` points pass with no candidate: that event is over.
//!
//! A candidate that starts an event is then checked against the last [`REPEAT_MEMORY`](crate::REPEAT_MEMORY)
//! remembered event shingles ([`Suppression::Repeat`](crate::Suppression::Repeat)): a near repeat (within
//! [`DetectorConfig::repeat_tolerance`](crate::DetectorConfig::repeat_tolerance) of its own
//! deviation, weighted by its attribution) starts a hold-off but is not reported.
//!
//! [`Suppression::HoldOff`](crate::Suppression::HoldOff): crate::Suppression::HoldOff
//! [`Suppression::Repeat`](crate::Suppression::Repeat): crate::Suppression::Repeat

use rcf_core::Attribution;
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::explain::EXPECTED_SHARE;

/// Default [`DetectorConfig::holdoff`](crate::DetectorConfig::holdoff): points after an anomaly during which a new one must
/// score [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times higher (the hold-off ends early after a quarter of it without a
/// candidate).
pub const DEFAULT_HOLDOFF: usize = 100;
/// Inside the hold-off, a candidate must score this many times the last anomaly's score.
pub const HOLDOFF_RISE: f64 = 1.2;
/// The hold-off ends early once `holdoff / HOLDOFF_QUIET_PARTS` points in a row score at or
/// below the threshold (measured: a quarter keeps NAB and the fleet where the full hold-off
/// puts them and alarms 97 of W1's 100 spikes instead of 91; BENCHMARKS.md).
const HOLDOFF_QUIET_PARTS: u64 = 4;
/// Default [`DetectorConfig::repeat_tolerance`](crate::DetectorConfig::repeat_tolerance).
pub const DEFAULT_REPEAT_TOLERANCE: f64 = 0.1;
/// Shingles remembered for repeat suppression: each event's start and the candidates within a
/// shingle after it (so a few recent events, at every alignment their echoes took).
pub const REPEAT_MEMORY: usize = 16;

/// The metric and direction that carry most of the newest shingle slot's attribution: what
/// "driven by another metric or direction" compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Driver {
    /// The metric's index.
    pub(crate) metric: usize,
    /// Whether it is high (else low).
    pub(crate) high: bool,
}

impl Detector {
    /// The metric and direction (true = high) carrying most of the newest shingle slot's
    /// attribution.
    pub(crate) fn driver(&self, a: &Attribution) -> Driver {
        let m = self.names.len();
        let newest = (self.config.forest.shingle_size - 1) * m;
        (0..m)
            .map(|j| (j, a.high(newest + j), a.low(newest + j)))
            .max_by(|x, y| (x.1 + x.2).total_cmp(&(y.1 + y.2)))
            .map(|(j, h, l)| Driver {
                metric: j,
                high: h >= l,
            })
            .expect("at least one metric")
    }

    /// Whether a candidate scoring `score`, driven by `driver`, belongs to the event that
    /// started last: inside the hold-off unless it scores [`HOLDOFF_RISE`](crate::HOLDOFF_RISE) times as high, and
    /// within a shingle of the start (the start's echoes, a level shift filling the shingle)
    /// unless it is also driven by another metric or direction (a second anomaly right after
    /// the first, RCF issue #359). The event, and its hold-off, is over once a quarter of the
    /// hold-off has passed without a candidate.
    pub(crate) fn in_holdoff(&self, score: f64, driver: Driver) -> bool {
        let Some(last) = self.last_anomaly else {
            return false;
        };
        let gap = self.seen - last;
        let echo = gap < self.config.forest.shingle_size as u64 && self.last_driver == Some(driver);
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
    pub(crate) fn is_repeat(
        &mut self,
        a: &Attribution,
        folded: &Attribution,
        in_holdoff: bool,
    ) -> bool {
        let tolerance = self.config.repeat_tolerance;
        let k = self.config.forest.shingle_size as u64;
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
}
