import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def sine(rng):
    """W1-style series: sin(2πt/200) + N(0, 0.05), spikes of +4 at 2500 and 3500."""
    t = np.arange(4000)
    x = (np.sin(2 * np.pi * t / 200) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    x[[2500, 3500]] += 4.0
    return x
