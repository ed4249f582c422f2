//! Saving and restoring a forest: [`RandomCutForest::to_bytes`] / [`RandomCutForest::from_bytes`].
//!
//! # Format (version 1)
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | magic `b"RCF-FRST"` |
//! | 8..12 | format version, `u32` little-endian |
//! | 12..20 | payload length, `u64` little-endian |
//! | 20..24 | CRC-32 (IEEE) of the payload, `u32` little-endian |
//! | 24.. | payload: bincode 2 (`standard` config) of the forest state |
//!
//! The payload holds the configuration, the counters, the point store, and per tree its nodes,
//! leaves, sampler keys and schedule, and generator state: everything needed to continue with
//! bit-identical results. Arrays are stored as little-endian byte blobs (nodes as 12-byte
//! records: cut value f32, cut dimension, left, right, mass u16; leaves as point index u32 and
//! mass u16; sampler keys f32 and leaves u16; points f32), so decoding them is a copy, and the
//! saved layout is independent of the in-memory one. Cached bounding boxes are not saved; they
//! are a function of the trees and are rebuilt on load.
//!
//! Restoring never panics: the envelope catches truncation and corruption, the decoder is
//! bounded, and the decoded state is checked against every structural invariant before use.

use serde::{Deserialize, Serialize};

use crate::config::{ForestConfig, MAX_DIMENSIONS, MAX_NUM_TREES, MAX_SAMPLE_SIZE};
use crate::digest::StateDigest;
use crate::error::{Error, Result, StateError};
use crate::forest::RandomCutForest;
use crate::point_store::{PointStore, PointStoreState};
use crate::rng::TreeRng;
use crate::sampler::{Sampler, SamplerState};
use crate::tree::{Tree, TreeState};

pub use crate::bytes::Bytes;

const MAGIC: &[u8; 8] = b"RCF-FRST";
/// The state format version this build writes and reads.
pub const STATE_FORMAT_VERSION: u32 = 1;
const HEADER: usize = 24;
/// Upper bound on what the decoder may allocate, so crafted lengths cannot exhaust memory.
const DECODE_LIMIT: usize = 1 << 30;

/// The saved form of a forest; its arrays borrow from the input while it is restored.
#[derive(Serialize, Deserialize)]
struct State<'a> {
    config: ForestConfig,
    entries_seen: u64,
    shingles_offered: u64,
    epoch: u64,
    #[serde(borrow)]
    store: PointStoreState<'a>,
    #[serde(borrow)]
    trees: Vec<TreeState<'a>>,
    #[serde(borrow)]
    samplers: Vec<SamplerState<'a>>,
    rngs: Vec<TreeRng>,
}

