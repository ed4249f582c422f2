//! `Detector::from_bytes` on arbitrary (mostly re-sealed) checkpoint bytes, of every format it
//! reads: never panics, aborts or hangs; whatever it accepts processes points (missing values
//! included) and keeps saving checkpoints that restore.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use rcf_stream::Detector;

#[allow(dead_code)]
#[path = "../src/common.rs"]
mod common;
#[path = "../src/points.rs"]
mod points;

fuzz_target!(init: common::write_seeds(common::detectors()), |data: &[u8]| {
    let Ok(mut detector) = Detector::from_bytes(data) else {
        return;
    };
    let m = detector.metrics().len();
    for (i, mut x) in points::points(&data[data.len() / 2..], m, 12)
        .into_iter()
        .enumerate()
    {
        if i % 5 == 3 {
            x[i % m] = f32::NAN;
        }
        let v = detector.process(&x).expect("finite input of the right length");
        assert!(v.score.is_finite() && v.grade.is_finite(), "{v:?}");
        if i % 4 == 0 {
            let again = Detector::from_bytes(&detector.to_bytes());
            assert!(again.is_ok(), "its own checkpoint is refused: {:?}", again.err());
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    common::mutate_sealed(data, size, max_size, seed, b"RCF-DTCT", &[1, 2, 3, 4])
});
