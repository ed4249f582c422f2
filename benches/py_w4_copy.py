#!/usr/bin/env python3
"""What copying a batch costs a W4 call from Python (BENCHMARKS.md, "From Python").

    .venv/bin/python benches/py_w4_copy.py

A forest with W4's settings (1 input, shingle 8, 50 trees, 256 samples) trained on 20,000 W1
points scores 100,000 random 8-d points with one `score_many` call, given float32 and float64
arrays (interleaved, best of 6 each), and times the conversions the binding makes of such a
batch (float64 by numpy, float32 by rcf) on their own.
"""

import time

import numpy as np

import rcf

rng = np.random.default_rng(0)
t = np.arange(20_000)
forest = rcf.RandomCutForest(1, shingle_size=8, num_trees=50, sample_size=256, seed=1)
forest.update_many((np.sin(2 * np.pi * t / 200) + 0.05 * rng.standard_normal(t.size)).reshape(-1, 1))
pts32 = rng.standard_normal((100_000, 8)).astype(np.float32)
pts64 = pts32.astype(np.float64)
best: dict[str, float] = {}
for _ in range(6):
    for name, arr in [("float32", pts32), ("float64", pts64)]:
        t0 = time.perf_counter()
        forest.score_many(arr)
        best[name] = min(best.get(name, 1e9), time.perf_counter() - t0)
assert np.array_equal(forest.score_many(pts32), forest.score_many(pts64))
copies = 1e9
for _ in range(20):
    t0 = time.perf_counter()
    np.asarray(pts32, dtype=np.float64).astype(np.float32)
    copies = min(copies, time.perf_counter() - t0)
for name, secs in best.items():
    print(f"score_many, 100,000 points given as {name}: {secs * 1e6 / 100_000:.2f} us/point ({secs * 1e3:.1f} ms)")
print(f"the conversions alone: {copies * 1e3:.2f} ms ({100 * copies / best['float32']:.2f} % of the call)")
