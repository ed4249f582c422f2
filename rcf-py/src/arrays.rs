//! numpy in and out: every array argument is copied into an owned, row-major `Vec<f32>` while
//! the interpreter is attached, before the GIL is released (another Python thread may write to
//! the array once it is).
//!
//! Inputs are taken as float64 and narrowed here, not by numpy: a finite value beyond float32's
//! range is an `InputError` naming it, instead of numpy's overflow warning followed by an
//! infinity.

use numpy::{AllowTypeChange, PyArrayLike1, PyArrayLike2};
use pyo3::prelude::*;

use crate::errors::{DimensionError, InputError};

/// Array arguments: anything numpy can turn into float64 (lists, any dtype, any order, pandas).
pub(crate) type Array1<'py> = PyArrayLike1<'py, f64, AllowTypeChange>;
/// 2-D array arguments.
pub(crate) type Array2<'py> = PyArrayLike2<'py, f64, AllowTypeChange>;

fn narrow(values: impl Iterator<Item = f64>, cols: usize) -> PyResult<Vec<f32>> {
    values
        .enumerate()
        .map(|(i, v)| {
            let w = v as f32;
            if v.is_finite() && !w.is_finite() {
                Err(InputError::new_err(format!(
                    "value {v} (row {}, column {}) is outside the float32 range",
                    i / cols.max(1),
                    i % cols.max(1)
                )))
            } else {
                Ok(w)
            }
        })
        .collect()
}

/// A 1-D point as an owned float32 vector.
pub(crate) fn point(x: &Array1<'_>) -> PyResult<Vec<f32>> {
    let view = x.as_array();
    narrow(view.iter().copied(), view.len())
}

/// A 2-D batch as `(row-major float32 values, rows, columns)`.
pub(crate) fn batch(x: &Array2<'_>) -> PyResult<(Vec<f32>, usize, usize)> {
    let view = x.as_array();
    let (rows, cols) = (view.nrows(), view.ncols());
    Ok((narrow(view.iter().copied(), cols)?, rows, cols))
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
