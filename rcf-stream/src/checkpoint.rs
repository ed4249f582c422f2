//! Detector checkpoints: [`Detector::to_bytes`] / [`Detector::from_bytes`].
//!
//! The envelope is rcf-core's ([`rcf_core::state::seal`]): magic `b"RCF-DTCT"`, format
//! version, payload length and CRC-32. The payload (bincode 2) holds the configuration, the
//! normaliser (statistics and frames), thresholder and data-quality statistics, the counters,
//! the hold-off and repeat memory, and the forest's own sealed state as a byte blob, then the
//! open event's reference (its own forest blob, normaliser, threshold, start, conforming count
//! and shingle), if an event is open.
//!
//! Format 4 embeds the forest's validated configuration in the detector's (`DetectorConfig::
//! forest`); format 3, which copied the forest's settings in field by field, loads losslessly
//! (same verdicts, same bytes once saved again). Older formats still load: format 2 (before normalisation frames, hold-off and repeat
//! memory) and format 1 (also before event tracking). Their configurations take today's
//! defaults for the settings they predate, their normalisers' statistics become the frames,
//! and their detectors start with no hold-off, an empty repeat memory and a fresh peak
//! estimate; verdicts then follow today's rules, so they are not identical to the old build's.
//! Restoring checks every part for consistency, so corrupt or foreign bytes give an error,
//! never a panic.

use serde::{Deserialize, Serialize};

use rcf_core::state::{Bytes, open, seal_encoded};
use rcf_core::{RandomCutForest, StateDigest};

use crate::config::DetectorConfig;
use crate::correct::{DEFAULT_HOLDOFF, DEFAULT_REPEAT_TOLERANCE, Driver};
use crate::detector::Detector;
use crate::error::{Error, Result};
use crate::event::OpenEvent;
use crate::normalize::{LegacyNormalizer, Normalization, Normalizer};
use crate::stats::{Decayed, READING_BOUND};
use crate::threshold::{LegacyThresholder, Sensitivity, Thresholder};
use crate::{REPEAT_MEMORY, Tolerance};

const MAGIC: &[u8; 8] = b"RCF-DTCT";
/// The checkpoint format version this build writes; it also reads versions 1 to 3.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 4;
const DECODE_LIMIT: usize = 1 << 30;

/// Proof that a checkpoint's forests are ones this process saved, from
/// [`Detector::to_bytes_with_digest`]: the [`StateDigest`] of the forest and of the open
/// event's reference forest, if there is one. Only meaningful in the process that made it;
/// cannot be built, saved or loaded otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointDigest {
    forest: StateDigest,
    event: Option<StateDigest>,
}

