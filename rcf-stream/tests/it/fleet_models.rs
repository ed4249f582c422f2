//! The fleet's model registry: a memory budget evicts models to the store and restores them
//! at their next datapoint, with verdicts identical to an engine that keeps every model.

use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, MetricValue as V, ModelStats};
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;
const MIN5: i64 = 300_000;

fn config(budget: Option<u64>) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.grace_ms = 0;
    c.max_future_ms = None;
    c.memory_budget = budget;
    c
}

/// One 3-metric ML behaviour (small models, so the test is quick; the registry does not
/// care about their size) and a rule.
fn profile() -> Value {
    json!({"securityProfileName": "p", "behaviors": [
        {"name": "msgs", "metric": "aws:num-messages-sent",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 500}, "durationSeconds": 300}},
        {"name": "traffic-ml", "metric": "aws:num-messages-sent",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}},
         "rcf": {"metrics": ["aws:all-bytes-out", "battery"], "numTrees": 6, "sampleSize": 32,
                 "shingleSize": 2}}]})
}

/// `things` things reporting three metrics every five minutes for `windows` windows, each with
/// a burst now and then (a deterministic hash for noise).
fn fleet(things: usize, windows: i64) -> Vec<Datapoint> {
    let noise = crate::hash_noise;
    let mut out = Vec::new();
    for w in 0..windows {
        for i in 0..things as i64 {
            let ts = T0 + w * MIN5 + 1_000 + i;
            let phase = (w as f64 + 7.0 * i as f64) * std::f64::consts::TAU / 96.0;
            let burst = (w + 13 * i) % 150 == 149;
            let msgs = (60.0 + 15.0 * phase.sin() + 6.0 * noise(w, i)).max(0.0) as u64
                * if burst { 8 } else { 1 };
            let bytes = msgs * (200 + (noise(i, w) * 20.0) as u64);
            let battery = 70.0 + 10.0 * phase.cos() + noise(w + 1, i);
            let name = format!("thing-{i:03}");
            for (m, v) in [
                ("aws:num-messages-sent", V::Count(msgs)),
                ("aws:all-bytes-out", V::Count(bytes)),
                ("battery", V::Number(battery)),
            ] {
                out.push(Datapoint::new(&name, m, v, ts, None).unwrap());
            }
        }
    }
    out
}

/// Runs `input` through an engine; returns its events (JSON) and the registry's stats, and
/// checks after each datapoint that the models in memory are within `budget`.
fn run(
    input: &[Datapoint],
    budget: Option<u64>,
    path: Option<&std::path::Path>,
) -> (Vec<Value>, ModelStats) {
    let mut e = Engine::open(config(budget), path).unwrap();
    e.configure(&profile()).unwrap();
    let mut out = Vec::new();
    for (k, d) in input.iter().enumerate() {
        out.extend(e.ingest(d).unwrap().iter().map(|v| v.to_json()));
        if let Some(b) = budget {
            let s = e.model_stats();
            assert!(
                s.resident_bytes as u64 <= b,
                "datapoint {k}: {} bytes of models in memory over the budget of {b}",
                s.resident_bytes
            );
        }
        if (k + 1) % 3_000 == 0 {
            e.commit(None).unwrap();
        }
    }
    out.extend(e.flush().unwrap().iter().map(|v| v.to_json()));
    e.commit(None).unwrap();
    (out, e.model_stats())
}

