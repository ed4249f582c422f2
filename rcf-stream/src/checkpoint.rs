//! Detector checkpoints: [`Detector::to_bytes`] / [`Detector::from_bytes`].
//!
//! The envelope is rcf-core's ([`rcf_core::state::seal`]): magic `b"RCF-DTCT"`, format
//! version, payload length and CRC-32. The payload (bincode 2) holds the configuration, the
//! normaliser (statistics and frames), thresholder and data-quality statistics, the counters,
//! the hold-off and repeat memory, and the forest's own sealed state as a byte blob, then the
//! open event's reference (its own forest blob, normaliser, threshold, start, conforming count
//! and shingle), if an event is open.
//!
//! Older formats still load: format 2 (before normalisation frames, hold-off and repeat
//! memory) and format 1 (also before event tracking). Their configurations take today's
//! defaults for the settings they predate, their normalisers' statistics become the frames,
//! and their detectors start with no hold-off, an empty repeat memory and a fresh peak
//! estimate; verdicts then follow today's rules, so they are not identical to the old build's.
//! Restoring checks every part for consistency, so corrupt or foreign bytes give an error,
//! never a panic.

use serde::{Deserialize, Serialize};

use rcf_core::RandomCutForest;
use rcf_core::state::{Bytes, open, seal};

use crate::detector::{DEFAULT_HOLDOFF, DEFAULT_REPEAT_TOLERANCE, Detector, DetectorConfig};
use crate::error::{Error, Result};
use crate::event::OpenEvent;
use crate::normalize::{LegacyNormalizer, Normalization, Normalizer};
use crate::stats::Decayed;
use crate::threshold::{LegacyThresholder, Sensitivity, Thresholder};
use crate::{REPEAT_MEMORY, Tolerance};

const MAGIC: &[u8; 8] = b"RCF-DTCT";
/// The checkpoint format version this build writes; it also reads versions 1 and 2.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 3;
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
    last_score: f64,
    last_driver: Option<(usize, bool)>,
    last_candidate: Option<u64>,
    memory: Vec<Vec<f32>>,
    next_reframe: u64,
    forest: Bytes,
}

/// An open event's reference, as stored.
#[derive(Serialize, Deserialize)]
struct EventSnapshot<N> {
    forest: Bytes,
    normalizer: N,
    threshold: f64,
    started: u64,
    conforming: u64,
    shingle: Vec<f32>,
}

/// The configuration as formats 1 and 2 stored it.
#[derive(Serialize, Deserialize)]
struct LegacyConfig {
    metrics: Vec<String>,
    shingle_size: usize,
    num_trees: usize,
    sample_size: usize,
    time_decay: f64,
    output_after: usize,
    seed: u64,
    normalization: Normalization,
    sensitivity: Sensitivity,
    tolerance: Tolerance,
    normalize_after: usize,
    box_cache_min_mass: usize,
}

/// The detector as formats 1 and 2 stored it.
#[derive(Serialize, Deserialize)]
#[allow(dead_code)] // the run-logic fields are decoded to move past them: nothing uses them now
struct LegacySnapshot {
    config: LegacyConfig,
    normalizer: LegacyNormalizer,
    thresholder: LegacyThresholder,
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

impl LegacySnapshot {
    fn upgrade(self) -> Snapshot {
        let c = self.config;
        Snapshot {
            config: DetectorConfig {
                metrics: c.metrics,
                shingle_size: c.shingle_size,
                num_trees: c.num_trees,
                sample_size: c.sample_size,
                time_decay: c.time_decay,
                output_after: c.output_after,
                seed: c.seed,
                normalization: c.normalization,
                sensitivity: c.sensitivity,
                tolerance: c.tolerance,
                normalize_after: c.normalize_after,
                box_cache_min_mass: c.box_cache_min_mass,
                holdoff: DEFAULT_HOLDOFF,
                repeat_tolerance: DEFAULT_REPEAT_TOLERANCE,
            },
            normalizer: Normalizer::from_legacy(self.normalizer),
            thresholder: Thresholder::from_legacy(self.thresholder),
            quality: self.quality,
            seen: self.seen,
            warm: self.warm,
            normalizer_ready: self.normalizer_ready,
            last_anomaly: None,
            last_score: 0.0,
            last_driver: None,
            last_candidate: None,
            memory: Vec::new(),
            next_reframe: 0,
            forest: self.forest,
        }
    }
}

impl EventSnapshot<LegacyNormalizer> {
    fn upgrade(self) -> EventSnapshot<Normalizer> {
        EventSnapshot {
            forest: self.forest,
            normalizer: Normalizer::from_legacy(self.normalizer),
            threshold: self.threshold,
            started: self.started,
            conforming: self.conforming,
            shingle: self.shingle,
        }
    }
}

fn inconsistent(what: &str) -> Error {
    Error::Checkpoint(rcf_core::StateError::Inconsistent(what.to_string()))
}

/// Decodes a whole payload as `T`: trailing bytes are an error.
fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (value, used) = bincode::serde::decode_from_slice(payload, config)
        .map_err(|e| Error::Checkpoint(rcf_core::StateError::Decode(e.to_string())))?;
    if used != payload.len() {
        return Err(inconsistent("trailing bytes after the checkpoint"));
    }
    Ok(value)
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
            last_score: self.last_score,
            last_driver: self.last_driver,
            last_candidate: self.last_candidate,
            memory: self.memory.iter().cloned().collect(),
            next_reframe: self.next_reframe,
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
    /// Checkpoints of formats 1 and 2 (before normalisation frames, the hold-off and repeat
    /// memory) load too: their configurations take today's defaults for the settings they
    /// predate, their normalisers' statistics become the frames, and they start with no
    /// hold-off, an empty repeat memory and a fresh peak estimate. Their verdicts then follow
    /// today's rules, so they are not identical to what the old build would have said.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] for truncated, corrupt, foreign or inconsistent bytes (never a
    /// panic); a forest error if the embedded forest state does not restore.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let older = |found: u32| open(MAGIC, found, bytes).map_err(Error::Checkpoint);
        let (s, event) = match open(MAGIC, CHECKPOINT_FORMAT_VERSION, bytes) {
            Ok(payload) => decode::<(Snapshot, Option<EventSnapshot<Normalizer>>)>(payload)?,
            Err(rcf_core::StateError::UnsupportedVersion { found: 2, .. }) => {
                let (s, e): (LegacySnapshot, Option<EventSnapshot<LegacyNormalizer>>) =
                    decode(older(2)?)?;
                (s.upgrade(), e.map(EventSnapshot::upgrade))
            }
            // format 1: format 2 without the open event
            Err(rcf_core::StateError::UnsupportedVersion { found: 1, .. }) => {
                (decode::<LegacySnapshot>(older(1)?)?.upgrade(), None)
            }
            Err(e) => return Err(Error::Checkpoint(e)),
        };
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
            .holdoff(c.holdoff)
            .repeat_tolerance(c.repeat_tolerance)
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
            || !(s.last_score.is_finite() && s.last_score >= 0.0)
            || s.last_driver.is_some_and(|(j, _)| j >= m)
            || s.last_candidate.is_some_and(|l| l > s.seen)
            || s.memory.len() > REPEAT_MEMORY
            || s.memory
                .iter()
                .any(|p| p.len() != forest.dimensions() || p.iter().any(|v| !v.is_finite()))
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
        d.last_score = s.last_score;
        d.last_driver = s.last_driver;
        d.last_candidate = s.last_candidate;
        d.memory = s.memory.into();
        d.next_reframe = s.next_reframe;
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
