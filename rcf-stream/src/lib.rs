//! Streaming anomaly detection around [`rcf_core`]: the streaming detector, calibrated thresholds
//! and the `rcf` command line tool.
//!
//! This crate is being built; today it re-exports the forest so downstream code can depend on it.
#![forbid(unsafe_code)]

pub use rcf_core;