#[test]
fn evicted_models_come_back_bit_for_bit_and_the_budget_holds() {
    let input = fleet(24, 420);
    let (all, free) = run(&input, None, None);
    let ml = all
        .iter()
        .filter(|e| e["behavior"]["name"] == "traffic-ml")
        .count();
    assert!(
        ml >= 5,
        "the ML behaviour raised {ml} events: too few to compare"
    );
    assert_eq!((free.resident, free.evictions), (24, 0));
    // a budget of about a third of the models, on a file store and in memory
    let budget = (free.resident_bytes / 3) as u64;
    let dir = crate::fleet::tempdir();
    for path in [Some(dir.join("fleet.db")), None] {
        let (events, s) = run(&input, Some(budget), path.as_deref());
        assert!(s.evictions > 1_000 && s.restores > 1_000, "{s:?}");
        assert_eq!(s.resident + s.evicted, 24, "{s:?}");
        assert_eq!(events.len(), all.len());
        for (k, (a, b)) in events.iter().zip(&all).enumerate() {
            assert_eq!(a, b, "event {k} differs with a budget ({path:?})");
        }
    }
    // the same from inside a pool of one thread (the engine reads and writes checkpoints
    // beside decoding and encoding others, and must not wait on itself)
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let store = dir.join("one-thread.db");
    let (events, s) = pool.install(|| run(&input, Some(budget), Some(&store)));
    assert!(s.evictions > 1_000, "{s:?}");
    assert_eq!(events, all, "events differ in a pool of one thread");
}

#[test]
fn a_store_with_evicted_models_reopens_exactly_after_a_crash() {
    let input = fleet(12, 300);
    let (whole, free) = run(&input, None, None);
    let budget = (free.resident_bytes / 4) as u64;
    let dir = crate::fleet::tempdir();
    let path = dir.join("fleet.db");
    let p = profile();
    let part = |stop: Option<usize>| -> Vec<Value> {
        let mut e = Engine::open(config(Some(budget)), Some(&path)).unwrap();
        e.configure(&p).unwrap();
        let start: usize = e.cursor().map_or(0, |c| c.parse().unwrap());
        if start > 0 {
            // reopened: the saved models are partly in memory, partly checkpointed
            let s = e.model_stats();
            assert!(s.evicted > 0 && s.resident_bytes as u64 <= budget, "{s:?}");
        }
        let mut out = Vec::new();
        for (i, d) in input.iter().enumerate().skip(start) {
            out.extend(e.ingest(d).unwrap().iter().map(|v| v.to_json()));
            if (i + 1) % 1_000 == 0 {
                e.commit(Some(&(i + 1).to_string())).unwrap();
            }
            if stop == Some(i + 1) {
                return out; // dropped without committing: a crash
            }
        }
        out.extend(e.flush().unwrap().iter().map(|v| v.to_json()));
        e.commit(Some(&input.len().to_string())).unwrap();
        out
    };
    let mut seen = part(Some(6_500));
    for ev in part(None) {
        if !seen.contains(&ev) {
            seen.push(ev);
        }
    }
    assert_eq!(seen, whole);
}

#[test]
fn dropping_a_behaviour_deletes_its_checkpoints() {
    let input = fleet(10, 60);
    let dir = crate::fleet::tempdir();
    let path = dir.join("fleet.db");
    let mut e = Engine::open(config(Some(1)), Some(&path)).unwrap();
    e.configure(&profile()).unwrap();
    for d in &input {
        e.ingest(d).unwrap();
    }
    e.commit(None).unwrap();
    let s = e.model_stats();
    assert_eq!(
        (s.resident, s.evicted, s.resident_bytes),
        (0, 10, 0),
        "{s:?}"
    );
    let mut rules = profile();
    rules["behaviors"].as_array_mut().unwrap().truncate(1);
    e.configure(&rules).unwrap();
    e.commit(None).unwrap();
    assert_eq!(e.model_stats().evicted, 0);
    drop(e);
    let rows: i64 = rusqlite_count(&path);
    assert_eq!(rows, 0, "checkpoints of a dropped behaviour are deleted");
}

