//! rcf-stream integration tests: one binary.

mod detector;
