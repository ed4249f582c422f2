//! numpy in and out: every array argument is copied into an owned, row-major `Vec<f32>` while
//! the interpreter is attached, before the GIL is released (another Python thread may write to
//! the array once it is).
//!
//! Inputs are taken as float64 and narrowed here, not by numpy: a finite value beyond float32's
//! range is an `InputError` naming it, instead of numpy's overflow warning followed by an
//! infinity.

use numpy::{AllowTypeChange, PyArrayLikeDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::{DimensionError, InputError};

/// Array arguments: anything numpy can turn into float64 (lists, any dtype, any order, pandas),
/// of any number of dimensions, so that a wrong shape is our `DimensionError` naming the shape
/// expected, not numpy's `TypeError: dimensionality mismatch`.
pub(crate) type Array1<'py> = PyArrayLikeDyn<'py, f64, AllowTypeChange>;
/// 2-D array arguments (checked by [`batch`]).
pub(crate) type Array2<'py> = PyArrayLikeDyn<'py, f64, AllowTypeChange>;

fn shape_of(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

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

/// A 1-D point as an owned float32 vector (its length is checked by the Rust call).
pub(crate) fn point(x: &Array1<'_>) -> PyResult<Vec<f32>> {
    if x.ndim() != 1 {
        return Err(DimensionError::new_err(format!(
            "expected one point (a 1-D array), got an array of shape {}",
            shape_of(x.shape())
        )));
    }
    let view = x.as_array();
    narrow(view.iter().copied(), view.len())
}

/// A 2-D batch of rows of `width` values as `(row-major float32 values, rows)`.
pub(crate) fn batch(x: &Array2<'_>, width: usize) -> PyResult<(Vec<f32>, usize)> {
    let shape = x.shape();
    if shape.len() != 2 || shape[1] != width {
        return Err(DimensionError::new_err(format!(
            "expected a 2-D array of shape (n, {width}), got shape {}",
            shape_of(shape)
        )));
    }
    let rows = shape[0];
    // iteration order of an n-D view is row-major whatever the memory order
    let view = x.as_array();
    Ok((narrow(view.iter().copied(), width)?, rows))
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
