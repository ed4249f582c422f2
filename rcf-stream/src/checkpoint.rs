//! Detector checkpoints: [`Detector::to_bytes`] / [`Detector::from_bytes`].
//!
//! The envelope is rcf-core's ([`rcf_core::state::seal`]): magic `b"RCF-DTCT"`, format
//! version, payload length and CRC-32. The payload (bincode 2) holds the configuration, the
//! normaliser, thresholder and data-quality statistics, the counters, and the forest's own
//! sealed state as a byte blob; format 2 appends the open event's reference (its own forest
//! blob, normaliser, threshold, start, conforming count and shingle), if an event is open.
//! Format 1 checkpoints (no event tracking) still load, with no event open. Restoring checks
//! every part for consistency, so corrupt or foreign bytes give an error, never a panic.

use serde::{Deserialize, Serialize};

use rcf_core::RandomCutForest;
use rcf_core::state::{Bytes, open, seal};

use crate::detector::{Detector, DetectorConfig};
use crate::error::{Error, Result};
use crate::event::OpenEvent;
use crate::normalize::Normalizer;
use crate::stats::Decayed;
use crate::threshold::Thresholder;

const MAGIC: &[u8; 8] = b"RCF-DTCT";
/// The checkpoint format version this build writes; it also reads version 1.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
const DECODE_LIMIT: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    config: DetectorConfig,
    normalizer: Normalizer,
    thresholder: Thresholder,
    quality: Decayed,
    seen: u64,
    warm: Vec<f64>,
    normalizer_ready: bool,
    last_anomaly: Option<u64>,
    last_candidate: Option<u64>,
    last_event: Option<(usize, bool)>,
    run_peak: f64,
    forest: Bytes,
}

/// An open event's reference, as stored (format 2).
#[derive(Serialize, Deserialize)]
struct EventSnapshot {
    forest: Bytes,
    normalizer: Normalizer,
    threshold: f64,
    started: u64,
    conforming: u64,
    shingle: Vec<f32>,
}

fn inconsistent(what: &str) -> Error {
    Error::Checkpoint(rcf_core::StateError::Inconsistent(what.to_string()))
}

