//! The fleet engine: Device Defender semantics, checked on small hand-made fleets.

use rcf_stream::fleet::{
    ComparisonOperator as Op, Datapoint, Engine, EngineConfig, EventType, Filter, FleetError,
    MetricValue as V, SecurityProfile, ViolationEvent,
};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN5: i64 = 300_000;

fn engine(setup: Value) -> Engine {
    let mut e = Engine::open(test_config(), None).unwrap();
    e.configure(&setup).unwrap();
    e
}

fn test_config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.grace_ms = 0;
    c.max_future_ms = None;
    c
}

fn dp(thing: &str, metric: &str, value: V, ts: i64) -> Datapoint {
    Datapoint::new(thing, metric, value, ts, None).unwrap()
}

fn kinds(events: &[ViolationEvent]) -> Vec<(String, &'static str)> {
    events
        .iter()
        .map(|e| (e.thing_name.to_string(), e.event_type.as_str()))
        .collect()
}

/// The seeds' example: more than 1000 messages in 5 minutes, 2 datapoints to alarm and clear.
fn messages_profile() -> Value {
    json!({
        "securityProfileName": "smart-lights",
        "securityProfileDescription": "message rate",
        "behaviors": [{
            "name": "msgs", "metric": "aws:num-messages-sent",
            "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1000},
                         "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2,
                         "consecutiveDatapointsToClear": 2}
        }],
        "alertTargets": {"SNS": {"alertTargetArn": "arn:aws:sns:us-east-1:123:alerts", "roleArn": "arn:aws:iam::123:role/r"}},
        "tags": [{"Key": "team", "Value": "iot"}]
    })
}

#[test]
fn every_operator_and_value_type() {
    let p = |s: &str| s.parse().unwrap();
    let cases: Vec<(Op, V, V, bool)> = vec![
        (Op::LessThan, V::Count(5), V::Count(6), true),
        (Op::LessThan, V::Count(6), V::Count(6), false),
        (Op::LessThanEquals, V::Number(6.0), V::Count(6), true),
        (Op::GreaterThan, V::Number(6.5), V::Number(6.0), true),
        (Op::GreaterThanEquals, V::Count(5), V::Number(5.5), false),
        (
            Op::InPortSet,
            V::Ports(vec![80, 443]),
            V::Ports(vec![80, 443, 8080]),
            true,
        ),
        (
            Op::InPortSet,
            V::Ports(vec![80, 23]),
            V::Ports(vec![80, 443]),
            false,
        ),
        (
            Op::NotInPortSet,
            V::Ports(vec![80]),
            V::Ports(vec![23, 2323]),
            true,
        ),
        (
            Op::NotInPortSet,
            V::Ports(vec![80, 23]),
            V::Ports(vec![23, 2323]),
            false,
        ),
        (
            Op::InCidrSet,
            V::Cidrs(vec![p("10.1.2.3")]),
            V::Cidrs(vec![p("10.0.0.0/8")]),
            true,
        ),
        (
            Op::InCidrSet,
            V::Cidrs(vec![p("10.1.2.3"), p("8.8.8.8")]),
            V::Cidrs(vec![p("10.0.0.0/8")]),
            false,
        ),
        (
            Op::NotInCidrSet,
            V::Cidrs(vec![p("8.8.8.8")]),
            V::Cidrs(vec![p("10.0.0.0/8")]),
            true,
        ),
        (
            Op::NotInCidrSet,
            V::Cidrs(vec![p("10.9.9.9")]),
            V::Cidrs(vec![p("10.0.0.0/8")]),
            false,
        ),
        (
            Op::InSet,
            V::Strings(vec!["a".into()]),
            V::Strings(vec!["a".into(), "b".into()]),
            true,
        ),
        (
            Op::InSet,
            V::Strings(vec!["c".into()]),
            V::Strings(vec!["a".into()]),
            false,
        ),
        (
            Op::NotInSet,
            V::Numbers(vec![1.0]),
            V::Numbers(vec![2.0]),
            true,
        ),
        (
            Op::NotInSet,
            V::Numbers(vec![2.0]),
            V::Numbers(vec![2.0]),
            false,
        ),
        (
            Op::InSet,
            V::Numbers(vec![2.0]),
            V::Numbers(vec![2.0, 3.0]),
            true,
        ),
    ];
    for (op, observed, value, holds) in cases {
        assert_eq!(
            op.holds(&observed, &value),
            Some(holds),
            "{observed} {} {value}",
            op.as_str()
        );
    }
    // an empty observed list always conforms, for allow- and deny-lists alike
    for op in [Op::InPortSet, Op::NotInPortSet] {
        assert_eq!(op.holds(&V::Ports(vec![]), &V::Ports(vec![23])), Some(true));
    }
    // mismatched types do not compare
    assert_eq!(Op::InPortSet.holds(&V::Count(1), &V::Ports(vec![1])), None);
}

