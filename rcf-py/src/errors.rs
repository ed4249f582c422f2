//! Rust errors → Python exceptions, variant by variant, in one place.
//!
//! The exception classes live in `rcf/exceptions.py` so that they can subclass both `RcfError`
//! and `ValueError` (`except ValueError` keeps working, as in scikit-learn).

use pyo3::PyErr;
use rcf_core::Error as CoreError;
use rcf_stream::Error as StreamError;

pyo3::import_exception!(rcf.exceptions, RcfError);
pyo3::import_exception!(rcf.exceptions, ConfigError);
pyo3::import_exception!(rcf.exceptions, DimensionError);
pyo3::import_exception!(rcf.exceptions, InputError);
pyo3::import_exception!(rcf.exceptions, StateError);
pyo3::import_exception!(rcf.exceptions, NotFittedError);

/// A Rust error on its way to Python (the orphan rule forbids `From<rcf_stream::Error> for PyErr`).
pub(crate) struct PyRcfError(pub(crate) StreamError);

impl From<StreamError> for PyRcfError {
    fn from(e: StreamError) -> Self {
        PyRcfError(e)
    }
}

impl From<CoreError> for PyRcfError {
    fn from(e: CoreError) -> Self {
        PyRcfError(StreamError::Forest(e))
    }
}

fn core_error(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidParameter { .. } => ConfigError::new_err(msg),
        CoreError::DimensionMismatch { .. }
        | CoreError::BatchShape { .. }
        | CoreError::EmptyInput { .. } => DimensionError::new_err(msg),
        CoreError::NonFinite { .. } | CoreError::NothingToImpute { .. } => InputError::new_err(msg),
        CoreError::State(_) => StateError::new_err(msg),
        _ => RcfError::new_err(msg),
    }
}

impl From<PyRcfError> for PyErr {
    fn from(e: PyRcfError) -> PyErr {
        let msg = e.0.to_string();
        match e.0 {
            StreamError::Forest(inner) => core_error(inner),
            StreamError::InvalidParameter { .. } => ConfigError::new_err(msg),
            StreamError::DimensionMismatch { .. } | StreamError::HistoryShape { .. } => {
                DimensionError::new_err(msg)
            }
            StreamError::NonFinite { .. } => InputError::new_err(msg),
            StreamError::Checkpoint(_) => StateError::new_err(msg),
            _ => RcfError::new_err(msg),
        }
    }
}