#[test]
fn a_missing_or_corrupt_checkpoint_is_an_error_naming_the_thing() {
    let input = fleet(10, 60);
    let (head, last) = input.split_at(input.len() - 30); // the last window: 10 things × 3
    let dir = crate::fleet::tempdir();
    let path = dir.join("fleet.db");
    let mut e = Engine::open(config(Some(1)), Some(&path)).unwrap();
    e.configure(&profile()).unwrap();
    for d in head {
        e.ingest(d).unwrap();
    }
    e.commit(None).unwrap();
    drop(e);
    for (damage, says) in [
        ("UPDATE models SET state = x'00'", "is corrupt"),
        ("DELETE FROM models", "its checkpoint is missing"),
    ] {
        let mut e = Engine::open(config(Some(1)), Some(&path)).unwrap();
        let before = e.model_stats();
        assert_eq!((before.resident, before.evicted), (0, 10), "{before:?}");
        // damaged behind the engine's back (a store that loses its checkpoints' rows is
        // cleaned up when it is opened: their models are trained again from history)
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(damage).unwrap();
        drop(c);
        // the first datapoint of the last window closes the one before: its models are read
        let err = e.ingest(&last[0]).unwrap_err().to_string();
        assert!(
            err.contains("the evicted model of thing `thing-") && err.contains(says),
            "{err}"
        );
        let after = e.model_stats();
        assert_eq!((after.resident, after.evicted), (0, 10), "{after:?}");
    }
}

/// Runs `input` on a file store at `path` with `checkpoint_ms` between full model
/// checkpoints, committing every `every` datapoints, and drops the engine without committing
/// after datapoint `stop` (a crash); then reopens it (`budget`) and runs the rest. Returns the
/// events of both runs (those of the crashed run's uncommitted tail raised again, once) and
/// the rows of the store's model log when it was reopened.
fn crash_and_replay(
    input: &[Datapoint],
    path: &std::path::Path,
    checkpoint_ms: i64,
    budget: Option<u64>,
    every: usize,
    stop: usize,
) -> (Vec<Value>, i64) {
    let p = profile();
    let mut logged = 0;
    let mut part = |stop: Option<usize>| -> Vec<Value> {
        let mut c = config(budget);
        c.model_checkpoint_ms = checkpoint_ms;
        let mut e = Engine::open(c, Some(path)).unwrap();
        e.configure(&p).unwrap();
        let start: usize = e.cursor().map_or(0, |c| c.parse().unwrap());
        if start > 0 {
            logged = count_rows(path, "model_logs");
            if budget.is_none() {
                // every model back in memory at once, its log replayed
                let s = e.model_stats();
                assert!(s.resident == 12 && s.evicted == 0, "{s:?}");
            }
        }
        let mut out = Vec::new();
        for (i, d) in input.iter().enumerate().skip(start) {
            out.extend(e.ingest(d).unwrap().iter().map(|v| v.to_json()));
            if (i + 1) % every == 0 {
                e.commit(Some(&(i + 1).to_string())).unwrap();
            }
            if stop == Some(i + 1) {
                return out;
            }
        }
        out.extend(e.flush().unwrap().iter().map(|v| v.to_json()));
        e.commit(Some(&input.len().to_string())).unwrap();
        out
    };
    let mut seen = part(Some(stop));
    for ev in part(None) {
        if !seen.contains(&ev) {
            seen.push(ev);
        }
    }
    (seen, logged)
}

