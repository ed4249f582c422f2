//! rcf-stream integration tests: one binary.

mod cli;
mod detector;
mod hostile;
