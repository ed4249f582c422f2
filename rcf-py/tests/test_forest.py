import numpy as np
import pytest

import rcf


def test_process_many_finds_spikes_and_matches_per_point_process(sine):
    a = rcf.RandomCutForest(1, shingle_size=8, seed=1)
    b = rcf.RandomCutForest(1, shingle_size=8, seed=1)
    batch = a.process_many(sine.reshape(-1, 1))
    single = np.array([b.process([v]) for v in sine])
    assert batch.dtype == np.float64 and batch.shape == (4000,)
    np.testing.assert_array_equal(batch, single)  # same seed, same input: identical
    cutoff = np.quantile(batch, 0.99)
    assert batch[2500] > cutoff and batch[3500] > cutoff
    assert a.entries_seen == 4000 and a.is_ready


def test_score_does_not_learn_and_update_does(sine):
    f = rcf.RandomCutForest(1, shingle_size=4, seed=2)
    f.update_many(sine[:1000].reshape(-1, 1))
    before = f.to_bytes()
    f.score([0.5])
    f.attribution([0.5])
    assert f.to_bytes() == before
    f.update([0.5])
    assert f.entries_seen == 1001


def test_score_then_update_learns_what_process_does(sine):
    # update right after score of the same point reuses the score's walk: same forest, same scores
    a = rcf.RandomCutForest(1, shingle_size=8, seed=5)
    b = rcf.RandomCutForest(1, shingle_size=8, seed=5)
    scores = []
    for t, v in enumerate(sine[:3000]):
        scores.append(a.score([v]))
        if t % 5 == 0:
            a.score([v + 1.0])  # a score of another point in between: its walk is not reused
        a.update([v])
    expected = [b.process([v]) for v in sine[:3000]]
    np.testing.assert_array_equal(scores, expected)
    assert a.to_bytes() == b.to_bytes()


def test_attribution_sums_to_the_score_and_names_the_dimension(rng):
    f = rcf.RandomCutForest(3, seed=3)
    f.update_many(rng.normal(size=(2000, 3)))
    high, low = f.attribution([0.0, 0.0, 8.0])
    assert high.shape == low.shape == (3,)
    assert abs(high.sum() + low.sum() - f.score([0.0, 0.0, 8.0])) < 1e-9
    assert high[2] > 0.5 * (high.sum() + low.sum())


def test_score_many_uses_full_points_and_agrees_with_score(rng):
    f = rcf.RandomCutForest(4, seed=4)
    data = rng.normal(size=(3000, 4))
    f.update_many(data)
    # 100 rows: the live trees; 600 rows (256 or more): read-only copies of the trees
    for rows in (100, 600):
        queries = rng.normal(size=(rows, 4))
        queries[::7] = data[-rows // 7 - 1:][: len(queries[::7])]  # points in the sample too
        many = f.score_many(queries)
        np.testing.assert_array_equal(many, [f.score(q) for q in queries])


def test_inputs_accept_lists_float64_and_fortran_order(rng):
    f = rcf.RandomCutForest(2, seed=5)
    data = np.asfortranarray(rng.normal(size=(500, 2)))  # float64, Fortran order
    f.update_many(data)
    f.update_many(data.astype(np.float32).tolist())
    assert f.entries_seen == 1000
    assert f.score([0.1, 0.2]) == f.score(np.array([0.1, 0.2], dtype=np.float64))


def test_impute_fills_the_missing_value(rng):
    f = rcf.RandomCutForest(2, seed=6)
    a = rng.uniform(0, 10, size=3000)
    f.update_many(np.column_stack([a, 3 * a + 1]))
    filled = f.impute([5.0, np.nan])
    assert abs(filled[1] - 16.0) < 0.6


def test_repr_shows_the_configuration():
    r = repr(rcf.RandomCutForest(3, shingle_size=2, num_trees=10, seed=9))
    assert "input_dims=3" in r and "shingle_size=2" in r and "num_trees=10" in r and "seed=9" in r


def test_properties(rng):
    f = rcf.RandomCutForest(3, shingle_size=2, num_trees=10, sample_size=32, seed=1)
    assert (f.input_dims, f.dimensions, f.entries_seen, f.is_ready) == (3, 6, 0, False)
    small = f.memory_usage
    f.update_many(rng.normal(size=(200, 3)))
    assert f.is_ready and f.entries_seen == 200 and f.memory_usage >= small
    d = rcf.Detector(2, metric_names=["a", "b"])
    assert d.metric_names == ["a", "b"] and d.points_seen == 0
    assert "metric_names=[\"a\", \"b\"]" in repr(d)