#[test]
fn models_checkpointed_now_and_then_reopen_exactly_from_their_logs() {
    // 12 things × 3 metrics: 36 datapoints a window; commits every 360 (10 windows, 50
    // minutes), the crash 7 commits and 10 datapoints after the last one
    let input = fleet(12, 300);
    let (whole, _) = run(&input, None, None);
    assert!(
        whole.iter().any(|e| e["behavior"]["name"] == "traffic-ml"),
        "no ML event to compare"
    );
    let dir = crate::fleet::tempdir();
    for (k, (checkpoint_ms, budget, stop)) in [
        // every 4 h: most commits log rows, some write models in full
        (4 * 3_600_000, None, 7 * 360 + 10),
        (4 * 3_600_000, None, 19 * 360 + 10),
        // never in full after the first: every later commit logs
        (100 * 3_600_000, None, 19 * 360 + 10),
        // every commit in full (no log)
        (0, None, 19 * 360 + 10),
        // under a budget: evictions write models in full and clear their logs
        (4 * 3_600_000, Some(12_000), 19 * 360 + 10),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("fleet-{k}.db"));
        let (events, logged) = crash_and_replay(&input, &path, checkpoint_ms, budget, 360, stop);
        if checkpoint_ms == 0 {
            assert_eq!(logged, 0, "case {k}");
        } else if budget.is_none() {
            // 12 models, each with up to one entry per commit since its last checkpoint
            let least = if checkpoint_ms > 24 * 3_600_000 {
                12 * 15
            } else {
                6
            };
            assert!(logged >= least, "case {k}: {logged} log rows when reopened");
        }
        assert_eq!(events, whole, "case {k}: the events differ after the crash");
        if checkpoint_ms > 0 {
            // what the last commit left: models and logs that give the same models again
            let mut c = config(None);
            c.model_checkpoint_ms = checkpoint_ms;
            let e = Engine::open(c.clone(), Some(&path)).unwrap();
            assert_eq!(e.model_stats().resident, 12, "case {k}");
            let warm = |e: &Engine| -> Vec<(Value, Value)> {
                let s = &e.model_training_summaries(None, true).unwrap()[0];
                s["rcf"]["perThing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| (t["modelStatus"].clone(), t["datapointsCollected"].clone()))
                    .collect()
            };
            let in_memory = warm(&e);
            assert_eq!(in_memory.len(), 12);
            assert!(in_memory.iter().all(|t| t.0 == "ACTIVE"), "{in_memory:?}");
            // opened under a budget, the models are out of memory (those with a log read
            // back, replayed and checkpointed afresh): the summaries come from what the
            // checkpoints say the models learned
            drop(e);
            c.memory_budget = Some(1);
            let e = Engine::open(c, Some(&path)).unwrap();
            assert_eq!(e.model_stats().evicted, 12, "case {k}");
            assert_eq!(warm(&e), in_memory, "case {k}");
        }
    }
}

