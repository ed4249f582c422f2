//! numpy in and out: every array argument is copied into an owned, row-major `Vec<f32>` while
//! the interpreter is attached, before the GIL is released (another Python thread may write to
//! the array once it is).
//!
//! Inputs are taken as float64 and narrowed here, not by numpy: a finite value beyond float32's
//! range is an `InputError` naming it, instead of numpy's overflow warning followed by an
//! infinity.

use numpy::{AllowTypeChange, PyArrayLikeDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};

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

/// A one-point argument: a list or tuple of Python floats and ints, read item by item, or
/// anything else numpy turns into float64 ([`Array1`]).
///
/// A per-point call with a list (`forest.process([v])`, the streaming way) used to make a numpy
/// array of it first: about half a microsecond of a ten-microsecond call. The values are the
/// same either way (a Python float is a float64; an int converts as numpy converts it); any
/// other item (a string, a nested list, a numpy scalar, `None`) takes numpy's path, with its
/// conversions and errors, as before.
pub(crate) enum Point1<'py> {
    /// The items of a list or tuple of plain numbers.
    Values(Vec<f64>),
    /// Anything else, as numpy converts it.
    Array(Array1<'py>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Point1<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Some(values) = plain_numbers(obj) {
            return Ok(Self::Values(values));
        }
        Ok(Self::Array(obj.extract()?))
    }
}

/// The values of a list or tuple whose every item is exactly a Python float or an int that
/// fits a float64; `None` for anything else (an int beyond float64 included, so that numpy's
/// path raises its error for it).
fn plain_numbers(obj: Borrowed<'_, '_, PyAny>) -> Option<Vec<f64>> {
    fn number(item: Bound<'_, PyAny>) -> Option<f64> {
        if let Ok(f) = item.cast_exact::<PyFloat>() {
            Some(f.value())
        } else if item.is_exact_instance_of::<PyInt>() {
            item.extract::<f64>().ok()
        } else {
            None
        }
    }
    if let Ok(list) = obj.cast_exact::<PyList>() {
        list.iter().map(number).collect()
    } else if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
        tuple.iter().map(number).collect()
    } else {
        None
    }
}

/// A 1-D point as an owned float32 vector (its length is checked by the Rust call).
pub(crate) fn point(x: &Point1<'_>) -> PyResult<Vec<f32>> {
    let x = match x {
        Point1::Values(v) => return narrow(v.iter().copied(), v.len()),
        Point1::Array(a) => a,
    };
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
