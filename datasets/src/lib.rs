//! Data for tests and benchmarks.