#[test]
fn a_damaged_model_log_is_an_error_naming_the_thing() {
    let input = fleet(10, 60);
    let dir = crate::fleet::tempdir();
    let path = dir.join("fleet.db");
    let mut c = config(None);
    c.model_checkpoint_ms = 100 * 3_600_000;
    let mut e = Engine::open(c.clone(), Some(&path)).unwrap();
    e.configure(&profile()).unwrap();
    for (k, d) in input.iter().enumerate() {
        e.ingest(d).unwrap();
        if (k + 1) % 300 == 0 {
            e.commit(None).unwrap();
        }
    }
    e.commit(None).unwrap();
    drop(e);
    assert!(count_rows(&path, "model_logs") >= 10);
    let copy = dir.join("copy.db");
    for (damage, says) in [
        (
            "UPDATE model_logs SET rows = x'0000' WHERE seq = (SELECT max(seq) FROM model_logs)",
            "not rows of 3 values",
        ),
        (
            "DELETE FROM model_logs WHERE seq = (SELECT min(seq) FROM model_logs)",
            "follows row",
        ),
    ] {
        for budget in [None, Some(1)] {
            std::fs::copy(&path, &copy).unwrap();
            let db = rusqlite::Connection::open(&copy).unwrap();
            db.execute_batch(damage).unwrap();
            drop(db);
            // the logs are read when the store is opened, with or without a budget
            let mut b = c.clone();
            b.memory_budget = budget;
            let err = match Engine::open(b, Some(&copy)) {
                Ok(_) => panic!("{damage}: opened"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains("the evicted model of thing `thing-") && err.contains(says),
                "{err}"
            );
        }
    }
    // undamaged, it opens under a budget too: the models with a log come back, and those
    // that do not fit are checkpointed afresh
    let mut b = c.clone();
    b.memory_budget = Some(1);
    let e = Engine::open(b, Some(&path)).unwrap();
    let s = e.model_stats();
    assert_eq!((s.resident, s.evicted), (0, 10), "{s:?}");
    assert_eq!(s.restores, 10, "{s:?}");
}

fn count_rows(path: &std::path::Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Rows in the store's `models` table.
fn rusqlite_count(path: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT count(*) FROM models", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn bad_budgets_and_model_settings_are_named() {
    let mut c = config(Some(0));
    let e = Engine::open(c.clone(), None).unwrap_err().to_string();
    assert!(e.contains("memory_budget") && e.contains('0'), "{e}");
    c.memory_budget = None;
    c.model.sample_size = 0;
    let e = Engine::open(c.clone(), None).unwrap_err().to_string();
    assert!(e.contains("model") && e.contains("sample_size"), "{e}");
    c.model = Default::default();
    for bad in [-1, 367 * 24 * 3_600_000] {
        c.model_checkpoint_ms = bad;
        let e = Engine::open(c.clone(), None).unwrap_err().to_string();
        assert!(
            e.contains("model_checkpoint_ms") && e.contains(&bad.to_string()),
            "{e}"
        );
    }
}

/// A fleet of 20 alike things and one that sends ten times as much, steadily, under the given
/// ML scope; returns the ML in-alarm events of the odd thing and of the others, with the
/// window (from the start) each was raised in and whether the group model raised it.
fn odd_one_out(scope: &str) -> (Vec<(i64, bool)>, usize) {
    // z = 4: a short run of small models, whose thresholds are not yet at a fleet model's
    // steady state (the confidence levels are calibrated for that)
    let p = json!({"securityProfileName": "p", "behaviors": [
        {"name": "traffic-ml", "metric": "aws:num-messages-sent",
         "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"},
                      "consecutiveDatapointsToClear": 1},
         "rcf": {"metrics": ["aws:all-bytes-out"], "scope": scope, "numTrees": 10,
                 "sampleSize": 64, "shingleSize": 2, "zFactor": 4}}]});
    let mut e = Engine::open(config(None), None).unwrap();
    e.configure(&p).unwrap();
    let mut events = Vec::new();
    for w in 0..400i64 {
        for i in 0..21i64 {
            let ts = T0 + w * MIN5 + 1_000 + i;
            let phase = (w as f64 + 3.0 * i as f64) * std::f64::consts::TAU / 288.0;
            let h = ((w * 31 + i * 17) % 11) as f64 - 5.0;
            let base = if i == 20 { 600.0 } else { 60.0 };
            let msgs = (base * (1.0 + 0.2 * phase.sin()) + h) as u64;
            let name = format!("thing-{i:02}");
            for (m, v) in [
                ("aws:num-messages-sent", V::Count(msgs)),
                (
                    "aws:all-bytes-out",
                    V::Count(msgs * 200 + (h as i64 + 5) as u64),
                ),
            ] {
                events.extend(
                    e.ingest(&Datapoint::new(&name, m, v, ts, None).unwrap())
                        .unwrap(),
                );
            }
        }
    }
    let alarms = events
        .iter()
        .filter(|v| v.event_type.as_str() == "in-alarm");
    let odd: Vec<(i64, bool)> = alarms
        .clone()
        .filter(|v| &*v.thing_name == "thing-20")
        .map(|v| ((v.time - T0) / MIN5, v.ml.as_ref().unwrap().group_model))
        .collect();
    let others = alarms.filter(|v| &*v.thing_name != "thing-20").count();
    (odd, others)
}

#[test]
fn a_thing_unlike_its_group_is_flagged_by_the_group_model_not_by_its_own() {
    // group (Device Defender's ML Detect): the odd thing is anomalous against the group, and
    // stays in alarm
    let (odd, others) = odd_one_out("group");
    assert_eq!(others, 0, "the alike things are like their group");
    assert!(!odd.is_empty() && odd.iter().all(|a| a.1), "{odd:?}");
    // per-device: judged against its own normal, it is not flagged once its model is warm
    let (odd, _) = odd_one_out("per-device");
    assert!(odd.is_empty(), "{odd:?}");
    // hierarchical: the group model covers it from the start (flagged), its own model after
    let (odd, _) = odd_one_out("hierarchical");
    assert!(odd.first().is_some_and(|a| a.1 && a.0 < 60), "{odd:?}");
    assert!(
        odd.iter().all(|a| a.1),
        "its own warm model raises nothing: {odd:?}"
    );
}

