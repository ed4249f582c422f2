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

/// A Python class wrapping one Rust object behind a lock: every access goes through
/// [`with`](Self::with) or [`run`](Self::run), so through the funnel.
pub(crate) trait Guarded {
    /// The Rust object.
    type Inner: Send;

    /// Its lock.
    fn lock(&self) -> &Mutex<Self::Inner>;

    /// Runs `f` on the object through the funnel (interpreter released, then the lock).
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Self::Inner) -> R + Send) -> R {
        locked(py, self.lock(), f)
    }

    /// A fallible call through the funnel, its error mapped to the Python exception.
    fn run<R: Send, E: Into<PyRcfError> + Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Self::Inner) -> Result<R, E> + Send,
    ) -> PyResult<R> {
        run(py, self.lock(), f)
    }
}
