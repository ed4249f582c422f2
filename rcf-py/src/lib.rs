//! Python bindings for rcf. The pyo3 module lands with the Python issue; until then this crate
//! only builds, so the workspace layout is fixed from the start.
#![forbid(unsafe_code)]

pub use rcf_stream;