#[test]
fn training_summaries_follow_the_warm_up_of_each_scope() {
    let profile = |scope: &str| {
        json!({"securityProfileName": "p", "behaviors": [
            {"name": "traffic-ml", "metric": "aws:num-messages-sent",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
             "rcf": {"metrics": ["aws:all-bytes-out", "battery"], "scope": scope,
                     "numTrees": 6, "sampleSize": 32, "shingleSize": 2}}]})
    };
    let input = fleet(10, 120);
    let mut active = Vec::new();
    for scope in ["per-device", "group", "hierarchical"] {
        let mut e = Engine::open(config(None), None).unwrap();
        e.configure(&profile(scope)).unwrap();
        let s = &e.model_training_summaries(None, false).unwrap()[0];
        assert_eq!(s["modelStatus"], "PENDING_BUILD", "{s}");
        assert_eq!(s["datapointsCollectedPercentage"], 0.0);
        let mut seen_pending_share = false;
        let mut active_at = None;
        for (k, d) in input.iter().enumerate() {
            e.ingest(d).unwrap();
            if k % 30 == 29 {
                let s = &e.model_training_summaries(Some("p"), true).unwrap()[0];
                let pct = s["datapointsCollectedPercentage"].as_f64().unwrap();
                match s["modelStatus"].as_str().unwrap() {
                    "PENDING_BUILD" => {
                        assert!(active_at.is_none(), "{scope}: active, then pending again");
                        assert!(pct < 100.0, "{s}");
                        seen_pending_share |= pct > 0.0;
                        for t in s["rcf"]["perThing"].as_array().unwrap() {
                            let want = if scope == "group" { "GROUP" } else { "WARMING" };
                            assert_eq!(t["modelStatus"], want, "{scope}: {t}");
                        }
                    }
                    "ACTIVE" => {
                        active_at.get_or_insert(k / 30);
                        assert_eq!(pct, 100.0);
                        assert!(s["lastModelRefreshDate"].as_i64().unwrap() > T0 / 1000);
                        assert!(
                            s["trainingDataCollectionStartDate"].as_i64().unwrap() >= T0 / 1000
                        );
                    }
                    other => panic!("{scope}: status {other}"),
                }
            }
        }
        assert!(seen_pending_share, "{scope}: the share grew while pending");
        let active_at = active_at.unwrap_or_else(|| panic!("{scope} never became active"));
        let s = &e.model_training_summaries(None, true).unwrap()[0];
        assert_eq!(s["rcf"]["things"], 10);
        if scope != "group" {
            // a thing's own model is active once it has the datapoints it needs
            let needed = s["rcf"]["datapointsNeeded"].as_u64().unwrap();
            for t in s["rcf"]["perThing"].as_array().unwrap() {
                assert_eq!(t["modelStatus"], "ACTIVE", "{t}");
            }
            if scope == "per-device" {
                assert!(
                    (active_at as u64).abs_diff(needed) <= 1,
                    "{needed} vs {active_at}"
                );
            }
        }
        active.push(active_at);
    }
    // a group model learns from all ten things: it, and the hierarchical scope it covers,
    // are active in a fraction of the windows a thing's own model needs
    assert!(active[1] * 3 <= active[0], "{active:?}");
    assert_eq!(active[2], active[1], "{active:?}");
    let e = Engine::open(config(None), None).unwrap();
    let err = e.model_training_summaries(Some("nope"), false).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn a_file_store_engine_copies_to_bytes_and_back_with_its_evicted_models() {
    let input = fleet(6, 80);
    let dir = crate::fleet::tempdir();
    let mut e = Engine::open(config(Some(40_000)), Some(&dir.join("fleet.db"))).unwrap();
    e.configure(&profile()).unwrap();
    for d in &input[..input.len() / 2] {
        e.ingest(d).unwrap();
    }
    let bytes = e.to_bytes().unwrap();
    let mut copy = Engine::from_bytes(config(Some(40_000)), &bytes).unwrap();
    // under a budget the copy's models come back at their next datapoint
    let (a, b) = (e.model_stats(), copy.model_stats());
    assert_eq!(
        a.resident + a.evicted,
        b.resident + b.evicted,
        "{a:?} {b:?}"
    );
    assert!(a.evicted > 0 && b.evicted > 0, "{a:?} {b:?}");
    for d in &input[input.len() / 2..] {
        let a: Vec<Value> = e.ingest(d).unwrap().iter().map(|v| v.to_json()).collect();
        let b: Vec<Value> = copy
            .ingest(d)
            .unwrap()
            .iter()
            .map(|v| v.to_json())
            .collect();
        assert_eq!(a, b);
    }
}

/// Windows (from the start) in which `behavior` went in alarm for a thing whose bytes out are
/// about 12 kB per window, with a 50 kB burst at window 300 and a 5 MB one at window 340.
fn composite_alarms(requires: Option<&str>) -> Vec<(String, i64)> {
    let mut ml = json!({"name": "bytes-ml", "metric": "aws:all-bytes-out",
        "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
        "rcf": {"numTrees": 10, "sampleSize": 64, "shingleSize": 2}});
    if let Some(r) = requires {
        ml["rcf"]["requires"] = json!([r]);
    }
    let p = json!({"securityProfileName": "p", "behaviors": [
        {"name": "big-bytes", "metric": "aws:all-bytes-out",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1_000_000},
                      "durationSeconds": 300}},
        ml]});
    let mut e = Engine::open(config(None), None).unwrap();
    e.configure(&p).unwrap();
    let mut out = Vec::new();
    for w in 0..360i64 {
        let bytes = match w {
            300 => 50_000,
            340 => 5_000_000,
            _ => 12_000 + ((w * 37) % 17) as u64 * 50,
        };
        let dp = Datapoint::new(
            "d",
            "aws:all-bytes-out",
            V::Count(bytes),
            T0 + w * MIN5 + 1,
            None,
        )
        .unwrap();
        out.extend(e.ingest(&dp).unwrap());
    }
    out.extend(e.flush().unwrap());
    out.iter()
        .filter(|v| v.event_type.as_str() == "in-alarm")
        .map(|v| (v.behavior_name.to_string(), (v.time - T0) / MIN5))
        .collect()
}

