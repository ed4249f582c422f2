//! The response side: sinks fed from the outbox (at least once, deduplicated, batched,
//! rate-limited, through outages and restarts), incidents, mitigation tasks and quarantine,
//! verification labels with feedback.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rcf_stream::fleet::{
    Datapoint, Engine, EngineConfig, EventType, Executor, Feedback, Filter, MetricValue as V,
    MitigationAction, Scope, VerificationState,
};
use serde_json::{Value, json};

use crate::fleet::tempdir;
use crate::webhook::Webhook;

const T0: i64 = 1_767_225_600_000;
const MIN5: i64 = 300_000;

fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.grace_ms = 0;
    c.max_future_ms = None;
    c
}

/// More than 100 messages in 5 minutes violates; 1 datapoint to alarm, 1 to clear.
fn setup(extra_behavior: Value, actions: Value) -> Value {
    let mut behaviors = vec![json!({
        "name": "msgs", "metric": "aws:num-messages-sent",
        "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100},
                     "durationSeconds": 300}})];
    if !extra_behavior.is_null() {
        behaviors.push(extra_behavior);
    }
    json!({"securityProfiles": [{"securityProfileName": "p", "behaviors": behaviors}],
           "mitigationActions": actions})
}

/// Window `w` of `thing` with `n` messages.
fn msgs(e: &mut Engine, thing: &str, w: i64, n: u64) -> Vec<rcf_stream::fleet::ViolationEvent> {
    let dp = Datapoint::new(
        thing,
        "aws:num-messages-sent",
        V::Count(n),
        T0 + w * MIN5 + 1000,
        None,
    )
    .unwrap();
    e.ingest(&dp).unwrap()
}