impl Detector {
    /// Serialises the whole detector (forest, normaliser, thresholder, counters) into a
    /// versioned, checksummed byte string; [`from_bytes`](Self::from_bytes) restores a detector
    /// that continues with identical verdicts.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut a = Detector::builder(["temp"]).build()?;
    /// for t in 0..500 { a.process(&[(t % 17) as f32])?; }
    /// let mut b = Detector::from_bytes(&a.to_bytes())?;
    /// assert_eq!(a.process(&[40.0])?, b.process(&[40.0])?);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            config: self.config.clone(),
            normalizer: self.normalizer.clone(),
            thresholder: self.thresholder.clone(),
            quality: self.quality,
            seen: self.seen,
            warm: self.warm.clone(),
            normalizer_ready: self.normalizer_ready,
            last_anomaly: self.last_anomaly,
            last_candidate: self.last_candidate,
            last_event: self.last_event,
            run_peak: self.run_peak,
            forest: Bytes(self.forest.to_bytes()),
        };
        let event = self.event.as_ref().map(|e| EventSnapshot {
            forest: Bytes(e.forest.to_bytes()),
            normalizer: e.normalizer.clone(),
            threshold: e.threshold,
            started: e.started,
            conforming: e.conforming as u64,
            shingle: e.shingle.clone(),
        });
        let payload =
            bincode::serde::encode_to_vec((&snapshot, &event), bincode::config::standard())
                .expect("encoding a checkpoint into memory cannot fail");
        seal(MAGIC, CHECKPOINT_FORMAT_VERSION, &payload)
    }

    /// Restores a detector saved by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] for truncated, corrupt, foreign or inconsistent bytes (never a
    /// panic); a forest error if the embedded forest state does not restore.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let decode_error = |e: bincode::error::DecodeError| {
            Error::Checkpoint(rcf_core::StateError::Decode(e.to_string()))
        };
        let (payload, version) = match open(MAGIC, CHECKPOINT_FORMAT_VERSION, bytes) {
            Ok(payload) => (payload, CHECKPOINT_FORMAT_VERSION),
            // format 1: the same snapshot, without the open event
            Err(rcf_core::StateError::UnsupportedVersion { found: 1, .. }) => {
                (open(MAGIC, 1, bytes).map_err(Error::Checkpoint)?, 1)
            }
            Err(e) => return Err(Error::Checkpoint(e)),
        };
        let ((s, event), used): ((Snapshot, Option<EventSnapshot>), usize) = if version == 1 {
            let (s, used) =
                bincode::serde::decode_from_slice(payload, config).map_err(decode_error)?;
            ((s, None), used)
        } else {
            bincode::serde::decode_from_slice(payload, config).map_err(decode_error)?
        };
        if used != payload.len() {
            return Err(inconsistent("trailing bytes after the checkpoint"));
        }
        let forest = RandomCutForest::from_bytes(&s.forest.0)?;
        let c = &s.config;
        let fc = forest.config();
        let m = c.metrics.len();
        if fc.input_dims != m
            || fc.shingle_size != c.shingle_size
            || fc.num_trees != c.num_trees
            || fc.sample_size != c.sample_size
            || fc.time_decay != c.time_decay
            || fc.output_after != c.output_after as u64
        {
            return Err(inconsistent(
                "the forest does not match the detector's configuration",
            ));
        }
        // the same checks as a fresh build
        let rebuilt = Detector::builder(c.metrics.iter().cloned())
            .shingle_size(c.shingle_size)
            .num_trees(c.num_trees)
            .sample_size(c.sample_size)
            .time_decay(c.time_decay)
            .output_after(c.output_after)
            .seed(c.seed)
            .normalization(c.normalization)
            .sensitivity(c.sensitivity)
            .ignore_near_expected(c.tolerance)
            .normalize_after(c.normalize_after)
            .box_cache_min_mass(c.box_cache_min_mass)
            .build()
            .map_err(|e| inconsistent(&format!("configuration: {e}")))?;
        if rebuilt.config() != c {
            return Err(inconsistent(
                "configuration fields disagree with each other",
            ));
        }
        let warm_ok = if s.normalizer_ready {
            s.warm.is_empty()
        } else {
            s.warm.len().is_multiple_of(m) && s.warm.len() < c.normalize_after * m
        };
        if !warm_ok
            || s.warm.iter().any(|v| !v.is_finite())
            || !s.normalizer.is_consistent(m)
            || !s.thresholder.is_consistent()
            || !s.quality.is_finite()
            || s.last_anomaly.is_some_and(|l| l > s.seen)
            || s.last_candidate.is_some_and(|l| l > s.seen)
            || s.last_event.is_some_and(|(j, _)| j >= m)
            || !s.run_peak.is_finite()
        {
            return Err(inconsistent("detector statistics are inconsistent"));
        }
        let mut d = Detector::from_parts(s.config, forest);
        d.normalizer = s.normalizer;
        d.thresholder = s.thresholder;
        d.quality = s.quality;
        d.seen = s.seen;
        d.warm = s.warm;
        d.normalizer_ready = s.normalizer_ready;
        d.last_anomaly = s.last_anomaly;
        d.last_candidate = s.last_candidate;
        d.last_event = s.last_event;
        d.run_peak = s.run_peak;
        if let Some(e) = event {
            let forest = RandomCutForest::from_bytes(&e.forest.0)?;
            if forest.config() != d.forest.config()
                || !e.normalizer.is_consistent(m)
                || !e.threshold.is_finite()
                || e.started > s.seen
                || e.conforming > s.seen
                || e.shingle.len() != d.forest.dimensions()
                || e.shingle.iter().any(|v| !v.is_finite())
            {
                return Err(inconsistent("the open event's reference is inconsistent"));
            }
            d.event = Some(Box::new(OpenEvent {
                scratch: forest.scratch(),
                forest,
                normalizer: e.normalizer,
                threshold: e.threshold,
                started: e.started,
                conforming: e.conforming as usize,
                shingle: e.shingle,
            }));
        }
        Ok(d)
    }
}