#[test]
fn a_composite_behaviour_alarms_only_where_what_it_requires_violates_too() {
    let plain = composite_alarms(None);
    assert!(plain.contains(&("bytes-ml".into(), 301)), "{plain:?}");
    assert!(plain.contains(&("bytes-ml".into(), 341)), "{plain:?}");
    let gated = composite_alarms(Some("big-bytes"));
    let ml: Vec<_> = gated.iter().filter(|a| a.0 == "bytes-ml").collect();
    assert_eq!(ml, [&("bytes-ml".to_string(), 341)], "{gated:?}");
    assert!(gated.contains(&("big-bytes".into(), 341)));
    // what it requires must exist, not be itself, and share its window
    let bad = |requires: Value, extra: Value| {
        let p = json!({"securityProfileName": "p", "behaviors": [
            {"name": "a", "metric": "aws:all-bytes-out",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
             "rcf": {"requires": requires}},
            extra]});
        let mut e = Engine::open(config(None), None).unwrap();
        e.configure(&p).unwrap_err().to_string()
    };
    let rule = |secs: u64| {
        json!({"name": "r", "metric": "aws:all-bytes-out",
               "criteria": {"comparisonOperator": "less-than", "value": {"count": 5}, "durationSeconds": secs}})
    };
    let e = bad(json!(["nope"]), rule(300));
    assert!(
        e.contains("behaviors[0].rcf.requires[0]") && e.contains("nope"),
        "{e}"
    );
    let e = bad(json!(["a"]), rule(300));
    assert!(e.contains("itself"), "{e}");
    let e = bad(json!(["r"]), rule(600));
    assert!(e.contains("same window"), "{e}");
    let e = bad(json!("r"), rule(300));
    assert!(e.contains("list"), "{e}");
}

