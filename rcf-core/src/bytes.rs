//! [`Bytes`], the byte blob every saved array is stored as. Its own module, below everything
//! that saves state (point store, samplers, trees), so that they need not reach up into
//! `state.rs`, which assembles them.

use serde::{Deserialize, Serialize};

/// A byte blob that serde formats store as raw bytes (one length, then a copy), not as a
/// sequence of numbers: decoding it is a copy. Used for every array of the forest state, and
/// by the streaming detector to embed a forest's state in its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

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

/// A blob of a forest's own saved state ([`TreeState`](crate::tree::TreeState), the sampler's
/// and the point store's): owned when saving, borrowed from the input when restoring, so that
/// a restore reads each array in place instead of allocating and copying it first (restoring
/// fleet models under a memory budget is that path, a million times an hour). Stored exactly
/// as [`Bytes`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob<'a>(pub(crate) std::borrow::Cow<'a, [u8]>);

impl Blob<'static> {
    /// `values` packed as `N` little-endian bytes each (`le` gives them), into a buffer sized
    /// once: no per-byte growth checks, as an iterator's `collect` would make.
    pub(crate) fn packed<T: Copy, const N: usize>(values: &[T], le: impl Fn(T) -> [u8; N]) -> Self {
        let mut out = vec![0u8; values.len() * N];
        for (chunk, &v) in out.chunks_exact_mut(N).zip(values) {
            chunk.copy_from_slice(&le(v));
        }
        Blob(out.into())
    }
}

impl Blob<'_> {
    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Blob<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Blob<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Blob<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte array")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Blob<'a>, E> {
                Ok(Blob(v.into()))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob<'a>, E> {
                Ok(Blob(v.to_vec().into()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob<'a>, E> {
                Ok(Blob(v.into()))
            }
        }
        deserializer.deserialize_bytes(Visitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_as_bytes_are_and_borrows_when_decoded_from_a_slice() {
        let config = bincode::config::standard();
        let data = vec![1u8, 2, 3, 250];
        let owned = bincode::serde::encode_to_vec(Bytes(data.clone()), config).unwrap();
        let blob = bincode::serde::encode_to_vec(Blob(data.clone().into()), config).unwrap();
        assert_eq!(owned, blob);
        let (back, used): (Blob<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(&blob, config).unwrap();
        assert_eq!((back.bytes(), used), (&data[..], blob.len()));
        assert!(matches!(back.0, std::borrow::Cow::Borrowed(_)));
        let (back, _): (Bytes, usize) = bincode::serde::decode_from_slice(&blob, config).unwrap();
        assert_eq!(back.0, data);
    }
}
