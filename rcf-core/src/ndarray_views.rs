//! The batch calls on `ndarray` views (feature `ndarray`): rows are points, columns values,
//! as Rust data pipelines hand them over (linfa's datasets, polars' `to_ndarray`). A view in
//! standard (row-major, contiguous) layout is read in place; any other layout (a transposed
//! or strided view) is copied into row-major order first. Results, errors and the all or
//! nothing rule are those of the slice calls.

use ndarray::ArrayView2;

use crate::{Attribution, Error, RandomCutForest, Result};

/// The rows of `points` as one row-major slice (borrowed when the layout allows), after
/// checking they have `width` columns.
fn rows<'a>(points: &'a ArrayView2<'_, f32>, width: usize) -> Result<std::borrow::Cow<'a, [f32]>> {
    if points.ncols() != width {
        return Err(Error::DimensionMismatch {
            expected: width,
            actual: points.ncols(),
        });
    }
    Ok(match points.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(points.iter().copied().collect()),
    })
}

impl RandomCutForest {
    /// [`score_many`](Self::score_many) on a view of `dimensions()` columns.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for another column count; otherwise as
    /// [`score_many`](Self::score_many).
    ///
    /// # Example
    ///
    /// ```
    /// use ndarray::array;
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..500 { forest.update(&[(t % 10) as f32, 5.0])?; }
    /// let batch = array![[3.0f32, 5.0], [3.0, 50.0]];
    /// let scores = forest.score_many_view(batch.view())?;
    /// assert_eq!(scores, forest.score_many(&[3.0, 5.0, 3.0, 50.0])?);
    /// // a transposed view is copied into row order first: the same scores
    /// let columns = array![[3.0f32, 3.0], [5.0, 50.0]];
    /// assert_eq!(forest.score_many_view(columns.t())?, scores);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn score_many_view(&self, points: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let rows = rows(&points, self.dimensions())?;
        self.score_many(&rows)
    }

    /// [`update_many`](Self::update_many) on a view of `input_dims()` columns, oldest row
    /// first.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for another column count; otherwise as
    /// [`update_many`](Self::update_many). Nothing is learned then.
    pub fn update_many_view(&mut self, inputs: ArrayView2<'_, f32>) -> Result<()> {
        let rows = rows(&inputs, self.input_dims())?;
        self.update_many(&rows)
    }

    /// [`process_many`](Self::process_many) on a view of `input_dims()` columns, oldest row
    /// first.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for another column count; otherwise as
    /// [`process_many`](Self::process_many). Nothing is learned then.
    pub fn process_many_view(&mut self, inputs: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let rows = rows(&inputs, self.input_dims())?;
        self.process_many(&rows)
    }

    /// [`attribution`](Self::attribution) of every row of a view of `input_dims()` columns.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] for another column count, [`Error::EmptyInput`] for no
    /// rows, [`Error::NonFinite`] for a NaN or infinite value (checked for every row before
    /// any is attributed).
    pub fn attribution_many_view(&self, points: ArrayView2<'_, f32>) -> Result<Vec<Attribution>> {
        let width = self.input_dims();
        let rows = rows(&points, width)?;
        if rows.is_empty() {
            return Err(Error::EmptyInput { name: "points" });
        }
        if let Some((index, &value)) = rows.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite { index, value });
        }
        rows.chunks_exact(width)
            .map(|r| self.attribution(r))
            .collect()
    }
}
