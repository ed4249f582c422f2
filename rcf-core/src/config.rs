//! Forest parameters: [`ForestBuilder`] (unchecked) → [`ForestConfig`] (validated).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::forest::RandomCutForest;

/// Default number of trees.
pub const DEFAULT_NUM_TREES: usize = 50;
/// Default number of points each tree samples (the reference's "capacity").
pub const DEFAULT_SAMPLE_SIZE: usize = 256;
/// Default fraction of the sample filled unconditionally at start-up (AWS Rust and OpenSearch
/// use 0.125; AWS Java uses 1.0, which makes all trees hold the same first points).
pub const DEFAULT_INITIAL_ACCEPT_FRACTION: f64 = 0.125;
/// Default seed: forests are deterministic unless told otherwise.
pub const DEFAULT_SEED: u64 = 0;
/// Default for [`ForestBuilder::box_cache_min_mass`]: nodes whose subtree holds at least this
/// many points keep a cached bounding box. Chosen from the speed/memory curve in
/// `BENCHMARKS.md`: the fastest setting whose trained W1 forest (50 trees, 256 samples,
/// shingle 8) stays within 1 MB (871 KiB, within 5 % of caching every box at 1,209 KiB). For
/// many small forests, 16 holds one in 553 KiB for about a third more time per point.
pub const DEFAULT_BOX_CACHE_MIN_MASS: usize = 4;

/// Largest supported sample size (tree indices are 16-bit).
pub const MAX_SAMPLE_SIZE: usize = 16_384;
/// Largest supported point dimension (`input_dims * shingle_size`).
pub const MAX_DIMENSIONS: usize = 16_384;
/// Largest supported number of trees.
pub const MAX_NUM_TREES: usize = 10_000;

/// Unchecked forest parameters; [`build`](Self::build) validates them.
///
/// Created by [`RandomCutForest::builder`].
///
/// # Example
///
/// ```
/// use rcf_core::RandomCutForest;
///
/// let forest = RandomCutForest::builder(3)
///     .shingle_size(4)
///     .num_trees(100)
///     .seed(7)
///     .build()?;
/// assert_eq!(forest.dimensions(), 12);
/// assert_eq!(forest.config().sample_size, 256);
/// # Ok::<(), rcf_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ForestBuilder {
    input_dims: usize,
    shingle_size: usize,
    num_trees: usize,
    sample_size: usize,
    time_decay: Option<f64>,
    output_after: Option<usize>,
    initial_accept_fraction: f64,
    box_cache_min_mass: usize,
    seed: u64,
}

impl ForestBuilder {
    pub(crate) fn new(input_dims: usize) -> Self {
        Self {
            input_dims,
            shingle_size: 1,
            num_trees: DEFAULT_NUM_TREES,
            sample_size: DEFAULT_SAMPLE_SIZE,
            time_decay: None,
            output_after: None,
            initial_accept_fraction: DEFAULT_INITIAL_ACCEPT_FRACTION,
            box_cache_min_mass: DEFAULT_BOX_CACHE_MIN_MASS,
            seed: DEFAULT_SEED,
        }
    }

    /// Internal shingling: `update` and `score` take the newest `input_dims` values and the
    /// forest works on the last `shingle_size` of them, concatenated oldest first
    /// (`input_dims * shingle_size` dimensions). Default 1 (no shingling).
    pub fn shingle_size(mut self, shingle_size: usize) -> Self {
        self.shingle_size = shingle_size;
        self
    }

    /// Number of trees. Default [`DEFAULT_NUM_TREES`].
    pub fn num_trees(mut self, num_trees: usize) -> Self {
        self.num_trees = num_trees;
        self
    }

    /// Points sampled per tree. Default [`DEFAULT_SAMPLE_SIZE`].
    pub fn sample_size(mut self, sample_size: usize) -> Self {
        self.sample_size = sample_size;
        self
    }

    /// Time decay λ of the samplers: a point's expected time in a sample is about `1/λ`
    /// updates. Default `1 / (10 * sample_size)`. 0 means no decay (a uniform reservoir).
    pub fn time_decay(mut self, time_decay: f64) -> Self {
        self.time_decay = Some(time_decay);
        self
    }

    /// Scores are 0 until this many points have been offered to the forest. Default
    /// `max(1, sample_size / 4)`.
    pub fn output_after(mut self, output_after: usize) -> Self {
        self.output_after = Some(output_after);
        self
    }

    /// While a sample is filling, it accepts every point until it is this fraction full and
    /// then with a probability falling linearly to 0 at full (rcf-reference §4). Default
    /// [`DEFAULT_INITIAL_ACCEPT_FRACTION`].
    pub fn initial_accept_fraction(mut self, fraction: f64) -> Self {
        self.initial_accept_fraction = fraction;
        self
    }

    /// Internal nodes whose subtree holds at least this many points keep a cached bounding box;
    /// smaller boxes are rebuilt from their leaves when a query needs them. 2 caches every box
    /// (fastest, most memory); larger values trade speed for memory. Scores do not depend on
    /// it. Default [`DEFAULT_BOX_CACHE_MIN_MASS`].
    pub fn box_cache_min_mass(mut self, min_mass: usize) -> Self {
        self.box_cache_min_mass = min_mass;
        self
    }

    /// Master seed; each tree derives its own random stream from it. Same seed and same input
    /// give bit-identical output. Default [`DEFAULT_SEED`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the parameters and builds an empty forest.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the first parameter out of range.
    pub fn build(self) -> Result<RandomCutForest> {
        Ok(RandomCutForest::from_config(self.validate()?))
    }

