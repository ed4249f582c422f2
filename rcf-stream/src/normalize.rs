//! Per-metric normalisation before the forest.
//!
//! Random cut forests are sensitive to the *relative* scales of their inputs (a cut's
//! dimension is drawn in proportion to each dimension's range), so metrics in different units
//! must be brought to comparable scales. They are, however, blind to a common translation or
//! scale of all the values they hold: what would distort them is normalising each new point
//! with statistics that have moved since the points already in the forest were normalised.
//! A decayed z-score does exactly that (after a burst the same reading maps to a smaller value
//! than before it, and a level shift is normalised away); replacing it by the frames below
//! raised the detector's NAB score from 41.7 to 46.0 and SKAB's AUC-PR from 0.56 to 0.65
//! (BENCHMARKS.md).
//!
//! So the normaliser keeps a **frame** per metric, a centre and a scale that every value
//! reaching the forest is expressed in, and tracks decayed (winsorised) statistics beside it.
//! When a metric's tracked scale drifts from its frame by more than a factor
//! [`REFRAME_FACTOR`] (or its level by more than [`RECENTRE_SCALES`] scales, for `f32`
//! precision), [`Normalizer::reframe`] proposes a new frame, and the detector moves the
//! forest's stored values into it ([`rcf_core::RandomCutForest::rescale_inputs`]) before
//! adopting it. The forest never sees two frames at once: for a single metric the result is
//! exactly the forest on raw values, and for several it keeps them comparable as they drift.

use serde::{Deserialize, Serialize};

use crate::stats::{Decayed, READING_BOUND, VALUE_BOUND};

/// How each metric is transformed before it reaches the forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Normalization {
    /// Values as they are (for metrics already on comparable scales).
    None,
    /// `(x − centre) / scale` in a frame that follows the metric's decayed level and deviation
    /// and moves the forest with it (see the module docs). The default.
    Normalize,
    /// `x − previous x`: for metrics whose changes matter more than their level.
    Difference,
    /// The difference, normalised like [`Normalization::Normalize`].
    NormalizeDifference,
}

/// Normalised values are clipped to ±this, only so that one absurd reading cannot overflow the
/// forest's `f32` arithmetic; ordinary outliers pass unclipped (clipping them would break the
/// frame's consistency).
pub(crate) const CLIP: f64 = 1e6;

/// Relative floor of the scale: a metric whose deviation is below `RELATIVE_FLOOR × |mean|`
/// (for example a long-constant one) is scaled by that instead, so a change of a fraction of
/// a per cent is not a hundred-sigma event. Scale-invariant: no absolute `+ 1` as in the
/// reference, which left small-magnitude series unnormalised.
pub(crate) const RELATIVE_FLOOR: f64 = 1e-3;
/// Absolute floor of the scale, for metrics near zero with no variation at all.
pub(crate) const ABSOLUTE_FLOOR: f64 = 1e-9;
/// A metric's frame is renewed once its tracked scale is this many times larger or smaller
/// than the frame's.
pub(crate) const REFRAME_FACTOR: f64 = 2.0;
/// ... or once its tracked level is this many frame scales from the frame's centre (the
/// forest's `f32` values keep about 4 significant digits of a scale at that distance).
pub(crate) const RECENTRE_SCALES: f64 = 1_000.0;
/// Values update the tracked deviation clipped to this many deviations from the tracked mean,
/// so a single wild reading does not inflate the scale (and shrink every other metric's weight)
/// for thousands of points.
const WINSORISE: f64 = 4.0;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct MetricStats {
    value: Decayed,
    diff: Decayed,
    last: Option<f64>,
}

/// A metric's frame: the forest holds `(v − centre) / scale` for the metric's transformed
/// values `v` (the value, or its difference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Frame {
    centre: f64,
    scale: f64,
}

impl Frame {
    const IDENTITY: Frame = Frame {
        centre: 0.0,
        scale: 1.0,
    };
}

/// A proposed change of frame: the affine map that takes the forest's values from the old
/// frames to the new ones (`z' = z · scale + shift`, per metric), and the new frames.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reframe {
    pub(crate) scale: Vec<f64>,
    pub(crate) shift: Vec<f64>,
    frames: Vec<Frame>,
}

impl Reframe {
    /// Moves a forest point (`metrics` values per shingle slot, as the forest holds them) from
    /// the old frames into the new ones, as the forest's own values are moved. Returns whether
    /// every moved value is a finite `f32` (the point is unusable otherwise).
    pub(crate) fn apply(&self, point: &mut [f32]) -> bool {
        let m = self.scale.len();
        for (d, v) in point.iter_mut().enumerate() {
            *v = (f64::from(*v) * self.scale[d % m] + self.shift[d % m]) as f32;
        }
        point.iter().all(|v| v.is_finite())
    }
}

/// The normaliser of a detector: one set of statistics and one frame per metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Normalizer {
    mode: Normalization,
    decay: f64,
    metrics: Vec<MetricStats>,
    frames: Vec<Frame>,
}

