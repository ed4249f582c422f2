//! `rescale_inputs`: re-expressing a trained forest in new units keeps its trees valid and its
//! scores where they belong.

use proptest::prelude::*;
use rcf_core::{Error, RandomCutForest};

use crate::common::Rng;

/// A forest trained on `n` rows of `sin + noise`, input `j` on the scale `spread^j`.
fn trained(
    dims: usize,
    shingle: usize,
    n: usize,
    seed: u64,
    spread: f64,
) -> (RandomCutForest, Vec<Vec<f32>>) {
    let mut forest = RandomCutForest::builder(dims)
        .shingle_size(shingle)
        .num_trees(12)
        .sample_size(64)
        .box_cache_min_mass(3)
        .seed(seed)
        .build()
        .unwrap();
    let mut rng = Rng::new(seed);
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|t| {
            (0..dims)
                .map(|j| {
                    let level = (t as f64 * 0.05 + j as f64).sin() + 0.3 * rng.normal();
                    (level * spread.powi(j as i32)) as f32
                })
                .collect()
        })
        .collect();
    for x in &rows {
        forest.update(x).unwrap();
    }
    (forest, rows)
}

proptest! {
    #![proptest_config(crate::common::fixed_cases(32))]

    /// Any positive affine map keeps every invariant (routing, boxes, masses), and the forest
    /// goes on learning in the new units.
    #[test]
    fn rescaling_keeps_the_trees_valid(
        dims in 1usize..4,
        shingle in 1usize..4,
        seed in any::<u64>(),
        scale in prop::collection::vec(1e-3f64..1e3, 3),
        shift in prop::collection::vec(-1e3f64..1e3, 3),
    ) {
        let (mut forest, rows) = trained(dims, shingle, 300, seed, 10.0);
        match forest.rescale_inputs(&scale[..dims], &shift[..dims]) {
            Ok(()) => {}
            // a map that makes two cut values equal in f32 is refused and changes nothing (CI
            // drew one: scale 1e-3 made two values near -427.5 equal); the forest goes on in
            // its old units
            Err(Error::InvalidParameter { name: "scale", reason }) => {
                prop_assert!(reason.contains("became equal in f32"), "{}", reason);
                let (untouched, _) = trained(dims, shingle, 300, seed, 10.0);
                prop_assert!(forest.to_bytes() == untouched.to_bytes(), "a refused rescale changed the forest");
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        forest.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for x in rows.iter().take(200) {
            let y: Vec<f32> = x.iter().zip(&scale).zip(&shift)
                .map(|((v, a), b)| (f64::from(*v) * a + b) as f32).collect();
            let s = forest.process(&y).unwrap();
            prop_assert!(s.is_finite() && s >= 0.0);
        }
        forest.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    /// A single input (however shingled) is scale- and translation-invariant, so its scores
    /// survive any map up to f32 rounding.
    #[test]
    fn one_input_scores_survive_any_map(
        shingle in 1usize..5,
        seed in any::<u64>(),
        scale in 1e-2f64..1e2,
        shift in -1e2f64..1e2,
        probe in -30.0f32..30.0,
    ) {
        let (mut forest, _) = trained(1, shingle, 400, seed, 1.0);
        let before = forest.score(&[probe]).unwrap();
        match forest.rescale_inputs(&[scale], &[shift]) {
            Ok(()) => {
                let after = forest.score(&[(f64::from(probe) * scale + shift) as f32]).unwrap();
                prop_assert!((after - before).abs() <= 1e-3 * before, "{} -> {}", before, after);
            }
            // a map that makes two cut values equal in f32 is refused, and changes nothing
            // (found by this test: scale 0.01, shift -65.6)
            Err(Error::InvalidParameter { name: "scale", reason }) => {
                prop_assert!(reason.contains("became equal in f32"), "{}", reason);
                prop_assert_eq!(forest.score(&[probe]).unwrap(), before);
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }
}

/// Translating several inputs changes no score either (cuts are chosen by range, and ranges
/// do not move); scaling one of them does, through the relative ranges.
#[test]
fn translation_keeps_scores_and_scaling_one_input_reweights_it() {
    let (mut forest, rows) = trained(3, 2, 600, 7, 1.0);
    let probe = [6.0f32, 0.0, 0.5];
    let before = forest.score(&probe).unwrap();
    let mut moved = forest.clone();
    moved
        .rescale_inputs(&[1.0; 3], &[5.0, -3.0, 100.0])
        .unwrap();
    let after = moved.score(&[11.0, -3.0, 100.5]).unwrap();
    assert!(
        (after - before).abs() < 1e-4 * before,
        "{before} -> {after}"
    );
    // shrinking input 0 by 1000 leaves its deviation almost no range to be cut in
    forest.rescale_inputs(&[1e-3, 1.0, 1.0], &[0.0; 3]).unwrap();
    let shrunk = forest.score(&[6e-3, 0.0, 0.5]).unwrap();
    let typical = forest
        .score(
            &rows[599]
                .iter()
                .enumerate()
                .map(|(j, v)| if j == 0 { v * 1e-3 } else { *v })
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert!(
        before > 2.0 * typical,
        "the probe stood out before: {before} vs {typical}"
    );
    assert!(shrunk < before, "{shrunk} should fall below {before}");
}

#[test]
fn bad_maps_are_named_errors_and_change_nothing() {
    let (mut forest, _) = trained(2, 2, 300, 3, 10.0);
    let before = forest.to_bytes();
    let probes = [[0.5f32, 9.0], [40.0, -3.0], [2.0, 2.0]];
    let scores: Vec<f64> = probes.iter().map(|p| forest.score(p).unwrap()).collect();
    let named = |r: Result<(), Error>, name: &str| match r {
        Err(Error::InvalidParameter { name: n, reason }) => {
            assert_eq!(n, name, "{reason}");
            reason
        }
        other => panic!("expected InvalidParameter({name}), got {other:?}"),
    };
    named(forest.rescale_inputs(&[1.0], &[0.0, 0.0]), "scale");
    named(forest.rescale_inputs(&[1.0, 1.0], &[0.0; 3]), "shift");
    named(forest.rescale_inputs(&[1.0, f64::NAN], &[0.0; 2]), "scale");
    named(
        forest.rescale_inputs(&[1.0, 1.0], &[f64::INFINITY, 0.0]),
        "shift",
    );
    let r = named(forest.rescale_inputs(&[0.0, 1.0], &[0.0; 2]), "scale");
    assert!(r.contains("positive"), "{r}");
    let r = named(forest.rescale_inputs(&[1e300, 1.0], &[0.0; 2]), "scale");
    assert!(r.contains("overflow"), "{r}");
    // so small that distinct values collapse onto the same f32
    let r = named(forest.rescale_inputs(&[1.0, 1e-30], &[0.0, 1.0]), "scale");
    assert!(r.contains("unchanged"), "{r}");
    assert_eq!(
        forest.to_bytes(),
        before,
        "a failed rescale changes nothing"
    );
    // nor the derived state (cached boxes, the values the trees read)
    let after: Vec<f64> = probes.iter().map(|p| forest.score(p).unwrap()).collect();
    assert_eq!(scores, after);
    forest.check_invariants().unwrap();
}

/// A forest rescaled before its sample is full keeps room for a full sample: learning on
/// afterwards ends with the same tree and sampler arrays as a forest never rescaled (a clone
/// keeps only lengths, and the next inserts used to double every array: a fleet model grew by
/// half).
#[test]
fn rescaling_keeps_room_for_a_full_sample() {
    let (mut plain, rows) = trained(3, 2, 400, 7, 1.0);
    let (mut rescaled, _) = trained(3, 2, 20, 7, 1.0);
    rescaled.rescale_inputs(&[2.0; 3], &[1.0; 3]).unwrap();
    for x in &rows[20..] {
        let y: Vec<f32> = x.iter().map(|v| v * 2.0 + 1.0).collect();
        rescaled.update(&y).unwrap();
    }
    for x in rows.iter().take(100) {
        plain.update(x).unwrap();
    }
    let (a, b) = (plain.memory_breakdown(), rescaled.memory_breakdown());
    assert_eq!(
        (a.nodes, a.leaves, a.samplers),
        (b.nodes, b.leaves, b.samplers),
        "plain {a:?}, rescaled {b:?}"
    );
}

/// Without a box cache (a fleet model) the rescale sets the cuts and skips the boxes; the
/// trees must stay valid and a translation must change no score.
#[test]
fn rescaling_a_forest_without_cached_boxes() {
    let (mut cached, rows) = trained(3, 4, 500, 11, 3.0);
    let mut bare = cached.clone();
    bare.set_box_cache_min_mass(1_000).unwrap();
    let probe: Vec<f32> = rows[499].iter().map(|v| v + 0.5).collect();
    let before = bare.score(&probe).unwrap();
    for f in [&mut cached, &mut bare] {
        f.rescale_inputs(&[1.0; 3], &[-4.0, 2.0, 0.5]).unwrap();
        f.check_invariants().unwrap();
    }
    let moved: Vec<f32> = probe
        .iter()
        .zip([-4.0f32, 2.0, 0.5])
        .map(|(v, s)| v + s)
        .collect();
    let (a, b) = (bare.score(&moved).unwrap(), cached.score(&moved).unwrap());
    assert_eq!(a, b, "the box cache changes no score");
    assert!((a - before).abs() < 1e-6 * before, "{before} -> {a}");
    assert_eq!(bare.to_bytes(), {
        let mut c = cached.clone();
        c.set_box_cache_min_mass(1_000).unwrap();
        c.to_bytes()
    });
}