fn key(v: &Value) -> (String, String) {
    (
        v["violationId"].as_str().unwrap().to_string(),
        v["violationEventType"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_webhook_gets_every_event_once_through_an_outage_a_slow_answer_and_a_restart() {
    let dir = tempdir();
    let db = dir.join("fleet.db");
    let hook = Webhook::start();
    let spec = format!(
        "webhook={},batch=1,rate=6000,retry=0.05,timeout=0.3",
        hook.url
    );
    let mut e = Engine::open(config(), Some(&db)).unwrap();
    e.configure(&setup(Value::Null, json!([]))).unwrap();
    e.add_sink_spec(&spec).unwrap();
    // t1 violates in windows 1-2 and clears in 3; t2 in 2 and 4
    let plan = |thing: &str, w: i64| -> u64 {
        match (thing, w) {
            ("t1", 1 | 2) | ("t2", 2 | 4) | ("t3", 6..=7) => 500,
            _ => 10,
        }
    };
    let mut now = 1_000_000u64;
    let run = |e: &mut Engine, ws: std::ops::Range<i64>| {
        for w in ws {
            for t in ["t1", "t2", "t3"] {
                msgs(e, t, w, plan(t, w));
            }
        }
    };
    run(&mut e, 0..4);
    // only committed events go out
    assert!(e.respond(now).is_err(), "uncommitted changes are refused");
    e.commit(None).unwrap();
    let r = e.respond(now).unwrap();
    assert_eq!(r.failed, 0);
    assert!(r.delivered >= 2, "{r:?}");
    assert_eq!(r.pending, 0);
    assert!(
        hook.posts().iter().all(Value::is_object),
        "batch=1: one event object per POST"
    );
    assert!(hook.content_types().iter().all(|c| c == "application/json"));
    // the endpoint fails: events stay owed
    hook.answer(500);
    run(&mut e, 4..6);
    e.commit(None).unwrap();
    now += 1000;
    let r = e.respond(now).unwrap();
    assert_eq!((r.delivered, r.failed), (0, 1), "{r:?}");
    assert!(r.pending >= 1);
    // backing off: no request before the back-off ends
    let before = hook.requests();
    e.respond(now + 10).unwrap();
    assert_eq!(
        hook.requests(),
        before,
        "within the back-off nothing is tried"
    );
    let status = e.sink_status().unwrap();
    assert!(
        status[0]["lastError"].as_str().unwrap().contains("500"),
        "{status:?}"
    );
    // slow: the timeout bounds the attempt and the event stays owed
    hook.answer(200);
    hook.delay(1500);
    let t = std::time::Instant::now();
    let r = e.respond(now + 10_000).unwrap();
    assert_eq!(r.delivered, 0, "{r:?}");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    hook.delay(0);
    // more events, then the engine is gone before it delivers them (a restart)
    run(&mut e, 6..9);
    e.commit(None).unwrap();
    drop(e);
    let mut e = Engine::open(config(), Some(&db)).unwrap();
    e.add_sink_spec(&spec).unwrap();
    let r = e.respond(now + 60_000).unwrap();
    assert_eq!(r.pending, 0, "{r:?}");
    // every stored event arrived exactly once
    let stored: Vec<(String, String)> = e
        .list_violation_events(0, i64::MAX, &Filter::default())
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut got: Vec<(String, String)> = hook.received().iter().map(key).collect();
    let n = got.len();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n, "no event twice");
    let mut want = stored.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(stored.len() >= 7, "{stored:?}");
    // a later respond sends nothing again
    let r = e.respond(now + 120_000).unwrap();
    assert_eq!(r.delivered, 0);
}

#[test]
fn a_burst_is_batched_and_rate_limited_and_becomes_one_incident() {
    let dir = tempdir();
    let hook = Webhook::start();
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&setup(Value::Null, json!([]))).unwrap();
    e.add_sink_spec(&format!("webhook={},batch=100,rate=2", hook.url))
        .unwrap();
    let incidents = dir.join("incidents.jsonl");
    e.add_sink_spec(&format!("jsonl={},incidents", incidents.display()))
        .unwrap();
    let things: Vec<String> = (0..300).map(|i| format!("dev-{i:03}")).collect();
    for w in 0..8 {
        for t in &things {
            // all 300 spike together in window 2
            msgs(&mut e, t, w, if w == 2 { 900 } else { 20 });
        }
    }
    e.commit(None).unwrap();
    let now = 5_000_000u64;
    let r = e.respond(now).unwrap();
    // 600 events (300 in-alarm, 300 cleared): two deliveries of 100 this minute (and the
    // incident sink's one)
    assert_eq!((r.batches, r.delivered), (3, 201), "{r:?}");
    assert_eq!(hook.posts().len(), 2);
    assert!(r.pending >= 400, "{r:?}");
    assert!(
        hook.posts()
            .iter()
            .all(|p| p.as_array().is_some_and(|a| a.len() == 100))
    );
    let mut t = now;
    while e.respond(t).unwrap().pending > 0 {
        t += 60_001;
        assert!(t < now + 10 * 60_001, "bounded");
    }
    assert_eq!(hook.received().len(), 600);
    assert_eq!(hook.posts().len(), 6, "600 events in 6 pages, not 600");
    // the incident sink: one incident with the 300 things
    let lines: Vec<Value> = std::fs::read_to_string(&incidents)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["thingNames"].as_array().unwrap().len(), 300);
    assert_eq!(lines[0]["violationCount"], 300);
    assert_eq!(lines[0]["closed"], true);
    assert_eq!(e.incidents().unwrap().len(), 1);
}