    /// Validates the parameters without building a forest.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the first parameter out of range.
    pub fn validate(self) -> Result<ForestConfig> {
        fn invalid(name: &'static str, reason: String) -> Error {
            Error::InvalidParameter { name, reason }
        }
        if self.input_dims == 0 {
            return Err(invalid("input_dims", "must be at least 1, got 0".into()));
        }
        if self.shingle_size == 0 {
            return Err(invalid("shingle_size", "must be at least 1, got 0".into()));
        }
        let dimensions = self
            .input_dims
            .checked_mul(self.shingle_size)
            .filter(|&d| d <= MAX_DIMENSIONS)
            .ok_or_else(|| {
                invalid(
                    "shingle_size",
                    format!(
                        "input_dims * shingle_size must be at most {MAX_DIMENSIONS}, got {} * {}",
                        self.input_dims, self.shingle_size
                    ),
                )
            })?;
        if !(1..=MAX_NUM_TREES).contains(&self.num_trees) {
            return Err(invalid(
                "num_trees",
                format!(
                    "must be between 1 and {MAX_NUM_TREES}, got {}",
                    self.num_trees
                ),
            ));
        }
        if !(2..=MAX_SAMPLE_SIZE).contains(&self.sample_size) {
            return Err(invalid(
                "sample_size",
                format!(
                    "must be between 2 and {MAX_SAMPLE_SIZE}, got {}",
                    self.sample_size
                ),
            ));
        }
        let time_decay = self
            .time_decay
            .unwrap_or(1.0 / (10.0 * self.sample_size as f64));
        if !(time_decay.is_finite() && (0.0..=1.0).contains(&time_decay)) {
            return Err(invalid(
                "time_decay",
                format!("must be a finite number in [0, 1], got {time_decay}"),
            ));
        }
        let f = self.initial_accept_fraction;
        if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
            return Err(invalid(
                "initial_accept_fraction",
                format!("must be in [0, 1], got {f}"),
            ));
        }
        if self.box_cache_min_mass < 2 {
            return Err(invalid(
                "box_cache_min_mass",
                format!(
                    "must be at least 2 (every internal node holds 2 points), got {}",
                    self.box_cache_min_mass
                ),
            ));
        }
        let output_after = self.output_after.unwrap_or((self.sample_size / 4).max(1));
        Ok(ForestConfig {
            input_dims: self.input_dims,
            shingle_size: self.shingle_size,
            dimensions,
            num_trees: self.num_trees,
            sample_size: self.sample_size,
            time_decay,
            output_after: output_after as u64,
            initial_accept_fraction: f,
            // anything above the sample size means "never cache"; clamp so it fits in u16
            box_cache_min_mass: self.box_cache_min_mass.min(MAX_SAMPLE_SIZE + 2) as u32,
            seed: self.seed,
        })
    }
}

/// Validated forest parameters, with derived defaults filled in. Part of the saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ForestConfig {
    /// Values per `update`/`score` call.
    pub input_dims: usize,
    /// Inputs concatenated into one point.
    pub shingle_size: usize,
    /// Dimension of the forest's points: `input_dims * shingle_size`.
    pub dimensions: usize,
    /// Number of trees.
    pub num_trees: usize,
    /// Points sampled per tree.
    pub sample_size: usize,
    /// Time decay λ of the samplers.
    pub time_decay: f64,
    /// Points to offer before scores are produced.
    pub output_after: u64,
    /// Fraction of the sample filled unconditionally at start-up.
    pub initial_accept_fraction: f64,
    /// Minimum subtree size whose bounding box is cached.
    pub box_cache_min_mass: u32,
    /// Master seed.
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(b: ForestBuilder) -> &'static str {
        match b.validate() {
            Err(Error::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_derived_in_build() {
        let c = RandomCutForest::builder(2).validate().unwrap();
        assert_eq!(c.dimensions, 2);
        assert_eq!(c.output_after, 64);
        assert!((c.time_decay - 1.0 / 2560.0).abs() < 1e-18);
        let c = RandomCutForest::builder(1)
            .sample_size(2)
            .validate()
            .unwrap();
        assert_eq!(c.output_after, 1);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let b = || RandomCutForest::builder(3);
        assert_eq!(err_name(RandomCutForest::builder(0)), "input_dims");
        assert_eq!(err_name(b().shingle_size(0)), "shingle_size");
        assert_eq!(err_name(b().shingle_size(usize::MAX)), "shingle_size");
        assert_eq!(err_name(b().num_trees(0)), "num_trees");
        assert_eq!(err_name(b().num_trees(1_000_000)), "num_trees");
        assert_eq!(err_name(b().sample_size(1)), "sample_size");
        assert_eq!(err_name(b().sample_size(1 << 20)), "sample_size");
        assert_eq!(err_name(b().time_decay(f64::NAN)), "time_decay");
        assert_eq!(err_name(b().time_decay(-0.1)), "time_decay");
        assert_eq!(err_name(b().time_decay(2.0)), "time_decay");
        assert_eq!(
            err_name(b().initial_accept_fraction(1.5)),
            "initial_accept_fraction"
        );
        assert_eq!(err_name(b().box_cache_min_mass(1)), "box_cache_min_mass");
    }

    #[test]
    fn message_includes_value() {
        let e = RandomCutForest::builder(3)
            .sample_size(1)
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `sample_size`: must be between 2 and 16384, got 1"
        );
    }
}
