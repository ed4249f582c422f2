import numpy as np
import pytest

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
    assert v.in_event  # the alarm opens an event


def test_in_event_outlasts_the_alarm_of_a_lasting_anomaly():
    gen = np.random.default_rng(5)
    t = np.arange(3000)
    x = (20 + 5 * np.sin(t / 40) + 0.3 * gen.standard_normal(3000))[:, None]
    x[2000:2200] += 15  # stuck high for 200 points, above the whole normal range
    out = rcf.Detector(1, sample_size=128, seed=5).process_many(x)
    alarms = np.flatnonzero(out["is_anomaly"][2000:2200])
    assert alarms.size >= 1 and alarms[0] < 10
    # one alarm per event, but the whole segment is in the event
    assert out["in_event"][2000 + alarms[0] : 2200].all()
    assert out["in_event"][2300:].mean() < 0.05


def test_process_many_returns_arrays(rng):
    d = rcf.Detector(3, seed=2)
    data = telemetry(3000, rng)
    data[2500, 0] += 40
    out = d.process_many(data)
    assert set(out) == {"score", "grade", "is_anomaly", "in_event", "confidence", "threshold", "p_value", "attribution"}
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


def test_set_sensitivity_moves_the_threshold_and_keeps_the_model(rng):
    x = telemetry(2001, rng)
    a = rcf.Detector(3, seed=4)
    a.bootstrap(x[:2000])
    b = rcf.Detector.from_bytes(a.to_bytes())
    for bad in [0.5, "extreme", {"rate": 0.9}]:
        with pytest.raises(rcf.ConfigError, match="sensitivity"):
            b.set_sensitivity(bad)
    assert b.to_bytes() == a.to_bytes()  # a rejected call changes nothing
    b.set_sensitivity("high")
    assert b.points_seen == a.points_seen
    va, vb = a.process(x[2000]), b.process(x[2000])
    assert va.score == vb.score and vb.threshold > va.threshold
    assert "High" in repr(rcf.Detector.from_bytes(b.to_bytes()))


def test_without_p_values_the_verdicts_are_the_same_in_less_memory(rng):
    x = telemetry(1500, rng)
    x[1200, 2] += 40  # a spike, so the comparison covers an alarm
    full = rcf.Detector(3, seed=5)
    small = rcf.Detector(3, seed=5, p_values=False)
    assert full.p_values and not small.p_values
    a, b = full.process_many(x), small.process_many(x)
    assert a["is_anomaly"][1200] and a["is_anomaly"].sum() >= 1
    for k in ("score", "threshold", "is_anomaly", "grade", "confidence"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    scored = a["score"] > 0
    assert np.isfinite(a["p_value"][scored]).all() and np.isnan(b["p_value"][scored]).all()
    assert small.memory_usage + 1025 * 8 <= full.memory_usage
    back = rcf.Detector.from_bytes(small.to_bytes())
    assert not back.p_values and len(small.to_bytes()) + 1024 * 8 <= len(full.to_bytes())
    # a target anomaly rate reads the distribution: refused by name, nothing changed
    with pytest.raises(rcf.ConfigError, match="p_values"):
        rcf.Detector(3, p_values=False, sensitivity={"rate": 0.01})
    with pytest.raises(ValueError, match="p_values"):
        back.set_sensitivity({"rate": 0.01})
    assert back.to_bytes() == small.to_bytes()


def test_holdoff_and_repeat_settings():
    gen = np.random.default_rng(9)
    t = np.arange(3000)
    x = (20 + 5 * np.sin(2 * np.pi * t / 100) + 0.3 * gen.standard_normal(3000))[:, None]
    x[t % 300 == 150] += 12  # a nightly spike, same phase of the cycle every time
    x[2400:2430] += 8  # a short level shift, between two nightly spikes

    def alarms(**kw):
        return rcf.Detector(1, seed=9, **kw).process_many(x)["is_anomaly"]

    default = alarms()
    # the level shift is reported once; without the hold-off its aftermath alarms again
    assert default[2400:2430].sum() == 1
    assert alarms(holdoff=0)[2400:2500].sum() > 1
    # the nightly spikes are recognised once the detector has seen a few
    nightly = np.flatnonzero(t % 300 == 150)
    late = nightly[nightly > 1000]
    assert default[late].sum() <= 2
    assert alarms(repeat_tolerance=0.0)[late].sum() >= len(late) - 1
    d = rcf.Detector(1, seed=9)
    reasons = {d.process(row).suppressed for row in x}
    assert {"holdoff", "repeat"} <= reasons
    assert reasons <= {None, "holdoff", "repeat", "near_expected"}


def test_bad_holdoff_and_repeat_settings_are_config_errors():
    with pytest.raises(rcf.ConfigError, match="repeat_tolerance"):
        rcf.Detector(1, repeat_tolerance=1.5)
    with pytest.raises(ValueError, match="holdoff"):
        rcf.Detector(1, holdoff=10**9)
    with pytest.raises(OverflowError):
        rcf.Detector(1, holdoff=-1)


def test_every_builder_option_is_available():
    rng = np.random.default_rng(8)
    x = 50 + rng.normal(size=(1500, 1))
    for normalization in ("normalize", "none", "difference", "normalize_difference"):
        d = rcf.Detector(1, normalization=normalization, normalize_after=20, box_cache_min_mass=4, seed=1)
        d.process_many(x)
    with pytest.raises(rcf.ConfigError, match="`normalization`"):
        rcf.Detector(1, normalization="zscore")
    with pytest.raises(rcf.ConfigError, match="`normalize_after`"):
        rcf.Detector(1, normalize_after=0)
    with pytest.raises(rcf.ConfigError, match="`ignore_near_expected`"):
        rcf.Detector(1, ignore_near_expected={"sideways": {"ratio": 0.1}})
    with pytest.raises(rcf.ConfigError, match="`ignore_near_expected`"):
        rcf.Detector(1, ignore_near_expected={"above": {"ratio": -1.0}})
    # a generous band above the expected value suppresses a modest rise as near_expected
    banded = rcf.Detector(1, ignore_near_expected={"above": {"ratio": 0.5}}, seed=1)
    banded.bootstrap(x)
    plain = rcf.Detector(1, seed=1)
    plain.bootstrap(x)
    v_plain, v_banded = plain.process([58.0]), banded.process([58.0])
    assert v_plain.is_anomaly
    assert not v_banded.is_anomaly and v_banded.suppressed == "near_expected"