#[test]
fn suppressed_and_muted_events_are_stored_but_not_sent() {
    let dir = tempdir();
    let out = dir.join("alerts.jsonl");
    let quiet = json!({"name": "quiet", "metric": "aws:num-messages-sent", "suppressAlerts": true,
        "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 50},
                     "durationSeconds": 300}});
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&setup(quiet, json!([]))).unwrap();
    e.add_sink_spec(&format!("jsonl={}", out.display()))
        .unwrap();
    let mut first = Vec::new();
    for w in 0..3 {
        first.extend(msgs(&mut e, "a", w, if w == 1 { 500 } else { 10 }));
    }
    let a_alarm = first
        .iter()
        .find(|x| x.event_type == EventType::InAlarm && &*x.behavior_name == "msgs")
        .unwrap()
        .violation_id
        .clone();
    // mute thing a's msgs behaviour for the next hour of event time
    let until = T0 + 3 * MIN5 + 3_600_000;
    let rec = e
        .put_verification_state(
            &a_alarm,
            VerificationState::BenignPositive,
            Some("load test"),
            &Feedback::Mute {
                scope: Scope::Thing,
                until,
            },
            "ops@example.com",
        )
        .unwrap();
    assert_eq!(rec["feedback"], "mute");
    assert_eq!(rec["actor"], "ops@example.com");
    for w in 3..20 {
        for t in ["a", "b"] {
            msgs(&mut e, t, w, if w == 5 || w == 16 { 500 } else { 10 });
        }
    }
    e.commit(None).unwrap();
    e.respond(1).unwrap();
    let sent: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stored = e
        .list_violation_events(0, i64::MAX, &Filter::default())
        .unwrap();
    let is_sent = |v: &Value| sent.iter().any(|s| key(s) == key(v));
    for v in &stored {
        let quiet = v["behavior"]["name"] == "quiet";
        let muted = v["thingName"] == "a"
            && v["behavior"]["name"] == "msgs"
            && crate::fleet_time(&v["violationEventTime"]) < until
            && crate::fleet_time(&v["violationEventTime"]) >= T0 + 3 * MIN5;
        assert_eq!(is_sent(v), !quiet && !muted, "{v}");
    }
    // a's window-16 alarm is after the mute: sent; b's window-5 alarm: sent
    assert!(
        sent.iter()
            .any(|s| s["thingName"] == "a" && crate::fleet_time(&s["violationEventTime"]) > until)
    );
    assert!(sent.iter().any(|s| s["thingName"] == "b"));
    // the label is on the stored events
    let labelled: Vec<&Value> = stored
        .iter()
        .filter(|v| v["violationId"] == a_alarm.as_str())
        .collect();
    assert!(
        labelled
            .iter()
            .all(|v| v["verificationState"] == "BENIGN_POSITIVE"
                && v["verificationStateDescription"] == "load test")
    );
}

/// Records what it is asked to run; fails actions whose name says so.
struct Recorder(Arc<Mutex<Vec<(String, String)>>>);

impl Executor for Recorder {
    fn execute(&mut self, action: &MitigationAction, violation: &Value) -> Result<(), String> {
        self.0.lock().unwrap().push((
            action.name.clone(),
            violation["thingName"].as_str().unwrap_or("").to_string(),
        ));
        if action.name.contains("broken") {
            Err("the policy service said no".into())
        } else {
            Ok(())
        }
    }
}

