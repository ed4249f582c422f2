import copy
import pickle

import numpy as np
import pytest

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


def _states(rng):
    """Every class in every state: fresh, warming, fitted / ready, with an open event."""
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    fresh = rcf.RandomCutForest(2, seed=1)
    trained = rcf.RandomCutForest(2, shingle_size=2, seed=1)
    trained.update_many(x)
    fitted = rcf.RandomCutForest(2, seed=1).fit(x, contamination=0.02)
    detectors = [rcf.Detector(2, seed=2)]
    warming = rcf.Detector(2, seed=2)
    warming.process_many(x[:5])
    detectors.append(warming)
    ready = rcf.Detector(2, seed=2, metric_names=["a", "b"], ignore_near_expected={"above": {"ratio": 0.1}})
    ready.bootstrap(x)
    in_event = copy.copy(ready)
    verdict = in_event.process([40.0, 0.0])
    assert verdict.is_anomaly and verdict.in_event
    detectors += [ready, in_event]
    quiet = ready.process([0.0, 0.0])
    return [fresh, trained, fitted], detectors, [verdict, quiet]


def test_every_object_pickles_in_every_state(rng):
    forests, detectors, verdicts = _states(rng)
    probe = np.array([[0.1, 0.2], [9.0, 9.0]], dtype=np.float32)
    for f in forests:
        for clone in (pickle.loads(pickle.dumps(f)), copy.copy(f), copy.deepcopy(f)):
            assert clone.threshold_ == f.threshold_
            assert clone.to_bytes() == f.to_bytes()
            if f.threshold_ is not None:  # a fitted forest still predicts after pickling
                np.testing.assert_array_equal(clone.predict(probe), f.predict(probe))
    for d in detectors:
        for clone in (pickle.loads(pickle.dumps(d)), copy.copy(d), copy.deepcopy(d)):
            assert clone.to_bytes() == d.to_bytes()
            assert clone.process([3.0, 1.0]) == copy.copy(d).process([3.0, 1.0])
    for v in verdicts:
        for clone in (pickle.loads(pickle.dumps(v)), copy.copy(v), copy.deepcopy(v)):
            assert clone == v and clone is not v
            assert (clone.attribution, clone.expected, clone.suppressed) == (v.attribution, v.expected, v.suppressed)
    assert verdicts[0] != verdicts[1]


def test_digests_restore_the_same_objects_and_vouch_for_their_own_bytes_only(rng):
    forests, detectors, _ = _states(rng)
    probe = rng.normal(size=(300, 2)).astype(np.float32)
    probe[100] += 12
    for obj, cls, other_kind in [(forests[1], rcf.RandomCutForest, detectors[3]), (detectors[3], rcf.Detector, forests[1])]:
        data, digest = obj.to_bytes_with_digest()
        assert isinstance(digest, rcf.StateDigest)
        assert data == obj.to_bytes()
        fast, checked = cls.from_bytes(data, digest), cls.from_bytes(data)
        assert fast.to_bytes() == data
        if cls is rcf.RandomCutForest:
            np.testing.assert_array_equal(fast.process_many(probe), checked.process_many(probe))
        else:
            ours, theirs = fast.process_many(probe), checked.process_many(probe)
            for key in ours:
                np.testing.assert_array_equal(ours[key], theirs[key])
        # changed bytes take the full check: a flipped bit in the payload is a StateError
        bad = bytearray(data)
        bad[-1] ^= 0x40
        with pytest.raises(rcf.StateError):
            cls.from_bytes(bytes(bad), digest)
        # the other class's digest is refused by name, and a digest does not pickle
        _, wrong = other_kind.to_bytes_with_digest()
        with pytest.raises(TypeError, match="digest"):
            cls.from_bytes(data, wrong)
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(digest)
        assert digest == obj.to_bytes_with_digest()[1] and digest != wrong
