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
//! Fleet scale (issue 13's targets):
//!
//! ```text
//! cargo run --release -p rcf-benches --bin fleet -- --devices 100000 --scope per-device
//! cargo run --release -p rcf-benches --bin fleet -- --devices 100000 --memory-budget 1GiB
//! ```
//!
//! N things report three metrics (messages, bytes out, battery) every five minutes, generated
//! on the fly (a thing's own rate, daily peak, message size and battery cycle); one 3-metric ML
//! behaviour per thing with the engine's default fleet model; metric history on, in a SQLite
//! file in the temp directory; a commit every simulated hour (`--commit-hours`), each model
//! written in full every 24 simulated hours and its rows logged in between
//! (`--model-checkpoint-hours`, the engine's `model_checkpoint_ms`; 0: in full at every
//! commit; `--reopen` then times opening the store again, every model read back and its log
//! replayed, as after a crash). `--scope`
//! sets the behaviour's `rcf.scope`. `--warmup-hours` (default 24:
//! a model gives verdicts once its samples are half full) then `--hours` (default 24) are
//! simulated. Progress goes to stderr; the last line is exactly
//! `fleet devices=N scope=S rss_mib=R datapoints_per_s=P models_in_memory=M evictions=E`,
//! with R the peak resident memory (VmHWM) and P over the whole run, commits included.
//! The bench allocates with mimalloc (`--no-default-features`: the system's allocator; see
//! `ALLOC`).
//!
//! The alarm curve (`--alarm-curve [--things 200] [--days 4] [--seeds 3] [--first-seed 0]
//! [--z 3,3.5] [--trees 5,10] [--memory 10,4]`): the demo fleet and
//! profile (rules, a fleet percentile gated by the ML behaviour, the ML behaviour) for each
//! scope, confidence level and `consecutiveDatapointsToAlarm` of the ML behaviour; per row the
//! share of the injected security and health incidents (the benign rollout left out) with an
//! in-alarm violation within 3 datapoints of their start, and false alarms (in-alarm
//! violations of no incident) per device-day, over `--seeds` seeded fleets from
//! `--first-seed`; with `--z`, per-device models at 1 datapoint to alarm for each listed
//! threshold z-factor (`rcf.zFactor`) instead; with `--trees`, per-device models at each
//! confidence level and 1 to 3 datapoints to alarm for each listed number of trees
//! (`rcf.numTrees`; the fleet model has 10), for what a smaller model costs in detection;
//! with `--memory`, the same for each listed reach of a model's sample, in sample sizes
//! (`rcf.timeDecay` = 1 / (k · 256)), for what a shorter memory (fewer points held) costs.
//! `FLEET_CURVE_BY_DAY=1` also prints, to stderr, each seed's false alarms by day of the run
//! and every false alarm's event (JSON), for where and when they fall.
//! It runs itself again with `MALLOC_ARENA_MAX=1`, `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
//! (malloc asks for transparent huge pages) and `MIMALLOC_ALLOW_LARGE_OS_PAGES=1` (mimalloc
//! does) unless they are set (see `main`).
//!
//! Latency: the engine call in which a window's end passes the watermark returns that
//! window's events; its duration is the time from the window closing to its violation events.

use std::time::Instant;

/// The allocator (feature `mimalloc`, on by default). With glibc's malloc in one arena (what
/// keeps a fleet's heap compact, see `main`) the engine's thread and the rayon workers queue
/// on the arena's lock: a 100,000-thing run under a 1 GiB budget spent a quarter of its
/// samples in futex waits and wakes, its two cores a third idle. With mimalloc's per-thread
/// heaps simulated hours 1 – 3 took 44, 55 and 62 s against 81, 114 and 118 s, at the same
/// resident memory (1,328 – 1,384 MiB).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use rcf_benches::fleet_datapoint as to_datapoint;
use rcf_datasets::defender;
use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, MetricValue, datapoint};

fn datapoints(things: usize, days: usize) -> Vec<Datapoint> {
    defender::fleet(things, days, 1)
        .reports
        .iter()
        .map(to_datapoint)
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
        // the fleet percentile requires the ML behaviour: without it, it stands alone (as
        // the rules-only rows measured before composite behaviours)
        for x in b.iter_mut() {
            if let Some(ext) = x.get_mut("rcf").and_then(|e| e.as_object_mut()) {
                ext.remove("requires");
            }
        }
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

/// The value after `--name`, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `/proc/self/status` field in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> u64 {
    proc_kib("/proc/self/status", field)
}

