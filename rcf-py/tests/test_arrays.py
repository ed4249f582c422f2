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
