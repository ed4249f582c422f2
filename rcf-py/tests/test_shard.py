"""rcf.FleetShard: the fleet engine's per-thing work with the state as bytes gives the events of
one rcf.Fleet fed the whole fleet, and refuses bad input without changing anything."""

import json
import pickle

import pandas as pd
import pytest

import rcf

T0 = 1_767_225_600

PROFILE = {
    "securityProfileName": "p",
    "behaviors": [
        {
            "name": "msgs",
            "metric": "aws:num-messages-sent",
            "criteria": {
                "comparisonOperator": "less-than-equals",
                "value": {"count": 300},
                "durationSeconds": 300,
            },
        },
        {
            "name": "ml",
            "metric": "aws:num-messages-sent",
            "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
            "rcf": {"metrics": ["aws:all-bytes-out"], "numTrees": 10, "sampleSize": 32},
        },
    ],
}


def lines(things: int, windows: int) -> list[str]:
    out = []
    for w in range(windows):
        for i in range(things):
            msgs = 50 + (w * 7 + i * 13) % 20 + (400 if (w + 5 * i) % 60 == 59 else 0)
            for metric, v in (("aws:num-messages-sent", msgs), ("aws:all-bytes-out", msgs * 200)):
                out.append(
                    json.dumps(
                        {
                            "thing": f"t{i}",
                            "metric": metric,
                            "value": {"count": v},
                            "timestamp": T0 + 300 * w + i,
                        }
                    )
                )
    return out


def test_shard_batches_give_the_fleets_events():
    data = lines(6, 150)
    fleet = rcf.Fleet(PROFILE, history=False)
    want = sorted(e.to_json() for e in fleet.ingest([json.loads(x) for x in data]))
    assert any('"name":"ml"' in w for w in want) and any('"name":"msgs"' in w for w in want)
    shard = rcf.FleetShard(PROFILE)
    states: dict[str, bytes] = {}
    got = []
    for start in range(0, len(data), 500):
        by_thing: dict[str, list[str]] = {}
        for x in reversed(data[start : start + 500]):
            by_thing.setdefault(json.loads(x)["thing"], []).append(x)
        for thing, batch in by_thing.items():
            r = shard.process(thing, states.get(thing), batch)
            states[thing] = r.state
            got += [e.to_json() for e in r.events]
    assert sorted(got) == want
    assert set(states) == {f"t{i}" for i in range(6)}


def test_dicts_and_dataframes_and_verdicts():
    data = [json.loads(x) for x in lines(1, 40)]
    shard = rcf.FleetShard(PROFILE, verdicts=True)
    a = shard.process("t0", None, data)
    b = shard.process("t0", None, pd.DataFrame(data).assign(value=lambda d: d["value"]))
    assert a.state == b.state
    assert a.counters["datapoints"] == 80 and a.counters["windows"] >= 2 * 38
    rule = [v for v in a.verdicts if v["behavior"] == "msgs"]
    assert len(rule) == a.counters["windows"] // 2
    assert all(v["value"] == {"count": v["value"]["count"]} for v in rule)
    assert {"profile", "behavior", "time", "value", "violating", "score", "grade", "in_alarm"} <= set(
        rule[0]
    )


def test_bad_input_raises_and_changes_nothing():
    data = lines(2, 20)
    t0 = [x for x in data if '"t0"' in x]
    shard = rcf.FleetShard(PROFILE)
    first = shard.process("t0", None, t0[:10])
    with pytest.raises(rcf.InputError, match=r"lines\[1\]"):
        shard.process("t0", first.state, [t0[10], "{not json"])
    with pytest.raises(rcf.InputError, match="not `t0`"):
        shard.process("t0", first.state, [data[2]])
    with pytest.raises(rcf.StateError, match="RCFS"):
        shard.process("t0", b"junk", t0[10:])
    with pytest.raises(rcf.StateError, match="state of thing `t0`"):
        shard.process("t1", first.state, [])
    with pytest.raises(rcf.InputError, match="one str"):
        shard.process("t0", None, t0[0])
    assert issubclass(rcf.InputError, ValueError)
    skipped = shard.process("t0", first.state, [t0[10], "{not json", data[2]], skip_invalid=True)
    assert [i for i, _ in skipped.rejected] == [1, 2]
    # the refusals changed nothing
    rest = shard.process("t0", first.state, t0[10:])
    whole = shard.process("t0", None, t0)
    assert rest.state == whole.state
    assert [e.to_json() for e in first.events + rest.events] == [e.to_json() for e in whole.events]


def test_what_needs_the_whole_fleet_is_a_config_error():
    p90 = {
        "securityProfileName": "p",
        "behaviors": [
            {
                "name": "p90",
                "metric": "aws:num-messages-sent",
                "criteria": {
                    "comparisonOperator": "greater-than",
                    "statisticalThreshold": {"statistic": "p90"},
                    "durationSeconds": 300,
                },
            }
        ],
    }
    with pytest.raises(rcf.ConfigError, match="statisticalThreshold.*whole fleet"):
        rcf.FleetShard(p90)
    with pytest.raises(rcf.ConfigError, match="grace_seconds"):
        rcf.FleetShard(PROFILE, grace_seconds=-1)


def test_pickles_as_its_configuration():
    shard = rcf.FleetShard(PROFILE, seed=3, num_trees=12, verdicts=True)
    copy = pickle.loads(pickle.dumps(shard))
    data = lines(1, 30)
    a, b = shard.process("t0", None, data), copy.process("t0", None, data)
    assert a.state == b.state and len(a.verdicts) == len(b.verdicts) > 0
    assert "verdicts=true" in repr(copy)


def test_import_rcf_does_not_import_spark():
    import subprocess
    import sys

    code = "import rcf, sys; assert 'pyspark' not in sys.modules and 'rcf.spark' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