#[test]
fn quarantine_runs_on_in_alarm_and_tasks_follow_device_defender() {
    let actions = json!([
        {"actionName": "quarantine", "actionParams": {"addThingsToThingGroupParams":
            {"thingGroupNames": ["quarantine"]}}},
        {"actionName": "deny-all", "actionParams": {"replaceDefaultPolicyVersionParams":
            {"templateName": "BLANK_POLICY"}}},
        {"actionName": "broken-revoke", "actionParams": {"updateDeviceCertificateParams":
            {"action": "DEACTIVATE"}}},
    ]);
    let auto = json!({"name": "flood", "metric": "aws:num-messages-sent",
        "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1000},
                     "durationSeconds": 300},
        "rcf": {"mitigationActions": ["quarantine"]}});
    let mut e = Engine::open(config(), None).unwrap();
    // an action the configuration does not define is refused, by path
    let err = e
        .configure(&setup(
            json!({"name": "x", "metric": "aws:num-messages-sent",
                "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}, "durationSeconds": 300},
                "rcf": {"mitigationActions": ["nuke"]}}),
            actions.clone(),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rcf.mitigationActions[0]") && err.contains("nuke"),
        "{err}"
    );
    e.configure(&setup(auto, actions)).unwrap();
    assert_eq!(e.mitigation_actions().len(), 3);
    let mut alarms = Vec::new();
    for w in 0..4 {
        for t in ["rogue", "calm"] {
            alarms.extend(msgs(
                &mut e,
                t,
                w,
                if t == "rogue" && w >= 1 { 5000 } else { 10 },
            ));
        }
    }
    assert!(
        e.group("quarantine").is_empty(),
        "actions run in respond, after the commit"
    );
    e.commit(None).unwrap();
    let r = e.respond(1).unwrap();
    assert_eq!(r.actions_run, 1);
    assert_eq!(e.group("quarantine"), vec!["rogue".to_string()]);
    let flood = alarms
        .iter()
        .find(|a| &*a.behavior_name == "flood" && a.event_type == EventType::InAlarm)
        .unwrap();
    let task = e
        .describe_mitigation_task(&format!("auto-{}", flood.violation_id))
        .unwrap();
    assert_eq!(task["taskStatus"], "SUCCESSFUL");
    assert_eq!(task["taskStatistics"]["actionsExecuted"], 1);
    assert_eq!(task["rcf"]["automatic"], true);
    // a task by profile and behaviour: deny-all needs an executor; without one it fails and
    // the rest for that violation is skipped
    let req = json!({"taskId": "manual-1", "target": {"securityProfileName": "p", "behaviorName": "msgs"},
        "actions": ["deny-all", "quarantine"], "clientRequestToken": "tok-1"});
    e.start_mitigation_task(&req).unwrap();
    // the same token gives the same task back, no second one
    let again = e.start_mitigation_task(&req).unwrap();
    assert_eq!(again["taskId"], "manual-1");
    assert_eq!(e.list_mitigation_tasks().unwrap().len(), 2);
    e.commit(None).unwrap();
    e.respond(2).unwrap();
    let t = e.describe_mitigation_task("manual-1").unwrap();
    assert_eq!(t["taskStatus"], "FAILED");
    assert_eq!(
        t["taskStatistics"],
        json!({"actionsExecuted": 0, "actionsSkipped": 1, "actionsFailed": 1})
    );
    assert!(
        t["executions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("needs an executor")
    );
    assert_eq!(t["executions"][1]["status"], "SKIPPED");
    // with an executor: deny-all runs; broken-revoke fails and skips quarantine
    let calls = Arc::new(Mutex::new(Vec::new()));
    e.set_executor(Box::new(Recorder(calls.clone())));
    let ids: Vec<String> = alarms
        .iter()
        .filter(|a| &*a.behavior_name == "msgs" && a.event_type == EventType::InAlarm)
        .map(|a| a.violation_id.clone())
        .collect();
    e.start_mitigation_task(
        &json!({"taskId": "manual-2", "target": {"violationIds": ids},
        "actions": ["deny-all", "broken-revoke", "quarantine"]}),
    )
    .unwrap();
    e.commit(None).unwrap();
    e.respond(3).unwrap();
    let t = e.describe_mitigation_task("manual-2").unwrap();
    assert_eq!(
        t["taskStatistics"],
        json!({"actionsExecuted": 1, "actionsSkipped": 1, "actionsFailed": 1})
    );
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            ("deny-all".to_string(), "rogue".to_string()),
            ("broken-revoke".to_string(), "rogue".to_string())
        ]
    );
    // cancel before it runs: nothing runs, nothing is rolled back
    e.start_mitigation_task(
        &json!({"taskId": "manual-3", "target": {"violationIds": [flood.violation_id]},
        "actions": ["deny-all"]}),
    )
    .unwrap();
    e.commit(None).unwrap();
    let c = e.cancel_mitigation_task("manual-3").unwrap();
    assert_eq!(c["taskStatus"], "CANCELED");
    assert_eq!(c["taskStatistics"]["actionsSkipped"], 1);
    e.respond(4).unwrap();
    assert_eq!(
        calls.lock().unwrap().len(),
        2,
        "a canceled task runs nothing"
    );
    assert!(e.cancel_mitigation_task("manual-3").is_err());
    assert_eq!(
        e.group("quarantine"),
        vec!["rogue".to_string()],
        "no rollback"
    );
    // bad requests are named and change nothing
    for (req, needle) in [
        (
            json!({"taskId": "x", "target": {"violationIds": ["nope"]}, "actions": ["deny-all"]}),
            "nope",
        ),
        (
            json!({"taskId": "y", "target": {"violationIds": [flood.violation_id]}, "actions": ["nuke"]}),
            "nuke",
        ),
        (
            json!({"taskId": "manual-1", "target": {"violationIds": [flood.violation_id]}, "actions": ["deny-all"]}),
            "already",
        ),
    ] {
        let err = e.start_mitigation_task(&req).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(e.list_mitigation_tasks().unwrap().len(), 4);
    // release
    e.release("rogue", "quarantine").unwrap();
    assert!(e.group("quarantine").is_empty());
    assert!(e.release("rogue", "quarantine").is_err());
}