/// Resident memory of this process in transparent huge pages, KiB (`AnonHugePages` of
/// `/proc/self/smaps_rollup`; 0 where the kernel does not say).
fn huge_page_kib() -> u64 {
    proc_kib("/proc/self/smaps_rollup", "AnonHugePages:")
}

/// The KiB figure of the line of `file` that starts with `field` (0 if there is none).
fn proc_kib(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// One row of the alarm curve: (incidents found within 3 datapoints, incidents, false alarms,
/// of which by the ML behaviour, device-days).
#[allow(clippy::too_many_arguments)]
fn curve_row(
    things: usize,
    days: usize,
    seeds: std::ops::Range<u64>,
    scope: &str,
    confidence: &str,
    z_factor: Option<f64>,
    to_alarm: u64,
    model: Model,
) -> (usize, usize, usize, usize, f64) {
    use rcf_datasets::defender::IncidentKind;
    let (mut found, mut real, mut false_alarms, mut ml_false, mut device_days) = (0, 0, 0, 0, 0.0);
    for seed in seeds {
        let fleet = defender::fleet(things, days, seed + 1);
        let mut profile = profile(true);
        for b in profile["securityProfiles"][0]["behaviors"]
            .as_array_mut()
            .expect("list")
        {
            if b["name"] == "traffic-ml" {
                b["criteria"]["mlDetectionConfig"]["confidenceLevel"] = confidence.into();
                b["criteria"]["consecutiveDatapointsToAlarm"] = to_alarm.into();
                b["rcf"]["scope"] = scope.into();
                if let Some(z) = z_factor {
                    b["rcf"]["zFactor"] = z.into();
                }
                if let Some(t) = model.trees {
                    b["rcf"]["numTrees"] = t.into();
                }
                if let Some(k) = model.memory {
                    // the fleet's sample size: a sample reaching back k sample sizes
                    let samples = rcf_stream::fleet::models::FLEET_SAMPLE_SIZE as f64;
                    b["rcf"]["timeDecay"] = (1.0 / (k as f64 * samples)).into();
                }
            }
        }
        let mut config = EngineConfig::default();
        config.max_future_ms = None;
        config.seed = seed;
        let mut e = Engine::open(config, None).expect("open");
        e.configure(&profile).expect("profile");
        let mut events = Vec::new();
        for r in &fleet.reports {
            e.ingest_into(&to_datapoint(r), &mut events)
                .expect("ingest");
        }
        events.extend(e.flush().expect("flush"));
        let alarms: Vec<_> = events
            .iter()
            .filter(|v| v.event_type.as_str() == "in-alarm")
            .collect();
        // an alarm belongs to an incident of its thing from the start to 2 h after the end
        let of = |a: &rcf_stream::fleet::ViolationEvent| {
            fleet.incidents.iter().find(|i| {
                i.things.iter().any(|t| **t == *a.thing_name)
                    && a.time >= i.start
                    && a.time <= i.end.saturating_add(2 * 3_600_000)
            })
        };
        for i in fleet
            .incidents
            .iter()
            .filter(|i| i.kind != IncidentKind::BenignRollout)
        {
            real += 1;
            let first = alarms
                .iter()
                .filter(|a| of(a).is_some_and(|x| std::ptr::eq(x, i)))
                .map(|a| a.time)
                .min();
            if first.is_some_and(|t| t - i.start <= 3 * 300_000) {
                found += 1;
            }
        }
        let false_ones: Vec<_> = alarms.iter().filter(|a| of(a).is_none()).collect();
        false_alarms += false_ones.len();
        ml_false += false_ones
            .iter()
            .filter(|a| &*a.behavior_name == "traffic-ml")
            .count();
        if std::env::var("FLEET_CURVE_BY_DAY").is_ok() {
            let mut by_day = vec![0usize; fleet.days];
            for a in &false_ones {
                let day = ((a.time - defender::START_MS) / 86_400_000) as usize;
                by_day[day.min(fleet.days - 1)] += 1;
            }
            eprintln!("seed {seed}: false alarms by day {by_day:?}");
            for a in &false_ones {
                eprintln!("  {}", a.to_json());
            }
        }
        device_days += (fleet.things.len() * fleet.days) as f64;
    }
    (found, real, false_alarms, ml_false, device_days)
}

/// What an alarm-curve row changes in the ML behaviour's model (`None`: the fleet default).
#[derive(Debug, Clone, Copy, Default)]
struct Model {
    /// `rcf.numTrees`.
    trees: Option<u64>,
    /// `rcf.timeDecay` as `1 / (memory · 256)`: how many sample sizes a sample reaches back.
    memory: Option<u64>,
}

/// The alarm curve (see the module docs).
fn alarm_curve(args: &[String]) {
    let get = |name: &str, default: u64| {
        flag(args, name).map_or(default, |v| v.parse().expect("a whole number"))
    };
    let (things, days, seeds, first) = (
        get("--things", 200) as usize,
        get("--days", 4) as usize,
        get("--seeds", 3),
        get("--first-seed", 0),
    );
    let seeds = first..first + seeds;
    let row_with = |scope: &str, confidence: &str, z: Option<f64>, to_alarm: u64, model: Model| {
        let (f, r, fa, ml, dd) = curve_row(
            things,
            days,
            seeds.clone(),
            scope,
            confidence,
            z,
            to_alarm,
            model,
        );
        let level = z.map_or(confidence.to_string(), |z| format!("zFactor {z}"));
        let mut scope = scope.to_string();
        if let Some(t) = model.trees {
            scope += &format!(", {t} trees");
        }
        if let Some(k) = model.memory {
            scope += &format!(", timeDecay 1/({k}·256)");
        }
        println!(
            "| {scope} | {level} | {to_alarm} | {f}/{r} ({:.0} %) | {:.4} | {:.4} |",
            100.0 * f as f64 / r as f64,
            fa as f64 / dd,
            ml as f64 / dd
        );
    };
    let row = |scope: &str, confidence: &str, z: Option<f64>, to_alarm: u64| {
        row_with(scope, confidence, z, to_alarm, Model::default())
    };
    let header = |what: &str| {
        println!(
            "alarm curve: the demo fleet, {things} things × {days} days, seeds {seeds:?}; the ML behaviour's {what}"
        );
        println!(
            "| scope | confidence | to alarm | incidents found ≤ 3 datapoints | false alarms / device-day | of which ML |"
        );
        println!("|---|---|---|---|---|---|");
    };
    // `--z 3,3.5,4`: per-device models, 1 datapoint to alarm, the threshold's z-factor swept
    if let Some(list) = flag(args, "--z") {
        header("z-factor (rcf.zFactor), per-device, 1 datapoint to alarm");
        for z in list.split(',') {
            row(
                "per-device",
                "MEDIUM",
                Some(z.parse().expect("a number")),
                1,
            );
        }
        return;
    }
    // `--trees 5,10`: per-device models of each size, every confidence and datapoints to alarm
    if let Some(list) = flag(args, "--trees") {
        header("number of trees (rcf.numTrees), per-device");
        for trees in list.split(',') {
            let trees: u64 = trees.parse().expect("a whole number");
            for confidence in ["LOW", "MEDIUM", "HIGH"] {
                for to_alarm in [1, 2, 3] {
                    let model = Model {
                        trees: Some(trees),
                        memory: None,
                    };
                    row_with("per-device", confidence, None, to_alarm, model);
                }
            }
        }
        return;
    }
    // `--memory 10,4,2`: per-device models whose samples reach back that many sample sizes
    // (`rcf.timeDecay` 1 / (k · 256)), every confidence and datapoints to alarm
    if let Some(list) = flag(args, "--memory") {
        header("time decay (rcf.timeDecay), per-device");
        for k in list.split(',') {
            let k: u64 = k.parse().expect("a whole number");
            assert!(k > 0, "--memory: sample sizes, at least 1");
            for confidence in ["LOW", "MEDIUM", "HIGH"] {
                for to_alarm in [1, 2, 3] {
                    let model = Model {
                        trees: None,
                        memory: Some(k),
                    };
                    row_with("per-device", confidence, None, to_alarm, model);
                }
            }
        }
        return;
    }
    header("scope, confidence and datapoints to alarm");
    for scope in ["per-device", "hierarchical", "group"] {
        for confidence in ["LOW", "MEDIUM", "HIGH"] {
            for to_alarm in [1, 2, 3] {
                row(scope, confidence, None, to_alarm);
            }
        }
    }
}

/// The fleet-scale run (see the module docs).
fn scale(args: &[String]) -> Result<(), String> {
    let num = |name: &str, default: f64| -> Result<f64, String> {
        flag(args, name).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{name} must be a non-negative number, got {v:?}"))
        })
    };
    let devices = num("--devices", 0.0)? as usize;
    if devices == 0 {
        return Err("--devices must be at least 1".into());
    }
    let scope = flag(args, "--scope").unwrap_or_else(|| "per-device".into());
    if rcf_stream::fleet::ModelScope::parse(&scope).is_none() {
        return Err(format!(
            "--scope must be per-device, group or hierarchical, got {scope:?}"
        ));
    }
    let commit_hours = num("--commit-hours", 1.0)?.max(1.0 / 12.0);
    let commit_every = (commit_hours * 12.0).round() as i64;
    let budget = flag(args, "--memory-budget")
        .map(|b| rcf_stream::fleet::parse_memory_size(&b))
        .transpose()?;
    let warmup = num("--warmup-hours", 24.0)?;
    let hours = num("--hours", 24.0)?;
    let periods = ((warmup + hours) * 12.0).round() as i64;
    let dir = rcf_benches::ScratchDir::new("rcf-fleet-scale").map_err(|e| e.to_string())?;
    let mut config = EngineConfig::default();
    config.max_future_ms = None;
    config.memory_budget = budget;
    if let Some(h) = flag(args, "--model-checkpoint-hours") {
        let h: f64 = h
            .parse()
            .ok()
            .filter(|h: &f64| h.is_finite() && *h >= 0.0)
            .ok_or_else(|| {
                format!("--model-checkpoint-hours must be a non-negative number, got {h:?}")
            })?;
        config.model_checkpoint_ms = (h * 3_600_000.0).round() as i64;
    }
    let reopen = args.iter().any(|a| a == "--reopen");
    let mut e = Engine::open(config.clone(), Some(&dir.path().join("fleet.db")))
        .map_err(|e| e.to_string())?;
    e.configure(&serde_json::json!({
        "customMetrics": [{"metricName": "battery", "metricType": "number"}],
        "securityProfiles": [{"securityProfileName": "fleet", "behaviors": [
            {"name": "traffic-ml", "metric": "aws:num-messages-sent",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
             "rcf": {"metrics": ["aws:all-bytes-out", "battery"], "scope": scope}}]}]
    }))
    .map_err(|e| e.to_string())?;
    // each thing's character: rate, daily peak hour, bytes per message, battery level
    let mut rng = rcf_datasets::synth::Rng::new(1);
    let things: Vec<(String, f64, f64, f64, f64)> = (0..devices)
        .map(|i| {
            (
                format!("thing-{i:06}"),
                50.0 + 20.0 * rng.uniform(),
                13.0 + 3.0 * rng.uniform(),
                180.0 + 40.0 * rng.uniform(),
                60.0 + 30.0 * rng.uniform(),
            )
        })
        .collect();
    let start_ms: i64 = 1_767_225_600_000;
    let mut out = Vec::new();
    let (mut n, mut commit_secs) = (0u64, 0.0f64);
    let started = Instant::now();
    for p in 0..periods {
        let t = start_ms + p * 300_000;
        let hour = (p % 288) as f64 / 12.0;
        for (i, (name, base, peak, size, battery)) in things.iter().enumerate() {
            let ts = t + 1_000 + (i as i64 % 1_000);
            let daily = 1.0 + 0.5 * (std::f64::consts::TAU * (hour - peak) / 24.0).cos();
            let msgs = (base * daily * (1.0 + 0.08 * rng.normal()))
                .max(0.0)
                .round();
            let bytes = (msgs * size * (1.0 + 0.05 * rng.normal())).max(0.0).round();
            let level =
                battery + 8.0 * (std::f64::consts::TAU * hour / 24.0).sin() + 0.5 * rng.normal();
            for (metric, value) in [
                ("aws:num-messages-sent", MetricValue::Count(msgs as u64)),
                ("aws:all-bytes-out", MetricValue::Count(bytes as u64)),
                (
                    "battery",
                    MetricValue::Number((level * 10.0).round() / 10.0),
                ),
            ] {
                let dp =
                    Datapoint::new(name, metric, value, ts, None).map_err(|e| e.to_string())?;
                e.ingest_into(&dp, &mut out).map_err(|e| e.to_string())?;
                n += 1;
            }
            out.clear();
        }
        if (p + 1) % commit_every == 0 {
            let c = Instant::now();
            e.commit(None).map_err(|e| e.to_string())?;
            commit_secs += c.elapsed().as_secs_f64();
            let s = e.model_stats();
            eprintln!(
                "hour {:>3}: {n} datapoints, {:.0}/s, rss {} MiB, models {} in memory ({} MiB) {} evicted, {} evictions, {} restores, commits {commit_secs:.1} s, in-alarm {}",
                (p + 1) / 12,
                n as f64 / started.elapsed().as_secs_f64(),
                status_kib("VmRSS:") / 1024,
                s.resident,
                s.resident_bytes >> 20,
                s.evicted,
                s.evictions,
                s.restores,
                e.counters().in_alarm
            );
        }
    }
    e.commit(None).map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let s = e.model_stats();
    eprintln!(
        "{devices} things × {periods} windows: {secs:.1} s ({commit_secs:.1} s in commits), per model {} bytes in memory, peak model bytes {} MiB, {} windows, {} in-alarm, {} MiB resident in huge pages",
        s.resident_bytes / s.resident.max(1),
        s.peak_bytes >> 20,
        e.counters().windows,
        e.counters().in_alarm,
        huge_page_kib() >> 10
    );
    drop(e);
    let hwm = status_kib("VmHWM:") / 1024;
    if reopen {
        // what a restart costs: every model read back, its log replayed
        let t = Instant::now();
        let e =
            Engine::open(config, Some(&dir.path().join("fleet.db"))).map_err(|e| e.to_string())?;
        let r = e.model_stats();
        eprintln!(
            "reopened: {} models in memory, {} not, in {:.1} s, rss {} MiB",
            r.resident,
            r.evicted,
            t.elapsed().as_secs_f64(),
            status_kib("VmRSS:") / 1024
        );
    }
    drop(dir);
    println!(
        "fleet devices={devices} scope={scope} rss_mib={} datapoints_per_s={:.0} models_in_memory={} evictions={}",
        hwm,
        n as f64 / secs,
        s.resident,
        s.evictions
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--alarm-curve") {
        alarm_curve(&args);
        return;
    }
    if args.iter().any(|a| a == "--devices") {
        // glibc's malloc gives each thread an arena, and models made on one thread and grown
        // on the rayon workers left 1.7x the live heap resident (2,000 things: 348 MiB with the
        // default, 201 MiB with one arena, at the same speed): run with one unless told.
        // And huge pages: a fleet touches each of its models once per window, every touch a
        // TLB miss in gigabytes of 4 KiB pages (100,000 things, 1 + 2 simulated hours without
        // commits, interleaved: 215k datapoints/s, 229k with glibc.malloc.hugetlb=1, which
        // madvises malloc's memory for transparent huge pages). These now apply to what is
        // not Rust's (SQLite); with mimalloc (`ALLOC`) the same huge pages are its
        // MIMALLOC_ALLOW_LARGE_OS_PAGES=1 (2,000 things per-device, 8 h, interleaved: 204k
        // and 202k datapoints/s without, 210k and 209k with; glibc in one arena 177k, 194k)
        let unset = |v: &str| std::env::var_os(v).is_none();
        let vars = [
            ("MALLOC_ARENA_MAX", "1"),
            ("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
            ("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"),
        ];
        if vars.iter().any(|(v, _)| unset(v)) {
            let exe = std::env::current_exe().expect("own path");
            let mut run = std::process::Command::new(exe);
            run.args(&args[1..]);
            for (v, value) in vars {
                if unset(v) {
                    run.env(v, value);
                }
            }
            let status = run.status().expect("run the fleet-scale bench");
            std::process::exit(status.code().unwrap_or(1));
        }
        if let Err(e) = scale(&args) {
            eprintln!("fleet: {e}");
            std::process::exit(2);
        }
        return;
    }
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
    let dir = rcf_benches::ScratchDir::new("rcf-fleet-bench").expect("temp dir");
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
            &run(&rules, false, Some(&dir.path().join("rules.db")), true),
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
    drop(dir);
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
