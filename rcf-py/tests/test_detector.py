import numpy as np

import rcf


def telemetry(n, rng):
    t = np.arange(n)
    return np.column_stack(
        [
            20 + 5 * np.sin(t / 40) + 0.3 * rng.standard_normal(n),
            100 - (t % 1000) / 20 + 0.2 * rng.standard_normal(n),
            50 + 10 * np.sin(t / 300) + rng.standard_normal(n),
        ]
    ).astype(np.float32)


def test_bootstrap_then_first_live_point_gets_an_explained_verdict(rng):
    d = rcf.Detector(3, metric_names=["torque", "battery", "msg_rate"], seed=1)
    assert d.points_needed == 77
    d.bootstrap(telemetry(2000, rng))
    x = telemetry(2001, rng)[-1].copy()
    x[2] += 60
    v = d.process(x)
    assert isinstance(v, rcf.Verdict)
    assert v.state == "ready" and v.is_anomaly and 0 < v.grade <= 1 and 0 < v.confidence <= 1
    top = max(v.attribution, key=lambda m: sum(v.attribution[m]))
    assert top == "msg_rate"
    high, low = v.attribution["msg_rate"]
    assert high > low
    assert abs(sum(h + l for h, l in v.attribution.values()) - v.score) < 1e-9
    assert "msg_rate" in v.expected


def test_process_many_returns_arrays(rng):
    d = rcf.Detector(3, seed=2)
    data = telemetry(3000, rng)
    data[2500, 0] += 40
    out = d.process_many(data)
    assert set(out) == {"score", "grade", "is_anomaly", "confidence", "threshold", "p_value", "attribution"}
    assert out["score"].shape == (3000,) and out["is_anomaly"].dtype == np.bool_
    assert out["attribution"].shape == (3000, 3, 2)
    assert out["is_anomaly"][2500]
    assert abs(out["attribution"][2500].sum() - out["score"][2500]) < 1e-9
    assert out["attribution"][10].sum() == 0.0  # ordinary points carry no attribution


def test_missing_values_are_imputed(rng):
    d = rcf.Detector(3, seed=3)
    d.bootstrap(telemetry(2000, rng))
    v = d.process([20.0, np.nan, 50.0])
    assert v.imputed == 1 and np.isfinite(v.score)


def test_sensitivity_forms():
    for s in ["low", "medium", "HIGH", 3.5, {"rate": 0.01}]:
        rcf.Detector(1, sensitivity=s)