#[test]
fn a_command_executor_reports_its_exit_status_and_is_killed_past_its_timeout() {
    use rcf_stream::fleet::CommandExecutor;
    let a = MitigationAction::from_json(
        &json!({"actionName": "deny-all", "actionParams": {"replaceDefaultPolicyVersionParams": {"templateName": "BLANK_POLICY"}}}),
        "a",
    )
    .unwrap();
    let dir = tempdir();
    let seen = dir.join("seen.json");
    let mut ok = CommandExecutor::new(
        "sh",
        &["-c".into(), format!("cat > {}", seen.display())],
        std::time::Duration::from_secs(10),
    );
    ok.execute(&a, &json!({"thingName": "t1"})).unwrap();
    let req: Value = serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(req["actionType"], "REPLACE_DEFAULT_POLICY_VERSION");
    assert_eq!(req["violation"]["thingName"], "t1");
    let mut fails = CommandExecutor::new(
        "sh",
        &["-c".into(), "echo denied >&2; exit 3".into()],
        std::time::Duration::from_secs(10),
    );
    let e = fails.execute(&a, &json!({})).unwrap_err();
    assert!(e.contains("denied"), "{e}");
    let mut slow = CommandExecutor::new(
        "sleep",
        &["30".into()],
        std::time::Duration::from_millis(200),
    );
    let t = std::time::Instant::now();
    let e = slow.execute(&a, &json!({})).unwrap_err();
    assert!(e.contains("killed") && t.elapsed().as_secs() < 5, "{e}");
}

