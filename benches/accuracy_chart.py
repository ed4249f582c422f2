#!/usr/bin/env python3
"""The NAB chart of BENCHMARKS.md: our detector (measured now, by the accuracy runner) next to
NAB's published scoreboard (benchmarks.md §5).

    .venv/bin/python benches/accuracy_chart.py [benches/results/accuracy-nab.png]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent

# NAB scoreboard (numenta/NAB README / final_results.json): standard, low FP, low FN
PUBLISHED = {
    "ARTime": (74.9, 65.2, 80.4),
    "Numenta HTM": (70.1, 63.1, 74.3),
    "CAD OSE": (69.9, 67.0, 73.2),
    "htm.java": (65.5, 53.3, 70.4),
    "NumentaTM": (64.6, 56.7, 69.2),
    "earthgecko Skyline": (58.2, 46.2, 63.8),
    "KNN CAD": (58.0, 43.4, 64.8),
    "Relative Entropy": (54.6, 47.6, 58.8),
    "HTM without likelihood": (53.6, 34.2, 61.9),
    "AWS RCF (Kinesis)": (51.7, 38.4, 59.7),
    "Twitter ADVec": (47.1, 33.6, 53.5),
    "Windowed Gaussian": (39.6, 20.9, 47.4),
    "Bayesian Changepoint": (17.7, 3.2, 32.2),
}


def ours() -> tuple[float, float, float]:
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "rcf-benches", "--bin", "accuracy", "--", "nab"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"standard=([-\d.]+) reward_low_FP_rate=([-\d.]+) reward_low_FN_rate=([-\d.]+)", out)
    if not m:
        raise SystemExit(f"unexpected accuracy output: {out!r}")
    return tuple(float(v) for v in m.groups())  # type: ignore[return-value]


def main(out: str = str(ROOT / "benches/results/accuracy-nab.png")) -> None:
    rows = dict(PUBLISHED)
    rows["rcf Detector (defaults)"] = ours()
    names = sorted(rows, key=lambda n: rows[n][0])
    fig, ax = plt.subplots(figsize=(9, 6))
    y = range(len(names))
    for k, (label, colour) in enumerate([("standard", "tab:blue"), ("reward low FP", "tab:orange"), ("reward low FN", "tab:green")]):
        ax.barh([i + (k - 1) * 0.27 for i in y], [rows[n][k] for n in names], height=0.27, label=label, color=colour)
    ax.set_yticks(list(y))
    ax.set_yticklabels(names)
    for tick, n in zip(ax.get_yticklabels(), names):
        if n.startswith("rcf"):
            tick.set_fontweight("bold")
    ax.set_xlabel("NAB score (0 = null detector, 100 = perfect)")
    ax.set_title("NAB v1.1: rcf's Detector against the published scoreboard")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"{out}: rcf {rows['rcf Detector (defaults)']}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
