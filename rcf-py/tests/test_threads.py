import threading

import numpy as np

import rcf


def test_objects_are_safe_to_share_between_threads(rng):
    f = rcf.RandomCutForest(2, seed=5)
    f.update_many(rng.normal(size=(1000, 2)))
    queries = rng.normal(size=(2000, 2))
    expected = f.score_many(queries)
    errors = []

    def score():
        try:
            for _ in range(5):
                np.testing.assert_array_equal(f.score_many(queries), expected)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def learn():
        g = rcf.RandomCutForest(2, seed=6)
        try:
            g.update_many(rng.normal(size=(3000, 2)))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=score) for _ in range(4)] + [threading.Thread(target=learn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_concurrent_updates_to_one_forest_are_serialised(rng):
    f = rcf.RandomCutForest(1, seed=7)
    data = rng.normal(size=(500, 1))
    threads = [threading.Thread(target=f.update_many, args=(data,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert f.entries_seen == 2000
