//! The fleet's ML models: the settings a behaviour's models get when its profile gives none,
//! and the bookkeeping of the model registry that keeps them within a memory budget.
//!
//! # The memory budget and what is evicted
//!
//! With [`EngineConfig::memory_budget`](super::EngineConfig::memory_budget) set, the models in
//! memory ([`Detector::memory_usage`](crate::Detector::memory_usage), summed) are kept within
//! it: when a window close pushes them over, the models expected to be needed *last* are
//! checkpointed to the store and dropped from memory, and a model is restored from its
//! checkpoint at its next datapoint. A restored model is bit for bit the one evicted, so
//! verdicts do not depend on the budget.
//!
//! Which models go: each model's next use is expected at its last use plus its typical
//! interval between uses (a decayed mean), and the farthest go first (an estimate of
//! Belady's optimal choice). A fleet reports in a cycle, every thing every window, and under a
//! cycle both LRU and frequency counting evict exactly the models about to be used next (every
//! access a miss once the budget is below the fleet); this order evicts the model just used,
//! which keeps the hit rate at the budget's share of the fleet. Things that report rarely, or
//! have gone silent, have the farthest next use and go first.

use super::time::Millis;

/// The model settings of ML behaviours whose profile's `rcf` extension gives none.
///
/// The defaults are the fleet's compact model, chosen from measurements on the synthetic
/// fleet at five-minute datapoints and on NAB and SKAB (BENCHMARKS.md, "Fleet models"): 256
/// samples hold most of a day densely, and fewer raised many times the false alarms; trees
/// and shingle cost memory for little detection. With the time decay
/// ([`FLEET_MEMORY_SAMPLE_SIZES`]) a sample reaches back about 9 days, thinly, and a model
/// grows with it for about three weeks: 73 KiB two days in, about 166 KiB from three weeks on
/// (BENCHMARKS.md, "Fleet models in the long run").
///
/// ```
/// use rcf_stream::fleet::ModelSettings;
/// let m = ModelSettings::default();
/// assert!(m.num_trees <= 50 && m.sample_size >= 128);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSettings {
    /// Trees in each model's forest.
    pub num_trees: usize,
    /// Points sampled per tree.
    pub sample_size: usize,
    /// Datapoints per shingle.
    pub shingle_size: usize,
    /// Cache bounding boxes of nodes with at least this many points (1: every box, fastest;
    /// above the sample size: none, smallest).
    pub box_cache_min_mass: usize,
}

/// [`ModelSettings::num_trees`] by default.
pub const FLEET_NUM_TREES: usize = 10;
/// [`ModelSettings::sample_size`] by default.
pub const FLEET_SAMPLE_SIZE: usize = 256;
/// [`ModelSettings::shingle_size`] by default.
pub const FLEET_SHINGLE_SIZE: usize = 8;
/// How far back a fleet model's sample reaches, in sample sizes, unless its behaviour sets
/// `rcf.timeDecay`: the time decay is `1 / (FLEET_MEMORY_SAMPLE_SIZES · sampleSize)`.
pub const FLEET_MEMORY_SAMPLE_SIZES: usize = 10;

/// [`ModelSettings::box_cache_min_mass`] by default: no cached boxes (a fifth of a model's
/// memory, for about a third more time per datapoint).
pub const FLEET_BOX_CACHE_MIN_MASS: usize = 100_000;

impl ModelSettings {
    /// The time decay of a model of `samples` points per tree fed by `members` things (1 for a
    /// thing's own model): the behaviour's `rcf.timeDecay` (`explicit`), else
    /// `1 / (FLEET_MEMORY_SAMPLE_SIZES · samples)`, divided by `members` (a group model sees
    /// every member's datapoints, and remembers as many windows as a thing's own model).
    pub(crate) fn time_decay(&self, explicit: Option<f64>, samples: usize, members: usize) -> f64 {
        let members = members.max(1) as f64;
        match explicit {
            Some(d) => d / members,
            None => 1.0 / (FLEET_MEMORY_SAMPLE_SIZES as f64 * samples as f64 * members),
        }
    }
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            num_trees: FLEET_NUM_TREES,
            sample_size: FLEET_SAMPLE_SIZE,
            shingle_size: FLEET_SHINGLE_SIZE,
            box_cache_min_mass: FLEET_BOX_CACHE_MIN_MASS,
        }
    }
}