#[test]
fn profiles_round_trip_unchanged_and_strict_mode_rejects_what_device_defender_does() {
    let real = [
        messages_profile(),
        // Device Defender's documentation examples
        json!({"securityProfileName": "doc", "behaviors": [
            {"name": "TCP outbound traffic", "metric": "aws:all-bytes-out",
             "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 4096},
                          "durationSeconds": 300, "consecutiveDatapointsToAlarm": 1,
                          "consecutiveDatapointsToClear": 1}, "suppressAlerts": true}]}),
        json!({"securityProfileName": "doc-stat", "behaviors": [
            {"name": "out-p50", "metric": "aws:all-bytes-out",
             "criteria": {"comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p50"},
                          "durationSeconds": 900}}]}),
        json!({"securityProfileName": "doc-ml", "behaviors": [
            {"name": "out-ml", "metric": "aws:all-bytes-out", "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}}}]}),
    ];
    for v in &real {
        let p = SecurityProfile::from_json(v, false).unwrap();
        assert_eq!(p.to_json(), v, "written back unchanged");
        // and again through the engine's bundle
        let e = engine(v.clone());
        assert_eq!(&e.setup_json()["securityProfiles"][0], v);
    }
    // the documentation's behaviour name has spaces, which the API's pattern refuses
    let e = SecurityProfile::from_json(&real[1], true).unwrap_err();
    assert!(
        e.field == "behaviors[0].name" && e.reason.contains("strict"),
        "{e}"
    );
    assert!(SecurityProfile::from_json(&real[0], true).is_ok());
    // the seeds' other example: 5 authorization failures in 60 s, a window Device Defender
    // does not accept; strict mode says so, the default takes it as an extension
    let auth = json!({"securityProfileName": "auth", "behaviors": [
        {"name": "auth-failures", "metric": "aws:num-authorization-failures",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 5}, "durationSeconds": 60}}]});
    let e = SecurityProfile::from_json(&auth, true).unwrap_err();
    assert_eq!(e.field, "behaviors[0].criteria.durationSeconds");
    assert!(
        e.reason
            .contains("60 is not a window Device Defender accepts"),
        "{e}"
    );
    assert!(SecurityProfile::from_json(&auth, false).is_ok());
}

