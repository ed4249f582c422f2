//! `rcf.StateDigest`: proof that state bytes are ones this process saved.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use rcf_core::StateDigest;
use rcf_stream::CheckpointDigest;

/// A keyed digest of bytes this process saved, from `RandomCutForest.to_bytes_with_digest` or
/// `Detector.to_bytes_with_digest`. Passed back to `from_bytes(data, digest=...)`, it lets the
/// restore skip the forest's structural checks when the bytes are unchanged (about two thirds
/// of restoring a small model); changed bytes, or a digest from another process, take the full
/// check. Meaningless in another process, so it cannot be pickled.
#[pyclass(module = "rcf._rcf", name = "StateDigest", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct PyStateDigest {
    kind: Kind,
}

/// What a digest vouches for.
#[derive(Clone, PartialEq)]
enum Kind {
    Forest(StateDigest),
    Detector(CheckpointDigest),
}

impl PyStateDigest {
    pub(crate) fn forest(d: StateDigest) -> Self {
        PyStateDigest {
            kind: Kind::Forest(d),
        }
    }

    pub(crate) fn detector(d: CheckpointDigest) -> Self {
        PyStateDigest {
            kind: Kind::Detector(d),
        }
    }

    /// The forest digest inside, or a `TypeError` naming the parameter for a detector's.
    pub(crate) fn as_forest(&self) -> PyResult<&StateDigest> {
        match &self.kind {
            Kind::Forest(d) => Ok(d),
            Kind::Detector(_) => Err(PyTypeError::new_err(
                "digest: a Detector's digest, not a RandomCutForest's",
            )),
        }
    }

    /// The detector digest inside, or a `TypeError` naming the parameter for a forest's.
    pub(crate) fn as_detector(&self) -> PyResult<&CheckpointDigest> {
        match &self.kind {
            Kind::Detector(d) => Ok(d),
            Kind::Forest(_) => Err(PyTypeError::new_err(
                "digest: a RandomCutForest's digest, not a Detector's",
            )),
        }
    }
}

#[pymethods]
impl PyStateDigest {
    fn __repr__(&self) -> &'static str {
        match self.kind {
            Kind::Forest(_) => "StateDigest(RandomCutForest)",
            Kind::Detector(_) => "StateDigest(Detector)",
        }
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a StateDigest is only meaningful in the process that made it and cannot be pickled",
        ))
    }
}
