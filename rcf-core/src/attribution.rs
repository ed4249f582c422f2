//! [`Attribution`]: a score split by dimension and direction (rcf-reference §6).

use crate::error::{Result, check_finite, check_len};
use crate::forest::RandomCutForest;

/// Per-dimension contributions to a score (rcf-reference §6): `high[i]` is the part due to the
/// point lying above what the forest has seen in dimension `i`, `low[i]` below. The entries sum
/// to the score.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attribution {
    pub(crate) high: Vec<f64>,
    pub(crate) low: Vec<f64>,
    pub(crate) input_dims: usize,
}

impl Attribution {
    /// Number of dimensions (the forest's, `input_dims * shingle_size`).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// assert_eq!(a.dimensions(), 2);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn dimensions(&self) -> usize {
        self.high.len()
    }

    /// Contribution of dimension `i` being high.
    ///
    /// # Panics
    ///
    /// If `i >= self.dimensions()`.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// assert!(a.high(1) > a.low(1)); // the second value is far above what was seen
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn high(&self, i: usize) -> f64 {
        self.high[i]
    }

    /// Contribution of dimension `i` being low.
    ///
    /// # Panics
    ///
    /// If `i >= self.dimensions()`.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// let b = forest.attribution(&[4.0, -30.0])?;
    /// assert!(b.low(1) > b.high(1) && a.low(1) < a.high(1));
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn low(&self, i: usize) -> f64 {
        self.low[i]
    }

    /// All `high` contributions.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// assert_eq!(a.highs().len(), 2);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn highs(&self) -> &[f64] {
        &self.high
    }

    /// All `low` contributions.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// assert!(a.lows().iter().all(|&v| v >= 0.0));
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn lows(&self) -> &[f64] {
        &self.low
    }

    /// Sum of all contributions: the score.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// for t in 0..1_000 { forest.update(&[(t % 9) as f32, 1.0])?; }
    /// let a = forest.attribution(&[4.0, 30.0])?;
    /// assert!((a.total() - forest.score(&[4.0, 30.0])?).abs() < 1e-9);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn total(&self) -> f64 {
        self.high.iter().sum::<f64>() + self.low.iter().sum::<f64>()
    }

    /// Folds a shingled attribution onto the inputs: entry `j` sums dimension `j` of every
    /// shingle slice. With shingle size 1 this is a copy.
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).shingle_size(3).build()?;
    /// for t in 0..500 { forest.update(&[t as f32 % 7.0, 1.0])?; }
    /// let a = forest.attribution(&[3.0, 9.0])?;
    /// let per_input = a.fold_shingle();
    /// assert_eq!(per_input.dimensions(), 2);
    /// assert!((per_input.total() - a.total()).abs() < 1e-9);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn fold_shingle(&self) -> Attribution {
        let n = self.input_dims;
        let mut high = vec![0.0; n];
        let mut low = vec![0.0; n];
        for (i, (h, l)) in self.high.iter().zip(&self.low).enumerate() {
            high[i % n] += h;
            low[i % n] += l;
        }
        Attribution {
            high,
            low,
            input_dims: n,
        }
    }
}

impl RandomCutForest {
    /// Per-dimension attribution of [`score`](Self::score)`(x)`: its entries sum to the score.
    ///
    /// # Errors
    ///
    /// As [`score`](Self::score).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(3).seed(2).build()?;
    /// for t in 0..1_000 {
    ///     let t = t as f32;
    ///     forest.update(&[t.sin(), t.cos(), 0.5])?;
    /// }
    /// let a = forest.attribution(&[0.0, 0.0, 9.0])?;
    /// // the third value is far above what the forest has seen
    /// assert!(a.high(2) > 0.5 * a.total());
    /// assert!((a.total() - forest.score(&[0.0, 0.0, 9.0])?).abs() < 1e-9);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn attribution(&self, x: &[f32]) -> Result<Attribution> {
        check_len(x, self.config.input_dims)?;
        check_finite(x)?;
        let dims = self.config.dimensions;
        let mut high = vec![0.0; dims];
        let mut low = vec![0.0; dims];
        crate::scratch::with_local(dims, self.config.sample_size, |sc| {
            if !(self.is_ready() && self.build_query(x, &mut sc.query)) {
                sc.staged.generation = 0;
                return;
            }
            let weight = 1.0 / self.config.num_trees as f64;
            // the walks stay in the scratch, as a score's do: a `process` or `update` of the
            // same point next on this thread scores and inserts along them
            self.walk_staged(sc, |tree, query, leaf, path, store, tsc| {
                tree.attribution_walk(query, leaf, path, store, tsc, weight, &mut high, &mut low)
            });
        });
        Ok(Attribution {
            high,
            low,
            input_dims: self.config.input_dims,
        })
    }
}