/// The detector as stored; `C` is the configuration's layout (today's, or format 3's).
#[derive(Serialize, Deserialize)]
struct Snapshot<C = DetectorConfig> {
    config: C,
    normalizer: Normalizer,
    thresholder: Thresholder,
    quality: Decayed,
    seen: u64,
    warm: Vec<f64>,
    normalizer_ready: bool,
    last_anomaly: Option<u64>,
    last_score: f64,
    last_driver: Option<Driver>,
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

/// The configuration as format 3 stored it: format 1 and 2's, then the hold-off settings (a
/// nested struct encodes as its fields in sequence, so these are format 3's bytes).
#[derive(Serialize, Deserialize)]
struct ConfigV3 {
    legacy: LegacyConfig,
    holdoff: usize,
    repeat_tolerance: f64,
}

impl ConfigV3 {
    /// Today's configuration for the same settings (validated, so a format-3 configuration
    /// no build could make is refused).
    fn upgrade(self) -> Result<DetectorConfig> {
        let c = self.legacy;
        Detector::builder(c.metrics)
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
            .holdoff(self.holdoff)
            .repeat_tolerance(self.repeat_tolerance)
            .validate()
            .map_err(|e| inconsistent(&format!("configuration: {e}")))
    }
}

impl Snapshot<ConfigV3> {
    fn upgrade(self) -> Result<Snapshot> {
        Ok(Snapshot {
            config: self.config.upgrade()?,
            normalizer: self.normalizer,
            thresholder: self.thresholder,
            quality: self.quality,
            seen: self.seen,
            warm: self.warm,
            normalizer_ready: self.normalizer_ready,
            last_anomaly: self.last_anomaly,
            last_score: self.last_score,
            last_driver: self.last_driver,
            last_candidate: self.last_candidate,
            memory: self.memory,
            next_reframe: self.next_reframe,
            forest: self.forest,
        })
    }
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
    fn upgrade(self) -> Snapshot<ConfigV3> {
        Snapshot {
            config: ConfigV3 {
                legacy: self.config,
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

/// The cross-checks between the parts of a restored detector that its later steps and its
/// own next checkpoint rely on: everything a detector built and fed through the API keeps.
///
/// Before the normaliser is ready every point so far is buffered (`seen` rows) and the forest
/// has seen nothing; from then on the forest has seen exactly `seen` inputs (the buffered rows,
/// then one per point). Statistics are within the ranges updates keep, and were made with the
/// configuration's own decay, mode and sensitivity (a crafted decay of −5 made weights grow
/// until a later checkpoint was refused).
fn check_counters(s: &Snapshot, forest: &RandomCutForest) -> Result<()> {
    let c = &s.config;
    let m = c.metrics.len() as u64;
    let seen = s.seen;
    let warm_rows = s.warm.len() as u64 / m.max(1);
    let buffered_ok = if s.normalizer_ready {
        s.warm.is_empty() && forest.entries_seen() == seen && seen >= c.normalize_after as u64
    } else {
        s.warm.len() as u64 == warm_rows * m
            && warm_rows == seen
            && seen < c.normalize_after as u64
            && forest.entries_seen() == 0
    };
    let fails = [
        (
            !buffered_ok,
            "buffered rows, points seen and the forest's inputs disagree",
        ),
        (
            s.warm
                .iter()
                .any(|v| !(v.is_finite() && v.abs() <= READING_BOUND)),
            "a buffered value is not a finite f32",
        ),
        (
            !s.normalizer
                .is_consistent(c.metrics.len(), c.normalization, c.forest.time_decay),
            "the normaliser's statistics or frames are out of range",
        ),
        (
            !s.thresholder
                .is_consistent(c.sensitivity, c.forest.time_decay),
            "the thresholder's statistics are out of range",
        ),
        (s.thresholder.count() > seen, "more scores than points seen"),
        (
            !(s.quality.is_plausible() && (0.0..=1.0).contains(&s.quality.mean())),
            "the data-quality statistics are out of range",
        ),
        (
            s.last_anomaly.is_some_and(|l| l > seen) || s.last_candidate.is_some_and(|l| l > seen),
            "the last anomaly or candidate lies in the future",
        ),
        (
            !(s.last_score.is_finite() && (0.0..=1e6).contains(&s.last_score)),
            "the last anomaly's score is out of range",
        ),
        (
            s.last_driver.is_some_and(|d| d.metric as u64 >= m),
            "the last anomaly's metric is out of range",
        ),
        (
            s.memory.len() > REPEAT_MEMORY
                || s.memory
                    .iter()
                    .any(|p| p.len() != forest.dimensions() || p.iter().any(|v| !v.is_finite())),
            "the repeat memory is malformed",
        ),
    ];
    match fails.iter().find(|(failed, _)| *failed) {
        Some((_, what)) => Err(inconsistent(&format!(
            "detector statistics are inconsistent: {what}"
        ))),
        None => Ok(()),
    }
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
        self.encode(
            self.forest.to_bytes(),
            self.event.as_ref().map(|e| e.forest.to_bytes()),
        )
    }

    /// [`to_bytes`](Self::to_bytes), with a digest that lets this process restore the bytes
    /// with [`from_bytes_with_digest`](Self::from_bytes_with_digest) without checking their
    /// forests again (rcf-core's [`StateDigest`]: a keyed hash under a key only this process
    /// holds). The fleet engine evicts models this way under a memory budget.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_stream::Detector;
    /// let mut a = Detector::builder(["temp"]).build()?;
    /// for t in 0..500 { a.process(&[(t % 17) as f32])?; }
    /// let (bytes, digest) = a.to_bytes_with_digest();
    /// let mut b = Detector::from_bytes_with_digest(&bytes, &digest)?;
    /// assert_eq!(a.process(&[40.0])?, b.process(&[40.0])?);
    /// # Ok::<(), rcf_stream::Error>(())
    /// ```
    pub fn to_bytes_with_digest(&self) -> (Vec<u8>, CheckpointDigest) {
        let (forest, forest_digest) = self.forest.to_bytes_with_digest();
        let (event, event_digest) = match self.event.as_ref() {
            Some(e) => {
                let (b, d) = e.forest.to_bytes_with_digest();
                (Some(b), Some(d))
            }
            None => (None, None),
        };
        let digest = CheckpointDigest {
            forest: forest_digest,
            event: event_digest,
        };
        (self.encode(forest, event), digest)
    }

    /// The checkpoint around the already encoded forest (and open event's reference forest).
    fn encode(&self, forest: Vec<u8>, event_forest: Option<Vec<u8>>) -> Vec<u8> {
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
            forest: Bytes(forest),
        };
        let event = self
            .event
            .as_ref()
            .zip(event_forest)
            .map(|(e, forest)| EventSnapshot {
                forest: Bytes(forest),
                normalizer: e.normalizer.clone(),
                threshold: e.threshold,
                started: e.started,
                conforming: e.conforming as u64,
                shingle: e.shingle.clone(),
            });
        // the forests are nearly all of it: one buffer of about the final size
        let forests = snapshot.forest.0.len() + event.as_ref().map_or(0, |e| e.forest.0.len());
        seal_encoded(
            MAGIC,
            CHECKPOINT_FORMAT_VERSION,
            &(&snapshot, &event),
            forests + 16 * 1024,
        )
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
        Self::restore(bytes, None)
    }

    /// Restores a detector saved by [`to_bytes_with_digest`](Self::to_bytes_with_digest) in
    /// this process. Where `digest` vouches for the embedded forests (the bytes are unchanged),
    /// their structural checks are skipped, about two thirds of restoring a fleet model; the
    /// rest of the checkpoint is checked as by [`from_bytes`](Self::from_bytes), and changed
    /// bytes or a digest from another process take the full check. The detector is the same
    /// either way.
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes); never a panic, whatever the bytes.
    pub fn from_bytes_with_digest(bytes: &[u8], digest: &CheckpointDigest) -> Result<Self> {
        Self::restore(bytes, Some(digest))
    }

    /// [`from_bytes`](Self::from_bytes), with the forests' digests where there are some.
    fn restore(bytes: &[u8], digest: Option<&CheckpointDigest>) -> Result<Self> {
        let forest_from = |b: &[u8], d: Option<&StateDigest>| match d {
            Some(d) => RandomCutForest::from_bytes_with_digest(b, d),
            None => RandomCutForest::from_bytes(b),
        };
        let older = |found: u32| open(MAGIC, found, bytes).map_err(Error::Checkpoint);
        let (s, event) = match open(MAGIC, CHECKPOINT_FORMAT_VERSION, bytes) {
            Ok(payload) => decode::<(Snapshot, Option<EventSnapshot<Normalizer>>)>(payload)?,
            // format 3: the forest's settings were copied into the configuration
            Err(rcf_core::StateError::UnsupportedVersion { found: 3, .. }) => {
                let (s, e): (Snapshot<ConfigV3>, Option<EventSnapshot<Normalizer>>) =
                    decode(older(3)?)?;
                (s.upgrade()?, e)
            }
            Err(rcf_core::StateError::UnsupportedVersion { found: 2, .. }) => {
                let (s, e): (LegacySnapshot, Option<EventSnapshot<LegacyNormalizer>>) =
                    decode(older(2)?)?;
                (s.upgrade().upgrade()?, e.map(EventSnapshot::upgrade))
            }
            // format 1: format 2 without the open event
            Err(rcf_core::StateError::UnsupportedVersion { found: 1, .. }) => (
                decode::<LegacySnapshot>(older(1)?)?.upgrade().upgrade()?,
                None,
            ),
            Err(e) => return Err(Error::Checkpoint(e)),
        };
        let forest = forest_from(&s.forest.0, digest.map(|d| &d.forest))?;
        let c = &s.config;
        let m = c.metrics.len();
        if forest.config() != &c.forest {
            return Err(inconsistent(
                "the forest does not match the detector's configuration",
            ));
        }
        // the same checks as a fresh build (without building one)
        let validated = c
            .to_builder()
            .validate()
            .map_err(|e| inconsistent(&format!("configuration: {e}")))?;
        if &validated != c {
            return Err(inconsistent(
                "configuration fields disagree with each other",
            ));
        }
        check_counters(&s, &forest)?;
        let p_values = s.thresholder.keeps_p_values();
        let mut d = Detector::from_parts(s.config, forest, p_values);
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
            let forest = forest_from(&e.forest.0, digest.and_then(|d| d.event.as_ref()))?;
            if forest.config() != d.forest.config()
                || !e.normalizer.is_consistent(
                    m,
                    d.config.normalization,
                    d.config.forest.time_decay,
                )
                || !(e.threshold.is_finite() && e.threshold > 0.0)
                || e.started > s.seen
                || e.conforming > s.seen - e.started
                || forest.entries_seen() > d.forest.entries_seen()
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcf_core::state::seal;

    type Payload = (Snapshot, Option<EventSnapshot<Normalizer>>);
    /// A named change to a decoded checkpoint.
    type Craft<'a> = (&'a str, &'a dyn Fn(&mut Payload));

    fn decoded(d: &Detector) -> Payload {
        decoded_from(&d.to_bytes())
    }

    fn decoded_from(bytes: &[u8]) -> Payload {
        decode(open(MAGIC, CHECKPOINT_FORMAT_VERSION, bytes).unwrap()).unwrap()
    }

    fn sealed(p: &Payload) -> Vec<u8> {
        let payload = bincode::serde::encode_to_vec(p, bincode::config::standard()).unwrap();
        seal(MAGIC, CHECKPOINT_FORMAT_VERSION, &payload)
    }

    /// A detector that loads must keep loading after any number of further points: whatever
    /// `from_bytes` accepts, the detector's own later `to_bytes` is accepted too.
    fn assert_stays_restorable(bytes: &[u8]) {
        let Ok(mut d) = Detector::from_bytes(bytes) else {
            return;
        };
        for t in 0..40 {
            let x = [
                (t as f32 * 0.7).sin() * 1e3,
                if t % 5 == 0 { f32::NAN } else { 2.0 },
            ];
            d.process(&x).unwrap();
            if let Err(e) = Detector::from_bytes(&d.to_bytes()) {
                panic!(
                    "accepted, but after {} more points its checkpoint is refused: {e}",
                    t + 1
                );
            }
        }
    }

    /// The fuzzer's reproducer: 3 points seen, a normaliser that needs 10, sample size 4. A
    /// crafted count of buffered rows was accepted, and 7 points later the detector's own
    /// checkpoint was refused. Now only the consistent count loads, and what loads stays
    /// restorable.
    #[test]
    fn buffered_rows_must_match_points_seen() {
        let mut d = Detector::builder(["a", "b"])
            .sample_size(4)
            .normalize_after(10)
            .build()
            .unwrap();
        for t in 0..3 {
            d.process(&[t as f32, 1.0]).unwrap();
        }
        let base = decoded(&d);
        for seen in 0..12u64 {
            for rows in [0usize, 3, 9] {
                let mut p = decoded(&d);
                p.0.seen = seen;
                p.0.warm = base.0.warm.iter().copied().cycle().take(rows * 2).collect();
                let bytes = sealed(&p);
                let accepted = Detector::from_bytes(&bytes).is_ok();
                assert_eq!(accepted, seen as usize == rows, "seen {seen}, rows {rows}");
                assert_stays_restorable(&bytes);
            }
        }
    }

    /// A detector trained on 600 periodic points, then given `[last, 1]`.
    fn trained_then(last: f32) -> Detector {
        let mut d = Detector::builder(["a", "b"]).seed(3).build().unwrap();
        for t in 0..600 {
            d.process(&[(t % 13) as f32, (t % 7) as f32]).unwrap();
        }
        d.process(&[last, 1.0]).unwrap();
        d
    }

    #[test]
    fn counters_and_scores_out_of_range_are_refused() {
        let d = trained_then(90.0);
        let craft = |f: &dyn Fn(&mut Payload)| {
            let mut p = decoded(&d);
            f(&mut p);
            sealed(&p)
        };
        assert!(Detector::from_bytes(&craft(&|_| {})).is_ok());
        let cases: [Craft<'_>; 7] = [
            ("seen", &|p| p.0.seen += 1),
            ("last_score", &|p| p.0.last_score = 1e300),
            ("last_anomaly", &|p| p.0.last_anomaly = Some(p.0.seen + 1)),
            ("last_driver", &|p| {
                p.0.last_driver = Some(Driver {
                    metric: 2,
                    high: true,
                })
            }),
            ("ready", &|p| p.0.normalizer_ready = false),
            ("memory", &|p| p.0.memory = vec![vec![f32::NAN; 8]]),
            ("forest", &|p| {
                let mut other = Detector::builder(["a", "b"]).seed(3).build().unwrap();
                for t in 0..10 {
                    other.process(&[t as f32, 0.0]).unwrap();
                }
                p.0.forest = Bytes(other.forest().to_bytes());
            }),
        ];
        for (name, f) in cases {
            let bytes = craft(f);
            match Detector::from_bytes(&bytes) {
                Err(Error::Checkpoint(_)) => {}
                other => panic!(
                    "{name}: expected a checkpoint error, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }

    /// A restore vouched for by its digest (the forest and an open event's reference forest)
    /// is the checked restore; the rest of the checkpoint is still checked, and changed bytes
    /// take the full check.
    #[test]
    fn a_digest_vouches_for_the_forests_and_the_rest_is_still_checked() {
        let mut d = trained_then(900.0);
        assert!(
            d.event.is_some(),
            "an open event, so both forests are vouched for"
        );
        let (bytes, digest) = d.to_bytes_with_digest();
        assert_eq!(bytes, d.to_bytes());
        assert!(digest.event.is_some());
        let mut fast = Detector::from_bytes_with_digest(&bytes, &digest).unwrap();
        let mut checked = Detector::from_bytes(&bytes).unwrap();
        assert_eq!(fast.to_bytes(), bytes);
        for t in 0..200 {
            let x = [
                (t % 13) as f32 + if t == 50 { 40.0 } else { 0.0 },
                (t % 7) as f32,
            ];
            let v = d.process(&x).unwrap();
            assert_eq!(fast.process(&x).unwrap(), v, "point {t}");
            assert_eq!(checked.process(&x).unwrap(), v);
        }
        // the digest does not vouch for the counters around the forests
        let mut p = decoded_from(&bytes);
        p.0.seen += 1;
        assert!(matches!(
            Detector::from_bytes_with_digest(&sealed(&p), &digest),
            Err(Error::Checkpoint(_))
        ));
        // nor for another forest put in its place (checked, and refused as it is without one)
        let mut p = decoded_from(&bytes);
        let mut other = Detector::builder(["a", "b"]).seed(3).build().unwrap();
        for t in 0..10 {
            other.process(&[t as f32, 0.0]).unwrap();
        }
        p.0.forest = Bytes(other.forest().to_bytes());
        assert!(matches!(
            Detector::from_bytes_with_digest(&sealed(&p), &digest),
            Err(Error::Checkpoint(_))
        ));
    }
}
