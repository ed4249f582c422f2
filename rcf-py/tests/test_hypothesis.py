"""Nothing reachable from Python panics: arbitrary shapes, dtypes and values give a result or
an rcf error (pyo3 turns a Rust panic into PanicException, a BaseException, which would fail
these tests).

Derandomized: every run tries the same examples, so a failure reproduces and CI is not a
lottery; raise max_examples locally to explore more."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rcf

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(2**31), 2**31 - 1).map(float),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=None,
    ),
    st.integers(1, 4),
    st.integers(1, 3),
)
def test_forest_methods_never_panic(arr, dims, shingle):
    f = rcf.RandomCutForest(dims, shingle_size=shingle, num_trees=3, sample_size=8, seed=0)
    f.update_many(np.random.default_rng(0).normal(size=(40, dims)))
    for method in (f.update, f.score, f.process, f.attribution, f.impute, f.update_many, f.score_many,
                   f.process_many, f.score_samples):
        try:
            method(arr)
        except (rcf.RcfError, ValueError, TypeError):
            pass  # a clear error is the expected outcome for most of these inputs


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(values, min_size=0, max_size=6), st.integers(1, 3))
def test_detector_process_never_panics(point, dims):
    d = rcf.Detector(dims, num_trees=3, sample_size=8, seed=0)
    d.bootstrap(np.random.default_rng(1).normal(size=(100, dims)))
    try:
        v = d.process(point)
        assert np.isfinite(v.score) and 0.0 <= v.confidence <= 1.0
    except (rcf.RcfError, ValueError, TypeError):
        pass


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_state_errors(data):
    for cls in (rcf.RandomCutForest, rcf.Detector):
        try:
            cls.from_bytes(data)
        except rcf.StateError:
            pass
