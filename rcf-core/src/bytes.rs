//! [`Bytes`], the byte blob every saved array is stored as. Its own module, below everything
//! that saves state (point store, samplers, trees), so that they need not reach up into
//! `state.rs`, which assembles them.

use serde::{Deserialize, Serialize};

/// A byte blob that serde formats store as raw bytes (one length, then a copy), not as a
/// sequence of numbers: decoding it is a copy. Used for every array of the forest state, and
/// by the streaming detector to embed a forest's state in its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// `values` packed as `N` little-endian bytes each (`le` gives them), into a buffer sized
    /// once: no per-byte growth checks, as an iterator's `collect` would make.
    pub(crate) fn packed<T: Copy, const N: usize>(values: &[T], le: impl Fn(T) -> [u8; N]) -> Self {
        let mut out = vec![0u8; values.len() * N];
        for (chunk, &v) in out.chunks_exact_mut(N).zip(values) {
            chunk.copy_from_slice(&le(v));
        }
        Bytes(out)
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte array")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}
