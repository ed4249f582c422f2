//! Bad input gets a typed error naming the problem, never a panic, and loses nothing.

use rcf_core::{Error, RandomCutForest};

use crate::common::small_forest;

fn trained() -> RandomCutForest {
    let mut f = small_forest(3, 2, 1);
    for t in 0..300 {
        let t = t as f32;
        f.update(&[t.sin(), t.cos(), 1.0]).unwrap();
    }
    f
}

#[test]
fn wrong_lengths_are_dimension_errors() {
    let mut f = trained();
    let expect = |r: Result<_, Error>, actual| match r {
        Err(Error::DimensionMismatch {
            expected: 3,
            actual: a,
        }) => assert_eq!(a, actual),
        other => panic!("expected DimensionMismatch, got {other:?}"),
    };
    expect(f.update(&[1.0, 2.0]).map(|_| 0.0), 2);
    expect(f.process(&[1.0, 2.0, 3.0, 4.0]), 4);
    expect(f.score(&[]), 0);
    expect(f.attribution(&[1.0]).map(|a| a.total()), 1);
    expect(f.impute(&[f32::NAN; 5]).map(|v| f64::from(v[0])), 5);
    let e = f.update(&[1.0]).unwrap_err();
    assert_eq!(e.to_string(), "expected 3 values per point, got 1");
}

#[test]
fn non_finite_values_are_rejected_and_change_nothing() {
    let mut f = trained();
    let before = f.to_bytes();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        match f.update(&[0.0, bad, 0.0]) {
            Err(Error::NonFinite { index: 1, value }) => {
                assert!(value.is_nan() == bad.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert!(matches!(
            f.process(&[bad, 0.0, 0.0]),
            Err(Error::NonFinite { index: 0, .. })
        ));
        assert!(matches!(
            f.score(&[0.0, 0.0, bad]),
            Err(Error::NonFinite { index: 2, .. })
        ));
        assert!(f.attribution(&[bad, 0.0, 0.0]).is_err());
    }
    assert!(matches!(
        f.impute(&[f32::INFINITY, f32::NAN, 0.0]),
        Err(Error::NonFinite { index: 0, .. })
    ));
    assert_eq!(
        before,
        f.to_bytes(),
        "a rejected point must not change the forest"
    );
    assert_eq!(f.entries_seen(), 300);
}

#[test]
fn batch_errors() {
    let f = trained();
    // forest dimension is 3 * 2 = 6
    assert!(matches!(
        f.score_many(&[]),
        Err(Error::EmptyInput { name: "points" })
    ));
    assert!(matches!(
        f.score_many(&[0.0; 7]),
        Err(Error::BatchShape {
            len: 7,
            dimensions: 6
        })
    ));
    let mut batch = vec![0.0f32; 12];
    batch[8] = f32::NAN;
    assert!(matches!(
        f.score_many(&batch),
        Err(Error::NonFinite { index: 8, .. })
    ));
    assert_eq!(f.score_many(&[0.5; 12]).unwrap().len(), 2);
}

#[test]
fn impute_needs_something_to_do() {
    let f = trained();
    assert!(matches!(
        f.impute(&[1.0, 2.0, 3.0]),
        Err(Error::NothingToImpute { .. })
    ));
    let empty = small_forest(3, 2, 1);
    assert!(matches!(
        empty.impute(&[1.0, f32::NAN, 3.0]),
        Err(Error::NothingToImpute { .. })
    ));
}

#[test]
fn zero_and_absurd_parameters_are_named() {
    let cases: Vec<(rcf_core::ForestBuilder, &str, &str)> = vec![
        (RandomCutForest::builder(0), "input_dims", "got 0"),
        (
            RandomCutForest::builder(1).num_trees(0),
            "num_trees",
            "got 0",
        ),
        (
            RandomCutForest::builder(1).sample_size(0),
            "sample_size",
            "got 0",
        ),
        (
            RandomCutForest::builder(1).sample_size(usize::MAX),
            "sample_size",
            "18446744073709551615",
        ),
        (
            RandomCutForest::builder(1).time_decay(f64::INFINITY),
            "time_decay",
            "inf",
        ),
        (
            RandomCutForest::builder(1).initial_accept_fraction(-1.0),
            "initial_accept_fraction",
            "-1",
        ),
        (
            RandomCutForest::builder(100).shingle_size(1_000),
            "shingle_size",
            "100 * 1000",
        ),
    ];
    for (builder, name, value) in cases {
        match builder.build() {
            Err(e @ Error::InvalidParameter { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("`{name}`")), "{msg}");
                assert!(msg.contains(value), "{msg} should contain {value}");
            }
            other => panic!("expected InvalidParameter for {name}, got {other:?}"),
        }
    }
}

#[test]
fn scores_are_zero_until_ready() {
    let mut f = RandomCutForest::builder(1)
        .shingle_size(4)
        .output_after(50)
        .build()
        .unwrap();
    // the first 3 inputs only fill the shingle; inputs 4..=53 make points 1..=50, each scored
    // before it is added, so all 53 see fewer than 50 points
    for t in 0..53 {
        assert_eq!(f.score(&[t as f32]).unwrap(), 0.0, "t = {t}");
        assert_eq!(f.process(&[t as f32]).unwrap(), 0.0, "t = {t}");
    }
    assert!(f.is_ready());
    assert!(f.process(&[100.0]).unwrap() > 0.0);
}
