//! Filling missing values from the forest (rcf-reference §7).

use crate::error::{Error, Result, check_len};
use crate::forest::RandomCutForest;
use crate::tree::NONE;
use crate::tree::visit::complete;

impl RandomCutForest {
    /// Fills the NaN values of `x` (the newest `input_dims` values) from the forest, the way
    /// the reference does (rcf-reference §7): each tree follows both branches of cuts on
    /// missing values and proposes the completion from the leaf with the lowest score; the
    /// result is the per-value median over trees. Returns `x` with its NaNs replaced.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for a wrong length, [`Error::NonFinite`] for an infinite
    /// value, [`Error::NothingToImpute`] if `x` has no NaN or the forest holds no points yet
    /// (or too few inputs to complete a shingle).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(3).build()?;
    /// for t in 0..2_000 {
    ///     let a = (t % 10) as f32;
    ///     forest.update(&[a, 2.0 * a])?; // the second value is twice the first
    /// }
    /// let filled = forest.impute(&[4.0, f32::NAN])?;
    /// assert!((filled[1] - 8.0).abs() <= 2.0);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn impute(&self, x: &[f32]) -> Result<Vec<f32>> {
        check_len(x, self.config.input_dims)?;
        if let Some(index) = x.iter().position(|v| v.is_infinite()) {
            return Err(Error::NonFinite {
                index,
                value: x[index],
            });
        }
        if !x.iter().any(|v| v.is_nan()) {
            return Err(Error::NothingToImpute {
                reason: "the point has no NaN value",
            });
        }
        let dims = self.config.dimensions;
        crate::scratch::with_local(dims, self.config.sample_size, |sc| self.impute_in(sc, x))
    }

    /// [`impute`](Self::impute) of a checked `x` with NaN values, in `sc`.
    fn impute_in(&self, sc: &mut crate::Scratch, x: &[f32]) -> Result<Vec<f32>> {
        sc.fit(self.config.dimensions, self.config.sample_size);
        if self.trees.iter().all(|t| t.mass() == 0) || !self.build_query(x, &mut sc.query) {
            return Err(Error::NothingToImpute {
                reason: "the forest holds no complete point yet",
            });
        }
        let dims = self.config.dimensions;
        let head = dims - x.len();
        let missing: Vec<usize> = (0..x.len()).filter(|&i| x[i].is_nan()).collect();
        let mut proposals: Vec<Vec<f32>> =
            vec![Vec::with_capacity(self.trees.len()); missing.len()];
        let mut filled = vec![0.0f32; dims];
        for tree in &self.trees {
            let leaf = tree.impute_walk(&sc.query, &self.store, &mut sc.tree);
            if leaf == NONE {
                continue;
            }
            complete(
                &sc.query,
                self.store.point(tree.leaf_point(leaf)),
                &mut filled,
            );
            for (k, &i) in missing.iter().enumerate() {
                proposals[k].push(filled[head + i]);
            }
        }
        let mut out = x.to_vec();
        for (k, &i) in missing.iter().enumerate() {
            out[i] = median(&mut proposals[k]);
        }
        Ok(out)
    }
}

/// Median of `v` (mean of the two middle values for an even count); `v` is reordered.
fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        ((f64::from(v[n / 2 - 1]) + f64::from(v[n / 2])) / 2.0) as f32
    }
}
