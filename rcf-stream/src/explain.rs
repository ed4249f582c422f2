//! Explanations of a candidate: attribution per metric, how many points ago it began,
//! expected values, and the ignore-near-expected verdict.

use rcf_core::Attribution;

use crate::detector::Detector;
use crate::verdict::{ExpectedValue, MetricAttribution, Suppression, Verdict};

/// Metrics carrying at least this share of the newest slot's attribution get an expected value.
pub(crate) const EXPECTED_SHARE: f64 = 0.3;

impl Detector {
    /// Fills the attribution and relative index of a candidate and, unless it is already
    /// suppressed, its expected values and the ignore-near-expected verdict.
    /// `folded` is `a` folded over the shingle.
    pub(crate) fn explain(
        &mut self,
        x: &[f32],
        a: &Attribution,
        folded: &Attribution,
        verdict: &mut Verdict,
    ) {
        let m = self.names.len();
        let k = self.config.forest.shingle_size;
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