impl RandomCutForest {
    /// Serialises the forest into a self-checking, versioned byte string (see the
    /// [`state`](crate::state) module for the format). [`from_bytes`](Self::from_bytes) restores
    /// a forest that continues with bit-identical scores.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(4).build()?;
    /// for t in 0..500 { forest.update(&[(t as f32).sin()])?; }
    /// let bytes = forest.to_bytes();
    /// let mut restored = RandomCutForest::from_bytes(&bytes)?;
    /// assert_eq!(forest.process(&[0.3])?, restored.process(&[0.3])?);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let state = self.state();
        // the blobs are nearly all of it: one buffer of about the final size
        let blobs = state.store.len()
            + state.trees.iter().map(TreeState::len).sum::<usize>()
            + state.samplers.iter().map(SamplerState::len).sum::<usize>();
        seal_encoded(MAGIC, STATE_FORMAT_VERSION, &state, blobs + 1024)
    }

    /// The saved form of the forest (what `to_bytes` encodes).
    fn state(&self) -> State<'static> {
        State {
            config: self.config.clone(),
            entries_seen: self.entries_seen,
            shingles_offered: self.shingles_offered,
            epoch: self.epoch,
            store: self.store.to_state(),
            trees: self.trees.iter().map(Tree::to_state).collect(),
            samplers: self.samplers.iter().map(Sampler::to_state).collect(),
            rngs: self.rngs.clone(),
        }
    }

    /// Restores a forest saved by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    ///
    /// [`Error::State`]: too short, not a forest state (magic), another format version,
    /// truncated or padded, checksum mismatch, undecodable payload, or a payload describing an
    /// inconsistent forest. Never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut forest = Self::decode_unchecked(bytes)?;
        // one set of traversal buffers for every tree's check and boxes
        let mut sc = crate::tree::TreeScratch::new(forest.dimensions());
        forest
            .check_with(false, &mut sc)
            .map_err(StateError::Inconsistent)?;
        forest
            .rebuild_boxes_with(&mut sc, true)
            .map_err(StateError::Inconsistent)?;
        Ok(forest)
    }

    /// [`to_bytes`](Self::to_bytes), with a keyed digest of the bytes that lets this process
    /// restore them with [`from_bytes_with_digest`](Self::from_bytes_with_digest) without
    /// checking them again (see [`StateDigest`]). Costs a BLAKE3 pass over the bytes (about
    /// 17 µs for a 74 KB fleet model on the benchmark machine).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(4).build()?;
    /// for t in 0..500 { forest.update(&[(t as f32).sin()])?; }
    /// let (bytes, digest) = forest.to_bytes_with_digest();
    /// // ... the bytes go to a store and come back ...
    /// let mut restored = RandomCutForest::from_bytes_with_digest(&bytes, &digest)?;
    /// assert_eq!(forest.process(&[0.3])?, restored.process(&[0.3])?);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn to_bytes_with_digest(&self) -> (Vec<u8>, StateDigest) {
        let bytes = self.to_bytes();
        let digest = StateDigest::of(&bytes);
        (bytes, digest)
    }

    /// Restores a forest saved by [`to_bytes_with_digest`](Self::to_bytes_with_digest) in
    /// this process. Where `digest` vouches for `bytes` (they are the bytes it was made with),
    /// the structural checks of [`from_bytes`](Self::from_bytes) are skipped, about two thirds
    /// of a restore of a small forest; otherwise (changed bytes, a digest from another process)
    /// this is [`from_bytes`](Self::from_bytes), checks and all. The forest is the same either
    /// way.
    ///
    /// # Errors
    ///
    /// As [`from_bytes`](Self::from_bytes). Never panics, whatever the bytes.
    pub fn from_bytes_with_digest(bytes: &[u8], digest: &StateDigest) -> Result<Self> {
        if !digest.vouches_for(bytes) {
            return Self::from_bytes(bytes);
        }
        let mut forest = Self::decode_unchecked(bytes)?;
        // the bytes are ones this process saved from a forest that held its invariants: only
        // the derived data is rebuilt (boxes only where the cache wants some, leaf orders)
        let mut sc = crate::tree::TreeScratch::new(forest.dimensions());
        forest
            .rebuild_boxes_with(&mut sc, false)
            .map_err(StateError::Inconsistent)?;
        Ok(forest)
    }

    /// Opens the envelope and decodes the state into a forest whose structure is not yet
    /// checked and whose derived data (boxes, leaf orders) is not yet built: the first half
    /// of both restores.
    fn decode_unchecked(bytes: &[u8]) -> Result<Self> {
        let payload = open(MAGIC, STATE_FORMAT_VERSION, bytes)?;
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        // borrowed: the arrays are read where they lie in `bytes`, not copied out first
        let (state, used): (State<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(payload, config)
                .map_err(|e| StateError::Decode(e.to_string()))?;
        if used != payload.len() {
            return Err(StateError::Decode(format!(
                "{} trailing bytes after the state",
                payload.len() - used
            ))
            .into());
        }
        check_config(&state.config).map_err(StateError::Inconsistent)?;
        let c = &state.config;
        if state.trees.len() != c.num_trees || state.samplers.len() != c.num_trees {
            return Err(
                StateError::Inconsistent("number of trees differs from num_trees".into()).into(),
            );
        }
        let store = PointStore::from_state(
            state.store,
            c.input_dims,
            c.shingle_size,
            c.num_trees * (c.sample_size + 1),
        )
        .map_err(StateError::Inconsistent)?;
        let trees = state
            .trees
            .into_iter()
            .map(|t| {
                let mut t = Tree::from_state(t, c.sample_size)?;
                t.recount();
                Ok(t)
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(StateError::Inconsistent)?;
        let samplers = state
            .samplers
            .into_iter()
            .map(|s| Sampler::from_state(s, c.sample_size))
            .collect::<Result<Vec<_>, String>>()
            .map_err(StateError::Inconsistent)?;
        Ok(RandomCutForest::from_parts(
            state.config,
            trees,
            samplers,
            state.rngs,
            store,
            state.entries_seen,
            state.shingles_offered,
            state.epoch,
        ))
    }
}

/// Wraps `payload` in the envelope described in the module docs, with the given 8-byte magic
/// and format version. Other crates of the workspace (the streaming detector's checkpoints) use
/// the same envelope with their own magic.
pub fn seal(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// [`seal`] of `value`'s bincode encoding (the standard configuration), encoded straight
/// into the envelope: one buffer of `HEADER + size_hint` bytes to start with, no copy of the
/// payload. The same bytes as `seal(magic, version, &encode_to_vec(value))`.
pub fn seal_encoded<T: serde::Serialize + ?Sized>(
    magic: &[u8; 8],
    version: u32,
    value: &T,
    size_hint: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + size_hint);
    out.resize(HEADER, 0);
    // writing into a Vec cannot fail, and every type the workspace saves encodes
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("encoding a state into memory cannot fail");
    let len = (out.len() - HEADER) as u64;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[..8].copy_from_slice(magic);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[12..20].copy_from_slice(&len.to_le_bytes());
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks an envelope made by [`seal`] (length, magic, version, payload length, checksum) and
/// returns its payload.
///
/// # Errors
///
/// The [`StateError`] describing the first check that failed.
pub fn open<'a>(magic: &[u8; 8], version: u32, bytes: &'a [u8]) -> Result<&'a [u8], StateError> {
    if bytes.len() < HEADER {
        return Err(StateError::TooShort {
            len: bytes.len(),
            header: HEADER,
        });
    }
    if &bytes[..8] != magic {
        return Err(StateError::BadMagic);
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(StateError::UnsupportedVersion {
            found,
            supported: version,
        });
    }
    let expected = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != expected {
        return Err(StateError::LengthMismatch {
            expected,
            actual: payload.len() as u64,
        });
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let actual = crc32fast::hash(payload);
    if crc != actual {
        return Err(StateError::Checksum {
            expected: crc,
            actual,
        });
    }
    Ok(payload)
}

/// The restored configuration must be one `build()` could have produced.
fn check_config(c: &ForestConfig) -> Result<(), String> {
    let rebuilt = RandomCutForest::builder(c.input_dims)
        .shingle_size(c.shingle_size)
        .num_trees(c.num_trees)
        .sample_size(c.sample_size)
        .time_decay(c.time_decay)
        .output_after(usize::try_from(c.output_after).map_err(|_| "output_after too large")?)
        .initial_accept_fraction(c.initial_accept_fraction)
        .box_cache_min_mass(c.box_cache_min_mass as usize)
        .seed(c.seed)
        .validate()
        .map_err(|e| match e {
            Error::InvalidParameter { name, reason } => format!("configuration: `{name}` {reason}"),
            other => other.to_string(),
        })?;
    if &rebuilt != c {
        return Err("configuration fields are inconsistent with each other".into());
    }
    debug_assert!(c.dimensions <= MAX_DIMENSIONS && c.num_trees <= MAX_NUM_TREES);
    debug_assert!(c.sample_size <= MAX_SAMPLE_SIZE);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained() -> RandomCutForest {
        trained_with_cache(crate::DEFAULT_BOX_CACHE_MIN_MASS)
    }

    fn trained_with_cache(cache: usize) -> RandomCutForest {
        let mut f = RandomCutForest::builder(2)
            .shingle_size(2)
            .num_trees(5)
            .sample_size(32)
            .box_cache_min_mass(cache)
            .seed(4)
            .build()
            .unwrap();
        for t in 0..400 {
            let t = t as f32;
            f.update(&[t.sin(), (t * 0.3).cos()]).unwrap();
        }
        f
    }

    #[test]
    fn envelope_errors_are_specific() {
        let bytes = trained().to_bytes();
        assert!(matches!(
            RandomCutForest::from_bytes(&bytes[..10]),
            Err(Error::State(StateError::TooShort { .. }))
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            RandomCutForest::from_bytes(&bad),
            Err(Error::State(StateError::BadMagic))
        ));
        let mut bad = bytes.clone();
        bad[8] = 99;
        assert!(matches!(
            RandomCutForest::from_bytes(&bad),
            Err(Error::State(StateError::UnsupportedVersion {
                found: 99,
                ..
            }))
        ));
        assert!(matches!(
            RandomCutForest::from_bytes(&bytes[..bytes.len() - 1]),
            Err(Error::State(StateError::LengthMismatch { .. }))
        ));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert!(matches!(
            RandomCutForest::from_bytes(&bad),
            Err(Error::State(StateError::Checksum { .. }))
        ));
    }

    /// Re-seal a modified payload so that it passes the checksum and reaches the decoder and
    /// validator.
    fn reseal(payload: &[u8]) -> Vec<u8> {
        seal(MAGIC, STATE_FORMAT_VERSION, payload)
    }

    #[test]
    fn crafted_payloads_with_valid_checksums_never_panic() {
        let bytes = trained().to_bytes();
        let payload = &bytes[HEADER..];
        let mut rejected = 0;
        // flip every byte in turn (in a stride, to keep the test quick) and truncate
        for i in (0..payload.len()).step_by(7) {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut p = payload.to_vec();
                p[i] ^= flip;
                if RandomCutForest::from_bytes(&reseal(&p)).is_err() {
                    rejected += 1;
                }
            }
        }
        for cut in (0..payload.len()).step_by(97) {
            assert!(RandomCutForest::from_bytes(&reseal(&payload[..cut])).is_err());
        }
        // most single-byte changes must be caught (some, e.g. in a point value or a key, are
        // legitimately valid states)
        assert!(rejected > 0);
    }

    /// The fuzzer's reproducers: a sealed state claiming a point-store capacity of 2^34 units
    /// aborted the process (a 137 GB allocation), 2^61 and up panicked on overflow, and 2^20 to
    /// 2^31 reserved up to 16 GiB. All are refused, naming the capacity.
    #[test]
    fn crafted_point_store_capacities_are_refused() {
        let f = trained();
        let craft = |capacity: u64| {
            let mut state = f.state();
            state.store.set_capacity_units(capacity);
            let payload =
                bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap();
            RandomCutForest::from_bytes(&reseal(&payload))
        };
        assert!(craft(300).is_ok());
        for exp in [20u32, 24, 31, 34, 40, 61, 62, 63] {
            match craft(1 << exp) {
                Err(Error::State(StateError::Inconsistent(msg))) => {
                    assert!(msg.contains("capacity"), "2^{exp}: {msg}")
                }
                other => panic!(
                    "2^{exp}: expected a capacity error, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        assert!(craft(u64::MAX).is_err());
    }

    #[test]
    fn a_cut_that_does_not_separate_its_subtrees_is_rejected() {
        let f = trained();
        let mut state = f.state();
        // move the root's cut of tree 0 far above every point: its right subtree's points
        // would then route left. Structure, masses and sampler all stay consistent.
        let root = f.trees[0].root() as usize;
        let bytes = &mut state.trees[0].nodes_mut()[root * 12..root * 12 + 4];
        bytes.copy_from_slice(&1.0e30f32.to_le_bytes());
        let payload = bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap();
        match RandomCutForest::from_bytes(&reseal(&payload)) {
            Err(Error::State(StateError::Inconsistent(msg))) => {
                assert!(msg.contains("does not separate"), "{msg}");
            }
            other => panic!(
                "expected an inconsistency error, got {:?}",
                other.map(|_| ())
            ),
        }
    }

    /// The same forest either way: with a box cache (boxes rebuilt) and without one (the
    /// fleet model: only the leaf orders), continuing bit for bit like the original and like
    /// a checked restore.
    #[test]
    fn a_restore_vouched_for_by_its_digest_is_the_checked_restore() {
        for cache in [4usize, 1000] {
            let mut f = trained_with_cache(cache);
            let (bytes, digest) = f.to_bytes_with_digest();
            assert_eq!(bytes, f.to_bytes(), "the same bytes as to_bytes");
            let mut fast = RandomCutForest::from_bytes_with_digest(&bytes, &digest).unwrap();
            let mut checked = RandomCutForest::from_bytes(&bytes).unwrap();
            fast.check(true).unwrap();
            assert_eq!(fast.to_bytes(), bytes);
            assert_eq!(
                fast.memory_breakdown(),
                checked.memory_breakdown(),
                "cache {cache}"
            );
            for t in 400..700 {
                let t = t as f32;
                let x = [
                    t.sin(),
                    (t * 0.3).cos()
                        + if (t as usize).is_multiple_of(97) {
                            3.0
                        } else {
                            0.0
                        },
                ];
                let a = f.process(&x).unwrap();
                assert_eq!(fast.process(&x).unwrap(), a, "cache {cache}, t {t}");
                assert_eq!(checked.process(&x).unwrap(), a);
            }
            assert_eq!(fast.to_bytes(), f.to_bytes());
        }
    }

    /// A digest vouches for its own bytes only: changed bytes (a crafted state with a valid
    /// checksum, a corrupt one) take the full check and fail as they do without a digest.
    #[test]
    fn a_digest_does_not_vouch_for_changed_bytes() {
        let f = trained();
        let (bytes, digest) = f.to_bytes_with_digest();
        let mut state = f.state();
        let root = f.trees[0].root() as usize;
        state.trees[0].nodes_mut()[root * 12..root * 12 + 4]
            .copy_from_slice(&1.0e30f32.to_le_bytes());
        let payload = bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap();
        let crafted = reseal(&payload);
        assert_ne!(crafted, bytes);
        match RandomCutForest::from_bytes_with_digest(&crafted, &digest) {
            Err(Error::State(StateError::Inconsistent(msg))) => {
                assert!(msg.contains("does not separate"), "{msg}");
            }
            other => panic!(
                "expected the full check's error, got {:?}",
                other.map(|_| ())
            ),
        }
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        assert!(matches!(
            RandomCutForest::from_bytes_with_digest(&corrupt, &digest),
            Err(Error::State(StateError::Checksum { .. }))
        ));
        // another forest's digest: checked, and the right forest all the same
        let (_, other) = RandomCutForest::builder(1)
            .build()
            .unwrap()
            .to_bytes_with_digest();
        let g = RandomCutForest::from_bytes_with_digest(&bytes, &other).unwrap();
        assert_eq!(g.to_bytes(), bytes);
    }
}
