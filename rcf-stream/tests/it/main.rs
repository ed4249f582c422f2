//! rcf-stream integration tests: one binary.

mod cli;
mod detector;
mod fleet;
mod fleet_cli;
mod fleet_models;
mod fuzz_findings;
mod hostile;
