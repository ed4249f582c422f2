"""rcf.Fleet's response side: sinks (callables and built-ins), verification labels with
feedback, mitigation tasks and quarantine, incidents."""

import http.server
import json
import pickle
import threading

import pytest

import rcf

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def setup(extra=None, actions=None):
    behaviors = [
        {
            "name": "msgs",
            "metric": "aws:num-messages-sent",
            "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100}, "durationSeconds": 300},
        }
    ]
    if extra:
        behaviors.append(extra)
    return {
        "securityProfiles": [{"securityProfileName": "p", "behaviors": behaviors}],
        "mitigationActions": actions or [],
    }


def window(thing, w, n):
    return {"thing": thing, "metric": "aws:num-messages-sent", "value": n, "timestamp": T0 + 300 * w + 1}


def feed(fleet, plan, windows):
    """plan: {thing: set of violating windows}."""
    events = []
    for w in windows:
        events += fleet.ingest([window(t, w, 500 if w in bad else 10) for t, bad in plan.items()])
    return events


def key(e):
    return (e["violationId"], e["violationEventType"])


def test_a_callback_sink_gets_each_event_once_and_a_failure_is_retried():
    fleet = rcf.Fleet(setup(), grace_seconds=0)
    got, fail = [], {"on": False}

    def pager(batch):
        if fail["on"]:
            raise RuntimeError("pager is down")
        got.extend(batch)

    fleet.add_sink(pager, batch=1, retry_seconds=0.01)
    events = feed(fleet, {"a": {1, 2}, "b": {2}}, range(5))
    assert sorted(key(e) for e in got) == sorted((e.violation_id, e.violation_event_type) for e in events)
    assert all(isinstance(e, dict) and e["thingName"] in ("a", "b") for e in got)
    fail["on"] = True
    more = feed(fleet, {"a": {6}}, range(5, 9))
    status = fleet.sink_status()[0]
    assert status["pending"] >= 1 and "pager is down" in status["lastError"], status
    n = len(got)
    fail["on"] = False
    import time

    time.sleep(0.05)
    report = fleet.respond()
    assert report["pending"] == 0 and report["delivered"] >= 1, report
    assert len(got) == n + len(more)
    assert len({key(e) for e in got}) == len(got), "no event twice"
    with pytest.raises(ValueError, match="sink"):
        fleet.add_sink(pager, name="python:test_a_callback_sink_gets_each_event_once_and_a_failure_is_retried.<locals>.pager")
    with pytest.raises(ValueError, match="batch"):
        fleet.add_sink(lambda b: None, name="x", batch=0)
    with pytest.raises(ValueError, match="sink"):
        fleet.add_sink(42)