#[test]
fn invalid_profiles_name_field_and_value() {
    let behavior = |criteria: Value, metric: &str| json!({"securityProfileName": "p", "behaviors": [{"name": "b", "metric": metric, "criteria": criteria}]});
    let cases = [
        (
            behavior(
                json!({"comparisonOperator": "in-port-set", "value": {"count": 3}}),
                "aws:num-messages-sent",
            ),
            "comparisonOperator",
            "does not apply",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "value": {"ports": [1]}, "durationSeconds": 300}),
                "aws:num-messages-sent",
            ),
            "value",
            "does not fit",
        ),
        (
            behavior(
                json!({"comparisonOperator": "not-in-port-set", "value": {"ports": [23]}, "durationSeconds": 300}),
                "aws:listening-tcp-ports",
            ),
            "durationSeconds",
            "list metrics",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "value": {"count": 3}}),
                "aws:num-messages-sent",
            ),
            "durationSeconds",
            "is required",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "value": {"count": 3}, "durationSeconds": 300, "consecutiveDatapointsToAlarm": 11}),
                "aws:num-messages-sent",
            ),
            "consecutiveDatapointsToAlarm",
            "1 to 10",
        ),
        (
            behavior(
                json!({"comparisonOperator": "bigger", "value": {"count": 3}}),
                "aws:num-messages-sent",
            ),
            "comparisonOperator",
            "`bigger`",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "statisticalThreshold": {"statistic": "p42"}, "durationSeconds": 300}),
                "aws:num-messages-sent",
            ),
            "statistic",
            "`p42`",
        ),
        (
            behavior(
                json!({"mlDetectionConfig": {"confidenceLevel": "EXTREME"}}),
                "aws:num-messages-sent",
            ),
            "confidenceLevel",
            "LOW, MEDIUM or HIGH",
        ),
        (
            behavior(
                json!({"mlDetectionConfig": {"confidenceLevel": "LOW"}}),
                "aws:listening-tcp-ports",
            ),
            "metric",
            "numeric",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "value": {"count": 1}, "mlDetectionConfig": {"confidenceLevel": "LOW"}}),
                "aws:num-messages-sent",
            ),
            "criteria",
            "exactly one",
        ),
        (
            behavior(
                json!({"comparisonOperator": "less-than", "value": {"count": 1}}),
                "aws:no-such-metric",
            ),
            "metric",
            "built-in",
        ),
    ];
    let ml = |rcf: Value| json!({"securityProfileName": "p", "behaviors": [{"name": "b", "metric": "aws:num-messages-sent", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}, "rcf": rcf}]});
    let rule_with = |rcf: Value| json!({"securityProfileName": "p", "behaviors": [{"name": "b", "metric": "aws:num-messages-sent", "criteria": {"comparisonOperator": "less-than", "value": {"count": 3}, "durationSeconds": 300}, "rcf": rcf}]});
    let cases = cases.into_iter().chain([
        (
            ml(json!({"zFactor": 0.5})),
            "rcf.zFactor",
            "from 1 to 100, got 0.5",
        ),
        (
            ml(json!({"zFactor": "high"})),
            "rcf.zFactor",
            "got \"high\"",
        ),
        (ml(json!({"zFactor": 1e9})), "rcf.zFactor", "from 1 to 100"),
        (
            rule_with(json!({"zFactor": 3})),
            "rcf.zFactor",
            "only to behaviours with mlDetectionConfig",
        ),
        (
            ml(json!({"timeDecay": -0.001})),
            "rcf.timeDecay",
            "from 0 to 1, got -0.001",
        ),
        (ml(json!({"timeDecay": 2})), "rcf.timeDecay", "from 0 to 1"),
        (
            ml(json!({"timeDecay": "slow"})),
            "rcf.timeDecay",
            "got \"slow\"",
        ),
        (
            rule_with(json!({"timeDecay": 0.01})),
            "rcf.timeDecay",
            "only to behaviours with mlDetectionConfig",
        ),
    ]);
    assert!(SecurityProfile::from_json(&ml(json!({"timeDecay": 0.001})), false).is_ok());
    assert!(SecurityProfile::from_json(&ml(json!({"zFactor": 3.25})), false).is_ok());
    for (profile, field, reason) in cases {
        let e = SecurityProfile::from_json(&profile, false).unwrap_err();
        assert!(e.field.ends_with(field), "{e} (wanted field {field})");
        assert!(e.reason.contains(reason), "{e} (wanted {reason})");
    }
    let mut dup = messages_profile();
    let b = dup["behaviors"][0].clone();
    dup["behaviors"].as_array_mut().unwrap().push(b);
    let e = SecurityProfile::from_json(&dup, false).unwrap_err();
    assert_eq!(e.field, "behaviors[1].name");
    // a rejected configuration changes nothing
    let mut eng = engine(messages_profile());
    assert!(eng.configure(&dup).is_err());
    assert_eq!(eng.profiles()[0].behaviors.len(), 1);
}

#[test]
fn windows_sum_counts_and_streaks_alarm_and_clear() {
    let mut e = engine(messages_profile());
    let mut events = Vec::new();
    // per window: 10 reports; windows 0, 1 over the limit, 2 under, 3 over, 4, 5 under
    let per_window = [1200u64, 1500, 100, 2000, 100, 100, 100];
    for (w, total) in per_window.iter().enumerate() {
        for k in 0..10 {
            let ts = T0 + w as i64 * MIN5 + k * 30_000;
            events.extend(
                e.ingest(&dp(
                    "dev-1",
                    "aws:num-messages-sent",
                    V::Count(total / 10),
                    ts,
                ))
                .unwrap(),
            );
        }
    }
    let got: Vec<(&str, i64)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), (e.time - T0) / MIN5))
        .collect();
    // in-alarm when window 1 closes (2 violating); window 2 conforms, window 3 violates: the
    // clearing streak restarts; windows 4 and 5 conform: cleared when window 5 closes
    assert_eq!(got, [("in-alarm", 2), ("alarm-cleared", 6)]);
    assert_eq!(events[0].metric_value, Some(V::Count(1500)));
    assert_eq!(
        events[0].violation_id, events[1].violation_id,
        "one id follows one alarm"
    );
    e.commit(None).unwrap();
    let stored = e
        .list_violation_events(T0, T0 + 100 * MIN5, &Filter::default())
        .unwrap();
    assert_eq!(stored.len(), 2);
    let j = &stored[0];
    for key in [
        "violationId",
        "thingName",
        "securityProfileName",
        "behavior",
        "metricValue",
        "violationEventType",
        "violationEventTime",
        "verificationState",
    ] {
        assert!(j.get(key).is_some(), "{key} in {j}");
    }
    assert_eq!(j["metricValue"], json!({"count": 1500}));
    assert_eq!(j["behavior"]["name"], "msgs");
    assert_eq!(j["verificationState"], "UNKNOWN");
    assert!(
        e.list_active_violations(&Filter::default())
            .unwrap()
            .is_empty()
    );
    // history: 70 values
    let h = e
        .list_metric_values("dev-1", "aws:num-messages-sent", None, T0, T0 + 100 * MIN5)
        .unwrap();
    assert_eq!(h.len(), 70);
}