#[test]
fn bad_verification_calls_are_named_and_change_nothing() {
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&setup(Value::Null, json!([]))).unwrap();
    let mut ev = Vec::new();
    for w in 0..3 {
        ev.extend(msgs(&mut e, "a", w, if w == 1 { 500 } else { 10 }));
    }
    let id = ev[0].violation_id.clone();
    for (vid, state, desc, fb, needle) in [
        (
            "no-such",
            VerificationState::FalsePositive,
            None,
            Feedback::LabelOnly,
            "no-such",
        ),
        (
            id.as_str(),
            VerificationState::TruePositive,
            None,
            Feedback::Learn(Scope::Thing),
            "learn is for",
        ),
        (
            id.as_str(),
            VerificationState::FalsePositive,
            Some("x".repeat(1001)),
            Feedback::LabelOnly,
            "1000",
        ),
        (
            id.as_str(),
            VerificationState::FalsePositive,
            None,
            Feedback::Learn(Scope::Group("bad group!".into())),
            "group",
        ),
    ] {
        let err = e
            .put_verification_state(vid, state, desc.as_deref(), &fb, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert!(e.adjustments().unwrap().is_empty());
    assert!(e.revert_adjustment(1, "t").is_err());
    let stored = e
        .list_violation_events(0, i64::MAX, &Filter::default())
        .unwrap();
    assert!(stored.iter().all(|v| v["verificationState"] == "UNKNOWN"));
}

/// The demo fleet with two attacks injected on things of the benign rollout: thing-052 on day
/// 3 and thing-055 on day 4, messages x6 and bytes out x10 for an hour.
fn rollout_fleet() -> (rcf_datasets::defender::Fleet, Vec<(String, i64)>) {
    use rcf_datasets::defender::{PERIOD_MS, START_MS, Value as R};
    let mut fleet = rcf_datasets::defender::fleet(60, 5, 3);
    let attacks = vec![
        (
            "thing-052".to_string(),
            START_MS + 3 * 86_400_000 + 10 * 3_600_000,
        ),
        (
            "thing-055".to_string(),
            START_MS + 4 * 86_400_000 + 2 * 3_600_000,
        ),
    ];
    for r in &mut fleet.reports {
        for (t, start) in &attacks {
            if &r.thing == t && (*start..start + 12 * PERIOD_MS).contains(&r.timestamp) {
                match (r.metric, &mut r.value) {
                    ("aws:num-messages-sent", R::Count(c)) => *c *= 6,
                    ("aws:all-bytes-out", R::Count(c)) => *c *= 10,
                    _ => {}
                }
            }
        }
    }
    (fleet, attacks)
}

fn datapoint(r: &rcf_datasets::defender::Report) -> Datapoint {
    let line = r.to_json_line();
    rcf_stream::fleet::datapoint::parse_line(&line)
        .unwrap()
        .remove(0)
}

#[test]
fn after_one_learn_the_rollouts_repeat_alarms_stop_and_attacks_on_its_things_are_still_found() {
    let (fleet, attacks) = rollout_fleet();
    let rollout: Vec<String> = (50..58).map(|i| format!("thing-{i:03}")).collect();
    // the demo's traffic model at z = 3 (`rcf.zFactor`; at HIGH, z = 4, and at the fleet's
    // MEDIUM, z = 3.5, the rollout raises one alarm in all, on one thing; at z = 3 it trips
    // one thing after another: the repeats to stop)
    let text = rcf_datasets::defender::demo_profile().replace("\"HIGH\"", "\"MEDIUM\"");
    let mut setup: Value = serde_json::from_str(&text).unwrap();
    for b in setup["securityProfiles"][0]["behaviors"]
        .as_array_mut()
        .unwrap()
    {
        if b["name"] == "traffic-ml" {
            b["rcf"]["zFactor"] = json!(3.0);
        }
    }
    setup["thingGroups"] = json!({"firmware-2-1": rollout});
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&setup).unwrap();
    let is_ml = |ev: &rcf_stream::fleet::ViolationEvent| {
        &*ev.behavior_name == "traffic-ml" && ev.event_type == EventType::InAlarm
    };
    let in_attack = |thing: &str, t: i64| {
        attacks
            .iter()
            .any(|(a, s)| a == thing && (*s..s + 16 * MIN5).contains(&t))
    };
    let rollout_start = rcf_datasets::defender::START_MS + 2 * 86_400_000 + 3 * 3_600_000;
    let mut control: Option<Engine> = None;
    let mut labelled_at = None;
    // (main, control): ML in-alarms on rollout things outside the attacks, after the label;
    // and the attacks' first ML alarm
    let mut repeats = (0usize, 0usize);
    let mut others = (0usize, 0usize);
    let mut learned: Vec<(String, f64)> = Vec::new();
    // a repeat: an alarm whose deviations are like the labelled one's (what `learn` covers:
    // each metric within [min(0, span L) - slack, max(0, span L) + slack])
    let like = |learned: &[(String, f64)], ev: &rcf_stream::fleet::ViolationEvent| {
        use rcf_stream::fleet::feedback::{LEARN_SLACK, LEARN_SPAN};
        ev.ml.as_ref().is_some_and(|m| {
            !m.deviations.is_empty()
                && m.deviations.iter().all(|(metric, z)| {
                    let l = learned
                        .iter()
                        .find(|(n, _)| **n == **metric)
                        .map_or(0.0, |x| x.1);
                    ((LEARN_SPAN * l).min(0.0) - LEARN_SLACK
                        ..=(LEARN_SPAN * l).max(0.0) + LEARN_SLACK)
                        .contains(z)
                })
        })
    };
    let mut found: BTreeMap<String, i64> = BTreeMap::new();
    for r in &fleet.reports {
        let dp = datapoint(r);
        let events = e.ingest(&dp).unwrap();
        for ev in events.iter().filter(|ev| is_ml(ev)) {
            let rollout_thing = rollout.iter().any(|t| **t == *ev.thing_name);
            if !rollout_thing || ev.violation_start_time < rollout_start {
                continue;
            }
            if in_attack(&ev.thing_name, ev.violation_start_time) {
                found
                    .entry(ev.thing_name.to_string())
                    .or_insert(ev.violation_start_time);
            } else if labelled_at.is_none() {
                // the first rollout alarm: an operator says it is the firmware, for the group
                control = Some(Engine::from_bytes(config(), &e.to_bytes().unwrap()).unwrap());
                let rec = e
                    .put_verification_state(
                        &ev.violation_id,
                        VerificationState::BenignPositive,
                        Some("firmware 2.1 rollout"),
                        &Feedback::Learn(Scope::Group("firmware-2-1".into())),
                        "ops",
                    )
                    .unwrap();
                assert!(rec["rule"]["learned"]["deviations"].is_array(), "{rec}");
                learned = rec["rule"]["learned"]["deviations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        (
                            d["metric"].as_str().unwrap().to_string(),
                            d["deviation"].as_f64().unwrap(),
                        )
                    })
                    .collect();
                labelled_at = Some(ev.time);
            } else if like(&learned, ev) {
                repeats.0 += 1;
            } else {
                others.0 += 1;
            }
        }
        if let Some(c) = control.as_mut() {
            for ev in c.ingest(&dp).unwrap().iter().filter(|ev| is_ml(ev)) {
                if rollout.iter().any(|t| **t == *ev.thing_name)
                    && !in_attack(&ev.thing_name, ev.violation_start_time)
                    && Some(ev.time) > labelled_at
                {
                    if like(&learned, ev) {
                        repeats.1 += 1;
                    } else {
                        others.1 += 1;
                    }
                }
            }
        }
    }
    assert!(labelled_at.is_some(), "the rollout alarmed");
    eprintln!(
        "rollout ML alarms after one learn: {} like the labelled one, {} unlike it \
         (without the learn: {} and {}); attacks found: {found:?}",
        repeats.0, others.0, repeats.1, others.1
    );
    assert!(
        repeats.1 >= 3,
        "without the learn the rollout alarms again: {repeats:?}"
    );
    assert_eq!(repeats.0, 0, "after the learn it does not: {repeats:?}");
    for (t, start) in &attacks {
        let at = found.get(t).copied();
        assert!(
            at.is_some_and(|a| a >= *start && a <= start + 3 * MIN5),
            "the attack on {t} at {start} raised an ML alarm within 3 datapoints: {at:?}"
        );
    }
    // reverted, the learn stops applying: the record says so and a like deviation alarms again
    let id = e.adjustments().unwrap()[0]["adjustmentId"]
        .as_i64()
        .unwrap();
    let rev = e.revert_adjustment(id, "ops").unwrap();
    assert_eq!(rev["reverts"], id);
    assert_eq!(
        e.adjustments().unwrap()[0]["revertedBy"],
        rev["adjustmentId"]
    );
    assert!(e.revert_adjustment(id, "ops").is_err(), "once");
}

