//! Changing a trained forest's units and box cache in place.

use crate::error::{Error, Result};
use crate::forest::RandomCutForest;
use crate::tree::TreeScratch;

impl RandomCutForest {
    /// Changes how many points a subtree needs for its bounding box to be cached (see
    /// [`ForestBuilder::box_cache_min_mass`](crate::ForestBuilder::box_cache_min_mass)) and
    /// rebuilds the boxes. Scores do not change, only speed and memory: for example, cache every
    /// box (`2`) before scoring a large batch and go back to the default afterwards, or keep many
    /// small forests at `16`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `min_mass < 2`.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 13) as f32, (t % 7) as f32])?; }
    /// let before = forest.score(&[3.0, 9.0])?;
    /// forest.set_box_cache_min_mass(16)?; // small: boxes only for subtrees of 16 points
    /// let small = forest.memory_usage();
    /// forest.set_box_cache_min_mass(2)?; // fastest: every box cached
    /// assert!(forest.memory_usage() > small);
    /// assert_eq!(forest.score(&[3.0, 9.0])?, before);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn set_box_cache_min_mass(&mut self, min_mass: usize) -> Result<()> {
        let validated = RandomCutForest::builder(self.config.input_dims)
            .box_cache_min_mass(min_mass)
            .validate()?;
        self.config.box_cache_min_mass = validated.box_cache_min_mass;
        self.new_generation();
        self.rebuild_boxes()
            .map_err(|e| Error::State(crate::StateError::Inconsistent(e)))
    }

    /// Re-expresses everything the forest holds in new units: every stored value `v` of input
    /// `j` (in every shingle slot) becomes `v · scale[j] + shift[j]`, and every cut moves with
    /// the values it separates, so the trees keep their shape and every sampled point its leaf.
    /// Afterwards, score inputs in the new units.
    ///
    /// This is what lets a caller normalise inputs and later change its normalisation without
    /// distorting what the forest has learned: translating changes no score at all, and
    /// scaling changes scores only through the *relative* ranges of the inputs (not at all when
    /// every input gets the same scale). Costs one pass over the stored points and the trees
    /// (about as much as [`from_bytes`](Self::from_bytes)); meant for occasional use.
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    ///
    /// let mut forest = RandomCutForest::builder(1).shingle_size(4).seed(1).build()?;
    /// for t in 0..1_000 {
    ///     forest.update(&[(t % 20) as f32])?; // readings in one unit ...
    /// }
    /// let before = forest.score(&[50.0])?;
    /// forest.rescale_inputs(&[0.1], &[-1.0])?; // ... now in another: x / 10 - 1
    /// let after = forest.score(&[50.0 * 0.1 - 1.0])?;
    /// assert!((after - before).abs() < 1e-6 * before);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming `scale` or `shift` if either does not hold
    /// `input_dims` finite values or a scale is not positive, or naming `scale` if the new
    /// values would not be finite `f32`s or two stored values that a cut separates would round
    /// to the same `f32`. The forest is unchanged on error.
    pub fn rescale_inputs(&mut self, scale: &[f64], shift: &[f64]) -> Result<()> {
        let m = self.config.input_dims;
        for (name, v) in [("scale", scale), ("shift", shift)] {
            if v.len() != m {
                return Err(Error::InvalidParameter {
                    name,
                    reason: format!("needs {m} values (one per input), got {}", v.len()),
                });
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(Error::InvalidParameter {
                    name,
                    reason: format!("values must be finite, got {x}"),
                });
            }
        }
        if let Some(a) = scale.iter().find(|a| **a <= 0.0) {
            return Err(Error::InvalidParameter {
                name: "scale",
                reason: format!("values must be positive, got {a}"),
            });
        }
        let map = |j: usize, v: f32| (f64::from(v) * scale[j] + shift[j]) as f32;
        let precision = |reason: String| Error::InvalidParameter {
            name: "scale",
            reason: format!("{reason}; the forest is unchanged"),
        };
        // in place: the store's values are kept to put back, and the new cuts are all found
        // (which checks them) before the first is set, so a failure leaves the forest as it was
        let before = self.store.values().to_vec();
        self.store.map_values(map);
        let mut mapped = Vec::with_capacity(self.trees.len());
        let found = self
            .store
            .check(m, self.config.shingle_size)
            .map_err(|_| precision("rescaled values would overflow f32".into()))
            .and_then(|()| {
                let dims = self.config.dimensions;
                for (i, tree) in self.trees.iter().enumerate() {
                    let cuts = tree
                        .mapped_cuts(dims, &self.store, |d, c| map(d % m, c))
                        .map_err(|e| precision(format!("tree {i}, {e} in f32")))?;
                    mapped.push(cuts);
                }
                Ok(())
            });
        if let Err(e) = found {
            self.store.restore_values(&before);
            return Err(e);
        }
        let params = self.tree_params();
        let mut sc = TreeScratch::new(params.dims);
        for (i, (tree, cuts)) in self.trees.iter_mut().zip(&mapped).enumerate() {
            tree.set_cuts(cuts);
            // cannot fail: the cuts were just checked against these values
            tree.refill_boxes(&params, &self.store, &mut sc)
                .map_err(|e| precision(format!("tree {i}: rescaled cuts do not route: {e}")))?;
        }
        self.new_generation();
        Ok(())
    }
}
