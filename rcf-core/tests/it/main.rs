//! rcf-core integration tests: one binary, one module per concern.

mod batch;
mod common;
mod detection;
mod determinism;
mod errors;
mod hostile;
mod invariants;
#[cfg(feature = "ndarray")]
mod ndarray_views;
mod rescale;
mod state;