#[test]
fn a_finding_goes_to_the_sink_named_by_its_topic() {
    let dir = tempdir();
    let findings = dir.join("findings.jsonl");
    let spec = format!("jsonl={}", findings.display());
    let actions = json!([{"actionName": "page-soc", "actionParams": {"publishFindingToSnsParams":
        {"topicArn": spec}}}, {"actionName": "nowhere", "actionParams": {"publishFindingToSnsParams":
        {"topicArn": "webhook=http://127.0.0.1:9/none"}}}]);
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&setup(Value::Null, actions)).unwrap();
    e.add_sink_spec(&spec).unwrap();
    let mut ev = Vec::new();
    for w in 0..3 {
        ev.extend(msgs(&mut e, "a", w, if w == 1 { 500 } else { 10 }));
    }
    let id = ev[0].violation_id.clone();
    e.start_mitigation_task(&json!({"taskId": "f1", "target": {"violationIds": [id]},
        "actions": ["page-soc", "nowhere"]}))
        .unwrap();
    e.commit(None).unwrap();
    e.respond(1).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&findings)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finding = lines
        .iter()
        .find(|l| l.get("finding").is_some())
        .expect("the finding");
    assert_eq!(finding["finding"]["violationId"], id.as_str());
    assert_eq!(
        (finding["taskId"].as_str(), finding["actionName"].as_str()),
        (Some("f1"), Some("page-soc"))
    );
    let t = e.describe_mitigation_task("f1").unwrap();
    assert_eq!(
        t["taskStatistics"],
        json!({"actionsExecuted": 1, "actionsSkipped": 0, "actionsFailed": 1})
    );
    assert!(
        t["executions"][1]["message"]
            .as_str()
            .unwrap()
            .contains("no sink named"),
        "{t}"
    );
}

