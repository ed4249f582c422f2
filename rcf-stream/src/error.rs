//! The error type of `rcf-stream`.

/// Everything that can go wrong in `rcf-stream`. Forest errors are wrapped, never stringified,
/// so callers (and the Python binding) can match on them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the forest.
    #[error(transparent)]
    Forest(#[from] rcf_core::Error),
    /// A builder parameter is out of range.
    #[error("invalid `{name}`: {reason}")]
    InvalidParameter {
        /// The builder method / field name.
        name: &'static str,
        /// What is wrong, including the value given.
        reason: String,
    },
    /// A point has the wrong number of metrics.
    #[error("expected {expected} metric values per point, got {actual}")]
    DimensionMismatch {
        /// Metrics the detector was built with.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// A value is infinite (NaN is accepted: it means "missing").
    #[error("metric `{metric}` is {value}: values must be finite (NaN marks a missing value)")]
    NonFinite {
        /// The metric's name.
        metric: String,
        /// The value.
        value: f32,
    },
    /// A history passed to `bootstrap` is not a whole number of rows.
    #[error("history of {len} values is not a whole number of {metrics}-metric rows")]
    HistoryShape {
        /// Values given.
        len: usize,
        /// Metrics per row.
        metrics: usize,
    },
    /// A checkpoint could not be restored.
    #[error("cannot restore detector checkpoint: {0}")]
    Checkpoint(rcf_core::StateError),
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, reason: String) -> Error {
    Error::InvalidParameter { name, reason }
}
