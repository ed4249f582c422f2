import copy
import pickle

import numpy as np

import rcf


def test_forest_pickle_copy_deepcopy_continue_identically(sine):
    f = rcf.RandomCutForest(1, shingle_size=4, seed=3)
    f.process_many(sine[:2000].reshape(-1, 1))
    rest = sine[2000:].reshape(-1, 1)
    clones = [pickle.loads(pickle.dumps(f)), copy.copy(f), copy.deepcopy(f), rcf.RandomCutForest.from_bytes(f.to_bytes())]
    expected = f.process_many(rest)
    for c in clones:
        assert isinstance(c, rcf.RandomCutForest)
        np.testing.assert_array_equal(c.process_many(rest), expected)


def test_detector_pickle_continues_identically(rng):
    d = rcf.Detector(2, metric_names=["a", "b"], seed=4)
    d.process_many(rng.normal(size=(1000, 2)).astype(np.float32))
    later = rng.normal(size=(500, 2)).astype(np.float32)
    later[250] += 10
    restored = pickle.loads(pickle.dumps(d))
    assert restored.metric_names == ["a", "b"]
    ours, theirs = d.process_many(later), restored.process_many(later)
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])
