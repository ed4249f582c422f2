"""Stream synthetic fleet telemetry through an rcf.Detector and draw what it found.

    python rcf-py/examples/fleet_telemetry.py [output.png]

One simulated device reports torque, battery and message rate once a minute for three days;
a torque spike, a message-rate burst (a rogue agent) and a stuck battery sensor are injected.
The detector is bootstrapped from the first day, then streams the rest. The figure shows the
series with the alarms, the score against its threshold, and each alarm's attribution by
metric.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np

import rcf

METRICS = ["torque", "battery", "msg_rate"]
DAY = 1440


def simulate(seed: int = 3) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    t = np.arange(3 * DAY)
    torque = 20 + 4 * np.sin(t / 30) + 0.4 * rng.standard_normal(t.size)
    battery = 100 - (t % 720) / 9 + 0.3 * rng.standard_normal(t.size)
    rate = 60 + 15 * np.sin(2 * np.pi * t / DAY) + 2 * rng.standard_normal(t.size)
    events = {"torque spike": (2000, 1), "message-rate burst": (2600, 30), "stuck battery": (3800, 120)}
    torque[2000] += 25
    rate[2600:2630] *= 4
    battery[3800:3920] = battery[3800]
    return np.column_stack([torque, battery, rate]).astype(np.float32), events


def main(out: str = "fleet_telemetry.png") -> dict[str, np.ndarray]:
    data, events = simulate()
    detector = rcf.Detector(3, metric_names=METRICS, shingle_size=4, seed=1)
    detector.bootstrap(data[:DAY])
    verdicts = detector.process_many(data[DAY:])
    t = np.arange(DAY, data.shape[0])
    alarms = np.flatnonzero(verdicts["is_anomaly"])

    fig, axes = plt.subplots(5, 1, figsize=(11, 11), sharex=True, gridspec_kw={"height_ratios": [1, 1, 1, 1.2, 1]})
    for i, name in enumerate(METRICS):
        axes[i].plot(t, data[DAY:, i], lw=0.6, color="0.3")
        axes[i].scatter(t[alarms], data[DAY:, i][alarms], color="crimson", s=18, zorder=3, label="alarm")
        axes[i].set_ylabel(name)
        for label, (start, length) in events.items():
            axes[i].axvspan(start, start + length, color="gold", alpha=0.25)
    axes[0].legend(loc="upper right")
    axes[3].plot(t, verdicts["score"], lw=0.6, label="score")
    axes[3].plot(t, verdicts["threshold"], lw=0.8, color="crimson", label="threshold")
    axes[3].set_ylabel("score")
    axes[3].legend(loc="upper right")
    attribution = verdicts["attribution"].sum(axis=2)  # high + low per metric
    bottom = np.zeros(alarms.size)
    for i, name in enumerate(METRICS):
        axes[4].bar(t[alarms], attribution[alarms, i], bottom=bottom, width=12, label=name)
        bottom += attribution[alarms, i]
    axes[4].set_ylabel("attribution")
    axes[4].set_xlabel("minute (shaded: injected anomalies)")
    axes[4].legend(loc="upper right")
    fig.suptitle("rcf.Detector on one device: alarms, scores and what drove them")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)

    for label, (start, length) in events.items():
        hit = [a for a in t[alarms] if start <= a < start + length + 10]
        print(f"{label:>20}: {'alarm at minute ' + str(hit[0]) if hit else 'missed'}")
    print(f"{alarms.size} alarms in {t.size} live minutes; figure written to {out}")
    return verdicts


if __name__ == "__main__":
    main(*sys.argv[1:2])
