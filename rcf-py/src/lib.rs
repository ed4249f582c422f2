//! Python bindings for rcf: the private native module `rcf._rcf`. The public package is
//! `python/rcf`; logic lives in the Rust crates, this crate only translates.
#![deny(unsafe_code)]

mod arrays;
mod detector;
mod digest;
mod errors;
mod fleet;
mod forest;
mod pickle;
mod response;
mod run;
mod shard;

use pyo3::prelude::*;

/// The module's Rust allocations (models, checkpoints, arrays handed to numpy) go to mimalloc,
/// as in the `rcf` binary: a budgeted `rcf.Fleet` allocates and frees whole models on every
/// thread: glibc's malloc in one arena made them queue on its lock (1.9x slower at 100,000
/// things), and in an arena per thread, its default, it kept 1.7x the live heap. The
/// interpreter's own objects keep Python's allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The native part of the `rcf` package.
#[pymodule(gil_used = false)]
fn _rcf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<forest::PyRandomCutForest>()?;
    m.add_class::<detector::PyDetector>()?;
    m.add_class::<detector::PyVerdict>()?;
    m.add_class::<digest::PyStateDigest>()?;
    m.add_class::<fleet::PyFleet>()?;
    m.add_class::<fleet::PyViolationEvent>()?;
    m.add_class::<shard::PyFleetShard>()?;
    m.add_class::<shard::PyShardResult>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
