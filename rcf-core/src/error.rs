//! The error type of `rcf-core`.

/// Everything that can go wrong in `rcf-core`. Every variant comes from caller input: a broken
/// internal invariant is a bug and is caught by `debug_assert!` and the test-suite instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder parameter is out of range.
    #[error("invalid `{name}`: {reason}")]
    InvalidParameter {
        /// The builder method / field name, e.g. `sample_size`.
        name: &'static str,
        /// What is wrong, including the value given, e.g. "must be at least 2, got 1".
        reason: String,
    },
    /// A point has the wrong number of values.
    #[error("expected {expected} values per point, got {actual}")]
    DimensionMismatch {
        /// Values the call needs.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// A batch's length is not a whole number of points.
    #[error("batch of {len} values is not a whole number of {dimensions}-dimensional points")]
    BatchShape {
        /// Values in the batch.
        len: usize,
        /// Values per point.
        dimensions: usize,
    },
    /// A batch holds no points.
    #[error("`{name}` is empty: at least one point is needed")]
    EmptyInput {
        /// The argument that was empty.
        name: &'static str,
    },
    /// A value is NaN or infinite where only finite values are meaningful.
    #[error("value {index} of the point is {value}: only finite values are accepted here")]
    NonFinite {
        /// Position of the offending value in the slice passed in.
        index: usize,
        /// The value itself (NaN or ±inf).
        value: f32,
    },
    /// [`RandomCutForest::impute`](crate::RandomCutForest::impute) was given a point without
    /// any NaN, or with missing values outside the newest shingle slice.
    #[error("nothing to impute: {reason}")]
    NothingToImpute {
        /// Why.
        reason: &'static str,
    },
    /// Restoring from bytes failed.
    #[error("cannot restore forest state: {0}")]
    State(#[from] StateError),
}

/// Why a forest could not be restored from bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Fewer bytes than the envelope header.
    #[error("{len} bytes is too short for a forest state (header is {header} bytes)")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// Bytes the header needs.
        header: usize,
    },
    /// The bytes do not start with the rcf forest magic: not a forest state.
    #[error("not an rcf forest state (bad magic bytes)")]
    BadMagic,
    /// The state was written by a format version this build cannot read.
    #[error("unsupported state format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the bytes.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The payload length in the header disagrees with the bytes given (truncated or padded).
    #[error("payload length is {actual} bytes but the header says {expected}")]
    LengthMismatch {
        /// Length the header announces.
        expected: u64,
        /// Length present.
        actual: u64,
    },
    /// The payload checksum does not match (corrupted bytes).
    #[error("checksum mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}")]
    Checksum {
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the payload.
        actual: u32,
    },
    /// The payload could not be decoded.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// The payload decoded but describes an inconsistent forest.
    #[error("inconsistent forest state: {0}")]
    Inconsistent(String),
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that every value of `point` is finite.
pub(crate) fn check_finite(point: &[f32]) -> Result<()> {
    match point.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            index,
            value: point[index],
        }),
        None => Ok(()),
    }
}

/// Checks the length of a single point.
pub(crate) fn check_len(point: &[f32], expected: usize) -> Result<()> {
    if point.len() == expected {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            expected,
            actual: point.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_parameter_and_value() {
        let e = Error::InvalidParameter {
            name: "sample_size",
            reason: "must be at least 2, got 1".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid `sample_size`: must be at least 2, got 1"
        );
        let e = check_finite(&[1.0, f32::NAN]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "value 1 of the point is NaN: only finite values are accepted here"
        );
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
        assert_bounds::<StateError>();
    }
}
