//! Saved state: round trips continue bit-identically; bad bytes give errors, never panics.

use rcf_core::{Error, RandomCutForest, StateError};

use crate::common::{Rng, sine_with_spikes, small_forest};

fn trained() -> RandomCutForest {
    let (x, _) = sine_with_spikes(4_000, 4, 2);
    let mut f = RandomCutForest::builder(1)
        .shingle_size(8)
        .num_trees(16)
        .sample_size(128)
        .seed(21)
        .build()
        .unwrap();
    for v in &x {
        f.update(&[*v]).unwrap();
    }
    f
}

#[test]
fn restored_forest_continues_bit_identically() {
    let mut original = trained();
    let mut restored = RandomCutForest::from_bytes(&original.to_bytes()).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(original.config(), restored.config());
    assert_eq!(original.entries_seen(), restored.entries_seen());
    let (x, _) = sine_with_spikes(3_000, 3, 99);
    for v in &x {
        assert_eq!(
            original.process(&[*v]).unwrap(),
            restored.process(&[*v]).unwrap()
        );
    }
    let probe = [4.0f32];
    assert_eq!(
        original.attribution(&probe).unwrap(),
        restored.attribution(&probe).unwrap()
    );
    assert_eq!(original.to_bytes(), restored.to_bytes());
}

#[test]
fn empty_and_warming_forests_round_trip() {
    for n in [0usize, 1, 5, 70] {
        let mut f = small_forest(2, 3, 4);
        for t in 0..n {
            f.update(&[t as f32, 1.0]).unwrap();
        }
        let mut g = RandomCutForest::from_bytes(&f.to_bytes()).unwrap();
        for t in 0..200 {
            let x = [(t % 9) as f32, 2.0];
            assert_eq!(f.process(&x).unwrap(), g.process(&x).unwrap());
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = trained().to_bytes();
    for len in (0..bytes.len()).step_by(bytes.len() / 300 + 1) {
        assert!(
            RandomCutForest::from_bytes(&bytes[..len]).is_err(),
            "length {len}"
        );
    }
}

#[test]
fn random_and_foreign_bytes_are_errors() {
    let mut rng = Rng::new(5);
    for len in [0usize, 7, 24, 100, 10_000] {
        let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(RandomCutForest::from_bytes(&junk).is_err());
    }
    // a JSON document, a PNG header: foreign formats
    assert!(matches!(
        RandomCutForest::from_bytes(br#"{"forest": "not really", "trees": [1, 2, 3]}"#),
        Err(Error::State(StateError::BadMagic))
    ));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    assert!(matches!(
        RandomCutForest::from_bytes(png),
        Err(Error::State(StateError::BadMagic))
    ));
}

#[test]
fn bit_flips_are_detected() {
    let bytes = trained().to_bytes();
    for i in (0..bytes.len()).step_by(bytes.len() / 200 + 1) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(RandomCutForest::from_bytes(&b).is_err(), "flip at byte {i}");
    }
}

/// Golden file: bytes written by format version 1 must keep loading and must behave exactly
/// like a forest trained the same way now. If this fails, either the format or the algorithm
/// changed: bump `STATE_FORMAT_VERSION` (keeping a reader for the old one) or regenerate the
/// fixture deliberately with `RCF_REGENERATE_GOLDEN=1`.
#[test]
fn golden_v1_state_loads_and_matches_a_fresh_forest() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forest-v1.bin");
    let recipe = || {
        let mut f = RandomCutForest::builder(2)
            .shingle_size(2)
            .num_trees(4)
            .sample_size(16)
            .seed(1)
            .build()
            .unwrap();
        for t in 0..100 {
            let t = t as f32;
            f.update(&[(t * 0.3).sin(), (t * 0.1).cos()]).unwrap();
        }
        f
    };
    if std::env::var_os("RCF_REGENERATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, recipe().to_bytes()).unwrap();
    }
    let bytes = std::fs::read(&path).expect("golden fixture present");
    let old = RandomCutForest::from_bytes(&bytes).unwrap();
    let fresh = recipe();
    for probe in [[0.0f32, 0.0], [0.5, 0.9], [3.0, -3.0]] {
        assert_eq!(old.score(&probe).unwrap(), fresh.score(&probe).unwrap());
    }
    assert_eq!(
        old.to_bytes(),
        bytes,
        "re-serialising must reproduce the file"
    );
}

/// `seal_encoded` writes exactly what `seal` of the encoded payload does, whatever the size
/// hint (states saved before it load, and later ones are the same bytes).
#[test]
fn seal_encoded_is_seal_of_the_encoding() {
    let value = (
        7u64,
        "a thing".to_string(),
        rcf_core::state::Bytes((0..50_000u32).map(|i| (i % 251) as u8).collect()),
    );
    let payload = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
    let expected = rcf_core::state::seal(b"RCFTEST1", 3, &payload);
    for hint in [0, 10, 50_000, 1 << 20] {
        assert_eq!(
            rcf_core::state::seal_encoded(b"RCFTEST1", 3, &value, hint),
            expected
        );
    }
}
