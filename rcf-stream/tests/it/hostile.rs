//! Hostile inputs found by fuzzing (issue 10), through the public API.

use rcf_stream::{Detector, Error};

fn trained() -> Detector {
    let mut d = Detector::builder(["a", "b", "c"]).seed(5).build().unwrap();
    let rows: Vec<f32> = (0..400)
        .flat_map(|t| [(t % 11) as f32, (t % 5) as f32, 1.0])
        .collect();
    d.bootstrap(&rows).unwrap();
    d
}

/// `process_many([[1,2,3],[1,inf,3]])` learned row 0 and then raised; every batch call is now
/// all or nothing.
#[test]
fn a_rejected_batch_changes_nothing() {
    let mut d = trained();
    let before = d.to_bytes();
    let bad = [1.0, 2.0, 3.0, 1.0, f32::INFINITY, 3.0];
    assert!(matches!(d.process_many(&bad), Err(Error::NonFinite { .. })));
    assert!(matches!(d.bootstrap(&bad), Err(Error::NonFinite { .. })));
    assert!(matches!(
        d.process_many(&bad[..5]),
        Err(Error::HistoryShape { .. })
    ));
    assert_eq!(
        d.to_bytes(),
        before,
        "a rejected batch changed the detector"
    );
    // the same rows one by one and in a batch give the same verdicts
    let good = [1.0, 2.0, 3.0, 40.0, 2.0, 1.0, 1.0, f32::NAN, 1.0];
    let mut one = d.clone();
    let singles: Vec<_> = good.chunks(3).map(|r| one.process(r).unwrap()).collect();
    assert_eq!(d.process_many(&good).unwrap(), singles);
}

/// Verdicts were unequal to themselves whenever a metric was missing (`actual` is NaN).
#[test]
fn identical_verdicts_with_a_missing_value_are_equal() {
    let mut d = trained();
    let mut v = d.process(&[90.0, 1.0, 1.0]).unwrap();
    assert!(v.is_anomaly && !v.expected.is_empty(), "{v:?}");
    v.expected[0].actual = f64::NAN;
    let copy = v.clone();
    assert_eq!(v, copy);
    let mut other = v.clone();
    other.expected[0].actual = 3.0;
    assert_ne!(v, other, "NaN equals only NaN");
    // and a missing reading streams through two identical detectors to equal verdicts
    let (mut a, mut b) = (trained(), trained());
    for t in 0..100 {
        let x = [if t % 3 == 0 { f32::NAN } else { 60.0 }, 1.0, 1.0];
        assert_eq!(a.process(&x).unwrap(), b.process(&x).unwrap(), "point {t}");
    }
}

/// A million metric names (a JSON line with a million keys) fail at once, not after a
/// quadratic duplicate scan.
#[test]
fn a_million_metrics_fail_at_once_with_the_limit() {
    let names = (0..1_000_000).map(|i| format!("m{i}"));
    match Detector::builder(names).build() {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, "metrics");
            assert!(reason.contains("at most 16384"), "{reason}");
        }
        other => panic!("expected an error, got {:?}", other.map(|_| ())),
    }
    // under the limit, duplicates are still found (late in a long list, too)
    let mut names: Vec<String> = (0..5_000).map(|i| format!("m{i}")).collect();
    names.push("m4999".into());
    assert!(Detector::builder(names).build().is_err());
}

/// Finite readings of any magnitude go through the detector without a panic or a
/// non-finite score, and its checkpoints keep loading.
#[test]
fn readings_of_any_magnitude_keep_the_detector_restorable() {
    let mut d = Detector::builder(["x", "y"])
        .sample_size(32)
        .seed(9)
        .build()
        .unwrap();
    let extremes = [
        f32::MAX,
        -f32::MAX,
        1e-38,
        0.0,
        3.0e38,
        -1e30,
        f32::NAN,
        7.0,
    ];
    for t in 0..2_000usize {
        let x = [
            extremes[t % extremes.len()],
            extremes[(t * 3 + 1) % extremes.len()],
        ];
        let v = d.process(&x).unwrap();
        assert!(
            v.score.is_finite() && v.grade.is_finite(),
            "point {t}: {v:?}"
        );
        if t % 400 == 0 {
            d = Detector::from_bytes(&d.to_bytes()).unwrap();
        }
    }
    d.forest().check_invariants().unwrap();
}
