//! numpy in and out: every array argument is copied into an owned, row-major `Vec<f32>` while
//! the interpreter is attached, before the GIL is released (another Python thread may write to
//! the array once it is).

use numpy::{AllowTypeChange, PyArrayLike1, PyArrayLike2};
use pyo3::prelude::*;

use crate::errors::{DimensionError, InputError};

/// A 1-D point as an owned vector (lists, float32/float64, any order are accepted).
pub(crate) fn point(x: &PyArrayLike1<'_, f32, AllowTypeChange>) -> Vec<f32> {
    x.as_array().iter().copied().collect()
}

/// A 2-D batch as `(row-major values, rows, columns)`.
pub(crate) fn batch(x: &PyArrayLike2<'_, f32, AllowTypeChange>) -> (Vec<f32>, usize, usize) {
    let view = x.as_array();
    let (rows, cols) = (view.nrows(), view.ncols());
    (view.iter().copied().collect(), rows, cols)
}

/// Checks a batch's width.
pub(crate) fn check_width(cols: usize, expected: usize) -> PyResult<()> {
    if cols == expected {
        Ok(())
    } else {
        Err(DimensionError::new_err(format!(
            "expected {expected} columns, got {cols}"
        )))
    }
}

/// Rejects NaN/inf in a batch where missing values are not meaningful.
pub(crate) fn check_finite(values: &[f32], cols: usize) -> PyResult<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(InputError::new_err(format!(
            "row {}, column {} is {}: only finite values are accepted here",
            i / cols.max(1),
            i % cols.max(1),
            values[i]
        ))),
    }
}
