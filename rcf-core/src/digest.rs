//! [`StateDigest`]: a keyed digest that lets a process restore state it saved itself without
//! checking it again.

use std::sync::OnceLock;

/// Bytes of a digest kept (BLAKE3 gives 32; 128 bits are ample against forgery and halve
/// what a fleet keeps per evicted model).
const DIGEST_BYTES: usize = 16;

/// Proof that a byte string is one this process saved.
///
/// A restore from bytes checks every structural invariant of the forest, because the bytes
/// may be corrupt or crafted; for a fleet model of 10 trees that check (and the subtree boxes
/// it needs) is about two thirds of the restore. A process that evicts models to a store and
/// reads them back (the fleet engine under a memory budget) restores bytes it wrote itself,
/// unless something changed them in between. [`RandomCutForest::to_bytes_with_digest`]
/// returns, beside the bytes, a BLAKE3 keyed hash of them (128 bits kept) under a key drawn
/// from the operating system when the process first needs one and never written anywhere;
/// [`RandomCutForest::from_bytes_with_digest`] skips the checks only when the bytes still have
/// that digest. Forging a digest for other bytes means breaking keyed BLAKE3 without the key,
/// so a restore stays as safe as [`RandomCutForest::from_bytes`] whatever the bytes: bytes
/// that changed, a digest from another process, or a process that could not draw a key all
/// take the full check.
///
/// A digest cannot be built from outside this crate, serialised or deserialised: the only way
/// to hold one is to have saved the bytes it vouches for. It is 17 bytes, `Copy`, and
/// meaningless in another process.
///
/// [`RandomCutForest::to_bytes_with_digest`]: crate::RandomCutForest::to_bytes_with_digest
/// [`RandomCutForest::from_bytes_with_digest`]: crate::RandomCutForest::from_bytes_with_digest
/// [`RandomCutForest::from_bytes`]: crate::RandomCutForest::from_bytes
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StateDigest {
    tag: [u8; DIGEST_BYTES],
    /// false where the process has no key: such a digest vouches for nothing
    keyed: bool,
}

impl std::fmt::Debug for StateDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the tag is not secret, but printing it helps no one
        f.debug_struct("StateDigest")
            .field("keyed", &self.keyed)
            .finish_non_exhaustive()
    }
}

/// The process's key: 32 bytes from the operating system, drawn once; `None` if it could not
/// provide them (digests then vouch for nothing, and every restore checks).
fn key() -> Option<&'static [u8; 32]> {
    static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).ok().map(|()| k)
    })
    .as_ref()
}

impl StateDigest {
    /// The digest of `bytes` under the process's key.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        match key() {
            Some(k) => {
                let full = blake3::keyed_hash(k, bytes);
                let mut tag = [0u8; DIGEST_BYTES];
                tag.copy_from_slice(&full.as_bytes()[..DIGEST_BYTES]);
                StateDigest { tag, keyed: true }
            }
            None => StateDigest {
                tag: [0; DIGEST_BYTES],
                keyed: false,
            },
        }
    }

    /// Whether `bytes` are the bytes this digest was made of (always false without a key).
    /// The comparison takes the same time wherever the tags differ.
    pub(crate) fn vouches_for(&self, bytes: &[u8]) -> bool {
        if !self.keyed {
            return false;
        }
        let other = Self::of(bytes);
        other.keyed
            && self
                .tag
                .iter()
                .zip(&other.tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_vouches_for_its_bytes_only() {
        let a = b"some saved state".to_vec();
        let d = StateDigest::of(&a);
        assert!(d.vouches_for(&a));
        // any one bit flipped, a byte more or less, another input
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a.clone();
                b[i] ^= 1 << bit;
                assert!(!d.vouches_for(&b), "byte {i} bit {bit}");
            }
        }
        assert!(!d.vouches_for(&a[..a.len() - 1]));
        let mut longer = a.clone();
        longer.push(0);
        assert!(!d.vouches_for(&longer));
        assert!(!d.vouches_for(b""));
        assert_eq!(d, StateDigest::of(&a), "one key per process");
    }

    #[test]
    fn an_unkeyed_digest_vouches_for_nothing() {
        let d = StateDigest {
            tag: [0; DIGEST_BYTES],
            keyed: false,
        };
        assert!(!d.vouches_for(b""));
        assert!(!d.vouches_for(b"x"));
    }
}
