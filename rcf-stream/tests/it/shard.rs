//! The shard: the fleet engine's per-thing work with the thing's state passed in and out as
//! bytes (what a Spark or Flink job keeps per key) gives the events of one engine fed the
//! whole fleet, whatever the batches.

use std::collections::BTreeMap;

use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, FleetError, MetricValue as V, Shard};
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;
const MIN5: i64 = 300_000;

fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.max_future_ms = None;
    c
}

/// A windowed rule, a 3-metric ML behaviour (small models: the test is about the plumbing)
/// and a per-datapoint rule.
fn profile() -> Value {
    json!({"securityProfileName": "p", "behaviors": [
        {"name": "msgs", "metric": "aws:num-messages-sent",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 300},
                      "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2}},
        {"name": "traffic-ml", "metric": "aws:num-messages-sent",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
         "rcf": {"metrics": ["aws:all-bytes-out", "battery"], "numTrees": 10, "sampleSize": 64,
                 "shingleSize": 2}},
        {"name": "no-telnet", "metric": "aws:listening-tcp-ports",
         "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23]}}}]})
}

/// `things` things reporting every five minutes on one grid, with bursts and a telnet port
/// now and then (a deterministic hash for noise).
fn fleet(things: usize, windows: i64) -> Vec<Datapoint> {
    let noise = crate::hash_noise;
    let mut out = Vec::new();
    for w in 0..windows {
        for i in 0..things as i64 {
            let ts = T0 + w * MIN5 + 1_000 + 37 * i;
            let phase = (w as f64 + 7.0 * i as f64) * std::f64::consts::TAU / 96.0;
            let burst = (w + 13 * i) % 90 >= 88;
            let msgs = (60.0 + 15.0 * phase.sin() + 6.0 * noise(w, i)).max(0.0) as u64
                * if burst { 8 } else { 1 };
            let bytes = msgs * (200 + (noise(i, w) * 20.0) as u64);
            let battery = 70.0 + 10.0 * phase.cos() + noise(w + 1, i);
            let ports = if (w + 5 * i) % 70 == 3 {
                vec![22, 23]
            } else {
                vec![22]
            };
            let name = format!("thing-{i:03}");
            for (m, v) in [
                ("aws:num-messages-sent", V::Count(msgs)),
                ("aws:all-bytes-out", V::Count(bytes)),
                ("battery", V::Number(battery)),
                ("aws:listening-tcp-ports", V::Ports(ports)),
            ] {
                out.push(Datapoint::new(&name, m, v, ts, None).unwrap());
            }
        }
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// One engine fed everything in order.
fn engine_events(input: &[Datapoint]) -> Vec<String> {
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(&profile()).unwrap();
    let mut out = Vec::new();
    for d in input {
        out.extend(e.ingest(d).unwrap().iter().map(|v| v.to_json().to_string()));
    }
    out
}

/// A shard fed micro-batches of `per_batch` datapoints: each batch grouped by thing (in
/// reverse order inside the batch, as a stream processor keeps no row order), state kept
/// per thing as bytes.
fn shard_events(input: &[Datapoint], per_batch: usize) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    let mut shard = Shard::new(config(), &profile()).unwrap();
    let mut states: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut out = Vec::new();
    for batch in input.chunks(per_batch) {
        let mut by_thing: BTreeMap<String, Vec<Datapoint>> = BTreeMap::new();
        for d in batch.iter().rev() {
            by_thing
                .entry(d.thing.to_string())
                .or_default()
                .push(d.clone());
        }
        for (thing, dps) in by_thing {
            let r = shard
                .process(&thing, states.get(&thing).map(Vec::as_slice), dps)
                .unwrap();
            out.extend(r.events.iter().map(|v| v.to_json().to_string()));
            states.insert(thing, r.state);
        }
    }
    (out, states)
}

#[test]
fn a_shard_gives_the_engines_events_whatever_the_batches() {
    let input = fleet(12, 400);
    let want = sorted(engine_events(&input));
    let kinds = |evs: &[String], k: &str| {
        evs.iter()
            .filter(|e| serde_json::from_str::<Value>(e).unwrap()["behavior"]["name"] == k)
            .count()
    };
    assert!(
        kinds(&want, "traffic-ml") >= 4
            && kinds(&want, "msgs") >= 4
            && kinds(&want, "no-telnet") >= 4,
        "the fleet raises events of every behaviour: {} ml, {} msgs, {} telnet",
        kinds(&want, "traffic-ml"),
        kinds(&want, "msgs"),
        kinds(&want, "no-telnet")
    );
    for per_batch in [3, 997, 48 * 30] {
        let (got, states) = shard_events(&input, per_batch);
        assert_eq!(sorted(got), want, "batches of {per_batch} datapoints");
        assert_eq!(states.len(), 12);
    }
}

#[test]
fn verdicts_list_every_observation() {
    let input = fleet(2, 60);
    let mut shard = Shard::new(config(), &profile()).unwrap();
    shard.set_verdicts(true);
    let dps: Vec<Datapoint> = input
        .into_iter()
        .filter(|d| &*d.thing == "thing-000")
        .collect();
    let r = shard.process("thing-000", None, dps).unwrap();
    let count = |b: &str| r.verdicts.iter().filter(|v| &*v.behavior_name == b).count();
    // 60 datapoints of ports judged one by one; the windows the watermark passed (the last
    // datapoint's time minus the minute's grace: 58 of 60) for the rule
    assert_eq!(count("no-telnet"), 60);
    assert_eq!(count("msgs"), 58);
    // the ML behaviour observes once its model is warm
    let ml = count("traffic-ml");
    assert!(ml > 10 && ml < 58, "{ml} ML observations");
    assert_eq!(r.counters.datapoints, 240);
    assert_eq!(r.counters.windows, 2 * 58);
    assert!(
        r.verdicts
            .iter()
            .filter(|v| &*v.behavior_name == "traffic-ml")
            .any(|v| v.score.is_some())
    );
}

#[test]
fn bad_state_and_datapoints_are_refused_and_change_nothing() {
    let input = fleet(2, 30);
    let mut shard = Shard::new(config(), &profile()).unwrap();
    let (a, b): (Vec<Datapoint>, Vec<Datapoint>) =
        input.into_iter().partition(|d| &*d.thing == "thing-000");
    let first = shard.process("thing-000", None, a[..60].to_vec()).unwrap();
    let state = first.state.clone();
    let bad = |r: Result<_, FleetError>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    // a datapoint of another thing, anywhere in the batch
    let mut mixed = a[60..80].to_vec();
    mixed.push(b[0].clone());
    let msg = bad(shard.process("thing-000", Some(&state), mixed));
    assert!(
        msg.contains("datapoints[20]") && msg.contains("thing-001"),
        "{msg}"
    );
    // another thing's state, foreign bytes, a future version, truncation, flipped bytes
    let other = shard
        .process("thing-001", None, b[..8].to_vec())
        .unwrap()
        .state;
    let msg = bad(shard.process("thing-000", Some(&other), a[60..64].to_vec()));
    assert!(msg.contains("state of thing `thing-001`"), "{msg}");
    let msg = bad(shard.process("thing-000", Some(b"not a state"), a[60..64].to_vec()));
    assert!(msg.contains("RCFS"), "{msg}");
    let mut future = state.clone();
    future[4] = 9;
    let msg = bad(shard.process("thing-000", Some(&future), a[60..64].to_vec()));
    assert!(msg.contains("format version 9"), "{msg}");
    for cut in [5, state.len() / 2, state.len() - 1] {
        let msg = bad(shard.process("thing-000", Some(&state[..cut]), a[60..64].to_vec()));
        assert!(msg.contains("invalid thing state"), "cut {cut}: {msg}");
    }
    let mut flipped = state.clone();
    for k in (5..flipped.len()).step_by(7) {
        flipped[k] ^= 0xA5;
        // a crafted state is refused or, if it decodes, runs; it never panics
        let _ = shard.process("thing-000", Some(&flipped), a[60..64].to_vec());
        flipped[k] ^= 0xA5;
    }
    // the refusals changed nothing: continuing from the good state gives the uninterrupted events
    let rest = shard
        .process("thing-000", Some(&state), a[60..].to_vec())
        .unwrap();
    let whole = shard.process("thing-000", None, a.clone()).unwrap();
    let json = |evs: &[rcf_stream::fleet::ViolationEvent]| {
        evs.iter()
            .map(|e| e.to_json().to_string())
            .collect::<Vec<_>>()
    };
    let mut joined = json(&first.events);
    joined.extend(json(&rest.events));
    assert_eq!(joined, json(&whole.events));
    assert_eq!(rest.state, whole.state, "the same state, byte for byte");
}

#[test]
fn lines_parse_and_skip_or_stop_at_the_bad_ones() {
    let mut shard = Shard::new(config(), &profile()).unwrap();
    let lines = [
        r#"{"thing": "d1", "metric": "aws:listening-tcp-ports", "value": {"ports": [23]}, "timestamp": 1767225600}"#,
        "not json",
        r#"{"thing": "d2", "metric": "aws:listening-tcp-ports", "value": {"ports": [23]}, "timestamp": 1767225600}"#,
        r#"{"thing": "d1", "metric": "aws:num-messages-sent", "value": {"count": -1}, "timestamp": 1767225600}"#,
    ];
    let r = shard.process_lines("d1", None, &lines, true).unwrap();
    assert_eq!(r.events.len(), 1);
    let at: Vec<usize> = r.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(at, [1, 2, 3]);
    assert!(r.rejected[1].1.contains("not `d1`"), "{:?}", r.rejected);
    let e = shard
        .process_lines("d1", None, &lines, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lines[1]") && e.contains("not JSON"), "{e}");
}

#[test]
fn what_needs_the_whole_fleet_is_refused_by_name() {
    let cases = [
        (
            json!({"name": "p90", "metric": "aws:num-messages-sent",
                "criteria": {"comparisonOperator": "greater-than",
                             "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 300}}),
            "statisticalThreshold",
        ),
        (
            json!({"name": "g", "metric": "aws:num-messages-sent",
                "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
                "rcf": {"scope": "group"}}),
            "rcf.scope",
        ),
        (
            json!({"name": "h", "metric": "aws:num-messages-sent",
                "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
                "rcf": {"scope": "hierarchical"}}),
            "rcf.scope",
        ),
        (
            json!({"name": "silent", "metric": "aws:num-messages-sent",
                "criteria": {"comparisonOperator": "less-than", "value": {"count": 9},
                             "durationSeconds": 300},
                "rcf": {"missingData": "violate"}}),
            "rcf.missingData",
        ),
    ];
    for (b, field) in cases {
        let p = json!({"securityProfileName": "p", "behaviors": [b]});
        let e = Shard::new(config(), &p).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("whole fleet"), "{e}");
    }
    let mut c = config();
    c.memory_budget = Some(1 << 20);
    let e = Shard::new(c, &profile()).unwrap_err().to_string();
    assert!(e.contains("memory_budget"), "{e}");
}
