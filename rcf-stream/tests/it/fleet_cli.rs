//! `rcf fleet` run as a user would: the demo, a profile + JSON Lines file, a store that
//! survives `kill -9`, the queries, and bad input.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn rcf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rcf"))
}

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = rcf()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let w = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The demo's profile and a part of its fleet (30 things, 3 days) as files.
fn fleet_files(dir: &Path) -> (PathBuf, PathBuf) {
    let fleet = rcf_datasets::defender::fleet(60, 4, 3);
    let profile = dir.join("profile.json");
    std::fs::write(&profile, rcf_datasets::defender::demo_profile()).unwrap();
    let data = dir.join("datapoints.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
    let end = rcf_datasets::defender::START_MS + 3 * 86_400_000;
    for r in fleet
        .reports
        .iter()
        .filter(|r| r.timestamp < end && r.thing.as_str() < "thing-030")
    {
        writeln!(w, "{}", r.to_json_line()).unwrap();
    }
    w.flush().unwrap();
    (profile, data)
}

#[test]
fn the_demo_raises_each_incident_and_the_benign_rollout_clears() {
    let (code, out, err) = run(&["fleet", "--demo-things", "60"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Found 5 of 5 incidents"), "{out}");
    for incident in [
        "rogue agent",
        "debug topics",
        "authorization-failure spike",
        "telnet",
        "went silent",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains("FOUND") && l.contains(incident));
        assert!(line.is_some(), "{incident} not found:\n{out}");
    }
    let rollout = out
        .lines()
        .find(|l| l.contains("ALARMED") && l.contains("benign firmware rollout"))
        .expect("the rollout is alarmed");
    assert!(
        rollout.contains("cleared as the models learned"),
        "{rollout}"
    );
    assert!(
        out.contains("in-alarm") && out.contains("alarm-cleared"),
        "a timeline"
    );
    let fa = out.lines().find(|l| l.contains("False alarms:")).unwrap();
    let per_day: f64 = fa
        .split('(')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(per_day < 0.2, "{fa}");
}

#[test]
fn a_profile_and_a_jsonl_file_give_device_defender_events_and_queries() {
    let dir = crate::fleet::tempdir();
    let (profile, data) = fleet_files(&dir);
    let store = dir.join("fleet.db");
    let (code, out, err) = run(
        &[
            "fleet",
            "--profile",
            profile.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let evs = events(&out);
    assert!(
        evs.iter()
            .any(|e| e["thingName"] == "thing-007" && e["behavior"]["name"] == "message-burst"),
        "the rogue agent"
    );
    assert!(
        !evs.iter()
            .any(|e| e["thingName"] == "thing-020" && e["behavior"]["name"] == "no-debug-topics"),
        "debug firmware is on day 4, not in these 3 days"
    );
    for e in &evs {
        for key in [
            "violationId",
            "thingName",
            "securityProfileName",
            "behavior",
            "violationEventType",
            "violationEventTime",
            "verificationState",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    assert!(
        err.contains("datapoints") && err.contains("in-alarm"),
        "a summary on stderr: {err}"
    );
    // the store answers Device Defender's queries
    let (code, stored, _) = run(
        &["fleet", "violations", "--store", store.to_str().unwrap()],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(events(&stored).len(), evs.len());
    let (_, active, _) = run(
        &[
            "fleet",
            "violations",
            "--active",
            "--store",
            store.to_str().unwrap(),
        ],
        "",
    );
    let open = evs
        .iter()
        .filter(|e| e["violationEventType"] == "in-alarm")
        .count()
        - evs
            .iter()
            .filter(|e| e["violationEventType"] != "in-alarm")
            .count();
    assert_eq!(events(&active).len(), open);
    let (code, metrics, err) = run(
        &[
            "fleet",
            "metrics",
            "--store",
            store.to_str().unwrap(),
            "--thing",
            "thing-007",
            "--metric",
            "aws:num-messages-sent",
            "--start",
            "2026-01-03T10:00:00Z",
            "--end",
            "2026-01-03T11:00:00Z",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let m = events(&metrics);
    assert_eq!(m.len(), 12, "an hour of five-minute reports");
    assert!(
        m.iter()
            .all(|x| x["value"]["count"].as_u64().unwrap() > 200),
        "the burst: {metrics}"
    );
    // the same input again: nothing new is counted
    let (code, again, err) = run(
        &[
            "fleet",
            "--profile",
            profile.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(again.is_empty(), "{again}");
    assert!(err.contains("resuming after line"), "{err}");
}

#[test]
fn kill_9_mid_run_then_restart_gives_the_uninterrupted_events() {
    let dir = crate::fleet::tempdir();
    let (profile, data) = fleet_files(&dir);
    let args = |store: &Path| -> Vec<String> {
        [
            "fleet",
            "--profile",
            profile.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--commit-every",
            "1000",
            data.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let whole_store = dir.join("whole.db");
    let out = rcf().args(args(&whole_store)).output().unwrap();
    assert!(out.status.success());
    let whole = events(&String::from_utf8_lossy(&out.stdout));
    assert!(whole.len() >= 6, "{}", whole.len());

    // the same run, killed with SIGKILL once a third of the events are out
    let store = dir.join("killed.db");
    let mut child = rcf()
        .args(args(&store))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<Value> = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        seen.push(serde_json::from_str(&line.unwrap()).unwrap());
        if seen.len() >= whole.len() / 3 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed mid-run");
    let out = rcf().args(args(&store)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming after line"));
    // what a consumer saw, deduplicated on (violationId, event type), is the whole run's
    let key = |e: &Value| {
        (
            e["violationId"].as_str().unwrap().to_string(),
            e["violationEventType"].as_str().unwrap().to_string(),
        )
    };
    let mut got: Vec<Value> = Vec::new();
    let mut keys = BTreeSet::new();
    for e in seen
        .into_iter()
        .chain(events(&String::from_utf8_lossy(&out.stdout)))
    {
        if keys.insert(key(&e)) {
            got.push(e);
        }
    }
    assert_eq!(got, whole, "no event lost, none changed, ids kept");
    // and the store holds each event exactly once, as the uninterrupted store does
    let list = |s: &Path| {
        events(&String::from_utf8_lossy(
            &rcf()
                .args(["fleet", "violations", "--store", s.to_str().unwrap()])
                .output()
                .unwrap()
                .stdout,
        ))
    };
    assert_eq!(list(&store), list(&whole_store));
    assert_eq!(list(&store), whole);
}

#[test]
fn malformed_lines_are_reported_by_line_and_skipped_or_stop_with_strict() {
    let profile = r#"{"securityProfileName": "p", "behaviors": [{"name": "no-telnet", "metric": "aws:listening-tcp-ports", "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23]}}}]}"#;
    let dir = crate::fleet::tempdir();
    let p = dir.join("p.json");
    std::fs::write(&p, profile).unwrap();
    let mut input = String::new();
    input.push_str(r#"{"thing": "cam", "metric": "aws:listening-tcp-ports", "value": {"ports": [22]}, "timestamp": 1767225600}"#);
    input.push('\n');
    input.push_str("this is not json\n");
    for k in 0..30 {
        input.push_str(&format!("{{\"thing\": \"cam\", \"metric\": \"aws:listening-tcp-ports\", \"value\": {k}, \"timestamp\": 1767225700}}\n"));
    }
    input.push_str(r#"{"thing": "cam", "metric": "aws:listening-tcp-ports", "value": {"ports": [23]}, "timestamp": "2026-01-01T00:10:00Z"}"#);
    input.push('\n');
    // a pipe is read without `-`
    let (code, out, err) = run(&["fleet", "--profile", p.to_str().unwrap()], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        events(&out).len(),
        1,
        "the telnet alarm, after the bad lines"
    );
    assert!(err.contains("line 2: not JSON"), "{err}");
    assert!(
        err.contains("line 3:") && err.contains("port-list"),
        "{err}"
    );
    assert!(err.contains("more malformed rows not shown"), "{err}");
    assert_eq!(
        err.matches("(row skipped)").count(),
        10,
        "the first 10 in full: {err}"
    );
    let (code, _, err) = run(
        &["fleet", "--strict", "--profile", p.to_str().unwrap(), "-"],
        &input,
    );
    assert_eq!(code, 1);
    assert!(err.contains("line 2") && err.contains("--strict"), "{err}");
}

#[test]
fn bad_profiles_and_stores_fail_clearly() {
    let dir = crate::fleet::tempdir();
    let p = dir.join("p.json");
    std::fs::write(&p, r#"{"securityProfileName": "p", "behaviors": [{"name": "a", "metric": "aws:num-authorization-failures", "criteria": {"comparisonOperator": "greater-than", "value": {"count": 5}, "durationSeconds": 60}}]}"#).unwrap();
    let (code, _, err) = run(
        &[
            "fleet",
            "--strict-profile",
            "--profile",
            p.to_str().unwrap(),
            "-",
        ],
        "{}\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("behaviors[0].criteria.durationSeconds") && err.contains("60"),
        "{err}"
    );
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![7u8; 10_000]).unwrap();
    let (code, _, err) = run(
        &[
            "fleet",
            "--profile",
            p.to_str().unwrap(),
            "--store",
            junk.to_str().unwrap(),
            "-",
        ],
        "{}\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("not a SQLite database"), "{err}");
    let (code, _, err) = run(
        &[
            "fleet",
            "violations",
            "--store",
            dir.join("none.db").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("no store"), "{err}");
}

#[test]
fn detect_takes_a_fleet_csv_with_a_device_column() {
    let mut csv = String::from("timestamp,device_id,firmware,temp\n");
    for t in 0..800 {
        for (d, base) in [("dev-1", 20.0), ("dev-2", 60.0)] {
            let spike = if d == "dev-2" && t == 700 { 25.0 } else { 0.0 };
            csv.push_str(&format!(
                "{t},{d},v1.2,{:.2}\n",
                base + (t as f64 / 9.0).sin() + spike
            ));
        }
    }
    let (code, out, err) = run(
        &[
            "detect",
            "--key",
            "device_id",
            "--columns",
            "temp",
            "--anomalies-only",
            "-",
        ],
        &csv,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("timestamp,device_id,score"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("700,dev-2,")), "{out}");
    assert!(err.contains("2 keys"), "{err}");
    // without --key, the device column is not a number: what a fleet CSV used to get
    let (_, _, err) = run(&["detect", "-"], &csv);
    assert!(err.contains("is not a number"), "{err}");
}

#[test]
fn a_memory_budget_gives_the_same_events_and_models_reports_training() {
    let dir = std::env::temp_dir().join(format!("rcf-cli-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (profile, data) = fleet_files(&dir);
    let (p, d) = (profile.to_str().unwrap(), data.to_str().unwrap());
    let (code, free, err) = run(&["fleet", "--profile", p, "--flush", d], "");
    assert_eq!(code, 0, "{err}");
    let store = dir.join("fleet.db");
    let s = store.to_str().unwrap();
    let (code, tight, err) = run(
        &[
            "fleet",
            "--profile",
            p,
            "--store",
            s,
            "--flush",
            "--memory-budget",
            "512KiB",
            d,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        events(&tight),
        events(&free),
        "the budget changed the events"
    );
    let (code, out, err) = run(&["fleet", "models", "--store", s, "--per-thing"], "");
    assert_eq!(code, 0, "{err}");
    let rows = events(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["behaviorName"], "traffic-ml");
    assert_eq!(rows[0]["modelStatus"], "ACTIVE", "{}", rows[0]);
    assert_eq!(rows[0]["rcf"]["things"], 30);
    // opened without a budget, the store's models (evicted or checkpointed by commits) are
    // all back in memory, each as it was: every thing's own model is active
    assert_eq!(rows[0]["rcf"]["evicted"], 0, "{}", rows[0]["rcf"]);
    let per = rows[0]["rcf"]["perThing"].as_array().unwrap();
    assert_eq!(per.len(), 30);
    assert!(
        per.iter().all(|t| t["modelStatus"] == "ACTIVE"),
        "{}",
        rows[0]["rcf"]
    );
    let (code, _, err) = run(&["fleet", "--memory-budget", "lots", d], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("memory-budget") && err.contains("lots"),
        "{err}"
    );
    for bad in ["-1", "9000", "often"] {
        let flag = format!("--model-checkpoint-hours={bad}");
        let (code, _, err) = run(&["fleet", &flag, d], "");
        assert_ne!(code, 0);
        assert!(
            err.contains("model-checkpoint-hours") && err.contains(bad),
            "{err}"
        );
    }
    // a store written with checkpoints every hour and rows logged in between gives the
    // events of the run without a store
    let logged = dir.join("logged.db");
    let (code, out, err) = run(
        &[
            "fleet",
            "--profile",
            p,
            "--store",
            logged.to_str().unwrap(),
            "--flush",
            "--model-checkpoint-hours",
            "1",
            d,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(events(&out), events(&free));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The response commands as an operator uses them: alerts to a webhook that is down during
/// one run and delivered by the next, a label with feedback, quarantine and release, a
/// mitigation task, incidents.
#[test]
fn the_response_commands_alert_label_quarantine_and_mitigate() {
    let dir = crate::fleet::tempdir();
    let db = dir.join("fleet.db");
    let store = db.to_str().unwrap();
    let profile = dir.join("profile.json");
    std::fs::write(
        &profile,
        serde_json::json!({
            "mitigationActions": [{"actionName": "quarantine", "actionParams": {
                "addThingsToThingGroupParams": {"thingGroupNames": ["quarantine"]}}}],
            "securityProfiles": [{"securityProfileName": "p", "behaviors": [{
                "name": "msgs", "metric": "aws:num-messages-sent",
                "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 100},
                             "durationSeconds": 300}}]}]
        })
        .to_string(),
    )
    .unwrap();
    let lines = |from: i64, to: i64| -> String {
        (from..to)
            .flat_map(|w| {
                ["dev-1", "dev-2"].map(|t| {
                    let n = if t == "dev-1" && w % 10 == 3 { 500 } else { 10 };
                    format!(
                        "{{\"thing\":\"{t}\",\"metric\":\"aws:num-messages-sent\",\"value\":{n},\"timestamp\":{}}}\n",
                        1_767_225_600 + w * 300 + 1
                    )
                })
            })
            .collect()
    };
    let hook = crate::webhook::Webhook::start();
    hook.answer(503);
    let sink = format!("webhook={},retry=0.05", hook.url);
    let (code, out, err) = run(
        &[
            "fleet",
            "-",
            "--profile",
            profile.to_str().unwrap(),
            "--store",
            store,
            "--grace",
            "0",
            "--sink",
            &sink,
        ],
        &lines(0, 12),
    );
    assert_eq!(code, 0, "{err}");
    let printed = events(&out);
    assert!(printed.len() >= 2, "{out}");
    assert!(
        err.contains("not yet delivered") && err.contains("503"),
        "{err}"
    );
    assert!(hook.received().is_empty());
    // the endpoint is back: the next run (no new input) delivers what the first one owed
    hook.answer(200);
    let (code, _, err) = run(&["fleet", "-", "--store", store, "--sink", &sink], "");
    assert_eq!(code, 0, "{err}");
    let got: BTreeSet<String> = hook
        .received()
        .iter()
        .map(|e| format!("{}/{}", e["violationId"], e["violationEventType"]))
        .collect();
    let want: BTreeSet<String> = printed
        .iter()
        .map(|e| format!("{}/{}", e["violationId"], e["violationEventType"]))
        .collect();
    assert_eq!(got, want);
    // a label with feedback, listed and reverted
    let id = printed[0]["violationId"].as_str().unwrap().to_string();
    let (code, out, err) = run(
        &[
            "fleet",
            "verify",
            "--store",
            store,
            &id,
            "--state",
            "FALSE_POSITIVE",
            "--feedback",
            "learn",
            "--actor",
            "me",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let rec: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (rec["feedback"].as_str(), rec["actor"].as_str()),
        (Some("learn"), Some("me"))
    );
    let (code, _, err) = run(
        &["fleet", "verify", "--store", store, &id, "--state", "MAYBE"],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("MAYBE"), "{err}");
    let (_, out, _) = run(&["fleet", "adjustments", "--store", store], "");
    assert_eq!(out.lines().count(), 1);
    let adj = rec["adjustmentId"].to_string();
    let (code, out, _) = run(&["fleet", "revert", "--store", store, &adj], "");
    assert_eq!(code, 0);
    assert!(out.contains("\"reverts\""), "{out}");
    // quarantine and release by hand
    let (code, _, err) = run(&["fleet", "quarantine", "--store", store, "dev-2"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["fleet", "release", "--store", store, "dev-2"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["fleet", "release", "--store", store, "dev-2"], "");
    assert_eq!(code, 1);
    assert!(err.contains("not in thing group"), "{err}");
    // a mitigation task on the violation: dev-1 is quarantined
    let (code, out, err) = run(
        &[
            "fleet",
            "mitigate",
            "--store",
            store,
            "--task-id",
            "t1",
            "--violation-id",
            &id,
            "--action",
            "quarantine",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let task: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(task["taskStatus"], "SUCCESSFUL", "{task}");
    let (_, out, _) = run(&["fleet", "tasks", "--store", store], "");
    assert_eq!(out.lines().count(), 1);
    let (_, out, _) = run(&["fleet", "incidents", "--store", store], "");
    assert!(out.lines().count() >= 1, "{out}");
    let (code, _, err) = run(
        &[
            "fleet",
            "mitigate",
            "--store",
            store,
            "--violation-id",
            &id,
            "--action",
            "nuke",
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("nuke"), "{err}");
}
