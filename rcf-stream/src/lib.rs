//! Streaming anomaly detection around [`rcf_core`]: a [`Detector`] turns one stream of named
//! metrics into calibrated [`Verdict`]s.
//!
//! A raw Random Cut Forest score is not an answer: its scale differs per stream, one spike
//! raises a whole shingle of high scores, and nothing is said while the forest warms up. The
//! detector adds what a stream needs around the forest:
//!
//! * **normalisation** of each metric in a frame (centre and scale) that follows its
//!   winsorised decayed statistics; when a frame must move, the forest's stored values move
//!   with it, so what the forest learned is never distorted (or differencing);
//! * **missing values** (NaN) imputed from the forest, counted in the verdict's `confidence`;
//! * an **adaptive, calibrated threshold** from the detector's own recent scores, set by
//!   Device Defender's confidence levels, an explicit z-factor, or a target anomaly rate;
//! * **one alarm per event**: after an alarm, a hold-off during which a new one must score
//!   1.2x as high, or come from another metric or direction within a shingle (the rule is
//!   stated once, in the `correct` module's docs: see [`DetectorConfig::holdoff`]); and
//!   **repeat recognition**: a candidate that nearly repeats one of the last few events'
//!   patterns (a nightly job, a sawtooth's reset) is not reported;
//! * **event tracking**: [`Verdict::in_event`] from an alarm until the stream conforms again
//!   to a frozen copy of the model from before it;
//! * **explanations**: per-metric attribution (high/low, summing to the score), expected values
//!   in input units, and how many steps ago the anomaly started;
//! * **cold start**: [`Detector::bootstrap`] warms everything from stored history in one call;
//! * **checkpoints**: [`Detector::to_bytes`] / [`Detector::from_bytes`], versioned and
//!   checksummed, restoring identical verdicts.
//!
//! # Example
//!
//! ```
//! use rcf_stream::Detector;
//!
//! let mut detector = Detector::builder(["msg_rate"]).seed(7).build()?;
//! // a day of history (one reading a minute) warms the detector in one call
//! let history: Vec<f32> = (0..1_440).map(|t| 100.0 + 10.0 * (t as f32 / 60.0).sin()).collect();
//! detector.bootstrap(&history)?;
//! // the first live point already gets a calibrated verdict
//! let v = detector.process(&[400.0])?;
//! assert!(v.is_anomaly);
//! assert_eq!(v.top_metric().unwrap().direction(), "high");
//! # Ok::<(), rcf_stream::Error>(())
//! ```
//!
//! # Cold start
//!
//! A fresh detector with the defaults gives its first verdict at its 78th point (see
//! [`Detector::points_needed`]); after [`Detector::bootstrap`] with at least that many rows of
//! history, from the first live point.
//!
//! # The `rcf` command line tool
//!
//! With the default `cli` feature this crate builds `rcf`: `rcf detect [FILE|-]` reads CSV or
//! JSON Lines telemetry and writes one verdict per row; `rcf detect` alone runs a built-in fleet
//! demo. Exit codes: 0 the run completed (malformed rows were reported on stderr and
//! skipped), 1 the input could not be read or `--strict` met a malformed row, 2 invalid command
//! line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

/// The workspace README's Rust quickstarts, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct RootReadmeDoctests;

/// This crate's README example, run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;

mod checkpoint;
mod config;
mod correct;
mod detector;
mod error;
mod event;
mod explain;
pub mod fleet;
mod normalize;
mod stats;
mod threshold;
mod verdict;

pub use checkpoint::{CHECKPOINT_FORMAT_VERSION, CheckpointDigest};
pub use config::{
    DEFAULT_NORMALIZE_AFTER, DEFAULT_SHINGLE_SIZE, DetectorBuilder, DetectorConfig, Margin,
    Tolerance,
};
pub use correct::{DEFAULT_HOLDOFF, DEFAULT_REPEAT_TOLERANCE, HOLDOFF_RISE, REPEAT_MEMORY};
pub use detector::Detector;
pub use error::{Error, Result};
pub use normalize::Normalization;
pub use rcf_core;
pub use threshold::{INITIAL_THRESHOLD, LOWER_THRESHOLD, MIN_SCORES, Sensitivity};
pub use verdict::{DetectorState, ExpectedValue, MetricAttribution, Suppression, Verdict};
