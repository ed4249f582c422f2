#!/usr/bin/env python3
"""W1 from Python, in one run: rcf's process_many (one call), rcf's per-point process (one
call per point), and, if installed, krcf's per-point loop; with the per-call overhead over Rust.

    make test-py                                  # builds .venv with rcf
    .venv/bin/pip install krcf                    # optional
    .venv/bin/python benches/py_w1.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

import rcf


def w1(n: int = 100_000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 200) + 0.05 * rng.standard_normal(n)
    spikes = rng.choice(np.arange(1000, n), 100, replace=False)
    x[spikes] += rng.uniform(3, 5, 100) * rng.choice([-1, 1], 100)
    return x.astype(np.float32)


def main() -> None:
    x = w1()
    n = x.size
    best: dict[str, float] = {}
    for _ in range(2):
        f = rcf.RandomCutForest(1, shingle_size=8, seed=1)
        t0 = time.perf_counter()
        f.process_many(x.reshape(-1, 1))
        best["rcf process_many"] = min(best.get("rcf process_many", 1e9), (time.perf_counter() - t0) * 1e6 / n)
        g = rcf.RandomCutForest(1, shingle_size=8, seed=1)
        t0 = time.perf_counter()
        for v in x:
            g.process([v])
        best["rcf process per point"] = min(best.get("rcf process per point", 1e9), (time.perf_counter() - t0) * 1e6 / n)
        try:
            import krcf

            k = krcf.RandomCutForest({"dimensions": 1, "shingle_size": 8, "num_trees": 50, "sample_size": 256,
                                      "output_after": 64, "random_seed": 1, "internal_shingling": True})
            t0 = time.perf_counter()
            for v in x:
                k.score([float(v)])
                k.update([float(v)])
            best["krcf per point"] = min(best.get("krcf per point", 1e9), (time.perf_counter() - t0) * 1e6 / n)
        except ImportError:
            pass
    print(f"W1 from Python, {n} points, best of 2 rounds (µs/point):")
    for name, us in best.items():
        print(f"  {name:<24} {us:7.2f}")
    print(f"process(x) per point minus process_many: {best['rcf process per point'] - best['rcf process_many']:.2f} µs")
    # the binding's own cost per call: score() on a forest that is not ready returns at once
    # after validating the input, so this is conversion + GIL release + locking only
    empty = rcf.RandomCutForest(1, shingle_size=8, seed=1)
    point = [0.5]
    calls = 200_000
    t0 = time.perf_counter()
    for _ in range(calls):
        empty.score(point)
    print(f"binding overhead per call (score on an unready forest): {(time.perf_counter() - t0) * 1e6 / calls:.2f} µs")
    if "krcf per point" in best:
        print(f"krcf per point / rcf process_many: {best['krcf per point'] / best['rcf process_many']:.2f}x")


SCORE_MANY = """
import time, numpy as np, rcf
rng = np.random.default_rng(4)
t = np.arange(20_007)
x = (np.sin(2 * np.pi * t / 200) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
pts = np.lib.stride_tricks.sliding_window_view(x, 8).copy()
f = rcf.RandomCutForest(8, seed=4)
f.update_many(pts)
best = min((lambda t0: (f.score_many(pts), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(5))
print(best * 1e6 / len(pts))
"""


def score_many_scaling() -> None:
    us = {}
    for threads in (1, 2):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, "-c", SCORE_MANY], env=env, capture_output=True, text=True, check=True)
        us[threads] = float(out.stdout)
    print(f"score_many from one Python call (W4-style, 20,000 points): 1 thread {us[1]:.2f} µs/point, "
          f"2 threads {us[2]:.2f} µs/point: {us[1] / us[2]:.2f}x")


if __name__ == "__main__":
    main()
    score_many_scaling()
