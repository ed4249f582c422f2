#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The workspace README's Rust quickstart, compiled and run as a doctest so it cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct RootReadmeDoctests;

mod config;
mod error;
mod forest;
mod kernels;
mod point_store;
mod rng;
mod sampler;
pub mod state;
mod tree;

pub use config::{
    DEFAULT_BOX_CACHE_MIN_MASS, DEFAULT_INITIAL_ACCEPT_FRACTION, DEFAULT_NUM_TREES,
    DEFAULT_SAMPLE_SIZE, DEFAULT_SEED, ForestBuilder, ForestConfig, MAX_DIMENSIONS, MAX_NUM_TREES,
    MAX_SAMPLE_SIZE,
};
pub use error::{Error, Result, StateError};
pub use forest::{Attribution, MemoryBreakdown, RandomCutForest, Scratch};