/// What the model registry holds and has done (since the engine was opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelStats {
    /// Models in memory.
    pub resident: usize,
    /// Models not in memory: checkpointed to the store by the budget, or not yet read back
    /// from a store opened under a budget.
    pub evicted: usize,
    /// Bytes the models in memory hold (as last measured, after their last use).
    pub resident_bytes: usize,
    /// The most [`resident_bytes`](Self::resident_bytes) ever reached.
    pub peak_bytes: usize,
    /// Models evicted.
    pub evictions: u64,
    /// Models restored from their checkpoints.
    pub restores: u64,
}

/// One model's use, for the eviction order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes the model held when last measured (0 when not in memory).
    pub(crate) bytes: usize,
    /// Event time of the last use.
    pub(crate) last_use: Millis,
    /// Decayed mean interval between uses (0 before the first use).
    pub(crate) interval: Millis,
    /// Datapoints the model has learned, and how many it needs to be warm (kept for
    /// training summaries while the model is evicted; saved with its checkpoint, so known
    /// for a model not in memory when the engine is opened, except from stores written
    /// before schema 6, where they are 0 and 0 until its next use).
    pub(crate) seen: u64,
    pub(crate) needed: u64,
}

impl Usage {
    /// Takes the measures of a model just put into memory.
    pub(crate) fn measure(&mut self, d: &crate::Detector) {
        self.bytes = d.memory_usage();
        self.seen = d.points_seen();
        self.needed = d.points_to_confidence(super::engine::ML_MIN_CONFIDENCE);
    }

    /// A use at `t`; `window` is the first interval assumed.
    pub(crate) fn touch(&mut self, t: Millis, window: Millis) {
        if self.interval == 0 {
            // the first use
            self.interval = window.max(1);
        } else {
            let gap = t.saturating_sub(self.last_use).max(0);
            // a quarter of the weight on the newest interval
            self.interval = self.interval - self.interval / 4 + gap / 4;
        }
        self.last_use = t;
    }

    /// When the model is expected to be needed next.
    pub(crate) fn next_use(&self) -> Millis {
        self.last_use.saturating_add(self.interval)
    }
}

/// A memory size: bytes, or a number with a unit (`512MiB`, `2GiB`, `1.5 GB`; `K`, `M`, `G`,
/// `T` with or without `iB`/`B` are powers of 1024, `KB`..`TB` powers of 1000).
///
/// # Errors
///
/// Not a positive size, saying why.
///
/// ```
/// use rcf_stream::fleet::parse_memory_size;
/// assert_eq!(parse_memory_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_memory_size("1.5 GB"), Ok(1_500_000_000));
/// assert!(parse_memory_size("-1").is_err());
/// ```
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a number with KiB, MiB, GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => return Err(format!("{text:?}: unknown unit {other:?}")),
    };
    let bytes = x * scale;
    if !(1.0..=1e18).contains(&bytes) {
        return Err(format!("{text:?} must be from 1 byte to 10^18 bytes"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_bad_ones_are_named() {
        assert_eq!(parse_memory_size("1000"), Ok(1000));
        assert_eq!(parse_memory_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory_size("512 m"), Ok(512 << 20));
        assert_eq!(parse_memory_size("2 KB"), Ok(2000));
        for bad in ["", "GiB", "1.2.3", "0", "5 parsecs", "1e30"] {
            let e = parse_memory_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn the_next_use_follows_the_reporting_interval() {
        let mut u = Usage::default();
        u.touch(1_000, 300);
        assert_eq!(u.next_use(), 1_300);
        for k in 1..50 {
            u.touch(1_000 + k * 3_600, 300);
        }
        // an hourly thing is expected about an hour after its last use
        assert!((u.next_use() - u.last_use - 3_600).abs() < 100, "{u:?}");
    }
}
