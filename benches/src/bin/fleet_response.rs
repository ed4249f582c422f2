//! What the fleet's response side costs (BENCHMARKS.md, "Response").
//!
//! ```text
//! cargo run --release -p rcf-benches --bin fleet_response            # full sizes
//! cargo run --release -p rcf-benches --bin fleet_response -- --quick # CI smoke run
//! ```
//!
//! 1. The demo fleet (200 things, 4 days; rules, a fleet percentile and the ML behaviour) in
//!    a SQLite file, a commit (and a delivery) every 5,000 datapoints: datapoints/s without
//!    sinks and with two (a JSON Lines file and an in-process counter, batches of 100),
//!    best of three runs each, interleaved.
//! 2. A burst: 10,000 things break a rule in the same window. The time to record their
//!    10,000 `in-alarm` events (an outbox row per sink, one incident), then to deliver them to
//!    a sink that takes batches of 100 at most 60 times a minute (pages this minute, and
//!    minutes until all are out), and what an incident sink receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rcf_benches::fleet_datapoint as to_datapoint;
use rcf_datasets::defender;
use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, MetricValue, Sink, SinkOptions};
use serde_json::{Value, json};

/// Counts objects and deliveries.
struct Counter(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Sink for Counter {
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String> {
        self.0.fetch_add(batch.len(), Ordering::Relaxed);
        self.1.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.max_future_ms = None;
    c
}

/// Datapoints/s of the demo fleet in a fresh file store, with or without sinks; and the
/// events delivered.
fn demo(dps: &[Datapoint], sinks: bool) -> (f64, usize) {
    let scratch = rcf_benches::ScratchDir::new("rcf-bench-response").unwrap();
    let dir = scratch.path();
    let mut e = Engine::open(config(), Some(&dir.join("fleet.db"))).unwrap();
    let setup: Value = serde_json::from_str(defender::demo_profile()).unwrap();
    e.configure(&setup).unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    if sinks {
        e.add_sink_spec(&format!("jsonl={}", dir.join("alerts.jsonl").display()))
            .unwrap();
        e.add_sink(
            "counter",
            SinkOptions::default(),
            Box::new(Counter(delivered.clone(), Arc::new(AtomicUsize::new(0)))),
        )
        .unwrap();
    }
    let t = Instant::now();
    for (k, dp) in dps.iter().enumerate() {
        e.ingest(dp).unwrap();
        if k % 5000 == 4999 {
            e.commit(None).unwrap();
            e.respond_now().unwrap();
        }
    }
    e.commit(None).unwrap();
    e.respond_now().unwrap();
    let rate = dps.len() as f64 / t.elapsed().as_secs_f64();
    drop(e);
    drop(scratch);
    (rate, delivered.load(Ordering::Relaxed))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (things, days, burst) = if quick {
        (60, 4, 500)
    } else {
        (200, 4, 10_000)
    };
    let fleet = defender::fleet(things, days, 0);
    let dps: Vec<Datapoint> = fleet.reports.iter().map(to_datapoint).collect();
    let rounds = if quick { 1 } else { 3 };
    let (mut without, mut with, mut events) = (0f64, 0f64, 0);
    for _ in 0..rounds {
        without = without.max(demo(&dps, false).0);
        let (r, n) = demo(&dps, true);
        with = with.max(r);
        events = n;
    }
    println!(
        "demo fleet ({things} things, {days} days, {} datapoints, file store): {:.0} datapoints/s without sinks, {:.0} with two ({events} events delivered to each): {:.1} % slower",
        dps.len(),
        without,
        with,
        100.0 * (1.0 - with / without)
    );

    // the burst
    let mut e = Engine::open(config(), None).unwrap();
    e.configure(
        &json!({"securityProfiles": [{"securityProfileName": "p", "behaviors": [
        {"name": "auth", "metric": "aws:num-authorization-failures",
         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 5},
                      "durationSeconds": 300}}]}]}),
    )
    .unwrap();
    let (objects, pages) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut paging = SinkOptions::default();
    paging.batch = 100;
    paging.per_minute = 60;
    e.add_sink(
        "pager",
        paging,
        Box::new(Counter(objects.clone(), pages.clone())),
    )
    .unwrap();
    let (incidents, _) = (Arc::new(AtomicUsize::new(0)), ());
    let mut per_incident = SinkOptions::default();
    per_incident.payload = rcf_stream::fleet::Payload::Incidents;
    e.add_sink(
        "incidents",
        per_incident,
        Box::new(Counter(incidents.clone(), Arc::new(AtomicUsize::new(0)))),
    )
    .unwrap();
    let t0 = defender::START_MS;
    let names: Vec<String> = (0..burst).map(|i| format!("dev-{i:05}")).collect();
    let mut windows = Vec::new();
    for w in 0..8i64 {
        let t = Instant::now();
        let mut n = 0;
        for name in &names {
            let c = if w == 2 { 40 } else { 0 };
            let dp = Datapoint::new(
                name,
                "aws:num-authorization-failures",
                MetricValue::Count(c),
                t0 + w * 300_000 + 1,
                None,
            )
            .unwrap();
            n += e
                .ingest(&dp)
                .unwrap()
                .iter()
                .filter(|ev| ev.event_type.as_str() == "in-alarm")
                .count();
        }
        e.commit(None).unwrap();
        windows.push((n, t.elapsed().as_secs_f64()));
    }
    let (alarms, record_s) = windows
        .iter()
        .find(|w| w.0 > 0)
        .copied()
        .unwrap_or((0, 0.0));
    let t = Instant::now();
    let mut now = 1_000_000u64;
    let first = e.respond(now).unwrap();
    let first_s = t.elapsed().as_secs_f64();
    let first_pages = pages.load(Ordering::Relaxed);
    let mut minutes = 0;
    while e.respond(now).unwrap().pending > 0 {
        now += 60_001;
        minutes += 1;
    }
    println!(
        "burst: {alarms} things in alarm in one window, recorded in {:.3} s with 2 sinks; first delivery {first_pages} pages ({} events) in {:.3} s, all {} events (in-alarm and alarm-cleared) in {} pages after {minutes} more minutes (rate 60/min, batch 100); the incident sink got {} object(s)",
        record_s,
        first
            .delivered
            .saturating_sub(incidents.load(Ordering::Relaxed)),
        first_s,
        objects.load(Ordering::Relaxed),
        pages.load(Ordering::Relaxed),
        incidents.load(Ordering::Relaxed),
    );
    assert_eq!(incidents.load(Ordering::Relaxed), 1, "one incident");
}
