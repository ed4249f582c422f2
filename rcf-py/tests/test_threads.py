import threading
import time

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


def test_waiting_for_a_busy_object_does_not_hold_the_gil(rng):
    # A thread blocked on an object's lock held the GIL: while one thread ran update_many, a
    # second caller waiting for the same forest stalled every Python thread (a counter thread
    # made 94,931 iterations instead of ~14 million). Locks are now taken after the GIL is
    # released, so a pure-Python thread keeps running while the caller waits. Margin: more
    # than 10x the stalled count, over 10x below what a free core does in that time.
    f = rcf.RandomCutForest(1, shingle_size=8, seed=1)
    data = rng.normal(size=(400_000, 1))
    started = threading.Event()
    done = threading.Event()
    count = [0]

    def busy():
        started.set()
        f.update_many(data)

    def counter():
        while not done.is_set():
            count[0] += 1

    worker = threading.Thread(target=busy)
    worker.start()
    started.wait()
    time.sleep(0.3)  # let the update take the lock (it runs for seconds); not a timed assertion
    ticker = threading.Thread(target=counter)
    ticker.start()
    before = count[0]
    seen = f.entries_seen  # waits for the update to finish, with the GIL released
    during = count[0] - before
    done.set()
    worker.join()
    ticker.join()
    assert seen == 400_000
    assert during > 1_000_000, during