#[test]
fn time_decay_sets_how_far_back_a_model_remembers() {
    use rcf_stream::fleet::models::FLEET_MEMORY_SAMPLE_SIZES;
    // the events, and the models' bytes in memory at the end
    let run = |decay: Option<f64>| {
        let mut p = profile();
        if let Some(d) = decay {
            p["behaviors"][1]["rcf"]["timeDecay"] = json!(d);
        }
        let mut e = Engine::open(config(None), None).unwrap();
        e.configure(&p).unwrap();
        let mut out = Vec::new();
        for d in fleet(6, 1_500) {
            // what each event says, without the behaviour (which shows its `rcf` settings)
            out.extend(e.ingest(&d).unwrap().iter().map(|v| {
                let mut j = v.to_json();
                j.as_object_mut().unwrap().remove("behavior");
                j
            }));
        }
        (out, e.model_stats().resident_bytes)
    };
    let (default, bytes) = run(None);
    assert!(!default.is_empty());
    // the default: a sample reaching back FLEET_MEMORY_SAMPLE_SIZES sample sizes (32 here)
    let k = FLEET_MEMORY_SAMPLE_SIZES as f64;
    assert_eq!(run(Some(1.0 / (k * 32.0))), (default.clone(), bytes));
    // a sample reaching back one sample size is another model (what it costs in memory and
    // detection at the fleet's size: BENCHMARKS.md, "Fleet models in the long run")
    let (short, _) = run(Some(1.0 / 32.0));
    assert_ne!(short, default);
}

/// The ML events (thing, time, type) of `fleet(12, 300)` with the ML behaviour at `confidence`
/// and, if given, `rcf.zFactor`.
fn ml_alarms(confidence: &str, z: Option<f64>) -> Vec<(String, i64, String)> {
    let mut p = profile();
    p["behaviors"][1]["criteria"]["mlDetectionConfig"]["confidenceLevel"] = json!(confidence);
    if let Some(z) = z {
        p["behaviors"][1]["rcf"]["zFactor"] = json!(z);
    }
    let mut e = Engine::open(config(None), None).unwrap();
    e.configure(&p).unwrap();
    let mut out = Vec::new();
    for d in fleet(12, 300) {
        out.extend(e.ingest(&d).unwrap());
    }
    out.extend(e.flush().unwrap());
    out.iter()
        .filter(|v| &*v.behavior_name == "traffic-ml")
        .map(|v| {
            (
                v.thing_name.to_string(),
                v.time,
                v.event_type.as_str().to_string(),
            )
        })
        .collect()
}

#[test]
fn medium_confidence_is_the_fleet_z_factor_and_z_factor_orders_the_alarms() {
    use rcf_stream::fleet::{FLEET_HIGH_Z, FLEET_LOW_Z, FLEET_MEDIUM_Z};
    const { assert!(FLEET_LOW_Z < FLEET_MEDIUM_Z && FLEET_MEDIUM_Z < FLEET_HIGH_Z) };
    let medium = ml_alarms("MEDIUM", None);
    // each level is its fleet z-factor, whatever the level a zFactor overrides
    assert_eq!(medium, ml_alarms("MEDIUM", Some(FLEET_MEDIUM_Z)));
    assert_eq!(medium, ml_alarms("LOW", Some(FLEET_MEDIUM_Z)));
    assert_eq!(ml_alarms("LOW", None), ml_alarms("HIGH", Some(FLEET_LOW_Z)));
    assert_eq!(
        ml_alarms("HIGH", None),
        ml_alarms("LOW", Some(FLEET_HIGH_Z))
    );
    let in_alarm = |v: &[(String, i64, String)]| v.iter().filter(|e| e.2 == "in-alarm").count();
    let zs = [2.0, 3.0, 4.0, FLEET_LOW_Z, FLEET_MEDIUM_Z, FLEET_HIGH_Z];
    let counts: Vec<usize> = zs
        .iter()
        .map(|&z| in_alarm(&ml_alarms("MEDIUM", Some(z))))
        .collect();
    assert!(
        counts[0] > counts[5],
        "a higher z raises fewer alarms: {counts:?}"
    );
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "alarms by z {zs:?}: {counts:?}"
    );
}
