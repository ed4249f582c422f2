//! rcf-stream integration tests.
