#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attribution;
mod bytes;
mod config;
mod digest;
mod error;
mod forest;
mod impute;
mod kernels;
mod memory;
#[cfg(feature = "ndarray")]
mod ndarray_views;
mod point_store;
mod rescale;
mod rng;
mod sampler;
mod scratch;
pub mod state;
mod tree;

/// Kernel entry points for `rcf-benches` (portable versus dispatched); not part of the API.
#[doc(hidden)]
pub mod __bench {
    /// The separation kernel as the forest calls it (SSE2 on x86-64).
    pub fn gap_and_range(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
        crate::kernels::gap_and_range(x, min, max)
    }

    /// Its portable twin.
    pub fn gap_and_range_portable(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
        crate::kernels::gap_and_range_portable(x, min, max)
    }
}

pub use attribution::Attribution;
pub use config::{
    DEFAULT_BOX_CACHE_MIN_MASS, DEFAULT_INITIAL_ACCEPT_FRACTION, DEFAULT_NUM_TREES,
    DEFAULT_SAMPLE_SIZE, DEFAULT_SEED, ForestBuilder, ForestConfig, MAX_DIMENSIONS, MAX_NUM_TREES,
    MAX_SAMPLE_SIZE,
};
pub use digest::StateDigest;
pub use error::{Error, Result, StateError};
pub use forest::RandomCutForest;
pub use memory::MemoryBreakdown;
pub use scratch::Scratch;
