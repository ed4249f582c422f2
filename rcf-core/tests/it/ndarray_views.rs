//! The batch calls on `ndarray` views give what the slice calls give, for any layout, and
//! refuse what they refuse without changing the forest.

use ndarray::{Array2, s};
use rcf_core::{Error, RandomCutForest};

use crate::common::small_forest;

#[test]
fn views_in_any_layout_match_the_slice_calls() {
    let rows = 600;
    let data = Array2::from_shape_fn((rows, 3), |(t, j)| {
        ((t as f32) * 0.05 + j as f32).sin() + if t == 500 && j == 1 { 4.0 } else { 0.0 }
    });
    let flat: Vec<f32> = data.iter().copied().collect();
    // learning: in place (row-major) and through the slice call
    let mut a = small_forest(3, 2, 9);
    let mut b = small_forest(3, 2, 9);
    let sa = a.process_many_view(data.view()).unwrap();
    let sb = b.process_many(&flat).unwrap();
    assert_eq!(sa, sb);
    assert_eq!(a.to_bytes(), b.to_bytes(), "the same forest after");
    // a column-major copy (its transpose's view is not row-major) learns the same
    let fortran = data.t().as_standard_layout().t().to_owned();
    assert!(fortran.view().as_slice().is_none());
    let mut c = small_forest(3, 2, 9);
    c.update_many_view(fortran.view()).unwrap();
    let mut d = small_forest(3, 2, 9);
    d.update_many(&flat).unwrap();
    assert_eq!(c.to_bytes(), d.to_bytes());
    // scoring shingled points: a strided view (every other row)
    let points = Array2::from_shape_fn((40, a.dimensions()), |(i, j)| (i * j) as f32 * 0.01);
    let every_other = points.slice(s![..;2, ..]);
    let expect: Vec<f32> = every_other.iter().copied().collect();
    assert_eq!(
        a.score_many_view(every_other).unwrap(),
        a.score_many(&expect).unwrap()
    );
    // attribution of many rows: each the single call's
    let probe = data.slice(s![495..505, ..]);
    let many = a.attribution_many_view(probe).unwrap();
    for (row, got) in probe.rows().into_iter().zip(&many) {
        let one = a.attribution(&row.to_vec()).unwrap();
        assert_eq!(got.total(), one.total());
    }
}

#[test]
fn bad_views_are_named_errors_and_change_nothing() {
    let mut f: RandomCutForest = small_forest(2, 1, 3);
    let good = Array2::from_shape_fn((300, 2), |(t, j)| (t % 7) as f32 + j as f32);
    f.update_many_view(good.view()).unwrap();
    let before = f.to_bytes();
    let wide = Array2::<f32>::zeros((4, 3));
    assert!(matches!(
        f.update_many_view(wide.view()),
        Err(Error::DimensionMismatch {
            expected: 2,
            actual: 3
        })
    ));
    let mut nan = Array2::<f32>::ones((4, 2));
    nan[[2, 1]] = f32::NAN;
    assert!(matches!(
        f.process_many_view(nan.view()),
        Err(Error::NonFinite { index: 5, .. })
    ));
    assert!(matches!(
        f.attribution_many_view(nan.view()),
        Err(Error::NonFinite { index: 5, .. })
    ));
    let empty = Array2::<f32>::zeros((0, 2));
    assert!(matches!(
        f.update_many_view(empty.view()),
        Err(Error::EmptyInput { .. })
    ));
    assert!(matches!(
        f.attribution_many_view(empty.view()),
        Err(Error::EmptyInput { .. })
    ));
    assert_eq!(f.to_bytes(), before, "a rejected batch changes nothing");
}
