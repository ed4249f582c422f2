//! One fleet model's memory and speed by configuration (BENCHMARKS.md, "Fleet models").
//!
//! ```text
//! cargo run --release -p rcf-benches --bin fleet_models -- TREES SAMPLES SHINGLE [BOX_CACHE_MIN_MASS]
//! ```
//!
//! Builds 2,000 three-metric detectors (messages, bytes out, battery, a daily rhythm and
//! noise), feeds each 600 five-minute rows, and prints the forest's memory breakdown, then
//! resident growth per model, `forest().memory_usage()`, the checkpoint size and µs per
//! `process` call (`FLEET_MODELS=N` builds N models instead, e.g. for callgrind;
//! `FLEET_ORDER=round-robin` feeds the second half of the rows one row per model in turn, as
//! a fleet does, see below). The box cache defaults to 16 (the single-stream default); above the sample
//! size + 1 it is off, as in the fleet model (whose 100,000 is off for any sample: a full tree
//! holds one point more while an update inserts before it deletes). The models keep no
//! p-values, as the fleet's (`FLEET_P_VALUES=1` keeps them: 8 KiB more a model).
//! `FLEET_MEMORY=K` sets the time decay to `1 / (K · SAMPLES)` (default 10, the fleet's).
use std::time::Instant;

use rcf_stream::Detector;

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` rows of (messages, bytes out, battery) at five-minute steps.
fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rcf_datasets::synth::Rng::new(seed);
    let mut out = Vec::with_capacity(n * 3);
    for p in 0..n {
        let h = (p % 288) as f64 / 12.0;
        let daily = 1.0 + 0.5 * (std::f64::consts::TAU * (h - 14.0) / 24.0).cos();
        let msgs = (60.0 * daily * (1.0 + 0.08 * r.normal())).round();
        let bytes = msgs * 200.0 * (1.0 + 0.05 * r.normal());
        let bat = 75.0 + 8.0 * (std::f64::consts::TAU * h / 24.0).sin() + 0.5 * r.normal();
        out.extend([msgs as f32, bytes as f32, bat as f32]);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: fleet_models TREES SAMPLES SHINGLE [BOX_CACHE_MIN_MASS]");
        std::process::exit(2);
    }
    let trees: usize = args[1].parse().expect("TREES: a whole number");
    let samples: usize = args[2].parse().expect("SAMPLES: a whole number");
    let shingle: usize = args[3].parse().expect("SHINGLE: a whole number");
    let cache: usize = args.get(4).map_or(16, |a| {
        a.parse().expect("BOX_CACHE_MIN_MASS: a whole number")
    });
    // fewer models (`FLEET_MODELS=50`) for a run under callgrind
    let n_models = std::env::var("FLEET_MODELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // `FLEET_ROWS=N` feeds N rows instead of 600 (two days): a model's point store keeps
    // growing for weeks (BENCHMARKS.md, "Fleet models in the long run")
    let n_points = std::env::var("FLEET_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let data = rows(n_points, 1);
    let before = rss_kib();
    let mut ds = Vec::new();
    let t = Instant::now();
    // `FLEET_ORDER=round-robin`: the first half of the rows model by model, then the second
    // half one row per model in turn, as a fleet feeds them (each call then finds its model
    // cold, as it does in a fleet); `FLEET_ORDER=split` times the second half model by model
    // for comparison. `FLEET_PREFETCH=K` hints the model K calls ahead into cache before each
    // round-robin call (the fleet engine uses K = 1).
    let order = std::env::var("FLEET_ORDER").unwrap_or_default();
    let round_robin = order == "round-robin";
    let halves = round_robin || order == "split";
    let prefetch: usize = std::env::var("FLEET_PREFETCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first = if halves { n_points / 2 } else { n_points };
    let p_values = std::env::var("FLEET_P_VALUES").is_ok_and(|v| v == "1");
    let memory: f64 = std::env::var("FLEET_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    for i in 0..n_models {
        let mut d = Detector::builder(["m", "b", "bat"])
            .num_trees(trees)
            .sample_size(samples)
            .shingle_size(shingle)
            .box_cache_min_mass(cache)
            .p_values(p_values)
            .time_decay(1.0 / (memory * samples as f64))
            .seed(i as u64)
            .build()
            .unwrap();
        d.process_many(&data[..first * 3]).unwrap();
        ds.push(d);
    }
    let mut us = t.elapsed().as_secs_f64() * 1e6 / (n_models * first) as f64;
    if halves {
        let t = Instant::now();
        if round_robin {
            for row in data[first * 3..].chunks_exact(3) {
                for i in 0..n_models {
                    if let Some(next) = ds.get(i + prefetch).filter(|_| prefetch > 0) {
                        next.prefetch();
                    }
                    ds[i].process(row).unwrap();
                }
            }
        } else {
            for d in &mut ds {
                d.process_many(&data[first * 3..]).unwrap();
            }
        }
        let second = t.elapsed().as_secs_f64() * 1e6 / (n_models * (n_points - first)) as f64;
        println!(
            "first {first} rows model by model: {us:.1} us per call; the rest {}: {second:.1} us per call",
            if round_robin {
                "round robin"
            } else {
                "model by model"
            }
        );
        us = second;
    }
    let after = rss_kib();
    let mem: usize = ds.iter().map(|d| d.forest().memory_usage()).sum::<usize>() / n_models;
    let whole: usize = ds.iter().map(Detector::memory_usage).sum::<usize>() / n_models;
    let ser: usize = ds.iter().map(|d| d.to_bytes().len()).sum::<usize>() / n_models;
    let b = ds[0].forest().memory_breakdown();
    println!("{b:?}");
    println!(
        "trees={trees} samples={samples} shingle={shingle} cache={cache}: rss/model={} KiB detector.memory_usage={} KiB forest.memory_usage={} KiB serialized={} KiB process={us:.1} us",
        (after - before) / n_models as u64,
        whole / 1024,
        mem / 1024,
        ser / 1024
    );
}
