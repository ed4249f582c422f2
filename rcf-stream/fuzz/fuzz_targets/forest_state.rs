//! `RandomCutForest::from_bytes` on arbitrary (mostly re-sealed) bytes: never panics, aborts
//! or hangs; whatever it accepts keeps its invariants, processes points, and saves a state that
//! restores.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use rcf_core::RandomCutForest;

#[allow(dead_code)]
#[path = "../src/common.rs"]
mod common;
#[path = "../src/points.rs"]
mod points;

fuzz_target!(init: common::write_seeds(common::forests()), |data: &[u8]| {
    let Ok(mut forest) = RandomCutForest::from_bytes(data) else {
        return;
    };
    forest
        .check_invariants()
        .expect("an accepted state keeps every invariant");
    let dims = forest.input_dims();
    for x in points::points(&data[data.len() / 2..], dims, 8) {
        let s = forest.process(&x).expect("finite input of the right length");
        assert!(s.is_finite(), "score {s}");
    }
    let batch: Vec<f32> = points::points(data, forest.dimensions(), 3).concat();
    for s in forest.score_many(&batch).expect("a well-formed batch") {
        assert!(s.is_finite(), "batch score {s}");
    }
    forest
        .check_invariants()
        .expect("invariants hold after processing");
    let again = RandomCutForest::from_bytes(&forest.to_bytes());
    assert!(again.is_ok(), "its own state is refused: {:?}", again.err());
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    common::mutate_sealed(
        data,
        size,
        max_size,
        seed,
        b"RCF-FRST",
        &[rcf_core::state::STATE_FORMAT_VERSION],
    )
});
