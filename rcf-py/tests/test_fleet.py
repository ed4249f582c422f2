"""rcf.Fleet: Device Defender profiles, datapoints from dicts and DataFrames, events, queries."""

import pickle
import threading

import pandas as pd
import pytest

import rcf

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

PROFILE = {
    "securityProfileName": "smart-lights",
    "behaviors": [
        {
            "name": "msgs",
            "metric": "aws:num-messages-sent",
            "criteria": {
                "comparisonOperator": "less-than-equals",
                "value": {"count": 1000},
                "durationSeconds": 300,
                "consecutiveDatapointsToAlarm": 2,
                "consecutiveDatapointsToClear": 2,
            },
        },
        {
            "name": "no-telnet",
            "metric": "aws:listening-tcp-ports",
            "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}},
        },
    ],
}


def msgs(thing, counts):
    return [
        {"thing": thing, "metric": "aws:num-messages-sent", "value": c, "timestamp": T0 + 300 * w + 5}
        for w, c in enumerate(counts)
    ]


def test_rules_alarm_and_clear_with_device_defender_events():
    fleet = rcf.Fleet(PROFILE, grace_seconds=0)
    events = fleet.ingest(msgs("dev-1", [1200, 1500, 100, 100, 100]))
    assert [e.violation_event_type for e in events] == ["in-alarm", "alarm-cleared"]
    first = events[0]
    assert first.thing_name == "dev-1" and first.behavior_name == "msgs"
    assert first.criteria_type == "STATIC" and first.score is None
    d = first.to_dict()
    assert d["metricValue"] == {"count": 1500}
    assert d["behavior"] == PROFILE["behaviors"][0]
    assert d["violationId"] == events[1].violation_id
    assert fleet.counters["in_alarm"] == 1
    stored = fleet.list_violation_events()
    assert [e["violationEventType"] for e in stored] == ["in-alarm", "alarm-cleared"]
    assert fleet.list_active_violations() == []
    values = fleet.list_metric_values("dev-1", "aws:num-messages-sent")
    assert [v["value"]["count"] for v in values] == [1200, 1500, 100, 100, 100]


def test_dataframe_with_datetimes_and_topics():
    fleet = rcf.Fleet(PROFILE, grace_seconds=0)
    df = pd.DataFrame(
        {
            "thing": ["cam-1", "cam-1", "cam-2"],
            "metric": ["aws:listening-tcp-ports"] * 3,
            "value": [{"ports": [443]}, {"ports": [443, 23]}, {"ports": []}],
            "timestamp": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z"]),
            "topic": [None, "a/b", None],
        }
    )
    events = fleet.ingest(df)
    assert [(e.thing_name, e.violation_event_type) for e in events] == [("cam-1", "in-alarm")]
    assert events[0].violation_event_time == T0 + 300
    active = fleet.list_active_violations(thing="cam-1")
    assert len(active) == 1 and active[0]["lastViolationValue"] == {"ports": [443, 23]}
    assert pd.DataFrame(fleet.list_violation_events()).shape[0] == 1


def test_bad_datapoints_name_the_index_and_apply_nothing():
    fleet = rcf.Fleet(PROFILE, grace_seconds=0)
    good = msgs("dev-1", [5, 5])
    bad = good + [{"thing": "dev-1", "metric": "aws:listening-tcp-ports", "value": 7, "timestamp": T0}]
    with pytest.raises(rcf.InputError, match=r"datapoints\[2\].*port-list") as e:
        fleet.ingest(bad)
    assert isinstance(e.value, ValueError)
    assert fleet.counters["datapoints"] == 0
    for dp, pattern in [
        ({"thing": "x" * 129, "metric": "m", "value": 1, "timestamp": T0}, "128"),
        ({"metric": "m", "value": 1, "timestamp": T0}, "`thing` is missing"),
        ({"thing": "t", "metric": "m", "value": True, "timestamp": T0}, "bool"),
        ({"thing": "t", "metric": "m", "value": 1, "timestamp": "yesterday"}, "RFC 3339"),
        ({"thing": "t", "metric": "m", "value": float("inf"), "timestamp": T0}, "finite"),
        ({"thing": "t", "metric": "m", "value": {"ports": [70000]}, "timestamp": T0}, "65535"),
        ({"thing": "t", "metric": "m", "value": 1, "timestamp": 4_102_444_800}, "ahead of the clock"),
    ]:
        with pytest.raises(rcf.InputError, match=pattern):
            fleet.ingest([dp])
    assert fleet.counters["datapoints"] == 0


