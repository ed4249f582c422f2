#!/usr/bin/env python3
"""W1 side by side, in one run: every RCF installable here against rcf, native and from Python,
on the same data, as ratios.

    make test-py                                   # .venv with rcf
    .venv/bin/pip install krcf rcf3                # the peers (benchmark only)
    .venv/bin/python benches/krcf_w1.py

W1 (benchmarks.md §7): 100,000 points of sin(2πt/200) + N(0, 0.05) with 100 spikes; 1 input,
internal shingle 8, 50 trees, 256 samples, default time decay; score then update per point.

* krcf 0.4 (PyPI; wraps AWS's Rust rcflib): `score` then `update`, per point from Python;
* rcf3 (PyPI; an independent Rust RCF with Python bindings): `update_and_score` per point;
* rcf from Python: `process(x)` per point (the peers' way), and `process_many` (one call);
* rcf native (the `report` binary: Rust, no Python), at the default box cache and with every box
  cached (`box_cache_min_mass` 2).

Rounds alternate between all of them and the best round of each counts (this machine is noisy).
Each also reports how many of the 100 spikes it ranks in its top 1 %, a check that the scores
mean the same thing.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import rcf

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2


def cargo_report(*args: str) -> str:
    cmd = ["cargo", "run", "--release", "-q", "-p", "rcf-benches", "--bin", "report", "--", *args]
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def timed(run: Callable[[], list[float]], n: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    scores = run()
    return (time.perf_counter() - start) * 1e6 / n, scores


def krcf_run(values: list[float]) -> Callable[[], list[float]]:
    import krcf

    def run() -> list[float]:
        forest = krcf.RandomCutForest(
            {
                "dimensions": 1,  # krcf: values per update; the forest works on 1 × 8
                "shingle_size": 8,
                "num_trees": 50,
                "sample_size": 256,
                "output_after": 64,
                "random_seed": 1,
                "internal_shingling": True,
                "parallel_execution_enabled": False,
                "bounding_box_cache_fraction": 1.0,
                "initial_accept_fraction": 0.125,
            }
        )
        out = []
        for v in values:
            point = [v]
            out.append(forest.score(point))
            forest.update(point)
        return out

    return run


def rcf3_run(values: list[float]) -> Callable[[], list[float]]:
    import rcf3

    def run() -> list[float]:
        forest = rcf3.Forest(1, shingle_size=8, num_trees=50, capacity=256, seed=1)
        return [forest.update_and_score([v]) for v in values]

    return run


def rcf_per_point(values: list[float]) -> Callable[[], list[float]]:
    def run() -> list[float]:
        forest = rcf.RandomCutForest(1, shingle_size=8, num_trees=50, sample_size=256, seed=1)
        return [forest.process([v]) for v in values]

    return run


def rcf_batch(values: list[float]) -> Callable[[], list[float]]:
    x = np.asarray(values, dtype=np.float32).reshape(-1, 1)

    def run() -> list[float]:
        forest = rcf.RandomCutForest(1, shingle_size=8, num_trees=50, sample_size=256, seed=1)
        return list(forest.process_many(x))

    return run


def top1_hits(scores: list[float], spikes: list[int]) -> int:
    ranked = sorted(scores, reverse=True)
    cutoff = ranked[len(ranked) // 100 - 1]
    return sum(1 for i in spikes if scores[i] >= cutoff)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "w1.csv"
        cargo_report("w1-csv", str(csv))
        values = [float(line) for line in csv.read_text().split()]
        spikes = [int(i) for i in cargo_report("w1-spikes").split()]
        n = len(values)
        python: dict[str, Callable[[], list[float]]] = {}
        for name, make in [("krcf", krcf_run), ("rcf3", rcf3_run)]:
            try:
                python[name] = make(values)
            except ImportError:
                print(f"({name} is not installed: pip install {name})", file=sys.stderr)
        python["rcf process(x) per point"] = rcf_per_point(values)
        python["rcf process_many"] = rcf_batch(values)
        best: dict[str, float] = {}
        hits: dict[str, int] = {}
        for _ in range(ROUNDS):
            for name, arg in [("rcf native, default", ()), ("rcf native, box cache 2", ("2",))]:
                us = float(cargo_report("w1-time", str(csv), *arg))
                best[name] = min(best.get(name, float("inf")), us)
            for name, run in python.items():
                us, scores = timed(run, n)
                best[name] = min(best.get(name, float("inf")), us)
                hits[name] = top1_hits(scores, spikes)
    print(f"W1, {n} points, best of {ROUNDS} alternating rounds:")
    print(f"  {'':<26} {'µs/point':>9} {'vs krcf':>8} {'vs rcf3':>8}  spikes in top 1 %")
    for name, us in best.items():
        vk = f"{best['krcf'] / us:7.2f}x" if "krcf" in best else ""
        vr = f"{best['rcf3'] / us:7.2f}x" if "rcf3" in best else ""
        h = f"{hits[name]}/{len(spikes)}" if name in hits else ""
        print(f"  {name:<26} {us:9.2f} {vk:>8} {vr:>8}  {h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
