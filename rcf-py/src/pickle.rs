//! Pickling and copying, written once for every class: each class says what its state is
//! ([`Pickle::state`], any picklable Python object) and how to rebuild itself from it
//! ([`Pickle::from_state`], exposed to Python as the classmethod `_from_state`). `__reduce__`,
//! `__copy__` and `__deepcopy__` all go through that pair, so pickling can never keep less
//! than a copy does (a pickled, fitted `RandomCutForest` used to lose `threshold_`).

use pyo3::PyClass;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A class whose instances pickle through their state.
pub(crate) trait Pickle: Sized {
    /// Everything needed to rebuild the object.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
    /// The object `state` describes.
    fn from_state(py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self>;
}

/// `__reduce__`: `(type(obj)._from_state, (state,))`.
pub(crate) fn reduce<'py, T>(slf: &Bound<'py, T>) -> PyResult<Bound<'py, PyTuple>>
where
    T: Pickle + PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    let py = slf.py();
    let rebuild = slf.as_any().get_type().getattr("_from_state")?;
    let state = slf.get().state(py)?;
    PyTuple::new(py, [rebuild, PyTuple::new(py, [state])?.into_any()])
}

/// `__copy__` and `__deepcopy__`: the object rebuilt from its own state.
pub(crate) fn copy<T: Pickle>(py: Python<'_>, obj: &T) -> PyResult<T> {
    T::from_state(py, &obj.state(py)?)
}