def test_invalid_profiles_raise_config_errors_naming_the_field():
    bad = {"securityProfileName": "p", "behaviors": [{"name": "a", "metric": "aws:num-authorization-failures",
           "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 5}, "durationSeconds": 60}}]}
    with pytest.raises(rcf.ConfigError, match=r"behaviors\[0\]\.criteria\.durationSeconds.*60"):
        rcf.Fleet(bad, strict=True)
    rcf.Fleet(bad)  # accepted as an extension outside strict mode
    with pytest.raises(rcf.ConfigError, match="grace_seconds"):
        rcf.Fleet(PROFILE, grace_seconds=-1)
    fleet = rcf.Fleet(PROFILE)
    with pytest.raises(rcf.ConfigError):
        fleet.configure({"securityProfileName": "bad name!"})
    assert fleet.setup["securityProfiles"][0] == PROFILE
    ml = {"securityProfileName": "m", "behaviors": [{"name": "ml", "metric": "aws:num-messages-sent",
          "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}, "rcf": {"zFactor": 0.5}}]}
    with pytest.raises(rcf.ConfigError, match=r"behaviors\[0\]\.rcf\.zFactor.*0\.5"):
        rcf.Fleet(ml)
    ml["behaviors"][0]["rcf"]["zFactor"] = 3.0
    rcf.Fleet(ml)


def test_ml_events_carry_attribution():
    profile = {"securityProfileName": "motors", "behaviors": [{
        "name": "ml", "metric": "torque", "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
        "rcf": {"metrics": ["battery"], "seed": 3}}]}
    fleet = rcf.Fleet(profile, grace_seconds=0)
    rows = []
    for w in range(700):
        torque = 95.0 if w == 650 else 40.0 + (w % 12)
        rows.append({"thing": "m1", "metric": "torque", "value": {"number": torque}, "timestamp": T0 + 300 * w})
        rows.append({"thing": "m1", "metric": "battery", "value": {"number": 80.0 - (w % 5)}, "timestamp": T0 + 300 * w})
    events = [e for e in fleet.ingest(rows) if e.violation_event_type == "in-alarm"]
    hit = [e for e in events if e.violation_event_time == T0 + 300 * 651]
    assert hit, [e.violation_event_time for e in events]
    e = hit[0]
    assert e.criteria_type == "MACHINE_LEARNING" and e.score > 0 and 0 < e.grade < 1
    total = sum(a["high"] + a["low"] for a in e.attribution)
    assert total == pytest.approx(e.score, rel=1e-6)
    assert max(e.attribution, key=lambda a: a["high"] + a["low"])["metric"] == "torque"
    assert e.to_dict()["violationEventAdditionalInfo"]["confidenceLevel"] == "HIGH"


def test_pickle_and_copy_restore_the_engine(tmp_path):
    fleet = rcf.Fleet(PROFILE, grace_seconds=0)
    fleet.ingest(msgs("dev-1", [2000, 2000]))
    clone = pickle.loads(pickle.dumps(fleet))
    nxt = msgs("dev-1", [2000, 2000, 2000])[2:]
    assert fleet.ingest(nxt) == clone.ingest(nxt)
    assert clone.list_violation_events() == fleet.list_violation_events()
    e = fleet.list_violation_events()
    ev = rcf.Fleet(PROFILE, grace_seconds=0).ingest(msgs("d", [2000, 2000, 2000]))[0]
    assert pickle.loads(pickle.dumps(ev)) == ev
    assert e  # events were stored
    # a file store reopens where it committed
    path = str(tmp_path / "fleet.db")
    a = rcf.Fleet(PROFILE, store=path, grace_seconds=0)
    a.ingest(msgs("dev-9", [2000, 2000, 2000]))
    del a
    b = rcf.Fleet(store=path, grace_seconds=0)
    assert b.store == path and b.counters["datapoints"] == 3
    assert [x["thingName"] for x in b.list_active_violations()] == ["dev-9"]
    (tmp_path / "junk.db").write_bytes(b"\x07" * 5000)
    with pytest.raises(rcf.StateError, match="not a SQLite database"):
        rcf.Fleet(PROFILE, store=str(tmp_path / "junk.db"))


def test_groups_and_targets():
    setup = {"securityProfiles": [PROFILE], "thingGroups": {"cams": ["cam-1"]}, "targets": {"smart-lights": ["cams"]}}
    fleet = rcf.Fleet(setup, grace_seconds=0)
    dp = lambda t: {"thing": t, "metric": "aws:listening-tcp-ports", "value": {"ports": [23]}, "timestamp": T0}  # noqa: E731
    assert [e.thing_name for e in fleet.ingest([dp("cam-1"), dp("other")])] == ["cam-1"]
    left = fleet.remove_from_group("cams", "cam-1")
    assert [e.violation_event_type for e in left] == ["alarm-invalidated"]
    fleet.add_to_group("cams", "other")
    assert fleet.group("cams") == ["other"]


def test_batches_release_the_gil():
    fleet = rcf.Fleet(PROFILE, grace_seconds=0)
    rows = [dp for t in range(200) for dp in msgs(f"dev-{t}", [10] * 50)]
    rows.sort(key=lambda d: d["timestamp"])
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)

    th = threading.Thread(target=spin)
    th.start()
    fleet.ingest(rows)
    stop.set()
    th.join()
    assert fleet.counters["datapoints"] == 10_000
    assert len(ticks) > 0


def traffic(things, windows):
    rows = []
    for w in range(windows):
        for i in range(things):
            n = 60 + (w * 7 + i * 3) % 13 + (500 if (w + 11 * i) % 90 == 89 else 0)
            ts = T0 + 300 * w + 1 + i
            rows.append({"thing": f"t{i}", "metric": "aws:num-messages-sent", "value": n, "timestamp": ts})
            rows.append({"thing": f"t{i}", "metric": "aws:all-bytes-out", "value": n * 200, "timestamp": ts})
    return rows


def ml_profile(scope="per-device"):
    return {"securityProfileName": "p", "behaviors": [{
        "name": "traffic-ml", "metric": "aws:num-messages-sent",
        "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
        "rcf": {"metrics": ["aws:all-bytes-out"], "scope": scope}}]}


def test_memory_budget_gives_the_same_events_and_is_reported(tmp_path):
    rows = traffic(8, 200)
    small = dict(num_trees=5, sample_size=32, shingle_size=2, grace_seconds=0)
    free = rcf.Fleet(ml_profile(), **small)
    want = [e.to_dict() for e in free.ingest(rows)]
    assert any(e["behavior"]["name"] == "traffic-ml" for e in want)
    stats = free.model_stats
    assert stats["resident"] == 8 and stats["evictions"] == 0
    budget = stats["resident_bytes"] // 3
    tight = rcf.Fleet(ml_profile(), store=str(tmp_path / "f.db"), memory_budget=budget, **small)
    got = []
    for k in range(0, len(rows), 400):  # batches, each committed
        got += [e.to_dict() for e in tight.ingest(rows[k:k + 400])]
    assert got == want
    s = tight.model_stats
    assert s["evictions"] > 100 and s["restores"] > 100 and s["resident_bytes"] <= budget
    # the settings survive pickling
    clone = pickle.loads(pickle.dumps(tight))
    assert clone.model_stats["resident"] + clone.model_stats["evicted"] == 8
    assert rcf.Fleet(memory_budget="64 MiB").model_stats["resident"] == 0
    for bad in (0, -5, "lots", "0 GiB"):
        with pytest.raises(rcf.ConfigError, match="memory_budget"):
            rcf.Fleet(memory_budget=bad)
    with pytest.raises(rcf.ConfigError, match="sample_size"):
        rcf.Fleet(sample_size=0)


def test_models_between_checkpoints_reopen_from_their_logs(tmp_path):
    rows = traffic(8, 200)
    small = dict(num_trees=5, sample_size=32, shingle_size=2, grace_seconds=0)
    want = [e.to_dict() for e in rcf.Fleet(ml_profile(), **small).ingest(rows)]
    assert any(e["behavior"]["name"] == "traffic-ml" for e in want)
    for hours in (0, 3, 1000):
        path = str(tmp_path / f"f{hours}.db")
        got = []
        for k in range(0, len(rows), 400):  # each batch committed, then the fleet reopened
            fleet = rcf.Fleet(ml_profile(), store=path, model_checkpoint_hours=hours, **small)
            got += [e.to_dict() for e in fleet.ingest(rows[k:k + 400])]
            del fleet
        assert got == want, hours
    for bad in (-1, float("nan"), 1e6):
        with pytest.raises(rcf.ConfigError, match="model_checkpoint_hours"):
            rcf.Fleet(model_checkpoint_hours=bad)


def test_training_summaries_and_scopes():
    fleet = rcf.Fleet(ml_profile("hierarchical"), num_trees=5, sample_size=32, grace_seconds=0)
    (s,) = fleet.model_training_summaries()
    assert s["modelStatus"] == "PENDING_BUILD" and s["datapointsCollectedPercentage"] == 0
    fleet.ingest(traffic(8, 6))
    (s,) = fleet.model_training_summaries("p", per_thing=True)
    # the group model learns from all eight things: it covers them before their own are warm
    assert s["modelStatus"] == "ACTIVE" and s["rcf"]["scope"] == "hierarchical"
    assert {t["modelStatus"] for t in s["rcf"]["perThing"]} == {"GROUP"}
    assert s["rcf"]["warming"] == 8 and s["rcf"]["groupModel"]["active"]
    assert s["lastModelRefreshDate"] > T0
    with pytest.raises(rcf.ConfigError, match="nope"):
        fleet.model_training_summaries("nope")
    with pytest.raises(rcf.ConfigError, match="scope"):
        rcf.Fleet({**ml_profile(), "behaviors": [{**ml_profile()["behaviors"][0], "rcf": {"scope": "fleet"}}]})


def test_detector_memory_and_warm_up_figures():
    d = rcf.Detector(2, num_trees=10, sample_size=256, shingle_size=8, seed=1)
    n = d.points_to_confidence()
    confidence = [d.process([float(t % 7), float(t % 5)]).confidence for t in range(n)]
    assert confidence[-1] >= 0.5 > confidence[-2]
    assert d.memory_usage > 20_000
    with pytest.raises(rcf.ConfigError, match="confidence"):
        d.points_to_confidence(1.5)


def test_many_threads_ingesting_at_once_give_the_sequential_result():
    # eight threads, each its own things, batches in time order; a grace of a day keeps every
    # window open until the flush, so the order the threads interleave in cannot matter
    profile = ml_profile()
    rows = traffic(16, 120)
    batches = {k: [r for r in rows if int(r["thing"][1:]) % 8 == k] for k in range(8)}
    settings = dict(num_trees=5, sample_size=32, shingle_size=2, grace_seconds=86_400)

    def key(e):
        d = e.to_dict()
        return (d["thingName"], d["violationEventType"], d["violationEventTime"], d["behavior"]["name"])

    seq = rcf.Fleet(profile, **settings)
    for k in range(8):
        seq.ingest(batches[k])
    want = sorted(key(e) for e in seq.flush())
    assert want, "the run raises events"
    par = rcf.Fleet(profile, **settings)
    errors = []

    def work(k):
        try:
            for j in range(0, len(batches[k]), 50):
                par.ingest(batches[k][j:j + 50])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = sorted(key(e) for e in par.flush())
    assert got == want
    assert par.counters["datapoints"] == len(rows) and par.counters["late"] == 0
