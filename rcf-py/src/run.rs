//! The one funnel every call into a Rust object goes through: the interpreter is released
//! first, the object's lock is taken only then (so a thread waiting for the lock never holds
//! the GIL and stalls every other Python thread), errors are mapped to Python exceptions in one
//! place, and a Ctrl-C that arrived during the call is raised once it returns.
//!
//! Inputs are copied into owned buffers *before* this (while attached): once the GIL is
//! released another Python thread may write to a numpy array.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;

use crate::errors::PyRcfError;

/// Runs `f` on the value behind `lock` with the interpreter detached, locking inside.
pub(crate) fn locked<T: Send, R: Send>(
    py: Python<'_>,
    lock: &Mutex<T>,
    f: impl FnOnce(&mut T) -> R + Send,
) -> R {
    py.detach(|| {
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    })
}

/// [`locked`] for a fallible call: maps its error to the Python exception for it, and raises
/// `KeyboardInterrupt` if Ctrl-C was pressed while it ran.
pub(crate) fn run<T: Send, R: Send, E: Into<PyRcfError> + Send>(
    py: Python<'_>,
    lock: &Mutex<T>,
    f: impl FnOnce(&mut T) -> Result<R, E> + Send,
) -> PyResult<R> {
    let result = locked(py, lock, f).map_err(|e| PyErr::from(e.into()));
    py.check_signals()?;
    result
}
