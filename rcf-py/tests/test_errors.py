import numpy as np
import pytest

import rcf


def test_exceptions_subclass_value_error_where_apt():
    for cls in (rcf.ConfigError, rcf.DimensionError, rcf.InputError):
        assert issubclass(cls, rcf.RcfError) and issubclass(cls, ValueError)
    assert issubclass(rcf.StateError, rcf.RcfError) and not issubclass(rcf.StateError, ValueError)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"input_dims": 0}, "input_dims"),
        ({"input_dims": 1, "num_trees": 0}, "num_trees"),
        ({"input_dims": 1, "sample_size": 1}, "sample_size"),
        ({"input_dims": 1, "time_decay": float("nan")}, "time_decay"),
        ({"input_dims": 1, "shingle_size": 0}, "shingle_size"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, name):
    with pytest.raises(rcf.ConfigError, match=f"`{name}`"):
        rcf.RandomCutForest(**kwargs)


def test_wrong_shapes_and_values():
    f = rcf.RandomCutForest(2, seed=1)
    with pytest.raises(rcf.DimensionError, match="expected 2 values per point, got 3"):
        f.update([1.0, 2.0, 3.0])
    with pytest.raises(rcf.DimensionError):
        f.update_many(np.zeros((5, 3)))
    with pytest.raises(rcf.InputError, match="NaN"):
        f.update([1.0, np.nan])
    with pytest.raises(rcf.InputError):
        f.update_many(np.array([[1.0, np.inf]]))
    with pytest.raises(rcf.DimensionError, match="empty"):
        f.score_many(np.zeros((0, 2)))
    with pytest.raises(ValueError):  # numpy refuses the conversion before rcf sees it
        f.update(["a", "b"])
    assert f.entries_seen == 0  # nothing was learned from rejected input
    d = rcf.Detector(2)
    with pytest.raises(rcf.ConfigError, match="metric_names"):
        rcf.Detector(2, metric_names=["a"])
    with pytest.raises(rcf.ConfigError, match="sensitivity"):
        rcf.Detector(2, sensitivity="extreme")
    with pytest.raises(rcf.InputError, match="finite"):
        d.process([1.0, np.inf])


def test_corrupt_state_raises_state_error():
    f = rcf.RandomCutForest(1, seed=1)
    f.update_many(np.arange(300, dtype=np.float32).reshape(-1, 1) % 7)
    data = f.to_bytes()
    for bad in (b"", b"not a forest", data[:-5], data[:30] + bytes([data[30] ^ 1]) + data[31:]):
        with pytest.raises(rcf.StateError):
            rcf.RandomCutForest.from_bytes(bad)
    with pytest.raises(rcf.StateError):
        rcf.Detector.from_bytes(data)  # a forest is not a detector checkpoint


def test_values_beyond_float32_are_a_clear_error():
    f = rcf.RandomCutForest(2, seed=1)
    with pytest.raises(rcf.InputError, match="outside the float32 range"):
        f.update([1e39, 0.0])
    with pytest.raises(rcf.InputError, match="row 1, column 0"):
        f.update_many(np.array([[0.0, 0.0], [-1e300, 0.0]]))


def test_a_rejected_batch_changes_nothing():
    # Detector.process_many([[1,2,3],[1,inf,3]]) learned row 0 and then raised
    d = rcf.Detector(3, seed=1)
    d.process_many(np.ones((50, 3)))
    before = d.to_bytes()
    bad = [[1, 2, 3], [1, float("inf"), 3]]
    for call in (d.process_many, d.bootstrap):
        with pytest.raises(rcf.InputError):
            call(bad)
        assert d.points_seen == 50
        assert d.to_bytes() == before
    f = rcf.RandomCutForest(3, seed=1)
    f.update_many(np.ones((50, 3)))
    before = f.to_bytes()
    for call in (f.update_many, f.process_many):
        with pytest.raises(rcf.InputError):
            call(bad)
        assert f.entries_seen == 50
        assert f.to_bytes() == before


def _reseal(state: bytes, payload: bytes) -> bytes:
    """The state envelope (magic, version, length, CRC-32) around a new payload."""
    import struct
    import zlib

    return state[:12] + struct.pack("<QI", len(payload), zlib.crc32(payload)) + payload


@pytest.mark.parametrize("kind", ["forest", "detector"])
def test_resealed_mutations_of_state_bytes_raise_or_load_never_crash(kind):
    # a crafted state with a valid checksum aborted the interpreter (a 137 GB allocation);
    # every mutation now either loads or raises StateError
    rng = np.random.default_rng(11)
    if kind == "forest":
        obj = rcf.RandomCutForest(2, shingle_size=2, num_trees=3, sample_size=16, seed=1)
        obj.update_many(rng.normal(size=(300, 2)))
        load = rcf.RandomCutForest.from_bytes
    else:
        obj = rcf.Detector(2, sample_size=16, num_trees=3, seed=1)
        obj.process_many(rng.normal(size=(300, 2)))
        load = rcf.Detector.from_bytes
    state = obj.to_bytes()
    payload = bytearray(state[24:])
    loaded = refused = 0
    for _ in range(1500):
        p = bytearray(payload)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(p)))
            p[i] = int(rng.integers(256))
        if rng.random() < 0.2:
            p = p[: int(rng.integers(len(p)))]
        try:
            load(_reseal(state, bytes(p)))
            loaded += 1
        except rcf.StateError:
            refused += 1
    assert loaded + refused == 1500 and refused > 0
