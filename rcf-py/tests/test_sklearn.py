import numpy as np
import pytest

import rcf


def test_fit_predict_flags_about_the_contamination(rng):
    x = rng.normal(size=(3000, 2))
    f = rcf.RandomCutForest(2, seed=1)
    assert f.fit(x, contamination=0.02) is f
    assert f.threshold_ is not None
    train = f.predict(x)
    assert train.dtype == np.int64 and set(np.unique(train)) <= {-1, 1}
    # about 2 % of the training rows are outliers by construction (ties aside); margin 1 point
    assert abs((train == -1).mean() - 0.02) < 0.01
    outliers = f.predict(np.array([[8.0, 8.0], [-9.0, 0.0]]))
    np.testing.assert_array_equal(outliers, [-1, -1])


def test_score_samples_and_decision_function_follow_sklearn_signs(rng):
    f = rcf.RandomCutForest(2, seed=2).fit(rng.normal(size=(2000, 2)))
    probe = np.array([[0.0, 0.0], [7.0, -7.0]])
    ss = f.score_samples(probe)
    assert ss[0] > ss[1]  # higher = more normal
    np.testing.assert_allclose(ss, -f.score_many(probe))
    df = f.decision_function(probe)
    assert df[0] > 0 > df[1]  # negative = outlier
    np.testing.assert_allclose(df, ss + f.threshold_)


def test_shingled_rows_are_scored_as_windows_ending_at_them(rng):
    t = np.arange(2000)
    x = np.sin(t / 10).reshape(-1, 1)
    f = rcf.RandomCutForest(1, shingle_size=4, seed=3).fit(x)
    ss = f.score_samples(x[:10])
    assert np.isnan(ss[:3]).all() and not np.isnan(ss[3:]).any()
    assert f.predict(x[:3]).tolist() == [1, 1, 1]


def test_unfitted_and_bad_contamination():
    f = rcf.RandomCutForest(1)
    with pytest.raises(rcf.NotFittedError, match="fit"):
        f.predict([[1.0]])
    assert issubclass(rcf.NotFittedError, ValueError)
    with pytest.raises(rcf.ConfigError, match="contamination"):
        f.fit([[1.0]], contamination=0.7)
