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


def test_lists_and_tuples_of_numbers_give_what_arrays_give(rng):
    # plain lists and tuples are read item by item, without making an array of them; every
    # other kind of item goes through numpy: the values, scores and errors must be the same
    x = rng.normal(size=(600, 3))
    by_list = rcf.RandomCutForest(3, shingle_size=2, seed=7)
    by_tuple = rcf.RandomCutForest(3, shingle_size=2, seed=7)
    by_array = rcf.RandomCutForest(3, shingle_size=2, seed=7)
    for row in x:
        a = by_list.process([float(v) for v in row])
        b = by_tuple.process(tuple(float(v) for v in row))
        c = by_array.process(row)
        assert a == b == c
    assert by_list.to_bytes() == by_array.to_bytes() == by_tuple.to_bytes()
    f = by_array
    probe = [0.25, -1.0, 2.0]
    expect = f.score(np.array(probe))
    for same in ([0.25, -1, 2], (0.25, -1.0, 2), [np.float64(0.25), -1.0, 2.0], ["0.25", "-1", "2"]):
        assert f.score(same) == expect, same
    # an int beyond float32 and one beyond float64: errors, as through numpy
    with pytest.raises(rcf.InputError, match="outside the float32 range"):
        f.score([0.0, 1e300, 0.0])
    with pytest.raises(rcf.InputError, match="outside the float32 range"):
        f.score([0, 10**300, 0])
    with pytest.raises(OverflowError):
        f.score([0, 10**400, 0])
    with pytest.raises(rcf.DimensionError, match=r"got an array of shape \(1, 3\)"):
        f.score([[0.25, -1.0, 2.0]])
    with pytest.raises(rcf.DimensionError):
        f.score([0.25, -1.0])
    with pytest.raises(rcf.DimensionError):
        f.score([])
    with pytest.raises(rcf.InputError):
        f.score([float("nan"), 0.0, 0.0])
    d = rcf.Detector(3, seed=1)
    assert d.process((1.0, 2.0, 3.0)).score == rcf.Detector(3, seed=1).process(np.array([1.0, 2.0, 3.0])).score
