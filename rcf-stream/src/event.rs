//! Event tracking: from the alarm that opens an anomalous event until the stream looks like
//! it did before the event again.
//!
//! The live forest keeps learning, so a lasting anomaly soon stops scoring high: a detector
//! that only compared scores with the threshold would call a stuck valve normal after a few
//! hundred points. When an alarm opens an event, the detector therefore keeps a frozen copy of
//! its model as it was (forest, normaliser and threshold) and scores every following point
//! against that reference as well. The event lasts until a shingle's worth (at least
//! [`MIN_CLEAR_AFTER`]) of consecutive points conform to the reference, or until it has lasted
//! [`MAX_EVENT_SAMPLES`] sample sizes (by then the change is the new normal, like a firmware
//! update, and the live model has learned it).
//!
//! Events open only once the forest has seen a sample size of points: a reference frozen
//! earlier knows too little of normal for its verdicts to mean much.
//!
//! Cost: while an event is open, one more forest in memory and one more score per point;
//! nothing otherwise.

use rcf_core::{RandomCutForest, Scratch};

use crate::normalize::Normalizer;

/// An open event clears after a shingle's worth of consecutive conforming points, and at least
/// this many: one conforming point inside an anomalous segment does not end it.
pub(crate) const MIN_CLEAR_AFTER: usize = 4;
/// An event ends, whatever the reference says, after this many sample sizes of points (measured
/// on SKAB: 1 → F1 0.61, 2 → 0.74, 4 → 0.72, as references of drifting streams go stale).
pub(crate) const MAX_EVENT_SAMPLES: usize = 2;

/// The reference of an open event: the model as it was when the event's alarm was raised.
#[derive(Debug, Clone)]
pub(crate) struct OpenEvent {
    /// The forest before the event (never updated).
    pub(crate) forest: RandomCutForest,
    /// The normaliser before the event (statistics frozen; it only follows the last value for
    /// the difference modes).
    pub(crate) normalizer: Normalizer,
    /// The threshold when the event opened.
    pub(crate) threshold: f64,
    /// `points_seen` of the alarm that opened the event.
    pub(crate) started: u64,
    /// Consecutive points so far that conform to the reference.
    pub(crate) conforming: usize,
    /// The newest shingle as the reference sees it (`shingle_size × metrics`, newest last).
    pub(crate) shingle: Vec<f32>,
    /// Scoring buffers for the reference forest (not part of checkpoints).
    pub(crate) scratch: Scratch,
}

impl OpenEvent {
    /// Bytes held: the reference model and buffers, plus the struct itself.
    pub(crate) fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.forest.memory_usage()
            + self.normalizer.memory_bytes()
            + self.shingle.capacity() * 4
            + self.scratch.memory_usage()
    }

    /// Scores the complete input row `raw` against the reference and counts whether it
    /// conforms.
    pub(crate) fn observe(&mut self, raw: &[f64]) {
        let m = raw.len();
        self.shingle.copy_within(m.., 0);
        let n = self.shingle.len();
        for (j, (slot, &v)) in self.shingle[n - m..].iter_mut().zip(raw).enumerate() {
            *slot = self.normalizer.forward(j, v) as f32;
        }
        self.normalizer.follow(raw);
        let score = self
            .forest
            .score_point_with(&mut self.scratch, &self.shingle)
            .expect("normalised values are finite and of the forest's dimension");
        if score <= self.threshold {
            self.conforming += 1;
        } else {
            self.conforming = 0;
        }
    }

    /// Whether the event is over at point `seen`.
    pub(crate) fn is_over(&self, seen: u64, shingle_size: usize, sample_size: usize) -> bool {
        self.conforming >= shingle_size.max(MIN_CLEAR_AFTER)
            || seen - self.started >= (MAX_EVENT_SAMPLES * sample_size) as u64
    }
}