class Hook(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        n = int(self.headers["content-length"])
        Hook.bodies.append((self.headers["content-type"], json.loads(self.rfile.read(n))))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_spec_posts_batches_as_json_arrays():
    Hook.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fleet = rcf.Fleet(setup(), grace_seconds=0)
        fleet.add_sink(f"webhook=http://127.0.0.1:{server.server_port}/hook,batch=50")
        # 30 things spike together: 30 in-alarm events, one POST
        fleet.ingest([window(f"t{i}", 0, 10) for i in range(30)])
        fleet.ingest([window(f"t{i}", 1, 500) for i in range(30)])
        fleet.ingest([window(f"t{i}", 2, 10) for i in range(30)])
        posts = [b for _, b in Hook.bodies]
        assert all(ct == "application/json" for ct, _ in Hook.bodies)
        assert [len(p) for p in posts] == [30], [type(p) for p in posts]
        assert all(e["violationEventType"] == "in-alarm" for e in posts[0])
    finally:
        server.shutdown()
        server.server_close()


def test_labels_feedback_adjustments_and_revert():
    fleet = rcf.Fleet(setup(), grace_seconds=0)
    got = []
    fleet.add_sink(got.extend, name="list")
    events = feed(fleet, {"a": {1}}, range(3))
    vid = events[0].violation_id
    rec = fleet.put_verification_state(
        vid, "BENIGN_POSITIVE", "load test", "mute", until=T0 + 3600, actor="ops@example.com"
    )
    assert rec["feedback"] == "mute" and rec["actor"] == "ops@example.com"
    assert rec["rule"]["scope"] == {"thing": "a"}
    n = len(got)
    feed(fleet, {"a": {5}}, range(3, 8))  # muted: stored, not sent
    assert len(got) == n
    assert any(e["violationEventTime"] < T0 + 3600 and e["thingName"] == "a" for e in fleet.list_violation_events(T0 + 1200))
    stored = [e for e in fleet.list_violation_events() if e["violationId"] == vid]
    assert all(e["verificationState"] == "BENIGN_POSITIVE" for e in stored)
    assert fleet.list_violation_events(verification_state="BENIGN_POSITIVE")
    # revert: the mute stops, the record says who and when
    rev = fleet.revert_adjustment(rec["adjustmentId"], actor="ops")
    assert rev["reverts"] == rec["adjustmentId"]
    adj = fleet.adjustments()
    assert [a["feedback"] for a in adj] == ["mute", "revert"] and adj[0]["revertedBy"] == rev["adjustmentId"]
    feed(fleet, {"a": {9}}, range(8, 11))
    assert len(got) > n
    # bad calls are ValueErrors naming the problem, and change nothing
    for args, kw, needle in [
        (("nope", "FALSE_POSITIVE"), {}, "nope"),
        ((vid, "MAYBE"), {}, "MAYBE"),
        ((vid, "TRUE_POSITIVE", None, "learn"), {}, "learn is for"),
        ((vid, "FALSE_POSITIVE", None, "mute"), {}, "until"),
        ((vid, "FALSE_POSITIVE", None, "forget"), {}, "forget"),
    ]:
        with pytest.raises(ValueError, match=needle):
            fleet.put_verification_state(*args, **kw)
    with pytest.raises(ValueError, match="reverted already"):
        fleet.revert_adjustment(rec["adjustmentId"])
    assert len(fleet.adjustments()) == 2


QUARANTINE = [
    {"actionName": "quarantine", "actionParams": {"addThingsToThingGroupParams": {"thingGroupNames": ["quarantine"]}}},
    {"actionName": "deny-all", "actionParams": {"replaceDefaultPolicyVersionParams": {"templateName": "BLANK_POLICY"}}},
]


def test_quarantine_on_in_alarm_tasks_executors_and_release():
    flood = {
        "name": "flood",
        "metric": "aws:num-messages-sent",
        "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1000}, "durationSeconds": 300},
        "rcf": {"mitigationActions": ["quarantine"]},
    }
    fleet = rcf.Fleet(setup(flood, QUARANTINE), grace_seconds=0)
    assert [a["actionName"] for a in fleet.mitigation_actions()] == ["deny-all", "quarantine"]
    events = []
    for w in range(4):
        events += fleet.ingest([window("rogue", w, 5000 if w else 10), window("calm", w, 10)])
    assert fleet.group("quarantine") == ["rogue"]
    tasks = fleet.list_mitigation_tasks()
    assert len(tasks) == 1 and tasks[0]["taskStatus"] == "SUCCESSFUL" and tasks[0]["rcf"]["automatic"]
    msgs_alarm = next(e for e in events if e.behavior_name == "msgs" and e.violation_event_type == "in-alarm")
    # deny-all goes to the executor: a callable
    calls = []
    fleet.set_executor(lambda action, violation: calls.append((action["actionType"], violation["thingName"])))
    t = fleet.start_mitigation_task(
        {"taskId": "t1", "target": {"violationIds": [msgs_alarm.violation_id]}, "actions": ["deny-all"], "clientRequestToken": "k"}
    )
    assert t["taskStatus"] == "SUCCESSFUL" and calls == [("REPLACE_DEFAULT_POLICY_VERSION", "rogue")]
    again = fleet.start_mitigation_task(
        {"taskId": "t1", "target": {"violationIds": [msgs_alarm.violation_id]}, "actions": ["deny-all"], "clientRequestToken": "k"}
    )
    assert again["taskId"] == "t1" and len(calls) == 1, "same token: the same task, not run twice"

    def refuse(action, violation):
        raise PermissionError("no")

    fleet.set_executor(refuse)
    t = fleet.start_mitigation_task(
        {"taskId": "t2", "target": {"securityProfileName": "p", "behaviorName": "msgs"}, "actions": ["deny-all", "quarantine"]}
    )
    assert t["taskStatus"] == "FAILED"
    assert t["taskStatistics"] == {"actionsExecuted": 0, "actionsSkipped": 1, "actionsFailed": 1}
    assert "PermissionError: no" in t["executions"][0]["message"]
    assert fleet.describe_mitigation_task("t2") == t
    with pytest.raises(ValueError, match="nuke"):
        fleet.start_mitigation_task({"taskId": "t3", "target": {"violationIds": [msgs_alarm.violation_id]}, "actions": ["nuke"]})
    with pytest.raises(ValueError, match="executor"):
        fleet.set_executor("telnet://x")
    fleet.release("rogue")
    assert fleet.group("quarantine") == []
    with pytest.raises(ValueError, match="not in thing group"):
        fleet.release("rogue")
    fleet.quarantine("calm")
    assert fleet.group("quarantine") == ["calm"]
    # the state (tasks, adjustments, outbox) pickles with the store; sinks and executors do not
    back = pickle.loads(pickle.dumps(fleet))
    assert [t["taskId"] for t in back.list_mitigation_tasks()] == [t["taskId"] for t in fleet.list_mitigation_tasks()]


def test_a_spike_across_things_is_one_incident_for_an_incident_sink():
    fleet = rcf.Fleet(setup(), grace_seconds=0)
    incidents = []
    fleet.add_sink(incidents.extend, name="incidents", incidents=True)
    for w in range(8):
        fleet.ingest([window(f"dev-{i}", w, 900 if w == 2 else 10) for i in range(50)])
    assert len(incidents) == 1
    assert len(incidents[0]["thingNames"]) == 50 and incidents[0]["violationCount"] == 50
    assert fleet.incidents() == incidents


def test_anomalous_verdicts_carry_deviations_and_pickle():
    d = rcf.Detector(2, metric_names=["x", "y"], seed=3, num_trees=20, sample_size=64)
    for i in range(400):
        v = d.process([float(i % 7), float(i % 5)])
    assert v.deviations == {} or set(v.deviations) == {"x", "y"}
    v = d.process([60.0, 1.0])
    assert set(v.deviations) == {"x", "y"} and v.deviations["x"] > 5 > abs(v.deviations["y"])
    assert pickle.loads(pickle.dumps(v)) == v
