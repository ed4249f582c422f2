import pytest
import numpy as np
import pandas as pd

import rcf


def test_pandas_objects_are_accepted_where_arrays_are(rng):
    frame = pd.DataFrame(rng.normal(size=(800, 2)), columns=["torque", "battery"])
    f = rcf.RandomCutForest(2, seed=1)
    f.update_many(frame)
    g = rcf.RandomCutForest(2, seed=1)
    g.update_many(frame.to_numpy())
    assert f.to_bytes() == g.to_bytes()
    row = frame.iloc[5]  # a Series
    assert f.score(row) == g.score(row.to_numpy())
    d = rcf.Detector(2, metric_names=list(frame.columns), seed=2)
    out = d.process_many(frame)
    assert out["score"].shape == (800,)


def test_integer_and_boolean_inputs_convert(rng):
    f = rcf.RandomCutForest(1, seed=3)
    f.update_many(np.arange(300).reshape(-1, 1))  # int64
    assert f.entries_seen == 300
    assert np.isfinite(f.score([True]))


def test_wrong_dimensions_are_dimension_errors_naming_the_shape():
    d = rcf.Detector(2, seed=1)
    with pytest.raises(rcf.DimensionError, match=r"shape \(n, 2\), got shape \(3,\)"):
        d.process_many([1.0, 2.0, 3.0])
    with pytest.raises(rcf.DimensionError, match=r"got shape \(2, 2, 1\)"):
        d.bootstrap(np.ones((2, 2, 1)))
    with pytest.raises(rcf.DimensionError, match=r"1-D array\), got an array of shape \(1, 2\)"):
        d.process([[1.0, 2.0]])
    f = rcf.RandomCutForest(3, seed=1)
    with pytest.raises(rcf.DimensionError, match=r"shape \(n, 3\), got shape \(4, 2\)"):
        f.update_many(np.ones((4, 2)))


def test_dataframe_columns_are_matched_by_name():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": 100 + rng.normal(size=600)})
    ordered = rcf.Detector(2, metric_names=["a", "b"], seed=4).process_many(frame)
    swapped = rcf.Detector(2, metric_names=["a", "b"], seed=4).process_many(frame[["b", "a"]])
    np.testing.assert_array_equal(ordered["score"], swapped["score"])
    with pytest.raises(rcf.DimensionError, match=r'columns \["a", "c"\] are not the detector\'s metric_names \["a", "b"\]'):
        rcf.Detector(2, metric_names=["a", "b"]).bootstrap(frame.rename(columns={"b": "c"}))


def test_flat_results_go_straight_into_pandas():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 2))
    x[700, 1] = 30.0
    d = rcf.Detector(2, metric_names=["torque", "battery"], seed=6)
    out = pd.DataFrame(d.process_many(x, flat=True))
    assert {"attribution_torque_high", "attribution_battery_low", "score", "is_anomaly"} <= set(out.columns)
    assert len(out) == 800 and out.loc[700, "is_anomaly"]
    assert out.loc[700, "attribution_battery_high"] > out.loc[700, "attribution_torque_high"]
    total = out.filter(like="attribution_").sum(axis=1)
    np.testing.assert_allclose(total[out.is_anomaly], out.score[out.is_anomaly], rtol=1e-9)