fn scale(stat: &Decayed, level: f64) -> f64 {
    stat.std()
        .max(RELATIVE_FLOOR * level.abs())
        .max(ABSOLUTE_FLOOR)
}

impl Normalizer {
    /// Heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.metrics.capacity() * std::mem::size_of::<MetricStats>()
            + self.frames.capacity() * std::mem::size_of::<Frame>()
    }

    pub(crate) fn new(mode: Normalization, decay: f64, metrics: usize) -> Self {
        Self {
            mode,
            decay,
            metrics: vec![MetricStats::default(); metrics],
            frames: vec![Frame::IDENTITY; metrics],
        }
    }

    /// An old checkpoint's normaliser (decayed statistics applied directly): its current
    /// statistics become the frames.
    pub(crate) fn from_legacy(legacy: LegacyNormalizer) -> Self {
        let mut n = Self {
            mode: legacy.mode,
            decay: legacy.decay,
            frames: vec![Frame::IDENTITY; legacy.metrics.len()],
            metrics: legacy.metrics,
        };
        n.frames = n.tracked_frames();
        n
    }

    /// The frame each metric's tracked statistics describe now.
    fn tracked_frames(&self) -> Vec<Frame> {
        self.metrics
            .iter()
            .map(|m| {
                let level = m.value.mean();
                match self.mode {
                    Normalization::None | Normalization::Difference => Frame::IDENTITY,
                    Normalization::Normalize => Frame {
                        centre: level,
                        scale: scale(&m.value, level),
                    },
                    Normalization::NormalizeDifference => Frame {
                        centre: m.diff.mean(),
                        scale: scale(&m.diff, level),
                    },
                }
            })
            .collect()
    }

    /// Sets every frame from the statistics learned so far (once, when warm-up ends).
    pub(crate) fn init_frames(&mut self) {
        self.frames = self.tracked_frames();
    }

    /// The transformed value of metric `j` (NaN stays NaN), in the current frame.
    pub(crate) fn forward(&self, j: usize, x: f64) -> f64 {
        let m = &self.metrics[j];
        let f = self.frames[j];
        let v = match self.mode {
            Normalization::None | Normalization::Normalize => x,
            Normalization::Difference | Normalization::NormalizeDifference => {
                x - m.last.unwrap_or(x)
            }
        };
        let z = (v - f.centre) / f.scale;
        if z.is_nan() { z } else { z.clamp(-CLIP, CLIP) }
    }

    /// The input value whose transform is `z` (for expected values and imputed inputs).
    pub(crate) fn inverse(&self, j: usize, z: f64) -> f64 {
        let m = &self.metrics[j];
        let f = self.frames[j];
        let v = f.centre + z * f.scale;
        match self.mode {
            Normalization::None | Normalization::Normalize => v,
            Normalization::Difference | Normalization::NormalizeDifference => {
                m.last.unwrap_or(0.0) + v
            }
        }
    }

    /// Metric `j`'s typical (tracked mean) transformed value, in the current frame.
    pub(crate) fn typical(&self, j: usize) -> f64 {
        let m = &self.metrics[j];
        let f = self.frames[j];
        let v = match self.mode {
            Normalization::None | Normalization::Normalize => m.value.mean(),
            Normalization::Difference | Normalization::NormalizeDifference => m.diff.mean(),
        };
        (v - f.centre) / f.scale
    }

    /// Learns from the (complete) input `x`.
    pub(crate) fn update(&mut self, x: &[f64]) {
        let decay = self.decay;
        for (m, &v) in self.metrics.iter_mut().zip(x) {
            winsorised_update(&mut m.value, v, decay);
            if let Some(last) = m.last {
                winsorised_update(&mut m.diff, v - last, decay);
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

    /// A new frame for every metric whose statistics have left its frame (see the module
    /// docs), or `None` while all frames still fit. Adopt it with
    /// [`adopt`](Self::adopt) once the forest has moved.
    pub(crate) fn reframe(&self) -> Option<Reframe> {
        if matches!(self.mode, Normalization::None | Normalization::Difference) {
            return None;
        }
        let tracked = self.tracked_frames();
        let mut out: Option<Reframe> = None;
        for (j, (old, new)) in self.frames.iter().zip(&tracked).enumerate() {
            let ratio = new.scale / old.scale;
            let drifted = !(1.0 / REFRAME_FACTOR..=REFRAME_FACTOR).contains(&ratio)
                || (new.centre - old.centre).abs() > RECENTRE_SCALES * old.scale;
            if !drifted {
                continue;
            }
            let r = out.get_or_insert_with(|| Reframe {
                scale: vec![1.0; self.frames.len()],
                shift: vec![0.0; self.frames.len()],
                frames: self.frames.clone(),
            });
            // z' = (z · old.scale + old.centre − new.centre) / new.scale
            r.scale[j] = old.scale / new.scale;
            r.shift[j] = (old.centre - new.centre) / new.scale;
            r.frames[j] = *new;
        }
        out
    }

    /// Adopts the frames of a [`Reframe`] whose map has been applied to the forest.
    pub(crate) fn adopt(&mut self, r: Reframe) {
        self.frames = r.frames;
    }

    /// Whether a restored normaliser is one this build could have made for `metrics` metrics
    /// in `mode` with `decay` (the detector's): its statistics and frames within the bounds
    /// that updates keep (see [`Decayed::is_plausible`]), so that processing can never
    /// overflow.
    pub(crate) fn is_consistent(&self, metrics: usize, mode: Normalization, decay: f64) -> bool {
        self.metrics.len() == metrics
            && self.frames.len() == metrics
            && self.mode == mode
            && self.decay.to_bits() == decay.to_bits()
            && self.frames.iter().all(|f| {
                f.centre.abs() <= VALUE_BOUND
                    && f.scale.is_finite()
                    && (ABSOLUTE_FLOOR..=10.0 * VALUE_BOUND).contains(&f.scale)
            })
            && self.metrics.iter().all(|m| {
                m.value.is_plausible()
                    && m.diff.is_plausible()
                    && m.last.is_none_or(|v| v.abs() <= READING_BOUND)
            })
    }
}

/// Updates `stat` with `v` clipped to [`WINSORISE`] deviations of its mean (once it has a
/// deviation to clip by).
fn winsorised_update(stat: &mut Decayed, v: f64, decay: f64) {
    let sd = stat.std();
    let v = if stat.weight() > 1.0 && sd > 0.0 {
        v.clamp(stat.mean() - WINSORISE * sd, stat.mean() + WINSORISE * sd)
    } else {
        v
    };
    stat.update(v, decay);
}

/// The normaliser as checkpoint formats 1 and 2 stored it (statistics applied directly, no
/// frames).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LegacyNormalizer {
    mode: Normalization,
    decay: f64,
    metrics: Vec<MetricStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(mode: Normalization, xs: &[f64]) -> Normalizer {
        let mut n = Normalizer::new(mode, 0.0, 1);
        for &x in xs {
            n.update(&[x]);
        }
        n.init_frames();
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

    #[test]
    fn frames_stay_put_until_the_scale_drifts_twofold() {
        let wobble = |amp: f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| 10.0 + amp * (i as f64 * 0.7).sin())
                .collect()
        };
        let mut n = Normalizer::new(Normalization::Normalize, 0.01, 1);
        for x in wobble(1.0, 500) {
            n.update(&[x]);
        }
        n.init_frames();
        let z_before = n.forward(0, 12.0);
        for x in wobble(1.5, 1_000) {
            n.update(&[x]);
            assert_eq!(n.reframe(), None, "1.5x is inside the factor 2");
        }
        assert_eq!(n.forward(0, 12.0), z_before, "the frame did not move");
        for x in wobble(4.0, 1_000) {
            n.update(&[x]);
        }
        let r = n
            .reframe()
            .expect("a fourfold deviation asks for a new frame");
        // the map takes a value's old normalised form to its new one
        let old = n.forward(0, 17.0);
        n.adopt(r.clone());
        let new = n.forward(0, 17.0);
        assert!(
            (old * r.scale[0] + r.shift[0] - new).abs() < 1e-9,
            "{old} -> {new}"
        );
        assert!(
            (new - (17.0 - 10.0) / (4.0 / 2f64.sqrt())).abs() < 0.1,
            "{new}"
        );
        assert_eq!(n.reframe(), None);
    }

    #[test]
    fn a_wild_reading_does_not_reframe() {
        let mut n = Normalizer::new(Normalization::Normalize, 1.0 / 2_560.0, 2);
        for i in 0..3_000 {
            let t = i as f64;
            n.update(&[(t * 0.3).sin(), 100.0 + (t * 0.2).cos()]);
            if i == 9 {
                n.init_frames();
            }
        }
        let _ = n.reframe().map(|r| n.adopt(r));
        n.update(&[1_000.0, 100.0]);
        assert_eq!(
            n.reframe(),
            None,
            "one 1,400-sigma reading moves the scale < 2x"
        );
    }

    #[test]
    fn only_drifted_metrics_move() {
        let mut n = Normalizer::new(Normalization::Normalize, 0.01, 2);
        for i in 0..500 {
            let t = i as f64;
            n.update(&[t.sin(), 5.0 + t.cos()]);
        }
        n.init_frames();
        for i in 0..1_000 {
            let t = i as f64;
            n.update(&[t.sin(), 5.0 + 10.0 * t.cos()]);
        }
        let r = n.reframe().unwrap();
        assert_eq!((r.scale[0], r.shift[0]), (1.0, 0.0));
        assert!(r.scale[1] < 0.5, "{:?}", r.scale);
    }
}
