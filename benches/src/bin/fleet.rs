//! The fleet engine's throughput and latency (BENCHMARKS.md, "Fleet engine").
//!
//! ```text
//! cargo run --release -p rcf-benches --bin fleet            # full sizes
//! cargo run --release -p rcf-benches --bin fleet -- --quick # CI smoke run
//! ```
//!
//! 1. Rules only: the demo profile without its ML behaviour (static rules, a topic-filter
//!    dimension, a fleet percentile, a missing-data rule) over a simulated fleet, metric
//!    history on, in memory and in a SQLite file (a commit every 50,000 datapoints).
//! 2. The same plus one 3-metric ML behaviour per thing, 1,000 things.
//! 3. JSON Lines: parsing and ingesting the same datapoints from text.
//!
//! Each row runs in a fresh process (`--only memory|off|file|jsonl|ml` runs one, e.g. under
//! a profiler).
//!
//! Latency: the engine call in which a window's end passes the watermark returns that
//! window's events; its duration is the time from the window closing to its violation events.

use std::time::Instant;

use rcf_datasets::defender::{self, Value};
use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, MetricValue, datapoint};

fn datapoints(things: usize, days: usize) -> Vec<Datapoint> {
    defender::fleet(things, days, 1)
        .reports
        .iter()
        .map(|r| {
            let v = match &r.value {
                Value::Count(c) => MetricValue::Count(*c),
                Value::Number(x) => MetricValue::Number(*x),
                Value::Ports(p) => MetricValue::Ports(p.clone()),
            };
            Datapoint::new(&r.thing, r.metric, v, r.timestamp, r.topic).expect("valid")
        })
        .collect()
}

fn profile(ml: bool) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(defender::demo_profile()).expect("JSON");
    if !ml {
        let b = v["securityProfiles"][0]["behaviors"]
            .as_array_mut()
            .expect("list");
        b.retain(|b| {
            b.get("criteria")
                .and_then(|c| c.get("mlDetectionConfig"))
                .is_none()
        });
    }
    v
}

struct Run {
    rate: f64,
    closes: Vec<f64>,
    events: u64,
}

fn run(dps: &[Datapoint], ml: bool, file: Option<&std::path::Path>, history: bool) -> Run {
    if let Some(f) = file {
        let _ = std::fs::remove_file(f);
        let _ = std::fs::remove_file(f.with_extension("db-wal"));
        let _ = std::fs::remove_file(f.with_extension("db-shm"));
    }
    let mut config = EngineConfig::default();
    config.max_future_ms = None;
    config.history = history;
    let mut e = Engine::open(config, file).expect("open");
    e.configure(&profile(ml)).expect("profile");
    let mut out = Vec::new();
    let mut closes = Vec::new();
    let start = Instant::now();
    for (i, dp) in dps.iter().enumerate() {
        let windows = e.counters().windows;
        let t = Instant::now();
        e.ingest_into(dp, &mut out).expect("ingest");
        if e.counters().windows != windows {
            closes.push(t.elapsed().as_secs_f64());
        }
        out.clear();
        if (i + 1) % 50_000 == 0 {
            e.commit(None).expect("commit");
        }
    }
    e.commit(None).expect("commit");
    let secs = start.elapsed().as_secs_f64();
    closes.sort_by(f64::total_cmp);
    Run {
        rate: dps.len() as f64 / secs,
        closes,
        events: e.counters().in_alarm,
    }
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn report(name: &str, r: &Run) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        r.rate,
        quantile(&r.closes, 0.5) * 1e3,
        quantile(&r.closes, 0.99) * 1e3,
        r.closes.last().copied().unwrap_or(f64::NAN) * 1e3,
        r.events
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only memory|off|file|jsonl|ml` runs one row (for profiling)
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let (rule_things, ml_things, days) = if quick {
        (200, 60, 4)
    } else {
        (1_000, 1_000, 4)
    };
    if !args.iter().any(|a| a == "--no-header") {
        println!("threads: {}", rayon::current_num_threads());
        println!(
            "| run | datapoints/s | window close → events, median ms | p99 ms | max ms | in-alarm |"
        );
        println!("|---|---|---|---|---|---|");
    }
    let Some(only) = only else {
        // each row in a fresh process: one row's heap (millions of freed allocations) made
        // the next measurably slower, and a deployment runs one engine per process
        let exe = std::env::current_exe().expect("own path");
        for row in ["memory", "off", "file", "jsonl", "ml"] {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--only", row, "--no-header"]);
            if quick {
                cmd.arg("--quick");
            }
            let status = cmd.status().expect("run a row");
            assert!(status.success(), "row {row} failed");
        }
        return;
    };
    let wants = |row: &str| only == row;
    let dir = std::env::temp_dir().join(format!("rcf-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules = if ["memory", "off", "file"].contains(&only.as_str()) {
        datapoints(rule_things, days)
    } else {
        Vec::new()
    };
    let label = format!(
        "rules only, {rule_things} things × {days} days ({} datapoints), history in memory",
        rules.len()
    );
    if wants("memory") {
        report(&label, &run(&rules, false, None, true));
    }
    let label = format!("rules only, {rule_things} things, metric history off");
    if wants("off") {
        report(&label, &run(&rules, false, None, false));
    }
    let label = format!("rules only, {rule_things} things, history in a SQLite file");
    if wants("file") {
        report(
            &label,
            &run(&rules, false, Some(&dir.join("rules.db")), true),
        );
    }
    // JSON Lines: the CLI's path (parse each line, then ingest)
    if wants("jsonl") {
        jsonl(rule_things, days);
    }
    drop(rules);
    if wants("ml") {
        let ml = datapoints(ml_things, days);
        let label = format!(
            "rules + one 3-metric ML behaviour per thing, {ml_things} things × {days} days, in memory"
        );
        report(&label, &run(&ml, true, None, true));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn jsonl(rule_things: usize, days: usize) {
    let text: Vec<String> = defender::fleet(rule_things, days, 1)
        .reports
        .iter()
        .map(|r| r.to_json_line())
        .collect();
    let mut config = EngineConfig::default();
    config.max_future_ms = None;
    let mut e = Engine::open(config, None).expect("open");
    e.configure(&profile(false)).expect("profile");
    let t = Instant::now();
    let mut out = Vec::new();
    for line in &text {
        for dp in datapoint::parse_line(line).expect("valid") {
            e.ingest_into(&dp, &mut out).expect("ingest");
        }
        out.clear();
    }
    e.commit(None).expect("commit");
    println!(
        "| JSON Lines parsed and ingested, rules only, {rule_things} things | {:.0} | | | | |",
        text.len() as f64 / t.elapsed().as_secs_f64()
    );
}