#[test]
fn excluding_a_confirmed_incident_keeps_it_out_of_the_model() {
    // one ML model on a steady level; a long shift (an incident), back to normal, then the
    // same shift again: the model that kept the incident out finds the repeat as strange as
    // the first time; the one that learned it finds it less so
    let ml = json!({"securityProfileName": "p", "behaviors": [{"name": "ml", "metric": "m",
        "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}, "consecutiveDatapointsToClear": 2},
        "rcf": {"seed": 11}}]});
    let level = |w: i64| -> f64 {
        let incident = (300..360).contains(&w) || (420..430).contains(&w);
        (if incident { 80.0 } else { 20.0 }) + ((w * 7919) % 13) as f64 * 0.3
    };
    let run = |exclude: bool| -> (Vec<rcf_stream::fleet::ViolationEvent>, Engine) {
        let mut e = Engine::open(config(), None).unwrap();
        e.configure(&ml).unwrap();
        let mut events = Vec::new();
        for w in 0..440 {
            let dp =
                Datapoint::new("t", "m", V::Number(level(w)), T0 + w * MIN5 + 1, None).unwrap();
            let got = e.ingest(&dp).unwrap();
            if exclude
                && let Some(a) = got.iter().find(|x| {
                    x.event_type == EventType::InAlarm
                        && (300..310).contains(&((x.time - T0) / MIN5))
                })
            {
                e.put_verification_state(
                    &a.violation_id,
                    VerificationState::TruePositive,
                    Some("confirmed intrusion"),
                    &Feedback::ExcludeFromTraining,
                    "soc",
                )
                .unwrap();
            }
            events.extend(got);
        }
        (events, e)
    };
    let (control, _) = run(false);
    let (excluded, e) = run(true);
    let repeat = |events: &[rcf_stream::fleet::ViolationEvent]| {
        events
            .iter()
            .filter(|x| {
                x.event_type == EventType::InAlarm && (420..425).contains(&((x.time - T0) / MIN5))
            })
            .map(|x| x.ml.as_ref().unwrap().score)
            .fold(0.0f64, f64::max)
    };
    let adj = e.adjustments().unwrap();
    assert_eq!(adj.len(), 1);
    let span = &adj[0]["rule"]["excluded"];
    assert!(
        span["end"].as_i64().is_some(),
        "the span closed when the alarm cleared: {span}"
    );
    let (with, without) = (repeat(&excluded), repeat(&control));
    eprintln!("repeat's score: {with:.3} with the incident excluded, {without:.3} without");
    assert!(
        with > 0.0,
        "the repeat alarms when the incident was kept out"
    );
    assert!(
        with > without,
        "kept out, the repeat is stranger: {with} vs {without}"
    );
}

#[test]
fn retention_takes_what_sinks_were_given_and_keeps_what_they_are_owed() {
    let dir = tempdir();
    let mut c = config();
    c.retention_ms = 86_400_000;
    let mut e = Engine::open(c, None).unwrap();
    e.configure(&setup(Value::Null, json!([]))).unwrap();
    e.add_sink_spec(&format!("jsonl={}", dir.join("a.jsonl").display()))
        .unwrap();
    let hook = Webhook::start();
    hook.answer(500);
    e.add_sink_spec(&format!("webhook={},retry=0.01", hook.url))
        .unwrap();
    for w in 0..6 {
        msgs(&mut e, "a", w, if w == 2 { 500 } else { 10 });
    }
    e.commit(None).unwrap();
    e.respond(1).unwrap();
    let counts = |e: &Engine| -> Vec<(u64, u64)> {
        e.sink_status()
            .unwrap()
            .iter()
            .map(|s| (s["sent"].as_u64().unwrap(), s["pending"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(counts(&e), vec![(2, 0), (0, 2)]);
    // three days later
    for w in 6..(3 * 288) {
        msgs(&mut e, "a", w, 10);
        if w % 100 == 0 {
            e.commit(None).unwrap();
        }
    }
    e.commit(None).unwrap();
    assert!(
        e.list_violation_events(0, i64::MAX, &rcf_stream::fleet::Filter::default())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        counts(&e),
        vec![(0, 0), (0, 2)],
        "sent rows went with their events; owed ones stay"
    );
}