#[test]
fn a_violating_datapoint_resets_a_clearing_streak_and_the_reverse() {
    let p = json!({"securityProfileName": "p", "behaviors": [{
        "name": "ports", "metric": "aws:num-listening-tcp-ports",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 5},
                     "consecutiveDatapointsToAlarm": 3, "consecutiveDatapointsToClear": 3}}]});
    let mut e = engine(p);
    let pattern = [9, 9, 1, 9, 9, 9, 1, 1, 9, 1, 1, 1];
    let mut got = Vec::new();
    for (i, &v) in pattern.iter().enumerate() {
        for ev in e
            .ingest(&dp(
                "t",
                "aws:num-listening-tcp-ports",
                V::Count(v),
                T0 + i as i64 * MIN5,
            ))
            .unwrap()
        {
            got.push((i, ev.event_type.as_str()));
        }
    }
    // 9 9 1: reset; 9 9 9 → alarm at 5; 1 1 9: reset of the clear; 1 1 1 → cleared at 11
    assert_eq!(got, [(5, "in-alarm"), (11, "alarm-cleared")]);
}

#[test]
fn port_set_alarm_and_empty_list_clears() {
    let p = json!({"securityProfileName": "p", "behaviors": [{
        "name": "no-telnet", "metric": "aws:listening-tcp-ports",
        "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}}}]});
    let mut e = engine(p);
    let a = e
        .ingest(&dp(
            "cam",
            "aws:listening-tcp-ports",
            V::Ports(vec![443, 23]),
            T0,
        ))
        .unwrap();
    assert_eq!(kinds(&a), [("cam".to_string(), "in-alarm")]);
    let b = e
        .ingest(&dp(
            "cam",
            "aws:listening-tcp-ports",
            V::Ports(vec![]),
            T0 + MIN5,
        ))
        .unwrap();
    assert_eq!(kinds(&b), [("cam".to_string(), "alarm-cleared")]);
}

#[test]
fn statistical_threshold_on_a_hand_checked_fleet() {
    let p = json!({"securityProfileName": "p", "behaviors": [{
        "name": "out-p90", "metric": "aws:all-bytes-out",
        "criteria": {"comparisonOperator": "less-than-equals",
                     "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 300}}]});
    let mut e = engine(p);
    // ten things send 10, 20, ..., 100 bytes in the window; p90 (linear interpolation) of
    // 10..100 is 91: only the thing at 100 violates
    for k in 1..=10u64 {
        e.ingest(&dp(
            &format!("t{k:02}"),
            "aws:all-bytes-out",
            V::Count(k * 5),
            T0 + 1_000,
        ))
        .unwrap();
        e.ingest(&dp(
            &format!("t{k:02}"),
            "aws:all-bytes-out",
            V::Count(k * 5),
            T0 + 2_000,
        ))
        .unwrap();
    }
    let events = e
        .ingest(&dp("t01", "aws:all-bytes-out", V::Count(1), T0 + MIN5 + 1))
        .unwrap();
    assert_eq!(kinds(&events), [("t10".to_string(), "in-alarm")]);
    assert!(
        events[0].reason.contains("p90 (91 over 10 things)"),
        "{}",
        events[0].reason
    );
    // a negative value makes the statistic unavailable: nothing is evaluated for that window
    let mut e = engine(json!({"securityProfileName": "p", "behaviors": [{
        "name": "n", "metric": "level",
        "criteria": {"comparisonOperator": "less-than-equals", "statisticalThreshold": {"statistic": "p50"}, "durationSeconds": 300}}]}));
    e.ingest(&dp("a", "level", V::Number(-1.0), T0)).unwrap();
    e.ingest(&dp("b", "level", V::Number(100.0), T0)).unwrap();
    assert!(
        e.ingest(&dp("a", "level", V::Number(1.0), T0 + MIN5))
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.counters().in_alarm, 0);
}

#[test]
fn silence_invalidates_and_missing_data_can_be_a_finding() {
    let p = json!({"securityProfileName": "p", "behaviors": [
        {"name": "msgs", "metric": "aws:num-messages-sent",
         "criteria": {"comparisonOperator": "less-than", "value": {"count": 100}, "durationSeconds": 300}},
        {"name": "heartbeat", "metric": "aws:num-messages-received",
         "criteria": {"comparisonOperator": "greater-than-equals", "value": {"count": 0}, "durationSeconds": 300,
                      "consecutiveDatapointsToAlarm": 3},
         "rcf": {"missingData": "violate"}}]});
    let mut e = engine(p);
    let mut events = Vec::new();
    for w in 0..10 {
        let ts = T0 + w * MIN5;
        events.extend(
            e.ingest(&dp("loud", "aws:num-messages-sent", V::Count(500), ts))
                .unwrap(),
        );
        events.extend(
            e.ingest(&dp("quiet", "aws:num-messages-received", V::Count(1), ts))
                .unwrap(),
        );
        events.extend(
            e.ingest(&dp("keeper", "aws:num-messages-received", V::Count(1), ts))
                .unwrap(),
        );
    }
    assert_eq!(kinds(&events), [("loud".to_string(), "in-alarm")]);
    // "loud" and "quiet" go silent; "keeper" reports on for three days
    events.clear();
    for w in 10..(10 + 3 * 288) {
        events.extend(
            e.ingest(&dp(
                "keeper",
                "aws:num-messages-received",
                V::Count(1),
                T0 + w * MIN5,
            ))
            .unwrap(),
        );
    }
    let got: Vec<(String, &str, i64)> = events
        .iter()
        .map(|ev| {
            (
                ev.thing_name.to_string(),
                ev.event_type.as_str(),
                (ev.time - T0) / MIN5,
            )
        })
        .collect();
    // quiet misses windows 10, 11, 12 → in-alarm when window 12 closes (at 13); both are
    // invalidated 48 h after their last datapoint (window 9)
    assert_eq!(got[0], ("quiet".to_string(), "in-alarm", 13));
    let inv: Vec<&(String, &str, i64)> =
        got.iter().filter(|g| g.1 == "alarm-invalidated").collect();
    assert_eq!(inv.len(), 2, "{got:?}");
    for (thing, _, at) in inv {
        assert!(
            (9 + 576..=9 + 578).contains(at),
            "{thing} invalidated at {at}"
        );
    }
    assert!(
        events
            .iter()
            .filter(|e| e.event_type == EventType::AlarmInvalidated)
            .all(|e| e.reason.contains("48 h"))
    );
    assert_eq!(e.things(), 1, "silent things' state is dropped");
}

#[test]
fn changed_behaviours_and_things_leaving_the_target_invalidate() {
    let profile = |limit: u64| {
        json!({
            "securityProfiles": [{"securityProfileName": "p", "behaviors": [
                {"name": "conns", "metric": "aws:num-established-tcp-connections",
                 "criteria": {"comparisonOperator": "less-than", "value": {"count": limit}}}]}],
            "thingGroups": {"cameras": ["cam-1", "cam-2"]},
            "targets": {"p": ["arn:aws:iot:us-east-1:123456789012:thinggroup/cameras"]}
        })
    };
    let mut e = engine(profile(10));
    assert!(
        e.ingest(&dp(
            "other",
            "aws:num-established-tcp-connections",
            V::Count(50),
            T0
        ))
        .unwrap()
        .is_empty(),
        "not targeted"
    );
    for cam in ["cam-1", "cam-2"] {
        let ev = e
            .ingest(&dp(
                cam,
                "aws:num-established-tcp-connections",
                V::Count(50),
                T0,
            ))
            .unwrap();
        assert_eq!(ev.len(), 1);
    }
    let left = e.remove_from_group("cameras", "cam-2").unwrap();
    assert_eq!(kinds(&left), [("cam-2".to_string(), "alarm-invalidated")]);
    // an unchanged configuration keeps the alarm; a changed behaviour invalidates it
    let same = e
        .configure(&{
            let mut p = profile(10);
            p["thingGroups"]["cameras"] = json!(["cam-1"]);
            p
        })
        .unwrap();
    assert!(same.is_empty(), "{same:?}");
    let changed = e.configure(&profile(20)).unwrap();
    assert_eq!(
        kinds(&changed),
        [("cam-1".to_string(), "alarm-invalidated")]
    );
    assert!(changed[0].reason.contains("removed or changed"));
    // the event describes the behaviour the alarm was raised under, not its replacement
    assert_eq!(changed[0].behavior["criteria"]["value"]["count"], 10);
    // a behaviour removed while in alarm (another in its place) likewise
    let ev = e
        .ingest(&dp(
            "cam-1",
            "aws:num-established-tcp-connections",
            V::Count(50),
            T0 + 1_000,
        ))
        .unwrap();
    assert_eq!(kinds(&ev), [("cam-1".to_string(), "in-alarm")]);
    let mut renamed = profile(20);
    renamed["securityProfiles"][0]["behaviors"][0]["name"] = json!("conns-2");
    let removed = e.configure(&renamed).unwrap();
    assert_eq!(
        kinds(&removed),
        [("cam-1".to_string(), "alarm-invalidated")]
    );
    assert_eq!(&*removed[0].behavior_name, "conns");
    assert_eq!(removed[0].behavior["name"], "conns");
    e.commit(None).unwrap();
    assert!(
        e.list_active_violations(&Filter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn late_and_bad_datapoints_are_reported_and_change_nothing() {
    let mut e = engine(messages_profile());
    e.ingest(&dp("t", "aws:num-messages-sent", V::Count(1), T0))
        .unwrap();
    e.ingest(&dp(
        "t",
        "aws:num-messages-sent",
        V::Count(1),
        T0 + 2 * MIN5,
    ))
    .unwrap();
    let mut out = Vec::new();
    let r = e
        .ingest_into(
            &dp("t", "aws:num-messages-sent", V::Count(5000), T0 + 10),
            &mut out,
        )
        .unwrap();
    assert!(r.late, "its window closed");
    assert_eq!(e.counters().late, 1);
    let before = e.counters().clone();
    for bad in [
        dp(
            "t",
            "aws:num-messages-sent",
            V::Ports(vec![1]),
            T0 + 3 * MIN5,
        ),
        Datapoint {
            thing: "x".repeat(129).into(),
            ..dp("t", "aws:num-messages-sent", V::Count(1), T0)
        },
        Datapoint {
            value: V::Number(f64::NAN),
            ..dp("t", "aws:num-messages-sent", V::Count(1), T0)
        },
    ] {
        match e.ingest(&bad) {
            Err(FleetError::Datapoint(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(e.counters(), &before);
    let mut strict_clock = test_config();
    strict_clock.max_future_ms = Some(3_600_000);
    let mut f = Engine::open(strict_clock, None).unwrap();
    f.configure(&messages_profile()).unwrap();
    let far = dp("t", "aws:num-messages-sent", V::Count(1), 4_102_444_800_000);
    let err = f.ingest(&far).unwrap_err().to_string();
    assert!(err.contains("ahead of the clock"), "{err}");
}

#[test]
fn topic_filter_dimensions() {
    let setup = json!({
        "dimensions": [{"name": "debug-topics", "type": "TOPIC_FILTER", "stringValues": ["debug/#", "+/trace"]}],
        "securityProfiles": [{"securityProfileName": "p", "behaviors": [
            {"name": "no-debug", "metric": "aws:num-messages-sent",
             "metricDimension": {"dimensionName": "debug-topics"},
             "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 0}, "durationSeconds": 300}},
            {"name": "prod-rate", "metric": "aws:num-messages-sent",
             "metricDimension": {"dimensionName": "debug-topics", "operator": "NOT_IN"},
             "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100}, "durationSeconds": 300}}]}]
    });
    let mut e = engine(setup.clone());
    let with_topic = |topic: &str, n: u64, ts: i64| {
        Datapoint::new("fw", "aws:num-messages-sent", V::Count(n), ts, Some(topic)).unwrap()
    };
    e.ingest(&with_topic("prod/telemetry", 50, T0)).unwrap();
    e.ingest(&with_topic("app/trace", 1, T0 + 1)).unwrap();
    let ev = e
        .ingest(&with_topic("prod/telemetry", 50, T0 + MIN5))
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(&*ev[0].behavior_name, "no-debug");
    e.commit(None).unwrap();
    let debug = e
        .list_metric_values(
            "fw",
            "aws:num-messages-sent",
            Some(("debug-topics", false)),
            T0,
            T0 + 2 * MIN5,
        )
        .unwrap();
    assert_eq!(debug.len(), 1);
    // a dimension on a metric Device Defender does not dimension, and an undefined one
    let mut bad = setup.clone();
    bad["securityProfiles"][0]["behaviors"][0]["metric"] = json!("aws:all-bytes-out");
    assert!(
        Engine::open(test_config(), None)
            .unwrap()
            .configure(&bad)
            .unwrap_err()
            .to_string()
            .contains("takes no dimension")
    );
    let mut bad = setup;
    bad["dimensions"] = json!([]);
    assert!(
        Engine::open(test_config(), None)
            .unwrap()
            .configure(&bad)
            .unwrap_err()
            .to_string()
            .contains("not a defined dimension")
    );
}

#[test]
fn multivariate_ml_explains_its_violations() {
    let p = json!({"securityProfileName": "motors", "behaviors": [{
        "name": "motor-ml", "metric": "torque",
        "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
        "rcf": {"metrics": ["battery", "aws:num-messages-sent"], "seed": 7, "zFactor": 4}}]});
    let mut e = engine(p);
    let mut events = Vec::new();
    for w in 0..700i64 {
        let ts = T0 + w * MIN5;
        let phase = (w as f64) * std::f64::consts::TAU / 288.0;
        let torque = if w == 650 {
            95.0
        } else {
            40.0 + 5.0 * phase.sin()
        };
        for (m, v) in [
            ("torque", V::Number(torque)),
            ("battery", V::Number(80.0 - 0.01 * (w % 100) as f64)),
            ("aws:num-messages-sent", V::Count(30)),
        ] {
            events.extend(e.ingest(&dp("m1", m, v, ts)).unwrap());
        }
    }
    let alarms: Vec<&ViolationEvent> = events
        .iter()
        .filter(|e| e.event_type == EventType::InAlarm)
        .collect();
    assert!(
        alarms.iter().any(|a| (a.time - T0) / MIN5 == 651),
        "{:?}",
        alarms
            .iter()
            .map(|a| (a.time - T0) / MIN5)
            .collect::<Vec<_>>()
    );
    let a = alarms.iter().find(|a| (a.time - T0) / MIN5 == 651).unwrap();
    let ml = a.ml.as_ref().unwrap();
    let total: f64 = ml.attribution.iter().map(|(_, h, l)| h + l).sum();
    assert!(
        (total - ml.score).abs() < 1e-6 * ml.score.max(1.0),
        "attribution sums to the score"
    );
    let top = ml
        .attribution
        .iter()
        .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)))
        .unwrap();
    assert_eq!(&*top.0, "torque");
    let j = a.to_json();
    assert_eq!(j["violationEventAdditionalInfo"]["confidenceLevel"], "HIGH");
    assert_eq!(
        j["violationEventAdditionalInfo"]["attribution"][0]["direction"],
        "HIGH"
    );
}

#[test]
fn a_new_ml_behaviour_trains_from_history_at_once() {
    let rules = json!({"securityProfileName": "p", "behaviors": [{
        "name": "msgs", "metric": "aws:num-messages-sent",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 100000}, "durationSeconds": 300}}]});
    let mut e = engine(rules.clone());
    for w in 0..600i64 {
        e.ingest(&dp(
            "d",
            "aws:num-messages-sent",
            V::Count(50 + (w % 7) as u64),
            T0 + w * MIN5,
        ))
        .unwrap();
    }
    e.commit(None).unwrap();
    let mut with_ml = rules;
    with_ml["behaviors"].as_array_mut().unwrap().push(json!({
        "name": "msgs-ml", "metric": "aws:num-messages-sent", "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}}));
    e.configure(&with_ml).unwrap();
    // the first live windows already get verdicts: a burst in the third is in alarm
    let mut events = Vec::new();
    for (k, n) in [(600, 55u64), (601, 56), (602, 5000), (603, 50)] {
        events.extend(
            e.ingest(&dp(
                "d",
                "aws:num-messages-sent",
                V::Count(n),
                T0 + k * MIN5,
            ))
            .unwrap(),
        );
    }
    let ml: Vec<&ViolationEvent> = events
        .iter()
        .filter(|e| &*e.behavior_name == "msgs-ml")
        .collect();
    assert_eq!(ml.len(), 1, "{events:?}");
    assert_eq!((ml[0].time - T0) / MIN5, 603);
}

#[test]
fn a_reopened_store_continues_exactly_where_it_committed() {
    let dir = tempdir();
    let path = dir.join("fleet.db");
    let p = json!({"securityProfileName": "p", "behaviors": [
        {"name": "msgs", "metric": "aws:num-messages-sent",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 60}, "durationSeconds": 300,
                      "consecutiveDatapointsToAlarm": 2, "consecutiveDatapointsToClear": 2}},
        {"name": "ml", "metric": "aws:num-messages-sent", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
         "rcf": {"numTrees": 10, "sampleSize": 64}}]});
    let input: Vec<Datapoint> = (0..3_000i64)
        .map(|k| {
            dp(
                &format!("d{}", k % 5),
                "aws:num-messages-sent",
                V::Count(if k % 397 < 12 {
                    100
                } else {
                    10 + (k % 11) as u64
                }),
                T0 + (k / 5) * 60_000,
            )
        })
        .collect();
    let run = |path: Option<&std::path::Path>, stop: Option<usize>| -> Vec<Value> {
        let mut e = Engine::open(test_config(), path).unwrap();
        e.configure(&p).unwrap();
        let start: usize = e.cursor().map_or(0, |c| c.parse().unwrap());
        let mut out = Vec::new();
        for (i, d) in input.iter().enumerate().skip(start) {
            out.extend(e.ingest(d).unwrap());
            if (i + 1) % 250 == 0 {
                e.commit(Some(&(i + 1).to_string())).unwrap();
            }
            if stop == Some(i + 1) {
                // dropped without committing the last 70 datapoints: a crash
                return out.iter().map(ViolationEvent::to_json).collect();
            }
        }
        e.commit(Some(&input.len().to_string())).unwrap();
        out.iter().map(ViolationEvent::to_json).collect()
    };
    let whole = run(None, None);
    assert!(whole.len() >= 4, "{}", whole.len());
    let first = run(Some(&path), Some(1_820));
    let second = run(Some(&path), None);
    // the first run's events up to its last commit, then the second run's, are the whole
    // run's; events after the last commit are repeated with the same ids
    let mut seen: Vec<Value> = first;
    for ev in second {
        if !seen.contains(&ev) {
            seen.push(ev);
        }
    }
    assert_eq!(seen, whole);
    let e = Engine::open(test_config(), Some(&path)).unwrap();
    let stored = e
        .list_violation_events(0, i64::MAX, &Filter::default())
        .unwrap();
    assert_eq!(stored.len(), whole.len(), "the store holds each event once");
    for (i, (a, b)) in stored.iter().zip(&whole).enumerate() {
        assert_eq!(a, b, "event {i}");
    }
}

#[test]
fn foreign_and_corrupt_store_files_are_refused() {
    let dir = tempdir();
    let text = dir.join("notes.db");
    std::fs::write(
        &text,
        "this is not a database, it is a shopping list\n".repeat(100),
    )
    .unwrap();
    let e = Engine::open(test_config(), Some(&text))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a SQLite database"), "{e}");
    let other = dir.join("other.db");
    {
        let c = rusqlite_free_sqlite(&other);
        drop(c);
    }
    let e = Engine::open(test_config(), Some(&other))
        .unwrap_err()
        .to_string();
    assert!(e.contains("another program"), "{e}");
}

/// A SQLite file made by "another program": a table of its own, via the engine's own store
/// layer would mark it as ours, so write the file through an in-memory engine's bytes with
/// the application id cleared.
fn rusqlite_free_sqlite(path: &std::path::Path) -> std::fs::File {
    let mut e = Engine::open(test_config(), None).unwrap();
    let mut bytes = e.to_bytes().unwrap();
    // the application id lives at offset 68 of the SQLite header
    bytes[68..72].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    std::fs::write(path, &bytes).unwrap();
    std::fs::File::open(path).unwrap()
}

#[test]
fn pickled_bytes_restore_the_engine() {
    let mut e = engine(messages_profile());
    for w in 0..3 {
        e.ingest(&dp(
            "t",
            "aws:num-messages-sent",
            V::Count(2000),
            T0 + w * MIN5,
        ))
        .unwrap();
    }
    let bytes = e.to_bytes().unwrap();
    let mut f = Engine::from_bytes(test_config(), &bytes).unwrap();
    let a = e
        .ingest(&dp(
            "t",
            "aws:num-messages-sent",
            V::Count(1),
            T0 + 3 * MIN5,
        ))
        .unwrap();
    let b = f
        .ingest(&dp(
            "t",
            "aws:num-messages-sent",
            V::Count(1),
            T0 + 3 * MIN5,
        ))
        .unwrap();
    assert_eq!(a, b);
    assert!(Engine::from_bytes(test_config(), b"garbage").is_err());
}

/// A fresh directory in the temp directory, removed when dropped (the test's stores and
/// files with it, whether the test passed or not).
pub(crate) fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "rcf-fleet-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// See [`tempdir`].
pub(crate) struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
